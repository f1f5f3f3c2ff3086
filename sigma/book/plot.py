"""Plotting helpers shared by the book's chapters: one figure style for the whole book.

Every helper titles its axes and labels them; nothing here computes results, it only
draws tensors it is given. Import is lazy about matplotlib so that the library itself
does not depend on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from html import escape as _html_escape

import torch
from torch import Tensor

__all__ = [
    "use_book_style",
    "plot_signals",
    "plot_kernels",
    "plot_recovery_1d",
    "plot_recovery_2d",
    "plot_fit_history",
    "show_image",
    "show_images",
    "draw_cov_ellipse",
    "plot_sweep_errors",
    "plot_sweep_heatmap",
    "plot_explorer",
    "explorer_animation",
    "player",
]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def use_book_style() -> None:
    """Set the book's matplotlib defaults (size, grid, fonts). Call once per chapter."""
    plt = _plt()
    plt.rcParams.update(
        {
            "figure.figsize": (7.0, 3.2),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "axes.titlesize": 10,
            "legend.fontsize": 9,
            "image.cmap": "viridis",
            "figure.constrained_layout.use": True,
        }
    )


def plot_signals(
    signals: Mapping[str, Tensor],
    *,
    title: str,
    ax=None,
    xlabel: str = "position (pixels)",
    ylabel: str = "value",
):
    """Plot several 1D signals (each ``(L,)`` or ``(1, 1, L)``) on one axis with a legend.

    Returns:
        The matplotlib axis.
    """
    plt = _plt()
    ax = ax or plt.subplots()[1]
    for label, s in signals.items():
        ax.plot(s.detach().cpu().reshape(-1).numpy(), label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(signals) > 1:
        ax.legend()
    return ax


def plot_kernels(
    kernels: Mapping[str, Tensor],
    *,
    title: str,
    ax=None,
    ylabel: str = "weight g[j]",
):
    """Plot 1D kernels as stems at their tap offsets ``j = -r, ..., r``, all centred on 0.

    Kernels of different sizes share one axis, so truncation and width compare at a
    glance. Each tap is a stem, since a kernel only exists at integer offsets; with
    several kernels the stems of one offset stand a little apart, so none hides another.

    Args:
        kernels: legend label mapped to a kernel of shape ``(2h+1,)`` (any odd length).
        title: the axis title (state σ there).
        ax: axis to draw on. Default: None (a new figure).
        ylabel: y-axis label. Default: ``'weight g[j]'``.

    Returns:
        The matplotlib axis.

    Raises:
        ValueError: if ``kernels`` is empty or a kernel is not 1D with an odd length.
    """
    if not kernels:
        raise ValueError("kernels must not be empty")
    for label, k in kernels.items():
        if k.dim() != 1 or k.numel() % 2 != 1:
            raise ValueError(f"kernels[{label!r}] must be 1D with an odd length, got shape {tuple(k.shape)}")
    plt = _plt()
    ax = ax or plt.subplots()[1]
    for i, (label, k) in enumerate(kernels.items()):
        r = (k.numel() - 1) // 2
        shift = 0.15 * (i - (len(kernels) - 1) / 2)
        offsets = [j + shift for j in range(-r, r + 1)]
        color = f"C{i % 10}"
        markers, _, _ = ax.stem(
            offsets, k.detach().cpu().numpy(), linefmt=color, markerfmt="o", basefmt=" ", label=label
        )
        markers.set(color=color, markersize=4)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set(title=title, xlabel="tap offset j (pixels)", ylabel=ylabel)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if len(kernels) > 1:
        ax.legend()
    return ax


def plot_recovery_1d(
    target: Tensor,
    snapshots: Mapping[int, Tensor],
    sigmas: Mapping[int, float],
    *,
    sigma_true: float,
    source: Tensor | None = None,
):
    """One panel per snapshot step: prediction vs target (and optionally the source signal).

    Args:
        target: target signal ``(L,)`` or ``(1, 1, L)``.
        snapshots: step -> predicted signal.
        sigmas: step -> σ at that step (for the panel titles).
        sigma_true: the true σ (for the figure title).
        source: the unblurred input, drawn faintly. Default: None.

    Returns:
        The matplotlib figure.
    """
    plt = _plt()
    steps = sorted(snapshots)
    fig, axes = plt.subplots(1, len(steps), figsize=(3.0 * len(steps), 2.8), sharey=True, squeeze=False)
    for ax, step in zip(axes[0], steps, strict=True):
        if source is not None:
            ax.plot(source.detach().cpu().reshape(-1).numpy(), color="0.8", lw=0.8, label="input x")
        ax.plot(target.detach().cpu().reshape(-1).numpy(), color="k", lw=1.5, label="target y")
        ax.plot(
            snapshots[step].detach().cpu().reshape(-1).numpy(), "--", color="C1", lw=1.5, label="prediction"
        )
        ax.set(title=f"step {step}: σ = {float(sigmas[step]):.3f}", xlabel="position (pixels)")
    axes[0][0].set_ylabel("value")
    axes[0][0].legend(loc="lower left")
    fig.suptitle(f"Recovering σ = {sigma_true:g} by gradient descent")
    return fig


def show_image(ax, img: Tensor, *, title: str, cmap: str = "gray", colorbar: bool = True, **kwargs):
    """Show a ``(H, W)`` (or ``(1, 1, H, W)``) image with a title, pixel axes and a colorbar."""
    plt = _plt()
    a = img.detach().cpu()
    while a.dim() > 2:
        a = a[0]
    im = ax.imshow(a.numpy(), cmap=cmap, **kwargs)
    ax.set(title=title, xlabel="x (pixels)", ylabel="y (pixels)")
    ax.grid(False)
    if colorbar:
        plt.colorbar(im, ax=ax, shrink=0.8)
    return im


def plot_recovery_2d(
    target: Tensor,
    snapshots: Mapping[int, Tensor],
    sigmas: Mapping[int, float],
    *,
    sigma_true: float,
):
    """Target image and the prediction at each snapshot step, on one shared color scale.

    Returns:
        The matplotlib figure.
    """
    plt = _plt()
    steps = sorted(snapshots)
    n = len(steps) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8))
    vmin, vmax = float(target.min()), float(target.max())
    show_image(axes[0], target, title=f"target (σ = {sigma_true:g})", colorbar=False, vmin=vmin, vmax=vmax)
    for ax, step in zip(axes[1:], steps, strict=True):
        im = show_image(
            ax,
            snapshots[step],
            title=f"step {step}: σ = {float(sigmas[step]):.3f}",
            colorbar=False,
            vmin=vmin,
            vmax=vmax,
        )
        ax.set_ylabel("")
    plt.colorbar(im, ax=list(axes), shrink=0.8, label="value")
    fig.suptitle("Prediction converging to the target")
    return fig


