r"""Gaussian kernels built from σ, differentiable in σ.

A kernel is the Gaussian evaluated at the integer offsets :math:`t = -h, \dots, h`
and normalized to sum to one,

.. math::

    g_\sigma[t] = \frac{e^{-t^2 / 2\sigma^2}}{\sum_{u=-h}^{h} e^{-u^2 / 2\sigma^2}},
    \qquad h = \max(1, \lceil \text{std\_devs} \cdot \sigma \rceil)

(the ceiling taken with a relative tolerance of :math:`10^{-9}`, so rounding noise in σ
never adds a tap).

The ``'erf'`` kernel instead integrates the continuous Gaussian over each pixel,
:math:`\Phi((t + \tfrac12)/\sigma) - \Phi((t - \tfrac12)/\sigma)`, which stays smooth
and well-behaved for σ below one pixel, where the sampled kernel collapses to a
spike. When one call builds several kernels (one σ per channel or per sample),
they share one array of half-size ``h`` from the largest σ, but each kernel is
truncated at its *own* half-size (taps beyond it are zero) and normalized over its
own support, so each equals the kernel its σ gives alone.

The ``'discrete'`` kernel is Lindeberg's discrete Gaussian :math:`T(n; t) = e^{-t} I_n(t)`
with :math:`t = \sigma^2` (:mod:`sigma._discrete`: Bessel-function ratios by a backward
recurrence, exact in every tap in float32 and float64, with the exact σ-gradient of the
discrete heat equation :math:`\partial_t T(n) = \tfrac12 (T(n-1) + T(n+1)) - T(n)`), on the
same support and renormalized the same way. Unlike the sampled kernel it keeps the
scale-space properties for every σ: its variance is exactly σ² before truncation, and
blurring with :math:`t_1` then :math:`t_2` is blurring with :math:`t_1 + t_2`.

Derivatives (``order=m``, 0 to 3) are correlation kernels, so a blur with them
computes :math:`\partial^m (g_\sigma * x)`; each is normalized by the *order-0* kernel's
mass on the same support:

* ``'sampled'``: SciPy's definition (``scipy.ndimage.gaussian_filter(..., order=m)``),
  the m-th derivative of the sampled Gaussian, :math:`\sigma^{-m} He_m(t/\sigma)\, g_\sigma[t]`
  (:math:`He_m` the probabilists' Hermite polynomials);
* ``'erf'``: the pixel-integrated derivative, :math:`(-1)^m \int_{t-1/2}^{t+1/2}
  G^{(m)}(u)\,du`, i.e. the difference of the Gaussian density's (m-1)-th derivative at
  the pixel edges (order 0 is the pixel integral itself);
* ``'discrete'``: Lindeberg's central differences of the discrete Gaussian,
  :math:`\delta_x = (T[t-1] - T[t+1])/2`, :math:`\delta_{xx} = T[t-1] - 2T[t] + T[t+1]`,
  :math:`\delta_{xxx} = \delta_x \delta_{xx}`, taken on the untruncated T and then cut to the support.

``gamma=γ`` multiplies an order-m kernel by :math:`\sigma^{\gamma m}` (scale-normalized
derivatives, as scale selection needs; γ = 1 makes the response of a pattern of size
∝ σ independent of σ).

σ below :data:`SIGMA_FLOOR` builds the same kernel as the floor (a unit impulse in
both kernels, to the last bit) with a zero gradient, so σ → 0 returns the input
with finite gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import _checks
from ._autograd import apply, eager_twin
from ._checks import (
    BlurOptions,
    blur_options,
    check_dense,
    check_order,
    check_positive_real,
    check_radius,
    diag_tops,
    own_box,
    own_radii,
    read_largest,
    resolve_support,
    scale_arg,
)
from ._discrete import discrete_taps

#: σ below this builds the kernel of this σ: already a unit impulse for both kernels
#: (``exp(-0.5 / 0.01**2)`` and ``erfc(0.5 / (0.01 * sqrt(2)))`` are 0 in float64),
#: with a zero gradient instead of the ``0 * inf`` of the formulas at σ → 0.
SIGMA_FLOOR = 0.01

__all__ = [
    "kernel_radius",
    "gauss1d",
    "gauss2d_sphere",
    "gauss2d_diag",
    "gauss2d_full",
    "cov_radii",
]


def kernel_radius(sigma: Tensor | float, std_devs: float = 2.0) -> int:
    """Half-size ``h = max(1, ceil(std_devs * max(sigma)))`` of the kernel for ``sigma``.

    The ceiling is taken with a relative tolerance of ``1e-9``,
    so rounding noise does not add a tap: ``exp(log(3.0))`` is ``3.0000000000000004`` in
    float64 and still gives ``h = 6`` at ``std_devs=2``; any real change of σ does.

    Args:
        sigma: σ in pixels: a positive number, or a tensor (0-dim or ``(C,)``);
            for several σ the largest sets the support.
        std_devs: where to truncate the Gaussian, in standard deviations. Default: 2.

    Returns:
        The half-size ``h``; the kernel has ``2 * h + 1`` taps.

    Raises:
        TypeError: if ``sigma`` or ``std_devs`` is not a real number/tensor.
        ValueError: if ``sigma`` or ``std_devs`` is not positive and finite, or the
            kernel would exceed :data:`sigma.MAX_RADIUS` pixels.

    Example:
        >>> kernel_radius(3.0), kernel_radius(0.2), kernel_radius(3.0, std_devs=3)
        (6, 1, 9)
    """
    s, top = scale_arg(sigma, "sigma", dtype=torch.float64)
    return resolve_support([_top(s, top)], BlurOptions(check_positive_real(std_devs, "std_devs"))).h[0]


def _top(s: Tensor, top: float | None, name: str = "sigma"):
    """The largest σ, or (not read by :func:`sigma._checks.scale_arg`) a reader of it."""
    return top if top is not None else lambda: read_largest(s, name)


def _taps(h: int, like: Tensor) -> Tensor:
    return torch.arange(-h, h + 1, dtype=like.dtype, device=like.device)


class _SampledGauss(torch.autograd.Function):
    """Normalized sampled Gaussian taps ``w = e / sum(e)``, ``e_t = exp(-t^2 / 2 s^2)``, as one node.

    ``s`` has any shape ``S`` (σ, already clamped to :data:`SIGMA_FLOOR` by the caller's
    mask rule below); the output has shape ``S + (2h + 1,)``. The backward pass is the
    closed form ``dw_t/ds = w_t (t^2 - sum_u w_u u^2) / s^3`` (zero where ``s`` is below
    the floor, as for ``clamp_min``), written with differentiable operations so that
    double backward works; one autograd node instead of the eight of the elementwise
    construction, which is most of a small blur's cost.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(s: Tensor, h: int) -> Tensor:
        t2 = _taps(h, s) ** 2
        sc = s.clamp_min(SIGMA_FLOOR).unsqueeze(-1)
        e = torch.exp(t2 / (sc * sc) * -0.5)
        return e / e.sum(-1, keepdim=True)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        s, h = inputs
        ctx.save_for_backward(s, output)
        ctx.h = h

    @staticmethod
    def backward(ctx, gw: Tensor):
        s, w = ctx.saved_tensors
        t2 = _taps(ctx.h, s) ** 2
        m2 = (w * t2).sum(-1, keepdim=True)
        sc = s.clamp_min(SIGMA_FLOOR)
        gs = (gw * w * (t2 - m2)).sum(-1) / sc**3
        return torch.where(s >= SIGMA_FLOOR, gs, torch.zeros_like(gs)), None


