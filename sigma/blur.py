r"""Differentiable Gaussian blurs: isotropic, axis-aligned, full covariance, and DoG.

Every blur correlates its input with a normalized Gaussian kernel (see
:mod:`sigma.kernels`) under a boundary rule ``padding_mode``, and is differentiable
in the input and in every scale parameter. Shapes follow PyTorch's convolution
layers: 1D input ``(B, C, L)``, 2D input ``(B, C, H, W)``; the output has the
input's shape, dtype and device.

Conventions:
    * σ is in pixels: a number or a tensor of shape ``()`` (one σ), ``(C,)`` (one per
      channel), ``(B, C)`` or ``(B, 1)`` (one per sample, and per channel). A 1D σ is
      always per channel. Each σ's kernel is truncated at its own half-size
      ``max(1, ceil(std_devs * σ))``, so every output depends only on its own σ.
    * ``radius=`` (an int, or a pair ``(h_y, h_x)`` in 2D) fixes the half-size of
      every kernel instead; the call then reads no tensor value on the host (no
      device sync, nothing for ``torch.compile`` to guard on), and tensor σ values are
      not checked. Without it the support follows σ (one device-to-host read).
    * ``padding_mode`` (keyword-only, as are ``kernel``, ``method`` and ``radius``) is
      one of :data:`sigma._padding.MODES`; each matches ``scipy.ndimage`` (``'zeros'``:
      ``constant``, ``'reflect'``: ``mirror``, ``'symmetric'``: ``reflect``,
      ``'replicate'``: ``nearest``, ``'circular'``: ``wrap``) with ``radius=h``.
    * ``method`` picks the algorithm: ``'direct'`` (shifted sums), ``'matmul'``
      (banded matrix products), ``'fft'``, ``'fused'`` (compiled loops, one pass over memory
      per axis; separable blurs only; its first call per kernel size compiles, seconds) or
      ``'auto'`` (chosen from the kernel and input sizes by :mod:`sigma._auto`'s rule, whose
      constants :func:`sigma.tune` can measure for this machine); all give the same result to
      rounding.

Each public function validates its options once (:func:`sigma._checks.blur_options`),
resolves the kernel support (:func:`sigma._checks.resolve_support`) and calls a private,
unchecked builder (``_blur1d``, ``_blur2d_sep``, ``_blur2d_full``, ``_dog``) with the
``Support`` and the ``BlurOptions``, as the modules do with their own, already valid, ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import _checks
from ._checks import (
    BlurOptions,
    Support,
    blur_options,
    check_input,
    diag_tops,
    own_radii,
    read_largest,
    resolve_support,
    scale_arg,
)
from ._conv import correlate2d, correlate_axis, correlate_pairs_per_sample, correlate_separable
from .kernels import _gauss1d, _gauss2d_full

__all__ = ["blur1d", "blur2d_sphere", "blur2d_diag", "blur2d_full", "dog1d", "dog2d"]


# ----------------------------------------------------------------------------- checks


def _options(x: Tensor, axes: int, *options, **named) -> BlurOptions:
    """Check ``x`` (``axes`` spatial dims), then the options (:func:`blur_options`'s order)."""
    check_input(x, axes + 2)
    return blur_options(axes, *options, **named)


def _scale(x: Tensor, value, name: str, o: BlurOptions):
    """``(σ tensor, its largest value)``: that value when already read, else a reader for
    :func:`resolve_support` (which reads it only without ``radius``; with it, values go unchecked)."""
    s, top = scale_arg(
        value, name, x_shape=tuple(x.shape), dtype=x.dtype, device=x.device, check_values=o.radius is None
    )
    return s, (top if top is not None else lambda: read_largest(s, name))


# ----------------------------------------------------------------------------- per sample


def _per_sample(x: Tensor, scales: list[Tensor], tail: int = 0) -> tuple[Tensor, list[Tensor], Callable]:
    """Fold per-sample scales into channels.

    A scale with two leading dims ``(B', C')`` (``B'`` in {1, B}, ``C'`` in {1, C}, before
    ``tail`` trailing dims) is per sample: then ``x`` becomes ``(1, B*C, ...)`` and every
    scale one value per (sample, channel), so the engines run with per-channel kernels.
    Returns ``(x, scales, unfold)``.
    """
    B, C = x.shape[:2]
    lead = [s.dim() - tail for s in scales]
    if 2 not in lead:
        return x, scales, _identity
    if all(s.shape[0] == 1 for s, n in zip(scales, lead, strict=True) if n == 2):
        # (1, C') is one value per channel for every sample
        out = [s.squeeze(0) if n == 2 else s for s, n in zip(scales, lead, strict=True)]
        out = [s.squeeze(0) if s.dim() - tail == 1 and s.shape[0] == 1 and C != 1 else s for s in out]
        return x, out, _identity
    out = []
    for s, n in zip(scales, lead, strict=True):
        if n == 0:
            out.append(s)
            continue
        t = s if n == 2 else s.unsqueeze(0)
        t = t.expand(B, C, *t.shape[2:])
        out.append(t.reshape(B * C, *t.shape[2:]))
    shape = x.shape
    return x.reshape(1, B * C, *shape[2:]), out, lambda y: y.reshape(shape)


def _identity(y: Tensor) -> Tensor:
    return y


def _fold_kernels(x: Tensor, ws: list[Tensor]) -> tuple[Tensor, list[Tensor], Callable]:
    """``x`` (B, C, ...) as (1, B * C, ...) and per-sample kernels (B, k) as (B * C, k), the
    per-channel layout of the engines (a kernel passed twice stays one object). Returns
    ``(x, kernels, unfold)``."""
    B, C = x.shape[:2]
    shape, folded = x.shape, {}
    for w in ws:
        if id(w) not in folded:
            folded[id(w)] = w.unsqueeze(1).expand(B, C, w.shape[-1]).reshape(B * C, w.shape[-1])
    return x.reshape(1, B * C, *shape[2:]), [folded[id(w)] for w in ws], lambda y: y.reshape(shape)


def _sample_scales(x: Tensor, scales: list[Tensor]) -> list[Tensor] | None:
    """The scales as ``(B,)``, one per sample, where every one is ``(B, 1)`` (per sample, shared
    by the channels) for a batch of ``B > 1``; else None. Such kernels can stay one per sample
    (:func:`sigma._conv.correlate_pairs_per_sample`) instead of one per sample and channel."""
    B = x.shape[0]
    if B > 1 and x.dim() == 4 and all(s.dim() == 2 and s.shape == (B, 1) for s in scales):
        return [s.squeeze(1) for s in scales]
    return None


# ----------------------------------------------------------------------------- builders


def _blur1d(x: Tensor, s: Tensor, sup: Support, o: BlurOptions) -> Tensor:
    """Unchecked blur1d: ``s`` a checked σ tensor on the support ``sup``; ``o.order``/``o.gamma``
    the derivative order and its scale normalization."""
    x, (s,), unfold = _per_sample(x, [s])
    w = _gauss1d(s, sup.h[0], o.kernel, sup.own, order=o.order, gamma=o.gamma)
    return unfold(correlate_axis(x, w, -1, o.padding_mode, o.method))


def _blur2d_sep(x: Tensor, sy: Tensor, sx: Tensor, sup: Support, o: BlurOptions) -> Tensor:
    """Unchecked separable 2D blur (``blur2d_sphere`` passes the same σ twice);
    ``o.order = (order_y, order_x)``, ``sup.h = (h_y, h_x)``."""
    (hy, hx), order, same = sup.h, o.order, sy is sx
    per_sample = _sample_scales(x, [sy] if same else [sy, sx])
    if per_sample is not None:  # one kernel pair per sample, shared by its channels
        scales, unfold = per_sample, _identity
    else:
        x, scales, unfold = _per_sample(x, [sy] if same else [sy, sx])
    sy, sx = (scales[0], scales[0]) if same else scales
    wy = _gauss1d(sy, hy, o.kernel, sup.own, order=order[0], gamma=o.gamma)
    if same and hx == hy and order[0] == order[1]:
        wx = wy
    else:
        wx = _gauss1d(sx, hx, o.kernel, sup.own, order=order[1], gamma=o.gamma)
    if per_sample is not None:
        y = correlate_pairs_per_sample(x, [wy], [wx], [(0, 0)], o.padding_mode, o.method)
        if y is not None:
            return y.squeeze(2)
        x, (wy, wx), unfold = _fold_kernels(x, [wy, wx])
    return unfold(correlate_separable(x, wy, wx, o.padding_mode, o.method))


def _blur2d_full(x: Tensor, cov: Tensor, sup: Support, o: BlurOptions) -> Tensor:
    """Unchecked full-covariance blur."""
    x, (cov,), unfold = _per_sample(x, [cov], tail=2)
    w = _gauss2d_full(cov, *sup.h, sup.own)
    return unfold(correlate2d(x, w, o.padding_mode, o.method))


def _dog(x: Tensor, sc: Tensor, ss: Tensor, sup: Support, o: BlurOptions) -> Tensor:
    """Unchecked DoG on 1 or 2 axes: ``sup.h`` the half-size per axis (shared by both
    Gaussians); with ``sup.own``, the pair of each channel/sample is cut at the larger of its
    two own half-sizes."""
    per_sample = _sample_scales(x, [sc, ss])
    if per_sample is not None:  # one kernel pair per sample, shared by its channels
        (sc, ss), unfold = per_sample, _identity
    else:
        x, (sc, ss), unfold = _per_sample(x, [sc, ss])
    r = own_radii(sup.own, sc, ss)
    if r is not None:
        sc, ss = torch.broadcast_tensors(sc, ss)
    ws = [(_gauss1d(sc, h, o.kernel, r=r), _gauss1d(ss, h, o.kernel, r=r)) for h in sup.h]
    if len(ws) == 1:
        gc, gs = ws[0]
        return unfold(correlate_axis(x, gc - gs, -1, o.padding_mode, o.method))
    (gcy, gsy), (gcx, gsx) = ws
    if per_sample is not None:
        y = correlate_pairs_per_sample(x, [gcy, gsy], [gcx, gsx], [(0, 0), (1, 1)], o.padding_mode, o.method)
        if y is not None:
            return y[:, :, 0] - y[:, :, 1]
        x, (gcy, gsy, gcx, gsx), unfold = _fold_kernels(x, [gcy, gsy, gcx, gsx])
    yc = correlate_separable(x, gcy, gcx, o.padding_mode, o.method)
    return unfold(yc - correlate_separable(x, gsy, gsx, o.padding_mode, o.method))


def blur1d(
    x: Tensor,
    sigma: Tensor | float,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    kernel: str = "sampled",
    method: str = "auto",
    radius: int | tuple[int, int] | None = None,
    order: int = 0,
    gamma: float = 0.0,
) -> Tensor:
    r"""Blur 1D signals with a Gaussian of standard deviation ``sigma``.

    .. math:: y[b, c, i] = \sum_{t=-h}^{h} g_{\sigma_c}[t]\, x[b, c, i + t]

    Args:
        x: input signals, shape ``(B, C, L)``, floating point.
        sigma: σ in pixels: a positive number, or a tensor of shape ``()`` (one σ),
            ``(C,)`` (per channel), ``(B, C)`` or ``(B, 1)`` (per sample); differentiable.
            A 1D σ is always per channel; other shapes are refused with the rules.
        std_devs: truncate each kernel at its own ``h = max(1, ceil(std_devs * σ))``.
            Positional (the only option that is). Default: 2.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'symmetric'``, ``'replicate'`` or
            ``'circular'`` (see :mod:`sigma._padding`). Keyword-only. Default: ``'zeros'``.
        kernel: ``'sampled'``, ``'erf'`` or ``'discrete'`` (see :mod:`sigma.kernels`).
            Default: ``'sampled'``.
        method: ``'auto'``, ``'direct'``, ``'matmul'``, ``'fft'`` or ``'fused'`` (separable
            blurs). Default: ``'auto'``.
        radius: fixed half-size of every kernel (an int; 2D blurs also take a pair
            ``(h_y, h_x)``) instead of ``std_devs``: no device-to-host read, one
            ``torch.compile`` graph for every σ, and tensor σ values are not checked.
            Default: None.
        order: derivative order 0..3: the output is the order-th derivative of the
            blurred signal (with ``'sampled'``, exactly ``scipy.ndimage.gaussian_filter1d(
            x, σ, order=order, radius=h)``; the other kernels are defined in
            :mod:`sigma.kernels`). Default: 0.
        gamma: scale-normalized derivatives: multiply by ``σ ** (gamma * order)``. Default: 0.

    Returns:
        Blurred signals, shape ``(B, C, L)``, same dtype and device as ``x``.

    Shape:
        - x: ``(B, C, L)``; sigma: ``()``, ``(C,)``, ``(B, C)`` or ``(B, 1)``; output: ``(B, C, L)``.

    Raises:
        TypeError: if ``x`` is not a floating-point tensor (integer images such as
            ``uint8`` are refused, naming the dtype: convert with ``x.float()``), or
            ``sigma``/``std_devs``/``radius`` is of the wrong type; or ``method='fft'``
            with a half-precision ``x`` (``'auto'`` then uses the banded products instead).
        ValueError: if ``x`` is not 3D; σ is not finite and positive or of a shape that
            does not fit ``x``; ``std_devs`` is not positive; ``padding_mode``, ``kernel``
            or ``method`` is unknown; or the kernel would exceed :data:`sigma.MAX_RADIUS`.

    Example:
        >>> x = torch.zeros(1, 1, 9, dtype=torch.float64); x[..., 4] = 1
        >>> blur1d(x, 1.0)[0, 0, 2:7]
        tensor([0.0545, 0.2442, 0.4026, 0.2442, 0.0545], dtype=torch.float64)
    """
    o = _options(x, 1, std_devs, padding_mode, kernel, method, radius, order, gamma)
    s, top = _scale(x, sigma, "sigma", o)
    return _blur1d(x, s, resolve_support([top], o), o)


def blur2d_sphere(
    x: Tensor,
    sigma: Tensor | float,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    kernel: str = "sampled",
    method: str = "auto",
    radius: int | tuple[int, int] | None = None,
    order: int | tuple[int, int] = 0,
    gamma: float = 0.0,
) -> Tensor:
    r"""Blur images with an isotropic Gaussian of standard deviation ``sigma``.

    The kernel :math:`g_\sigma[t_y]\, g_\sigma[t_x]` is separable, so the blur is a
    1D blur along the columns followed by one along the rows.

    Args:
        x: images, shape ``(B, C, H, W)``, floating point.
        sigma: σ in pixels, a positive number or a tensor of shape ``()``, ``(C,)``,
            ``(B, C)`` or ``(B, 1)`` (see :func:`blur1d`).
        std_devs, padding_mode, kernel, method, radius, gamma: as in :func:`blur1d`.
        order: derivative order, an int for both axes or a pair ``(order_y, order_x)``,
            each 0..3 (see :func:`blur2d_diag`). Default: 0.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError, ValueError: as :func:`blur1d` (``x`` must be 4D).

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> blur2d_sphere(x, 2.0, padding_mode='reflect').shape
        torch.Size([2, 3, 16, 16])
    """
    o = _options(x, 2, std_devs, padding_mode, kernel, method, radius, order, gamma)
    s, top = _scale(x, sigma, "sigma", o)
    return _blur2d_sep(x, s, s, resolve_support([top], o, axes=2), o)


def blur2d_diag(
    x: Tensor,
    sigma_y: Tensor | float,
    sigma_x: Tensor | float,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    kernel: str = "sampled",
    method: str = "auto",
    radius: int | tuple[int, int] | None = None,
    order: int | tuple[int, int] = 0,
    gamma: float = 0.0,
) -> Tensor:
    r"""Blur images with an axis-aligned Gaussian: ``sigma_y`` down the rows, ``sigma_x`` along the columns.

    Equivalent to :func:`blur2d_full` with ``cov = diag(sigma_y**2, sigma_x**2)``, but
    separable. Each axis has its own half-size.

    Args:
        x: images, shape ``(B, C, H, W)``.
        sigma_y: σ along the height axis, a number or a tensor ``()`` / ``(C,)`` /
            ``(B, C)`` / ``(B, 1)``.
        sigma_x: σ along the width axis, same forms.
        std_devs, padding_mode, kernel, method, radius: as in :func:`blur1d`.
        order: derivative order, an int for both axes or a pair ``(order_y, order_x)``,
            each 0..3: ``order=(1, 0)`` is ∂/∂y of the blurred image, ``(0, 2)`` is
            ∂²/∂x². With ``'sampled'`` the result equals ``scipy.ndimage.gaussian_filter(
            x, (σ_y, σ_x), order=order, radius=(h_y, h_x))`` in every padding mode.
            Default: 0.
        gamma: scale normalization, ``σ_y ** (gamma * order_y) * σ_x ** (gamma * order_x)``.
            Default: 0.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError, ValueError: as :func:`blur1d`, naming ``sigma_y`` or ``sigma_x``.

    Example:
        >>> x = torch.rand(1, 1, 8, 32)
        >>> blur2d_diag(x, 0.5, 4.0).shape
        torch.Size([1, 1, 8, 32])
    """
    o = _options(x, 2, std_devs, padding_mode, kernel, method, radius, order, gamma)
    (sy, ty), (sx, tx) = _scale(x, sigma_y, "sigma_y", o), _scale(x, sigma_x, "sigma_x", o)
    sup = resolve_support([ty, tx], o, ("sigma_y", "sigma_x"))
    return _blur2d_sep(x, sy, sx, sup, o)


def blur2d_full(
    x: Tensor,
    cov: Tensor,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    radius: int | tuple[int, int] | None = None,
) -> Tensor:
    r"""Blur images with a Gaussian of full 2x2 covariance ``cov`` (any orientation).

    .. math:: g[d] \propto \exp\left(-\tfrac12\, d^T \Sigma^{-1} d\right), \quad d = (t_y, t_x)

    on the box ``|t_y| <= h_y``, ``|t_x| <= h_x`` that holds the ``std_devs`` ellipse
    (:func:`sigma.cov_radii`). Parameterize ``cov`` with :func:`sigma.logchol_to_cov`
    to learn it.

    Args:
        x: images, shape ``(B, C, H, W)``.
        cov: symmetric positive-definite covariance in (row, col) array coordinates,
            shape ``(2, 2)``, ``(C, 2, 2)``, or per sample ``(B, C, 2, 2)`` /
            ``(B, 1, 2, 2)``; differentiable. Each is cut to its own box.
        std_devs, padding_mode, method, radius: as in :func:`blur1d`.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError: if ``x`` or ``cov`` is not a floating-point tensor.
        ValueError: if ``cov`` has none of those shapes, is not symmetric positive
            definite, or is too large; or as :func:`blur1d`. The covariance is checked
            once per call (one device-to-host read; none with ``radius``).

    Example:
        >>> x = torch.rand(1, 2, 16, 16)
        >>> cov = torch.tensor([[4.0, 1.5], [1.5, 2.0]])
        >>> blur2d_full(x, cov).shape
        torch.Size([1, 2, 16, 16])
    """
    o = _options(x, 2, std_devs=std_devs, padding_mode=padding_mode, method=method, radius=radius)
    kw = dict(dtype=x.dtype, device=x.device, return_max=True, check_values=o.radius is None)
    cov, top = _checks.check_cov(_check_cov_shape(cov, x), **kw)
    sup = resolve_support(top or (lambda: diag_tops(cov)), o, "cov", variance=True, dense=True)
    return _blur2d_full(x, cov, sup, o)


def _check_cov_shape(cov, x: Tensor):
    """``cov`` of shape ``(2, 2)``, ``(C, 2, 2)`` or per sample ``(B, C, 2, 2)`` / ``(B, 1, 2, 2)``."""
    if not isinstance(cov, Tensor) or cov.dim() < 2 or cov.shape[-2:] != (2, 2):
        return cov  # check_cov names the problem
    B, C = x.shape[:2]
    lead = tuple(cov.shape[:-2])
    ok = (
        len(lead) == 0
        or (len(lead) == 1 and lead[0] == C)
        or (len(lead) == 2 and lead[0] in (1, B) and lead[1] in (1, C))
    )
    if not ok:
        raise ValueError(
            f"cov must have shape (2, 2) or (C, 2, 2) with C={C}, or ({B}, {C}, 2, 2) = (B, C, 2, 2) / "
            f"({B}, 1, 2, 2) = (B, 1, 2, 2) for one covariance per sample; got shape {tuple(cov.shape)}"
        )
    return cov


def _dog_call(x, axes, sigma_center, sigma_surround, *options):
    o = _options(x, axes, *options)
    sc, tc = _scale(x, sigma_center, "sigma_center", o)
    ss, ts = _scale(x, sigma_surround, "sigma_surround", o)
    sup = resolve_support([tc, ts], o, ("sigma_center", "sigma_surround"), axes=axes, shared=True)
    return _dog(x, sc, ss, sup, o)


def dog1d(
    x: Tensor,
    sigma_center: Tensor | float,
    sigma_surround: Tensor | float,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    kernel: str = "sampled",
    method: str = "auto",
    radius: int | tuple[int, int] | None = None,
) -> Tensor:
    r"""Difference of Gaussians: ``blur1d(x, sigma_center) - blur1d(x, sigma_surround)`` on one support.

    Both kernels share the half-size of the larger σ (per channel or sample: the
    larger of the pair's own half-sizes; or ``radius``), so the result is one
    correlation with the kernel :math:`g_{\sigma_c} - g_{\sigma_s}`, which sums to zero.

    Args:
        x: signals, shape ``(B, C, L)``.
        sigma_center: σ of the positive (centre) Gaussian, a number or a tensor of the
            shapes :func:`blur1d` takes.
        sigma_surround: σ of the subtracted (surround) Gaussian, same forms.
        std_devs, padding_mode, kernel, method, radius: as in :func:`blur1d`.

    Returns:
        Band-passed signals, shape ``(B, C, L)``.

    Raises:
        TypeError, ValueError: as :func:`blur1d`, naming ``sigma_center`` or ``sigma_surround``.

    Example:
        >>> x = torch.ones(1, 1, 32, dtype=torch.float64)
        >>> float(dog1d(x, 1.0, 3.0, padding_mode='circular').abs().max()) < 1e-12
        True
    """
    return _dog_call(x, 1, sigma_center, sigma_surround, std_devs, padding_mode, kernel, method, radius)


def dog2d(
    x: Tensor,
    sigma_center: Tensor | float,
    sigma_surround: Tensor | float,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    kernel: str = "sampled",
    method: str = "auto",
    radius: int | tuple[int, int] | None = None,
) -> Tensor:
    r"""Isotropic difference of Gaussians on images, both Gaussians on one support.

    Equal to ``blur2d_sphere(x, sigma_center) - blur2d_sphere(x, sigma_surround)``
    when both use the half-size of the larger σ.

    Args:
        x: images, shape ``(B, C, H, W)``.
        sigma_center, sigma_surround: as in :func:`dog1d`.
        std_devs, padding_mode, kernel, method, radius: as in :func:`blur1d`.

    Returns:
        Band-passed images, shape ``(B, C, H, W)``.

    Raises:
        TypeError, ValueError: as :func:`dog1d`.

    Example:
        >>> dog2d(torch.rand(1, 1, 16, 16), 1.0, 2.0).shape
        torch.Size([1, 1, 16, 16])
    """
    return _dog_call(x, 2, sigma_center, sigma_surround, std_devs, padding_mode, kernel, method, radius)