def plot_fit_history(
    losses: Sequence[float],
    values: Tensor,
    *,
    truth: float | Sequence[float] | None = None,
    name: str = "σ",
    labels: Sequence[str] | None = None,
    title: str = "",
):
    """Loss curve (log scale) beside the trajectory of a tracked scale.

    Args:
        losses: loss per step.
        values: tracked values, shape ``(steps,)`` or ``(steps, P)`` for P curves.
        truth: true value(s), drawn as dotted horizontal lines. Default: None.
        name: the quantity's name for the axis label. Default: ``'σ'``.
        labels: legend labels for the P curves. Default: None.
        title: figure title. Default: empty.

    Returns:
        The matplotlib figure.
    """
    plt = _plt()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.0, 3.0))
    ax0.semilogy(list(losses), color="C0")
    ax0.set(title="loss", xlabel="step", ylabel=r"loss $\mathcal{L}$")
    v = values.detach().cpu()
    v = v.reshape(v.shape[0], -1)
    for i in range(v.shape[1]):
        label = labels[i] if labels else (f"{name}" if v.shape[1] == 1 else f"{name}[{i}]")
        ax1.plot(v[:, i].numpy(), color=f"C{i}", label=f"learned {label}")
    if truth is not None:
        truths = [truth] if isinstance(truth, (int, float)) else list(truth)
        for i, t in enumerate(truths):
            ax1.axhline(
                float(t),
                ls=":",
                color=f"C{i}",
                label=f"true {labels[i] if labels else name}" if len(truths) > 1 else f"true {name}",
            )
    ax1.set(title=f"{name} during training", xlabel="step", ylabel=name)
    ax1.legend()
    if title:
        fig.suptitle(title)
    return fig