def _sampled_gauss(s: Tensor, h: int) -> Tensor:
    """:class:`_SampledGauss` (its eager twin outside ``torch.func`` and ``torch.compile``).

    While ``torch.compile`` traces, its forward as plain operations: inductor fuses them anyway,
    and dynamo 2.13 fails on the Function with symbolic sizes inside an N-jet
    ("lift_tracked_freevar_to_input"); autograd differentiates the plain form to the same gradient.
    """
    if torch.compiler.is_compiling():
        return _SampledGauss.forward(s, h)
    return apply(_SampledGauss, s, h)


def _profile(s: Tensor, h: int, kernel: str) -> Tensor:
    """Unnormalized kernel of ``s`` (shape ``S``) at offsets -h..h: shape ``S + (2h+1,)``."""
    t = _taps(h, s)
    s = s.clamp_min(SIGMA_FLOOR).unsqueeze(-1)
    if kernel == "sampled":
        return torch.exp(-0.5 * (t / s) ** 2)
    # Integrate the unit-area Gaussian over [|t| - 1/2, |t| + 1/2]; using erfc of the
    # positive side keeps full relative precision far out in the tails.
    a = t.abs()
    c = s * math.sqrt(2.0)
    return 0.5 * (torch.erfc((a - 0.5) / c) - torch.erfc((a + 0.5) / c))


