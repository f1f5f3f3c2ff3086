"""Correlation along a short axis as one matrix product, the boundary rule folded in.

Along an axis of ``L`` samples, a 'same' correlation with a kernel of ``k = 2h + 1`` taps
under any boundary rule is a linear map ``y = A x`` with an ``(L, L)`` matrix

    A[i, j] = sum of w[t] over the taps t whose padded position i + t - h reads sample j

(:func:`sigma._padding.index_map`; under ``'zeros'`` a tap beyond the signal reads
nothing). ``A = w @ P`` for a fixed 0/1 tensor ``P`` of shape ``(k, L * L)``, so the
whole blur is a few small matrix products that autograd differentiates in ``x`` and in
the kernel (``dw = P @ dA``), twice if asked, under ``torch.compile`` and ``vmap`` alike.

This is the banded product of :mod:`sigma._band` with a single block whose band covers
the whole axis: it costs ``L`` multiply-adds per output instead of ``k``, so it is used
for short axes only (``L <= DENSE_MAX_LENGTH``), where a handful of operations beats the
``k`` passes and the per-tap bookkeeping of the shifted sums.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ._autograd import traced
from ._padding import BoundaryMode, boundary, index_map

#: longest axis :func:`dense_axis` is used for (its cost grows with ``L`` per output)
DENSE_MAX_LENGTH = 32


@functools.lru_cache(maxsize=64)
def _placement_cached(length: int, h: int, mode: str, device: torch.device, dtype: torch.dtype) -> Tensor:
    # The cache outlives the grad mode of the call that fills it: a tensor made under
    # torch.inference_mode() could never be saved for a later backward, so build it outside.
    with torch.inference_mode(False):
        return _placement(length, h, mode, device, dtype)


def _placement(length: int, h: int, mode: str, device, dtype) -> Tensor:
    """``P`` of shape ``(2h + 1, L * L)``: ``P[t, i * L + j] = 1`` where tap ``t`` of output ``i`` reads ``j``."""
    k = 2 * h + 1
    pos = (
        torch.arange(length, device=device)[:, None] + torch.arange(-h, h + 1, device=device)[None, :]
    )  # (L, k)
    if boundary(mode).index is None:
        valid = (pos >= 0) & (pos < length)
        src = pos.clamp(0, length - 1)
    else:
        src = index_map(length, h, h, mode, device)[pos + h]
        valid = torch.ones_like(src, dtype=torch.bool)
    flat = torch.arange(length, device=device)[:, None] * length + src  # (L, k) -> index into L * L
    p = torch.zeros(k, length * length, dtype=dtype, device=device)
    p.scatter_(1, flat.T, valid.T.to(dtype))
    return p


def placement(length: int, h: int, mode: str | BoundaryMode, like: Tensor) -> Tensor:
    """The 0/1 tensor ``P`` (``(2h + 1, L * L)``, dtype and device of ``like``), cached outside tracing."""
    if traced(like):
        return _placement(length, h, mode, like.device, like.dtype)
    return _placement_cached(length, h, boundary(mode).name, like.device, like.dtype)


def axis_matrix(w: Tensor, length: int, mode: str | BoundaryMode) -> Tensor:
    """``A`` of shape ``(L, L)`` (or ``(C, L, L)`` for ``w`` of shape ``(C, k)``): ``y = A x`` along the axis."""
    h = (w.shape[-1] - 1) // 2
    p = placement(length, h, mode, w)
    return (w @ p).unflatten(-1, (length, length))


def dense_axis(x: Tensor, w: Tensor, dim: int, mode: str | BoundaryMode) -> Tensor:
    """Correlate ``x`` (B, C, ...) with ``w`` (k,) or (C, k) along ``dim``."""
    return apply_axis_matrix(x, axis_matrix(w.to(x.dtype), x.shape[dim], mode), dim)


def apply_axis_matrix(x: Tensor, a: Tensor, dim: int) -> Tensor:
    """``y = A x`` along ``dim`` of ``x`` (B, C, ...) for ``a`` of shape ``(L, L)`` or ``(C, L, L)``."""
    dim = dim % x.dim()
    if x.dim() == 4 and dim == 2:  # down the rows: (C, H, H) or (H, H) against (B, C, H, W)
        return a @ x
    # along the last axis, as (B, C, M, L) @ (C, L, L)^T; batch dims broadcast over (B, C)
    xt = x.movedim(dim, -1)
    y = xt.reshape(x.shape[0], x.shape[1], -1, x.shape[dim]) @ a.transpose(-1, -2)
    return y.reshape(xt.shape).movedim(-1, dim)


def dense_separable(x: Tensor, wy: Tensor, wx: Tensor, mode: str | BoundaryMode) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with ``wy`` down the rows and ``wx`` along the columns: ``A_y x A_x^T``."""
    ay = axis_matrix(wy.to(x.dtype), x.shape[-2], mode)
    same = wx is wy and x.shape[-1] == x.shape[-2]  # an isotropic blur of a square image
    ax = ay if same else axis_matrix(wx.to(x.dtype), x.shape[-1], mode)
    return ay @ x @ ax.transpose(-1, -2)


def dense_pairs_per_sample(
    x: Tensor, wy: list[Tensor], wx: list[Tensor], pairs: list[tuple[int, int]], mode: str | BoundaryMode
) -> Tensor:
    """Separable correlations of ``x`` (B, C, H, W) with one kernel pair per *sample*, shared by
    its channels: for each ``(i, j)`` of ``pairs``, ``A_y[i] x A_x[j]^T`` with the matrices of
    ``wy[i]`` and ``wx[j]``, each of shape (B, k). Returns (B, C, P, H, W), P = ``len(pairs)``.

    Folding the samples into the channels (one matrix per sample *and* channel) would build ``C``
    copies of each matrix and multiply ``B * C`` tiny ones. Here each sample's matrices multiply
    all its channels at once: along the columns one product ``(C * H, W) @ (W, n_x * W)`` per
    sample for every ``wx`` together, down the rows one ``(H, H) @ (H, C * W)`` per pair. Measured
    on a 2-core AMD EPYC (one thread, float64), a training step of the scale chapter's N-jet
    network (24 x 24 digits, 50 per batch, 1 to 16 channels) takes 180-190 ms against 300-320
    folded.
    """
    B, C, H, W = x.shape
    nx = max(j for _, j in pairs) + 1
    ax = torch.cat([axis_matrix(w.to(x.dtype), W, mode).transpose(1, 2) for w in wx[:nx]], 2)
    t = torch.bmm(x.reshape(B, C * H, W), ax)  # (B, C * H, nx * W)
    # down the rows: (B, H, nx * C * W), each kernel's C * W columns one slice (views, no copy)
    cols = t.view(B, C, H, nx, W).permute(0, 2, 3, 1, 4).reshape(B, H, nx * C * W).split(C * W, 2)
    ay = {i: axis_matrix(wy[i].to(x.dtype), H, mode) for i in sorted({i for i, _ in pairs})}
    return torch.stack([torch.bmm(ay[i], cols[j]).view(B, H, C, W).transpose(1, 2) for i, j in pairs], 2)