def draw_cov_ellipse(
    ax, cov: Tensor, *, center: tuple[float, float] = (0.0, 0.0), n_std: float = 2.0, **kwargs
):
    """Draw the ``n_std`` ellipse of a (row, col) covariance on an image axis.

    ``center`` is ``(x, y)`` in the axis' data coordinates (column, row).

    Returns:
        The matplotlib line.
    """
    c = cov.detach().cpu().double()
    evals, evecs = torch.linalg.eigh(c)
    t = torch.linspace(0, 2 * math.pi, 200, dtype=torch.float64)
    circle = torch.stack([torch.cos(t), torch.sin(t)])  # (2, 200)
    pts = evecs @ (evals.sqrt().unsqueeze(1) * circle) * n_std  # rows: (row, col)
    return ax.plot(center[0] + pts[1].numpy(), center[1] + pts[0].numpy(), **kwargs)[0]


def _explorer_model(x, sigma_true, opts, sigma_range, num):
    """Checked signal, target, σ grid and (loss, gradient) curves of the explorer."""
    from ..blur import blur1d

    if not isinstance(x, Tensor) or not (x.dim() == 1 or (x.dim() == 3 and x.shape[:2] == (1, 1))):
        raise ValueError(f"x must be one signal of shape (L,) or (1, 1, L), got {getattr(x, 'shape', x)!r}")
    low, high = (float(v) for v in sigma_range)
    if not 0 < low < high:
        raise ValueError(f"sigma_range must satisfy 0 < low < high, got sigma_range={sigma_range!r}")
    if num < 2:
        raise ValueError(f"num must be at least 2, got num={num!r}")
    x = x.detach().reshape(1, 1, -1)
    target = blur1d(x, sigma_true, **opts)
    grid = torch.logspace(math.log10(low), math.log10(high), num, dtype=torch.float64).tolist()
    curves = torch.tensor([_explorer_loss_grad(x, target, v, opts)[:2] for v in grid], dtype=torch.float64)
    return x, target, grid, curves


def _explorer_loss_grad(x, target, value, opts):
    """(𝓛, ∂𝓛/∂s, prediction) at σ = value."""
    from ..blur import blur1d
    from .train import half_mse

    # d𝓛/ds = σ d𝓛/dσ; differentiating at σ itself (not at exp(log σ), which can round
    # across a kernel-size jump) keeps 𝓛 exactly 0 at σ = sigma_true.
    sig = torch.tensor(float(value), dtype=x.dtype, requires_grad=True)
    pred = blur1d(x, sig, **opts)
    loss = half_mse(pred, target)
    (grad,) = torch.autograd.grad(loss, sig)
    return float(loss.detach()), float(value) * float(grad), pred.detach()