def _support_mask(r: Tensor, h: int) -> Tensor:
    """``|t| <= r`` for offsets -h..h: shape ``r.shape + (2h+1,)``."""
    t = torch.arange(-h, h + 1, dtype=r.dtype, device=r.device).abs()
    return t <= r.unsqueeze(-1)


def _hermite(m: int, u: Tensor) -> Tensor:
    """Probabilists' Hermite polynomial ``He_m(u)``, ``m`` in 0..3."""
    if m == 0:
        return torch.ones_like(u)
    if m == 1:
        return u
    if m == 2:
        return u * u - 1
    return u * (u * u - 3)


def _derivative_profile(s: Tensor, h: int, kernel: str, order: int) -> Tensor:
    r"""Correlation taps of the ``order``-th derivative, on the scale of :func:`_profile`.

    ``'sampled'``: :math:`\sigma^{-m} He_m(t/\sigma)\, e^{-t^2/2\sigma^2}` (scipy's polynomial
    times kernel, reversed for correlation). ``'erf'``: the pixel integral of the
    derivative of the unit-area Gaussian, i.e. the difference of its ``(m-1)``-th
    derivative at the pixel edges ``t -/+ 1/2``.
    """
    t = _taps(h, s)
    s = s.clamp_min(SIGMA_FLOOR).unsqueeze(-1)
    if kernel == "sampled":
        u = t / s
        return _hermite(order, u) * torch.exp(-0.5 * u * u) / s**order

    def edge(v: Tensor) -> Tensor:
        u = v / s
        return _hermite(order - 1, u) * torch.exp(-0.5 * u * u) / (s * math.sqrt(2 * math.pi))

    return (edge(t - 0.5) - edge(t + 0.5)) / s ** (order - 1)


def _central_differences(g: Tensor, order: int) -> Tensor:
    r"""Lindeberg's central differences on correlation taps (the last axis shrinks by 1 or 2 per side).

    ``d1 w[j] = (w[j-1] - w[j+1]) / 2`` and ``d2 w[j] = w[j-1] - 2 w[j] + w[j+1]``, so a
    correlation with ``d1 g`` is ``(y[i+1] - y[i-1]) / 2`` of the correlation ``y`` with ``g``;
    order 3 is ``d1 d2``.
    """
    if order >= 2:
        g = g[..., :-2] - 2 * g[..., 1:-1] + g[..., 2:]
    if order % 2:
        g = 0.5 * (g[..., :-2] - g[..., 2:])
    return g


#: How far out (in taps) each derivative order's central differences read.
_REACH = (0, 1, 1, 2)


