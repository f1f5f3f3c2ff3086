"""Plotting helpers shared by the book's chapters: one figure style for the whole book.

Every helper titles its axes and labels them; nothing here computes results, it only
draws tensors it is given. Import is lazy about matplotlib so that the library itself
does not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = [
    "use_book_style",
    "plot_signals",
    "plot_recovery_1d",
    "plot_recovery_2d",
    "plot_fit_history",
    "show_image",
    "draw_cov_ellipse",
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
    ax0.set(title="loss", xlabel="step", ylabel="loss L")
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