def _draw_explorer(axes, fig, x, target, grid, curves, sigma, sigma_true, opts, kernel_xlim=None):
    """Draw the explorer's four panels for one σ on a 2 x 2 array of axes."""
    from ..kernels import gauss1d

    loss, grad, pred = _explorer_loss_grad(x, target, sigma, opts)
    g = gauss1d(float(sigma), opts["std_devs"], kernel=opts["kernel"], dtype=torch.float64)
    r = (g.numel() - 1) // 2
    ax = axes[0, 0]
    ax.stem(torch.arange(-r, r + 1).numpy(), g.numpy(), basefmt=" ")
    ax.set(
        title=f"kernel ({opts['kernel']}): σ = {sigma:.2f}, r = {r} ({2 * r + 1} taps)",
        xlabel="tap offset j (pixels)",
        ylabel="weight g[j]",
    )
    if kernel_xlim is not None:
        ax.set_xlim(-kernel_xlim - 0.5, kernel_xlim + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    plot_signals(
        {
            "input x": x,
            f"target y (σ* = {sigma_true:g})": target,
            f"prediction ŷ (σ = {sigma:.2f})": pred,
        },
        title=f"blurred signal, '{opts['padding_mode']}' padding",
        ax=axes[0, 1],
    )
    axes[0, 1].lines[0].set(color="0.75", lw=0.8)
    axes[0, 1].legend(loc="best")
    for ax, col, name, value in (
        (axes[1, 0], 0, r"loss $\mathcal{L}$", rf"$\mathcal{{L}}$ = {loss:.3e}"),
        (
            axes[1, 1],
            1,
            r"gradient $\partial\mathcal{L}/\partial s$",
            rf"$\partial\mathcal{{L}}/\partial s$ = {grad:+.3e}",
        ),
    ):
        ax.plot(grid, curves[:, col].numpy(), color="C0", label=name)
        ax.plot([float(sigma)], [(loss, grad)[col]], "o", color="C1", label=f"σ = {sigma:.2f}")
        ax.axvline(sigma_true, ls=":", color="k", label=f"σ* = {sigma_true:g}")
        ax.set_xscale("log")
        ax.set(title=f"{name} over σ: {value}", xlabel="σ (pixels, log scale)", ylabel=name)
        ax.legend(loc="best")
    axes[1, 1].axhline(0.0, color="0.5", lw=0.8)
    fig.suptitle(f"Explorer: σ = {sigma:.2f} against a target blurred with σ* = {sigma_true:g}")


def plot_explorer(
    x: Tensor,
    sigma: float,
    *,
    sigma_true: float = 3.0,
    std_devs: float = 2.0,
    kernel: str = "sampled",
    padding_mode: str = "zeros",
    sigma_range: tuple[float, float] = (0.3, 10.0),
    num: int = 97,
):
    r"""The explorer's figure: kernel, blurred signal, loss and gradient for one σ.

    Unlike the other helpers this one evaluates the model itself, so that the explorer
    chapter's interactive cell and its static figure draw through the same code. The
    target is ``y = blur1d(x, sigma_true)`` and the prediction ``ŷ = blur1d(x, sigma)``,
    both with the given ``std_devs``, ``kernel`` and ``padding_mode``; the loss is
    :math:`\mathcal{L} = \tfrac12\,\mathrm{mean}((\hat y - y)^2)` (:func:`sigma.book.half_mse`)
    and the gradient is :math:`\partial \mathcal{L} / \partial s = \sigma\, \partial \mathcal{L}
    / \partial \sigma` with :math:`s = \log \sigma`, by autograd.
    Loss and gradient are drawn over ``num`` log-spaced σ in ``sigma_range`` (each with
    its own kernel size, so the kernel-size jumps show) with the chosen σ marked.

    Args:
        x: the input signal, shape ``(L,)`` or ``(1, 1, L)``, floating point.
        sigma: the σ to show, in pixels.
        sigma_true: σ of the target blur. Default: 3.0.
        std_devs: kernel truncation in standard deviations. Default: 2.0.
        kernel: ``'sampled'`` or ``'erf'``. Default: ``'sampled'``.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
            Default: ``'zeros'``.
        sigma_range: ``(low, high)`` σ range of the loss and gradient curves. Default:
            ``(0.3, 10.0)``.
        num: number of σ on the curves. Default: 97.

    Returns:
        The matplotlib figure, four axes: kernel (stems), signals, loss, gradient.

    Raises:
        ValueError: if ``x`` is not one signal of shape ``(L,)`` or ``(1, 1, L)``, if
            ``sigma_range`` is not ``0 < low < high``, or ``num < 2``; the blur's own
            checks (σ, ``std_devs``, ``kernel``, ``padding_mode``) apply too.
    """
    plt = _plt()
    opts = {"std_devs": std_devs, "padding_mode": padding_mode, "kernel": kernel}
    x, target, grid, curves = _explorer_model(x, sigma_true, opts, sigma_range, num)
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.0))
    _draw_explorer(axes, fig, x, target, grid, curves, float(sigma), sigma_true, opts)
    return fig