def _gauss1d(
    s: Tensor,
    h: int,
    kernel: str = "sampled",
    std_devs: float | None = None,
    r=None,
    order: int = 0,
    gamma: float = 0.0,
) -> Tensor:
    """Normalized kernels of the checked σ tensor ``s`` on offsets -h..h (no checks).

    With ``std_devs`` (or explicit own half-sizes ``r``), each kernel of a σ with
    several entries is cut at its own half-size; with neither, all use ``h``.
    ``order`` (0..3) gives the derivative kernel, normalized by the order-0 kernel's
    mass, and ``gamma`` scales it by ``σ ** (gamma * order)``.
    """
    r = own_radii(std_devs, s) if r is None else r
    mask = _support_mask(r, h) if r is not None else None
    if kernel == "discrete":
        top = h / std_devs if std_devs is not None else None
        e = _REACH[order]
        full = discrete_taps(s, h + e, top)
        g0 = full[..., e : e + 2 * h + 1]
        if mask is not None:
            g0 = g0 * mask.to(g0.dtype)
        z = g0.sum(-1, keepdim=True)
        g = g0 if order == 0 else _central_differences(full, order)
    elif kernel == "sampled" and mask is None and order == 0:
        return _sampled_gauss(s, h)
    else:
        g0 = _profile(s, h, kernel)
        if mask is not None:
            g0 = g0 * mask.to(g0.dtype)
        z = g0.sum(-1, keepdim=True)
        g = g0 if order == 0 else _derivative_profile(s, h, kernel, order)
    if order and mask is not None:
        g = g * mask.to(g.dtype)
    g = g / z
    if order and gamma:
        sc = s if kernel == "discrete" else s.clamp_min(SIGMA_FLOOR)
        g = g * (sc ** (gamma * order)).unsqueeze(-1)
    return g


def _gauss2d_full(cov: Tensor, hy: int, hx: int, std_devs: float | None = None) -> Tensor:
    """Normalized dense kernels of the checked covariance ``cov`` (no checks).

    With ``std_devs``, each kernel of a ``cov`` holding several matrices is cut to its
    own box (see :func:`cov_radii`).
    """
    ty = _taps(hy, cov).view(-1, 1)
    tx = _taps(hx, cov).view(1, -1)
    a = cov[..., 0, 0, None, None]
    b = cov[..., 0, 1, None, None]
    c = cov[..., 1, 1, None, None]
    det = a * c - b * b
    # d^T Σ^{-1} d with Σ^{-1} = [[c, -b], [-b, a]] / det
    q = (c * ty**2 - 2 * b * ty * tx + a * tx**2) / det
    g = torch.exp(-0.5 * q)
    if std_devs is not None and cov[..., 0, 0].numel() > 1:
        ry, rx = own_box(cov, std_devs)
        mask = _support_mask(ry, hy).unsqueeze(-1) & _support_mask(rx, hx).unsqueeze(-2)
        g = g * mask.to(g.dtype)
    return g / g.sum(dim=(-2, -1), keepdim=True)


