r"""Spatially varying (per-pixel) Gaussian blurs.

Each output pixel ``p`` is the normalized Gaussian average of its own
neighbourhood, with its own scale (the *gather* form):

.. math::

    y[p] = \frac{\sum_{d} g_p(d)\, x[p + d]}{\sum_{d} g_p(d)},
    \qquad g_p(d) = \exp\!\left(-\tfrac12\, d^T \Sigma_p^{-1} d\right),

with ``d`` running over the pixel's own box ``|d_y| <= h_y(p)``, ``|d_x| <= h_x(p)``
(the half-size rule of :mod:`sigma.kernels` applied to the pixel's own scale; the
arrays are sized for the largest), so each pixel's output depends only on its own
scale and equals the global blur with that scale. ``radius=`` fixes one box for every
pixel instead (no device-to-host read, no value checks). The kernels come from
:mod:`sigma.kernels` (``kernel='sampled'`` or ``'erf'`` for the isotropic blur).

The sum runs as a loop over the ``2 h_y + 1`` row offsets; each step handles all
column offsets of all pixels at once through a strided window view, so memory stays
``O(N * k)`` (never the ``(N, k^2)`` matrix of an im2col implementation) and there
is no Python loop over pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ._autograd import apply, eager_twin, traced
from ._checks import (
    BlurOptions,
    ScaleError,
    Support,
    blur_options,
    check_cov,
    check_input,
    check_radius_arg,
    check_support_readable,
    own_box,
    own_radius,
    resolve_support,
    values_checkable,
)
from ._export import support_read
from ._padding import pad_axis
from .kernels import SIGMA_FLOOR, _gauss1d

__all__ = ["blur2d_local_sphere", "blur2d_local_full"]


def _check_map(m: object, x: Tensor, name: str, tail: tuple[int, ...], layout: str) -> Tensor:
    if not isinstance(m, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(m).__name__}")
    if not m.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {m.dtype}")
    B, C, H, W = x.shape
    lead = (B, H, W) if len(tail) == 2 else None
    ok = (
        (tuple(m.shape) == lead + tail)
        if lead
        else (m.dim() == 4 and m.shape[0] == B and m.shape[1] in (1, C) and tuple(m.shape[2:]) == (H, W))
    )
    if not ok:
        raise ValueError(
            f"{name} must have shape {layout} for x of shape {tuple(x.shape)}, got {tuple(m.shape)}"
        )
    return m.to(dtype=x.dtype, device=x.device)


def _row_windows(xp: Tensor, dy: int, H: int, kx: int) -> Tensor:
    """Rows ``dy .. dy+H`` of the padded input, windowed along columns: ``(B, C, H, W, kx)``."""
    return xp.narrow(-2, dy, H).unfold(-1, kx, 1)


def blur2d_local_sphere(
    x: Tensor,
    sigma_map: Tensor,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    kernel: str = "sampled",
    radius: int | None = None,
) -> Tensor:
    r"""Blur each pixel with its own isotropic Gaussian, σ taken from ``sigma_map``.

    Output pixel ``p`` is :math:`\sum_d \tilde g_{\sigma_p}[d_y]\, \tilde g_{\sigma_p}[d_x]\, x[p + d]`
    with the 1D kernels :math:`\tilde g_\sigma` of :func:`sigma.gauss1d` at the
    pixel's own σ, each truncated at its own half-size ``max(1, ceil(std_devs * σ))``
    (or at ``radius`` for every pixel). Differentiable in ``x`` and in every entry of
    ``sigma_map``.

    Args:
        x: images, shape ``(B, C, H, W)``.
        sigma_map: σ per pixel, shape ``(B, 1, H, W)`` (shared by the channels) or
            ``(B, C, H, W)``; every entry finite and positive.
        std_devs: truncation in standard deviations of each pixel's σ. Default: 2.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'symmetric'``, ``'replicate'`` or
            ``'circular'``. Default: ``'zeros'``.
        kernel: ``'sampled'`` or ``'erf'`` (see :func:`sigma.gauss1d`). Default: ``'sampled'``.
        radius: explicit half-size ``h`` shared by every pixel, overriding ``std_devs``
            (keeps the cost fixed while σ is being learned; no device-to-host read, and
            the map's values are not checked). Default: None.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError: if ``x`` or ``sigma_map`` is not a floating-point tensor.
        ValueError: if the shapes do not match, any σ is not finite and positive,
            ``std_devs``/``radius``/``padding_mode`` is invalid, or the kernel would
            exceed :data:`sigma.MAX_RADIUS`.

    Example:
        >>> x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
        >>> smap = torch.full((1, 1, 16, 16), 1.5, dtype=torch.float64)
        >>> bool(torch.allclose(blur2d_local_sphere(x, smap), sigma.blur2d_sphere(x, 1.5)))
        True
    """
    check_input(x, 4)
    o = blur_options(1, std_devs, padding_mode, kernel, radius=radius)
    smap = _check_map(sigma_map, x, "sigma_map", (), "(B, 1, H, W) or (B, C, H, W)")
    sup = resolve_support([lambda: _map_top(smap)], o, "sigma_map")
    return _local_sphere(x, smap, sup, o)


def _map_top(smap: Tensor) -> float:
    """Largest σ of a map after checking every entry finite and > 0, in one host read."""
    support_read("sigma_map")
    check_support_readable(smap, "sigma_map")
    if not values_checkable(smap):
        raise ValueError("sigma_map values cannot be read here (meta tensor or compiling): pass radius=")
    d = smap.detach()
    ok, top = torch.stack([(torch.isfinite(d) & (d > 0)).all().to(d.dtype), d.max()]).tolist()
    if not ok:
        bad = d[~(torch.isfinite(d) & (d > 0))][0].item()
        raise ScaleError(f"sigma_map must be finite and > 0 everywhere, got an entry {bad}")
    return top


def _local_sphere(x: Tensor, smap: Tensor, sup: Support, o: BlurOptions) -> Tensor:
    """Unchecked per-pixel isotropic blur: ``sup.h = (h,)`` for both axes (``sup.own``: std_devs
    of the own-support rule, or None)."""
    (h,), own, kernel = sup.h, sup.own, o.kernel
    xp = pad_axis(pad_axis(x, h, h, o.padding_mode, -2), h, h, o.padding_mode, -1)
    if kernel != "sampled" or traced(xp, smap):
        # the analytic σ gradient of _LocalSphere is the sampled kernel's, and its
        # in-place accumulation cannot be batched by vmap or traced: plain autograd instead
        return _local_sphere_reference(xp, smap, h, own, kernel)
    return apply(_LocalSphere, xp, smap, h, own)


def _local_weights(smap: Tensor, h: int, own: float | None, kernel: str = "sampled") -> tuple[Tensor, Tensor]:
    """Normalized 1D weights per pixel, ``(k, B, Cs, H, W)``, and the offsets ``-h..h``.

    The kernels of :mod:`sigma.kernels`, each cut at its pixel's own half-size when
    ``own`` (the ``std_devs``) is given.
    """
    t = torch.arange(-h, h + 1, dtype=smap.dtype, device=smap.device)
    a = _gauss1d(smap, h, kernel, own, r=own_radius(smap, own) if own is not None else None)
    return a.movedim(-1, 0).contiguous(), t  # (k, ...) contiguous: each tap reads unit-stride weights


def _local_sphere_reference(
    xp: Tensor, smap: Tensor, h: int, own: float | None, kernel: str = "sampled"
) -> Tensor:
    """Plain-autograd form of :class:`_LocalSphere` (row loop over windowed views).

    Used for higher-order derivatives; memory ``O(N * k)``.
    """
    k = 2 * h + 1
    H = xp.shape[-2] - 2 * h
    a, _ = _local_weights(smap, h, own, kernel)
    ax = a.movedim(0, -1)  # (B, Cs, H, W, k)
    y = None
    for dy in range(k):
        term = a[dy] * (_row_windows(xp, dy, H, k) * ax).sum(-1)
        y = term if y is None else y + term
    return y


class _LocalSphere(torch.autograd.Function):
    r"""Per-pixel isotropic blur of a padded input, with an analytic gradient in σ.

    Forward: ``y_p = sum_d a_p(d_y) a_p(d_x) xp[p + d]`` as ``k^2`` shifted, weighted
    in-place accumulations over whole images (memory ``O(N)`` beyond the weights).

    Backward: the input gradient scatters ``g_p a_p(d_y) a_p(d_x)`` back along the same
    shifts; for σ, with :math:`v_p = \sum_t a_p(t) t^2`,

    .. math:: \partial y_p / \partial\sigma_p = (M_p - 2 v_p y_p) / \sigma_p^3,
        \quad M_p = \sum_d a_p(d_y) a_p(d_x) (d_y^2 + d_x^2)\, xp[p + d].

    Higher-order derivatives recompute through :func:`_local_sphere_reference`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(xp: Tensor, smap: Tensor, h: int, own: float | None) -> Tensor:
        k = 2 * h + 1
        H, W = xp.shape[-2] - 2 * h, xp.shape[-1] - 2 * h
        a, _ = _local_weights(smap, h, own)
        y = torch.zeros(xp.shape[:-2] + (H, W), dtype=xp.dtype, device=xp.device)
        row = torch.empty_like(y)
        for dy in range(k):
            rows = xp.narrow(-2, dy, H)
            torch.mul(rows.narrow(-1, 0, W), a[0], out=row)
            for dx in range(1, k):
                row.addcmul_(rows.narrow(-1, dx, W), a[dx])
            y.addcmul_(row, a[dy])
        return y

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        xp, smap, h, own = inputs
        ctx.save_for_backward(xp, smap, output)
        ctx.h, ctx.own = h, own

    @staticmethod
    def backward(ctx, g: Tensor):
        xp, smap, y = ctx.saved_tensors
        h, own = ctx.h, ctx.own
        if torch.is_grad_enabled():  # double backward: differentiate the reference form
            need = ctx.needs_input_grad[:2]
            out = _local_sphere_reference(xp, smap, h, own)
            inputs = [t for t, n in zip((xp, smap), need, strict=True) if n]
            grads = iter(torch.autograd.grad(out, inputs, g, create_graph=True))
            return tuple(next(grads) if n else None for n in need) + (None, None)
        k = 2 * h + 1
        H, W = g.shape[-2:]
        a, t = _local_weights(smap, h, own)
        gxp = gs = None
        if ctx.needs_input_grad[0]:
            gxp = torch.zeros_like(xp)
            tmp = torch.empty_like(g)
            for dy in range(k):
                torch.mul(g, a[dy], out=tmp)
                rows = gxp.narrow(-2, dy, H)
                for dx in range(k):
                    rows.narrow(-1, dx, W).addcmul_(tmp, a[dx])
        if ctx.needs_input_grad[1]:
            at2 = a * (t * t).view(-1, 1, 1, 1, 1)  # a(t) t^2
            v = at2.sum(0)
            m = torch.zeros_like(g)
            i_row = torch.empty_like(g)
            j_row = torch.empty_like(g)
            for dy in range(k):
                rows = xp.narrow(-2, dy, H)
                torch.mul(rows.narrow(-1, 0, W), a[0], out=i_row)
                torch.mul(rows.narrow(-1, 0, W), at2[0], out=j_row)
                for dx in range(1, k):
                    win = rows.narrow(-1, dx, W)
                    i_row.addcmul_(win, a[dx])
                    j_row.addcmul_(win, at2[dx])
                m.addcmul_(i_row, at2[dy]).addcmul_(j_row, a[dy])
            # below SIGMA_FLOOR the kernel is the floor's (an impulse): m = v = 0 there
            dyds = (m - 2 * v * y) / smap.clamp_min(SIGMA_FLOOR) ** 3
            gs = g * dyds
            if smap.shape[1] == 1 and g.shape[1] != 1:
                gs = gs.sum(1, keepdim=True)
        return gxp, gs, None, None


_LocalSphere.eager = eager_twin(_LocalSphere)


def _full_row(xp: Tensor, prec: Tensor, dy: int, hy: int, H: int, tx: Tensor, box) -> tuple[Tensor, Tensor]:
    """Unnormalized contribution of row offset ``dy`` and its weight total.

    ``box``: None, or each pixel's own half-sizes ``(r_y, r_x)`` (each ``(B, 1, H, W)``).
    """
    oy = float(dy - hy)
    pyy, pyx, pxx = prec
    q = pyy.unsqueeze(-1) * oy**2 + 2 * pyx.unsqueeze(-1) * oy * tx + pxx.unsqueeze(-1) * tx**2
    w = torch.exp(-0.5 * q)  # (B, 1, H, W, kx)
    if box is not None:
        ry, rx = box
        inside = (ry >= abs(oy)).unsqueeze(-1) & (tx.abs() <= rx.unsqueeze(-1))
        w = w * inside.to(w.dtype)
    win = _row_windows(xp, dy, H, tx.shape[0])
    return (win * w).sum(-1), w.sum(-1)


def blur2d_local_full(
    x: Tensor,
    cov_map: Tensor,
    std_devs: float = 2.0,
    *,
    padding_mode: str = "zeros",
    radius: int | tuple[int, int] | None = None,
    radii: tuple[int, int] | None = None,
) -> Tensor:
    r"""Blur each pixel with its own full-covariance Gaussian, from ``cov_map``.

    Output pixel ``p`` is the normalized average of ``x`` over its own box with
    weights :math:`\exp(-\tfrac12 d^T \Sigma_p^{-1} d)`. The box holds the
    ``std_devs`` ellipse of the pixel's covariance (see :func:`sigma.cov_radii`), or
    is ``radius`` for every pixel.

    Args:
        x: images, shape ``(B, C, H, W)``.
        cov_map: covariance per pixel in (row, col) coordinates, shape
            ``(B, H, W, 2, 2)``, each symmetric positive definite; differentiable (use
            :func:`sigma.logchol_to_cov` on a ``(B, H, W, 3)`` map to learn it).
        std_devs, padding_mode: as in :func:`blur2d_local_sphere`.
        radius: explicit half-sizes shared by every pixel, an int or ``(h_y, h_x)``; no
            device-to-host read, and the map's values are not checked. Default: None.
        radii: the former name of ``radius`` (a pair). Default: None.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError: if ``x`` or ``cov_map`` is not a floating-point tensor.
        ValueError: if ``cov_map`` is not ``(B, H, W, 2, 2)``, not symmetric positive
            definite everywhere, or too large; or an option is invalid.

    Example:
        >>> x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
        >>> cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
        >>> cmap = cov.expand(1, 12, 12, 2, 2)
        >>> bool(torch.allclose(blur2d_local_full(x, cmap), sigma.blur2d_full(x, cov)))
        True
    """
    check_input(x, 4)
    if radii is not None:
        if radius is not None:
            raise ValueError("give radius or radii (its former name), not both")
        radius = check_radius_arg(radii, 2, "radii")
    o = blur_options(2, std_devs, padding_mode, radius=radius)
    cmap, top = _check_map(cov_map, x, "cov_map", (2, 2), "(B, H, W, 2, 2)"), None
    if o.radius is None:
        cmap, top = check_cov(cmap, "cov_map", return_max=True)
        if top is None:
            raise ValueError("cov_map values cannot be read here (meta tensor or compiling): pass radius=")
    return _local_full(x, cmap, resolve_support(top, o, "cov_map", variance=True), o)


def _local_full(x: Tensor, cmap: Tensor, sup: Support, o: BlurOptions) -> Tensor:
    """Unchecked per-pixel full-covariance blur (each pixel cut to its own box with ``sup.own``)."""
    (hy, hx), padding_mode = sup.h, o.padding_mode
    box = None if sup.own is None else tuple(r.unsqueeze(1) for r in own_box(cmap, sup.own))
    H, W = x.shape[-2:]
    a, b, c = cmap[..., 0, 0], cmap[..., 0, 1], cmap[..., 1, 1]
    det = a * c - b * b
    prec = tuple((v / det).unsqueeze(1) for v in (c, -b, a))  # each (B, 1, H, W)
    tx = torch.arange(-hx, hx + 1, dtype=x.dtype, device=x.device)
    xp = pad_axis(pad_axis(x, hy, hy, padding_mode, -2), hx, hx, padding_mode, -1)
    grad = torch.is_grad_enabled() and (x.requires_grad or cmap.requires_grad)
    num = den = None
    for dy in range(2 * hy + 1):
        if grad:
            # Recompute the (N, k) row weights in backward instead of storing one
            # set per row offset: memory stays O(N * k) rather than O(N * k^2).
            n_, d_ = checkpoint(_full_row, xp, prec, dy, hy, H, tx, box, use_reentrant=False)
        else:
            n_, d_ = _full_row(xp, prec, dy, hy, H, tx, box)
        num = n_ if num is None else num + n_
        den = d_ if den is None else den + d_
    return num / den