def explorer_animation(
    x: Tensor,
    sigmas: Sequence[float],
    *,
    sigma_true: float = 3.0,
    std_devs: float = 2.0,
    kernel: str = "sampled",
    padding_mode: str = "zeros",
    sigma_range: tuple[float, float] = (0.3, 10.0),
    num: int = 61,
    figsize: tuple[float, float] = (8.0, 5.4),
    dpi: float = 64,
    alt: str = "",
) -> str:
    """The explorer's four panels at several σ, as an HTML slider that needs no kernel.

    Draws :func:`plot_explorer`'s panels once per σ in ``sigmas`` (the loss and gradient
    curves are computed once and shared by every frame; the kernel panel keeps one tap
    range, that of the largest σ, so the support visibly grows) and returns matplotlib's
    JavaScript animation (:meth:`matplotlib.animation.Animation.to_jshtml`): the frames
    embedded as PNG images behind a range slider and play buttons. It works in a static
    page with no kernel and no network: the player's one external reference, a
    stylesheet link to Font Awesome on a CDN for its button icons, is removed (the book's
    theme ships Font Awesome). Display it with ``IPython.display.HTML``.

    Keep the page light: each frame is one PNG of ``figsize`` x ``dpi`` pixels, so a
    dozen frames at the defaults embed well under a megabyte.

    Args:
        x: the input signal, shape ``(L,)`` or ``(1, 1, L)``, floating point.
        sigmas: the σ of the frames, in pixels, in slider order (at least one).
        sigma_true: σ of the target blur. Default: 3.0.
        std_devs: kernel truncation in standard deviations. Default: 2.0.
        kernel: ``'sampled'`` or ``'erf'``. Default: ``'sampled'``.
        padding_mode: the blur's padding mode. Default: ``'zeros'``.
        sigma_range: σ range of the loss and gradient curves. Default: ``(0.3, 10.0)``.
        num: number of σ on the curves. Default: 61.
        figsize: size of a frame in inches. Default: ``(8.0, 5.4)``.
        dpi: resolution of the frames. Default: 64.
        alt: alt text of the frame image, for readers who cannot see it. Default: ``''``.

    Returns:
        The animation's HTML, matplotlib's standard player: a ``<div class="animation">``
        holding the frame image, a range slider (``<input ... type="range">``) and the
        play buttons, with every frame inlined as a base64 PNG.

    Raises:
        ValueError: if ``sigmas`` is empty, or for the reasons of :func:`plot_explorer`.
    """
    sigmas = [float(v) for v in sigmas]
    if not sigmas:
        raise ValueError("sigmas must hold at least one σ, got an empty sequence")
    opts = {"std_devs": std_devs, "padding_mode": padding_mode, "kernel": kernel}
    x, target, grid, curves = _explorer_model(x, sigma_true, opts, sigma_range, num)
    from ..kernels import kernel_radius

    r_max = max(kernel_radius(v, std_devs) for v in sigmas)

    def draw(fig, axes, i):
        _draw_explorer(axes, fig, x, target, grid, curves, sigmas[i], sigma_true, opts, kernel_xlim=r_max)

    margins = {"left": 0.09, "right": 0.98, "bottom": 0.09, "top": 0.9, "wspace": 0.28, "hspace": 0.45}
    return player(draw, len(sigmas), nrows=2, ncols=2, figsize=figsize, dpi=dpi, margins=margins, alt=alt)


