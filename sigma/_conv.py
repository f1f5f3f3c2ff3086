"""Correlation engines behind every blur: one ``method=`` switch, several exact algorithms.

``correlate_axis`` correlates a ``(B, C, ...)`` tensor with a 1D kernel along one
spatial axis; ``correlate2d`` with a dense 2D kernel. Kernels are ``(k,)`` (shared by
all channels) or ``(C, k)`` (one per channel); offsets run from ``-h`` to ``h``:

    y[i] = sum_j w[j] * x_padded[i + j]

Methods:

* ``'direct'``: pad with the boundary rule, then a depthwise convolution;
  cost grows with the kernel size.
* ``'fft'``: the same linear correlation through real FFTs, sized so that nothing
  wraps around (or, for periodic modes, folded onto the period); cost independent
  of σ.
* ``'auto'``: picks one of the two from the kernel and input sizes.

All are differentiable in the input and the kernel (and therefore in σ) by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._padding import fold_kernel, index_map, pad_axis

# Kernel sizes up to these use the direct method under method='auto'.
AUTO_DIRECT_MAX_TAPS_1D = 15
AUTO_DIRECT_MAX_TAPS_2D = 81


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


def _kernel_view(w: Tensor, x: Tensor, dim: int) -> Tensor:
    """Reshape a ``(n,)`` or ``(C, n)`` tensor to broadcast against ``x`` along ``dim``."""
    nd = x.dim()
    dim = dim % nd
    shape = [1] * nd
    shape[dim] = w.shape[-1]
    if w.dim() == 2:
        shape[1] = w.shape[0]
    return w.reshape(shape)


# ----------------------------------------------------------------------------- direct


def _direct_axis(x: Tensor, w: Tensor, h: int, dim: int, mode: str) -> Tensor:
    L = x.shape[dim]
    w, h = fold_kernel(w, h, L, mode)
    xp = pad_axis(x, h, h, mode, dim)
    C = x.shape[1]
    k = 2 * h + 1
    weight = w.reshape(-1, 1, k).expand(C, 1, k) if w.dim() == 1 else w.reshape(C, 1, k)
    if x.dim() == 3:
        return F.conv1d(xp, weight, groups=C)
    if dim % 4 == 3:
        return F.conv2d(xp, weight.unsqueeze(2), groups=C)
    return F.conv2d(xp, weight.unsqueeze(3), groups=C)


def _direct_2d(x: Tensor, w: Tensor, hy: int, hx: int, mode: str) -> Tensor:
    H, W = x.shape[-2:]
    w, hy = fold_kernel(w, hy, H, mode, dim=-2)
    w, hx = fold_kernel(w, hx, W, mode, dim=-1)
    xp = pad_axis(pad_axis(x, hy, hy, mode, -2), hx, hx, mode, -1)
    C = x.shape[1]
    weight = w.expand(C, *w.shape[-2:]) if w.dim() == 2 else w
    return F.conv2d(xp, weight.unsqueeze(1), groups=C)


# ----------------------------------------------------------------------------- fft


class _AxisPlan:
    """How to embed one axis in a circular correlation of size ``n`` with no wrap-around.

    ``extend(x)`` builds the extended signal, kernel tap ``j`` lands at ``j mod n``
    (summing taps that coincide, which is exact for the periodic modes), and the
    result is read from ``offset`` to ``offset + length``.
    """

    def __init__(self, length: int, h: int, mode: str):
        self.length, self.mode = length, mode
        self.h_in = h
        if mode == "zeros":
            self.h = min(h, length - 1)
            self.pad = 0
            self.n = fast_fft_size(length + self.h)
        elif mode == "replicate" or 2 * h < length:
            # explicit padding by the (folded) half-size, then a linear correlation
            self.h = min(h, length) if mode == "replicate" else h
            self.pad = self.h
            self.n = fast_fft_size(length + 2 * self.h)
        else:
            # periodic extension: circular (period L) or mirrored (period 2L - 2)
            self.h = h
            self.pad = 0
            self.n = length if mode == "circular" else max(1, 2 * length - 2)
        self.offset = self.pad

    def fold(self, w: Tensor, dim: int) -> Tensor:
        if self.mode in ("zeros", "replicate"):
            w, _ = fold_kernel(w, self.h_in, self.length, self.mode, dim)
        return w

    def taps(self, device) -> Tensor:
        return torch.arange(-self.h, self.h + 1, device=device).remainder(self.n)

    def extend(self, x: Tensor, dim: int) -> Tensor:
        if self.pad:
            return pad_axis(x, self.pad, self.pad, self.mode, dim)
        if self.mode == "reflect" and self.n > self.length:
            return x.index_select(dim, index_map(self.length, 0, self.n - self.length, "reflect", x.device))
        return x


def _fft_axis(x: Tensor, w: Tensor, h: int, dim: int, mode: str) -> Tensor:
    plan = _AxisPlan(x.shape[dim], h, mode)
    w = plan.fold(w, -1)
    kc = torch.zeros(*w.shape[:-1], plan.n, dtype=w.dtype, device=w.device).index_add(
        -1, plan.taps(w.device), w
    )
    spec = torch.fft.rfft(kc).conj()
    xf = torch.fft.rfft(plan.extend(x, dim), n=plan.n, dim=dim)
    y = torch.fft.irfft(xf * _kernel_view(spec, x, dim), n=plan.n, dim=dim)
    return y.narrow(dim, plan.offset, plan.length)


def _fft_2d(x: Tensor, w: Tensor, hy: int, hx: int, mode: str) -> Tensor:
    H, W = x.shape[-2:]
    py, px = _AxisPlan(H, hy, mode), _AxisPlan(W, hx, mode)
    w = px.fold(py.fold(w, -2), -1)
    lead = w.shape[:-2]
    kc = torch.zeros(*lead, w.shape[-2], px.n, dtype=w.dtype, device=w.device).index_add(
        -1, px.taps(w.device), w
    )
    kc = torch.zeros(*lead, py.n, px.n, dtype=w.dtype, device=w.device).index_add(-2, py.taps(w.device), kc)
    spec = torch.fft.rfft2(kc).conj()
    e = px.extend(py.extend(x, -2), -1)
    xf = torch.fft.rfft2(e, s=(py.n, px.n))
    if spec.dim() == 3:
        spec = spec.unsqueeze(0)
    y = torch.fft.irfft2(xf * spec, s=(py.n, px.n))
    return y.narrow(-2, py.offset, H).narrow(-1, px.offset, W)


# ----------------------------------------------------------------------------- dispatch


def correlate_axis(x: Tensor, w: Tensor, dim: int, mode: str, method: str) -> Tensor:
    """Correlate ``x`` (B, C, ...) with kernel ``w`` (k,) or (C, k) along ``dim``."""
    h = (w.shape[-1] - 1) // 2
    if method == "auto":
        taps = 2 * min(h, x.shape[dim]) + 1
        method = "direct" if taps <= AUTO_DIRECT_MAX_TAPS_1D else "fft"
    if method == "direct":
        return _direct_axis(x, w, h, dim, mode)
    return _fft_axis(x, w, h, dim, mode)


def correlate2d(x: Tensor, w: Tensor, mode: str, method: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with a dense kernel ``w`` (ky, kx) or (C, ky, kx)."""
    hy, hx = (w.shape[-2] - 1) // 2, (w.shape[-1] - 1) // 2
    if method == "auto":
        taps = (2 * min(hy, x.shape[-2]) + 1) * (2 * min(hx, x.shape[-1]) + 1)
        method = "direct" if taps <= AUTO_DIRECT_MAX_TAPS_2D else "fft"
    if method == "direct":
        return _direct_2d(x, w, hy, hx, mode)
    return _fft_2d(x, w, hy, hx, mode)