def gauss1d(
    sigma: Tensor | float,
    std_devs: float = 2.0,
    *,
    kernel: str = "sampled",
    radius: int | None = None,
    order: int = 0,
    gamma: float = 0.0,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Normalized 1D Gaussian kernel of standard deviation ``sigma``, or one of its derivatives.

    Args:
        sigma: σ in pixels, a positive number or a tensor of shape ``()`` or ``(C,)``.
            A tensor keeps its autograd graph, so the kernel is differentiable in σ.
        std_devs: truncation in standard deviations; ``h = max(1, ceil(std_devs * σ))``.
            Default: 2.
        kernel: ``'sampled'`` (point samples, the default), ``'erf'`` (pixel
            integrals, smooth for σ < 1) or ``'discrete'`` (Lindeberg's discrete
            Gaussian, a true scale space at every σ); see the module docstring.
        radius: explicit half-size ``h`` overriding ``std_devs`` (for kernels that
            must share a support, such as a difference of Gaussians). Default: None.
        order: derivative order 0..3 (the module docstring defines it per kernel).
            Default: 0.
        gamma: scale normalization: an order-m kernel is multiplied by ``σ ** (gamma * m)``.
            Default: 0.
        dtype, device: used when ``sigma`` is a number. Default: torch's defaults.

    Returns:
        Kernel of shape ``(2h+1,)`` for a 0-dim σ, or ``(C, 2h+1)`` for σ of shape
        ``(C,)``; at order 0 each row sums to one and is symmetric (odd orders are
        antisymmetric).

    Raises:
        TypeError: if ``sigma`` is not a real number or tensor, or ``kernel`` is not a str.
        ValueError: if σ is not finite and positive, σ has more than one dimension,
            ``std_devs`` is not positive, ``kernel`` is unknown, ``radius`` is out of
            range, or the kernel would exceed :data:`sigma.MAX_RADIUS`.

    Example:
        >>> k = gauss1d(1.0)
        >>> k.shape, round(float(k.sum()), 6), round(float(k[2]), 4)
        (torch.Size([5]), 1.0, 0.4026)
    """
    o = blur_options(1, std_devs, kernel=kernel, radius=radius, order=order, gamma=gamma)
    s, top = scale_arg(sigma, "sigma", dtype=dtype, device=device, check_values=o.radius is None)
    sup = resolve_support([_top(s, top)], o)
    return _gauss1d(s, sup.h[0], o.kernel, sup.own, order=o.order, gamma=o.gamma)


def gauss2d_sphere(
    sigma: Tensor | float,
    std_devs: float = 2.0,
    *,
    kernel: str = "sampled",
    radius: int | None = None,
    order: int | tuple[int, int] = 0,
    gamma: float = 0.0,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Isotropic 2D Gaussian kernel, the outer product of two :func:`gauss1d` kernels.

    Args:
        sigma: σ in pixels, shape ``()`` or ``(C,)``.
        std_devs, kernel, radius, gamma, dtype, device: as in :func:`gauss1d`.
        order: an int for both axes, or ``(order_y, order_x)``. Default: 0.

    Returns:
        Kernel of shape ``(k, k)`` or ``(C, k, k)`` with ``k = 2h + 1``, summing to one.

    Raises:
        TypeError, ValueError: as :func:`gauss1d`.

    Example:
        >>> gauss2d_sphere(1.5).shape
        torch.Size([7, 7])
    """
    oy, ox = check_order(order, 2)
    opts = dict(kernel=kernel, radius=radius, gamma=gamma, dtype=dtype, device=device)
    gy = gauss1d(sigma, std_devs, order=oy, **opts)
    gx = gy if ox == oy else gauss1d(sigma, std_devs, order=ox, **opts)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def gauss2d_diag(
    sigma_y: Tensor | float,
    sigma_x: Tensor | float,
    std_devs: float = 2.0,
    *,
    kernel: str = "sampled",
    order: int | tuple[int, int] = 0,
    gamma: float = 0.0,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Axis-aligned anisotropic 2D Gaussian kernel with σ_y along rows and σ_x along columns.

    Each axis gets its own half-size: ``h_y`` from ``sigma_y`` and ``h_x`` from ``sigma_x``.

    Args:
        sigma_y: σ along the row (height) axis, shape ``()`` or ``(C,)``.
        sigma_x: σ along the column (width) axis, shape ``()`` or ``(C,)``.
        std_devs, kernel, gamma, dtype, device: as in :func:`gauss1d`.
        order: an int for both axes, or ``(order_y, order_x)``. Default: 0.

    Returns:
        Kernel of shape ``(2h_y+1, 2h_x+1)``, or ``(C, 2h_y+1, 2h_x+1)`` if either σ
        has a channel dimension.

    Raises:
        TypeError, ValueError: as :func:`gauss1d`, naming ``sigma_y`` or ``sigma_x``.

    Example:
        >>> gauss2d_diag(1.0, 3.0).shape
        torch.Size([5, 13])
    """
    o = blur_options(2, std_devs, kernel=kernel, order=order, gamma=gamma)
    sy, ty = scale_arg(sigma_y, "sigma_y", dtype=dtype, device=device)
    sx, tx = scale_arg(sigma_x, "sigma_x", dtype=sy.dtype, device=sy.device)
    sup = resolve_support([_top(sy, ty, "sigma_y"), _top(sx, tx, "sigma_x")], o, ("sigma_y", "sigma_x"))
    gy = _gauss1d(sy, sup.h[0], o.kernel, sup.own, order=o.order[0], gamma=o.gamma)
    gx = _gauss1d(sx, sup.h[1], o.kernel, sup.own, order=o.order[1], gamma=o.gamma)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def cov_radii(cov: Tensor, std_devs: float = 2.0) -> tuple[int, int]:
    """Half-sizes ``(h_y, h_x)`` of the box that holds the ``std_devs`` ellipse of ``cov``.

    The ellipse :math:`\\{d : d^T \\Sigma^{-1} d \\le s^2\\}` spans
    :math:`\\pm s\\sqrt{\\Sigma_{yy}}` rows and :math:`\\pm s\\sqrt{\\Sigma_{xx}}` columns,
    so ``h_y = max(1, ceil(s * sqrt(cov[0, 0])))`` and likewise for ``h_x``; over
    several covariances the largest wins.

    Args:
        cov: covariance of shape ``(..., 2, 2)`` in (row, col) coordinates.
        std_devs: truncation in standard deviations. Default: 2.

    Returns:
        ``(h_y, h_x)``.

    Example:
        >>> cov_radii(torch.tensor([[4.0, 1.0], [1.0, 1.0]]))
        (4, 2)
    """
    cov, top = _checks.check_cov(cov, return_max=True)
    std_devs = check_positive_real(std_devs, "std_devs")
    return resolve_support(top or (lambda: diag_tops(cov)), BlurOptions(std_devs), "cov", variance=True).h


def gauss2d_full(
    cov: Tensor,
    std_devs: float = 2.0,
    *,
    radii: tuple[int, int] | None = None,
) -> Tensor:
    r"""Full-covariance 2D Gaussian kernel :math:`\propto \exp(-\tfrac12 d^T \Sigma^{-1} d)`.

    The offsets ``d = (row, col)`` run over ``[-h_y, h_y] x [-h_x, h_x]`` (see
    :func:`cov_radii`); the kernel is sampled (no ``'erf'`` variant: the pixel
    integral of a rotated Gaussian has no closed form).

    Args:
        cov: symmetric positive-definite covariance in (row, col) array coordinates,
            shape ``(2, 2)`` or ``(C, 2, 2)``; differentiable.
        std_devs: truncation in standard deviations. Default: 2.
        radii: explicit ``(h_y, h_x)`` overriding ``std_devs``. Default: None.

    Returns:
        Kernel of shape ``(2h_y+1, 2h_x+1)`` or ``(C, 2h_y+1, 2h_x+1)`` summing to one.

    Raises:
        TypeError: if ``cov`` is not a floating-point tensor.
        ValueError: if ``cov`` is not of shape ``(..., 2, 2)``, not symmetric positive
            definite, or so large that the kernel would exceed the size limits.

    Example:
        >>> k = gauss2d_full(torch.tensor([[4.0, 1.0], [1.0, 1.0]]))
        >>> k.shape, bool(torch.allclose(k, k.flip(-1, -2)))
        (torch.Size([9, 5]), True)
    """
    cov, top = _checks.check_cov(cov, return_max=True)
    if cov.dim() > 3:
        raise ValueError(f"cov must have shape (2, 2) or (C, 2, 2), got shape {tuple(cov.shape)}")
    std_devs = check_positive_real(std_devs, "std_devs")
    if radii is not None:  # the blurs do not check a fixed box's size, this kernel does
        radii = hy, hx = tuple(check_radius(r, "radii") for r in radii)
        check_dense(hy, hx)
    o = BlurOptions(std_devs, radius=radii)
    sup = resolve_support(top or (lambda: diag_tops(cov)), o, "cov", variance=True, dense=True)
    return _gauss2d_full(cov, *sup.h, sup.own)


_SampledGauss.eager = eager_twin(_SampledGauss)