def player(
    draw: Callable,
    n_frames: int,
    *,
    nrows: int = 1,
    ncols: int = 1,
    figsize: tuple[float, float] = (8.0, 3.2),
    dpi: float = 64,
    margins: dict | None = None,
    interval: int = 600,
    alt: str = "",
) -> str:
    """An HTML slider over ``n_frames`` drawings that needs no kernel (a page's "see it move").

    ``draw(fig, axes, i)`` draws frame ``i`` on the cleared ``axes`` (an array of ``nrows x ncols``,
    or one ``Axes``). The frames are embedded as PNG images behind matplotlib's JavaScript player
    (:meth:`matplotlib.animation.Animation.to_jshtml`): a range slider and play buttons that work in
    a static page with no network (the player's one external reference, a Font Awesome stylesheet
    on a CDN, is removed; the book's theme ships Font Awesome). Display it with
    ``IPython.display.HTML``. Each frame is one PNG of ``figsize x dpi`` pixels: keep a page to a
    dozen or two frames.

    Args:
        draw: draws one frame.
        n_frames: number of frames, at least 1.
        nrows, ncols: the grid of axes. Default: one.
        figsize: size of a frame in inches. Default: ``(8.0, 3.2)``.
        dpi: resolution of the frames. Default: 64.
        margins: ``Figure.subplots_adjust`` arguments (fixed margins: a layout engine would
            re-measure every frame). Default: matplotlib's.
        interval: milliseconds per frame when playing. Default: 600.
        alt: alt text of the frame image. Default: ``''``.

    Returns:
        The player's HTML: a ``<div class="animation">`` with the frame image, a range slider
        (``<input ... type="range">``) and the play buttons, every frame inlined as base64 PNG.

    Raises:
        ValueError: if ``n_frames`` is not a positive int.
    """
    from matplotlib import animation

    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
    plt = _plt()
    # Fixed margins: a layout engine would re-measure every frame twice (most of the cost). The
    # rc setting too, since savefig re-creates the layout engine that rcParams name.
    no_layout = {"figure.constrained_layout.use": False, "figure.autolayout": False}
    with plt.rc_context(
        {"savefig.dpi": dpi, "figure.dpi": dpi, "font.size": 9, "legend.fontsize": 7, **no_layout}
    ):
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout="none", squeeze=False)
        fig.subplots_adjust(**(margins or {}))
        shown = axes if nrows * ncols > 1 else axes[0, 0]
        if nrows == 1 and ncols > 1:
            shown = axes[0]

        def frame(i):
            for ax in axes.flat:
                ax.cla()
            draw(fig, shown, i)
            # Blitting one empty line (skipped when a frame is saved) spares the full redraw that
            # FuncAnimation would do before saving each frame; the saved frame draws everything.
            return axes[0, 0].plot([], [])

        anim = animation.FuncAnimation(fig, frame, frames=n_frames, interval=interval, blit=True)
        try:
            html = anim.to_jshtml(default_mode="once")
        finally:
            plt.close(fig)
    # matplotlib's player links Font Awesome (its button icons) from a CDN; the page must
    # fetch nothing, and the book's theme ships Font Awesome itself.
    html = re.sub(r"<link\s+rel=\"stylesheet\"\s+href=\"https?://[^\"]*\"\s*/?>\s*", "", html)
    if alt:
        html = html.replace("<img id=", f'<img alt="{_html_escape(alt, quote=True)}" id=', 1)
    return html


def _sweep_table(lrs: Sequence[float], errors: Tensor, labels: Sequence[str]) -> Tensor:
    e = torch.as_tensor(errors, dtype=torch.float64).detach().cpu()
    if e.dim() != 2 or e.shape != (len(labels), len(lrs)):
        raise ValueError(
            f"errors must have shape (len(labels), len(lrs)) = ({len(labels)}, {len(lrs)}), "
            f"got shape {tuple(e.shape)}"
        )
    return e


