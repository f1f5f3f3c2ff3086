"""The FFT engine (``method='fft'``): the same linear correlation through real FFTs.

Each axis is embedded in a circular correlation long enough that nothing wraps around
(:class:`_AxisPlan`; periodic modes are folded onto their period instead), so the result is
exact whatever the kernel size, and the cost stops growing with σ once the padded length is
fixed. Separable 2D blurs take one 2D transform pair with the outer-product kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._autograd import apply, eager_twin
from ._padding import BoundaryMode, boundary, fold_kernel, folded_radius, index_map, pad_axis, period


def fast_fft_size(n: int) -> int:
    """Smallest integer >= n whose prime factors are all 2, 3 or 5."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


class _AxisPlan:
    """How to embed one axis in a circular correlation of size ``n`` with no wrap-around.

    ``extend(x)`` builds the extended signal; kernel tap ``j`` (``-h <= j <= h``) is
    placed at ``(j + offset) mod n``, summing taps that coincide (exact for the
    periodic modes), so the result is the first ``length`` samples of the circular
    correlation.
    """

    def __init__(self, length: int, h: int, mode: str | BoundaryMode):
        mode = boundary(mode)
        self.length, self.mode, self.h_in = length, mode, h
        fold = mode.fold
        self.h = folded_radius(h, length, mode)
        if fold == "drop":
            self.offset = 0
            self.n = fast_fft_size(length + self.h)
        elif fold == "clamp" or 2 * h < length:
            # explicit padding by the (folded) half-size, then a linear correlation
            self.offset = self.h
            self.n = fast_fft_size(length + 2 * self.h)
        else:
            # periodic extension, one period long: the kernel wraps onto it
            self.offset = 0
            self.n = period(length, mode)

    def circular_kernel(self, w: Tensor, dim: int) -> Tensor:
        """Place the (folded) kernel taps along ``dim`` of a length-``n`` circular kernel."""
        w, _ = fold_kernel(w, self.h_in, self.length, self.mode, dim)
        idx = torch.arange(-self.h + self.offset, self.h + self.offset + 1, device=w.device).remainder(self.n)
        shape = list(w.shape)
        shape[dim] = self.n
        return torch.zeros(shape, dtype=w.dtype, device=w.device).index_add(dim, idx, w)

    def extend(self, x: Tensor, dim: int) -> Tensor:
        if self.offset:
            return pad_axis(x, self.offset, self.offset, self.mode, dim)
        if self.mode.fold == "periodic" and self.n > self.length:
            return x.index_select(dim, index_map(self.length, 0, self.n - self.length, self.mode, x.device))
        return x


def _sum_to(t: Tensor, like_channels: bool, keep: tuple[int, ...]) -> Tensor:
    """Sum a spectrum product over batch (and channel, for a shared kernel) dims."""
    dims = [d for d in range(t.dim()) if d not in keep and not (like_channels and d == 1)]
    return t.sum(dims) if dims else t


class _FFTCorr(torch.autograd.Function):
    """Circular correlation over the last ``len(dims)`` axes through real FFTs, cropped.

    ``y = irfftn(rfftn(e, n) * conj(rfftn(kc)))[:L]`` along ``dims``. ``e`` is the
    extended input (shorter than ``n`` is zero-padded), ``kc`` the circular kernel of
    shape ``(n...)`` or ``(C, n...)``. The backward pass reuses the forward spectrum
    and needs two more transforms (``conj`` convolution for the input, a summed
    cross-spectrum for the kernel). It is written with differentiable operations,
    recomputing the spectra when a graph is being built, so double backward works.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(e: Tensor, kc: Tensor, dims: tuple[int, ...], lengths: tuple[int, ...]):
        n = kc.shape[-len(dims) :]
        xf = torch.fft.rfftn(e, s=n, dim=dims)
        kf = torch.fft.rfftn(kc, dim=tuple(range(-len(dims), 0)))
        y = torch.fft.irfftn(xf * _spec_view(kf.conj(), e, dims), s=n, dim=dims)
        for d, L in zip(dims, lengths, strict=True):
            y = y.narrow(d, 0, L)
        return y, xf, kf  # the spectra are returned for the backward pass to reuse

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        e, kc, dims, _ = inputs
        _, xf, kf = output
        ctx.save_for_backward(e, kc, xf, kf)
        ctx.mark_non_differentiable(xf, kf)
        ctx.dims = dims

    @staticmethod
    def backward(ctx, g: Tensor, _gxf=None, _gkf=None):
        e, kc, xf, kf = ctx.saved_tensors
        dims = ctx.dims
        nd = len(dims)
        n = kc.shape[-nd:]
        if torch.is_grad_enabled():  # building a graph: recompute spectra differentiably
            xf = torch.fft.rfftn(e, s=n, dim=dims)
            kf = torch.fft.rfftn(kc, dim=tuple(range(-nd, 0)))
        graph = torch.is_grad_enabled()
        gf = torch.fft.rfftn(g, s=n, dim=dims)
        ge = gkc = None
        if ctx.needs_input_grad[1]:
            cross = _sum_to(xf * gf.conj(), kc.dim() > nd, tuple(d % e.dim() for d in dims))
            gkc = torch.fft.irfftn(cross, s=n, dim=tuple(range(-nd, 0)))
        if ctx.needs_input_grad[0]:
            # gf is not needed any more: multiply in place unless a graph is being built
            prod = gf * _spec_view(kf, e, dims) if graph else gf.mul_(_spec_view(kf, e, dims))
            ge = torch.fft.irfftn(prod, s=n, dim=dims)
            for d in dims:
                ge = ge.narrow(d, 0, e.shape[d])
        return ge, gkc, None, None


_FFTCorr.eager = eager_twin(_FFTCorr)


def _spec_view(kf: Tensor, x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Reshape a kernel spectrum ``(f...)`` or ``(C, f...)`` to broadcast against ``x`` on ``dims``."""
    nd = len(dims)
    shape = [1] * x.dim()
    for d, size in zip(dims, kf.shape[-nd:], strict=True):
        shape[d % x.dim()] = size
    if kf.dim() > nd:
        shape[1] = kf.shape[0]
    return kf.reshape(shape)


def fft_axis(x: Tensor, w: Tensor, h: int, dim: int, mode: BoundaryMode) -> Tensor:
    """Correlate ``x`` (B, C, ...) with ``w`` (k,) or (C, k), half-size ``h``, along ``dim``."""
    plan = _AxisPlan(x.shape[dim], h, mode)
    kc = plan.circular_kernel(w, -1)
    return apply(_FFTCorr, plan.extend(x, dim), kc, (dim % x.dim(),), (plan.length,))[0]


def fft_2d(x: Tensor, w: Tensor, hy: int, hx: int, mode: BoundaryMode) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with a dense ``w`` (ky, kx) or (C, ky, kx) by one 2D transform pair."""
    H, W = x.shape[-2:]
    py, px = _AxisPlan(H, hy, mode), _AxisPlan(W, hx, mode)
    kc = px.circular_kernel(py.circular_kernel(w, -2), -1)
    e = px.extend(py.extend(x, -2), -1)
    return apply(_FFTCorr, e, kc, (x.dim() - 2, x.dim() - 1), (H, W))[0]