def plot_sweep_errors(
    ax,
    lrs: Sequence[float],
    errors: Tensor,
    *,
    labels: Sequence[str],
    title: str,
    floor: float = 1e-16,
    diverged_at: float = 1e2,
    vlines: Mapping[str, float] | None = None,
    ylabel: str = "final relative error |σ − σ*| / σ*",
):
    """Final error against learning rate on log-log axes, one line per row of ``errors``.

    Diverged runs (``nan`` entries, as :meth:`sigma.book.SweepResult.relative_error`
    returns them) are drawn as ``x`` markers on a dotted line at ``diverged_at``;
    errors below ``floor`` (exact recoveries included) are drawn at ``floor``, since a
    log axis cannot show zero.

    Args:
        ax: the matplotlib axis to draw on.
        lrs: the learning rates, length N.
        errors: final errors, shape ``(R, N)``; ``nan`` marks a diverged run.
        labels: one legend label per row, length R.
        title: the axis title.
        floor: smallest error drawn. Default: 1e-16.
        diverged_at: height of the diverged markers. Default: 100.
        vlines: legend label mapped to a learning rate, each drawn as a dashed
            vertical line (e.g. a predicted threshold). Default: None.
        ylabel: the y-axis label. Default: the relative error of σ.

    Returns:
        The axis.

    Raises:
        ValueError: if ``errors`` is not of shape ``(len(labels), len(lrs))``.
    """
    e = _sweep_table(lrs, errors, labels)
    x = torch.as_tensor(list(lrs), dtype=torch.float64)
    for i, label in enumerate(labels):
        row = e[i]
        ok = ~torch.isnan(row)
        ax.plot(x[ok].numpy(), row[ok].clamp_min(floor).numpy(), "o-", color=f"C{i}", ms=4, label=label)
        if bool((~ok).any()):
            ax.plot(x[~ok].numpy(), [diverged_at] * int((~ok).sum()), "x", color=f"C{i}", ms=7, mew=2)
    ax.axhline(diverged_at, ls=":", color="0.5", lw=0.8, label="diverged (×)")
    for j, (label, lr) in enumerate((vlines or {}).items()):
        ax.axvline(float(lr), ls="--", color=f"C{len(labels) + j}", lw=1.2, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(title=title, xlabel="learning rate", ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax


def plot_sweep_heatmap(
    ax,
    lrs: Sequence[float],
    errors: Tensor,
    *,
    row_labels: Sequence[str],
    title: str,
    floor: float = 1e-16,
    vmin: float | None = None,
    vmax: float | None = None,
    ylabel: str = "optimizer, parameterization",
):
    """Heatmap of ``log10`` final error: rows (e.g. optimizer and parameterization) by learning rate.

    Diverged runs (``nan`` entries) are shown as grey cells with an ``x``; errors below
    ``floor`` are drawn at ``floor``. A colorbar labels the scale.

    Args:
        ax: the matplotlib axis to draw on.
        lrs: the learning rates (columns), length N.
        errors: final errors, shape ``(R, N)``; ``nan`` marks a diverged run.
        row_labels: one label per row, length R.
        title: the axis title.
        floor: smallest error drawn. Default: 1e-16.
        vmin, vmax: color limits in ``log10`` units. Default: None (data range).
        ylabel: the y-axis label. Default: ``'optimizer, parameterization'``.

    Returns:
        The image returned by ``imshow``.

    Raises:
        ValueError: if ``errors`` is not of shape ``(len(row_labels), len(lrs))``.
    """
    plt = _plt()
    e = _sweep_table(lrs, errors, row_labels)
    z = e.clamp_min(floor).log10()
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    im = ax.imshow(z.numpy(), cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    for i, j in torch.isnan(e).nonzero().tolist():
        ax.text(j, i, "×", ha="center", va="center", color="0.3", fontsize=9)
    ax.set_xticks(range(len(lrs)), [f"{float(f'{float(lr):.2g}'):g}" for lr in lrs], rotation=90)
    ax.set_yticks(range(len(row_labels)), list(row_labels))
    ax.set(title=title, xlabel="learning rate", ylabel=ylabel)
    ax.grid(False)
    plt.colorbar(im, ax=ax, label="log10 final relative error")
    return im


def show_images(
    panels: Mapping[str, Tensor],
    *,
    title: str | None = None,
    ncols: int | None = None,
    cmap: str | Mapping[str, str] = "gray",
    clim: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
    size: float = 2.6,
):
    """Draw several images in a grid, each with its title, pixel axes and its own colorbar.

    Args:
        panels: panel title -> image of shape ``(H, W)`` (or with leading singleton
            dimensions, e.g. ``(1, 1, H, W)``), drawn row by row in the mapping's order.
        title: figure title (state σ where relevant). Default: None.
        ncols: panels per row. Default: None (all in one row).
        cmap: one colormap for every panel, or panel title -> colormap (panels not
            listed use ``'gray'``). Default: ``'gray'``.
        clim: color limits: None (each panel its own data range), one ``(vmin, vmax)``
            pair for every panel, or panel title -> pair (others use their data range).
            Default: None.
        size: width of one panel in inches. Default: 2.6.

    Returns:
        The matplotlib figure; unused grid cells are hidden.

    Raises:
        ValueError: if ``panels`` is empty or ``ncols`` is not a positive int.
    """
    if not panels:
        raise ValueError("panels must hold at least one image, got an empty mapping")
    n = len(panels)
    ncols = n if ncols is None else ncols
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got ncols={ncols!r}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, 0.9 * size * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (name, img) in zip(flat, panels.items(), strict=False):
        cm = cmap.get(name, "gray") if isinstance(cmap, Mapping) else cmap
        lim = clim.get(name) if isinstance(clim, Mapping) else clim
        kwargs = {} if lim is None else {"vmin": float(lim[0]), "vmax": float(lim[1])}
        show_image(ax, img, title=name, cmap=cm, **kwargs)
    for ax in flat[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig
