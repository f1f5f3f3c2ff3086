"""The direct correlation along one axis as banded matrix products (``method='matmul'``).

Correlating a signal of length ``L`` with a kernel of ``k = 2h + 1`` taps is a
product with a banded Toeplitz matrix. Cutting the axis into blocks of ``m``
outputs, every block needs the same ``(m + 2h, m)`` matrix ``T`` (``T[p, q] = w[p - q]``)
applied to its window of ``m + 2h`` inputs, so each block is one large matrix
product that reads its window in place:

* rows (the last axis, viewed as ``(Q, L)``): ``x[:, window] @ T``;
* planes (an axis with trailing data, viewed as ``(Q, L, S)``, e.g. the rows of an
  image): ``T^T @ x[q, window, :]``, batched over ``q``.

A pass reads the data once instead of once per tap, so its cost grows far more
slowly with σ than the shifted sums of ``'direct'``, and stops growing once a
window covers the whole axis. The kernel gradient is one more product per block
(output-gradient block against input window), whose diagonals hold the per-tap
sums. With one kernel per channel, the products are batched over the channels.
"""

from __future__ import annotations

import torch
from torch import Tensor

BLOCK = 32  # outputs per block; measured on CPU, 16 to 64 perform alike


def _toeplitz(w: Tensor, m: int) -> Tensor:
    """``(..., m + 2h, m)`` matrices with ``T[p, q] = w[..., p - q]`` on the band ``0 <= p - q <= 2h``."""
    k = w.shape[-1]
    d = torch.arange(m + k - 1, device=w.device)[:, None] - torch.arange(m, device=w.device)[None, :]
    return torch.where((d >= 0) & (d < k), w[..., d.clamp(0, k - 1)], w.new_zeros(()))


def _diagonal_sums(p: Tensor, k: int) -> Tensor:
    """``out[..., j] = sum_a p[..., a, a + j]`` for ``j < k``, from ``p`` of shape ``(..., m, m + k - 1)``."""
    p = p.contiguous()
    m, K = p.shape[-2:]
    return p.as_strided(p.shape[:-2] + (k, m), p.stride()[:-2] + (1, K + 1)).sum(-1)


def _block_size(L: int, h: int) -> int:
    """Outputs per block: at least ``BLOCK``, and at least ``2h`` so windows stay short."""
    return min(L, max(BLOCK, 2 * h))


def _blocks(L: int, h: int, m: int):
    """``(a0, a1, c0, c1, p0)``: outputs ``[a0, a1)`` read inputs ``[c0, c1)``, from row ``p0`` of ``T``."""
    for a0 in range(0, L, m):
        a1 = min(L, a0 + m)
        c0, c1 = max(0, a0 - h), min(L, a1 + h)
        yield a0, a1, c0, c1, c0 - (a0 - h)


def _correlate3(x3: Tensor, w: Tensor) -> Tensor:
    """``(Q, L, S)`` correlation of ``x3`` with ``w`` (k,) along the middle axis, zero outside.

    Every block of outputs is one matrix product reading its window of inputs in
    place: ``x[:, window] @ T`` on rows (``S == 1``), and ``T^T @ x[q, window, :]``
    batched over ``q`` with trailing data (``S > 1``).
    """
    Q, L, S = x3.shape
    h = (w.shape[-1] - 1) // 2
    m = _block_size(L, h)
    t = _toeplitz(w, m)
    if S == 1:
        x2, y2 = x3.reshape(Q, L), x3.new_empty(Q, L)
        for a0, a1, c0, c1, p0 in _blocks(L, h, m):
            torch.mm(x2[:, c0:c1], t[p0 : p0 + c1 - c0, : a1 - a0], out=y2[:, a0:a1])
        return y2.view(Q, L, 1)
    y = x3.new_empty(Q, L, S)
    for a0, a1, c0, c1, p0 in _blocks(L, h, m):
        y[:, a0:a1] = torch.matmul(t[p0 : p0 + c1 - c0, : a1 - a0].t(), x3[:, c0:c1])
    return y


def _tap_grads3(g3: Tensor, x3: Tensor, k: int) -> Tensor:
    """``gw[j] = sum g[i] x[i + j - h]`` over a ``(Q, L, S)`` view, shape ``(k,)``."""
    Q, L, S = x3.shape
    h = (k - 1) // 2
    m = _block_size(L, h)
    p = x3.new_zeros(m, m + 2 * h)
    for a0, a1, c0, c1, p0 in _blocks(L, h, m):
        if S == 1:
            blk = g3[:, a0:a1, 0].t() @ x3[:, c0:c1, 0]
        else:
            blk = torch.matmul(g3[:, a0:a1], x3[:, c0:c1].transpose(1, 2)).sum(0)
        p[: a1 - a0, p0 : p0 + c1 - c0] += blk
    return _diagonal_sums(p, k)


def _views(x: Tensor, dim: int) -> tuple[int, int, int]:
    """``(Q, L, S)``: sizes before, along and after ``dim``."""
    L = x.shape[dim]
    S = 1
    for n in x.shape[dim + 1 :]:
        S *= n
    return x.numel() // (L * S), L, S


def _channel_views(x: Tensor, dim: int) -> tuple[int, int, int, int, int]:
    """``(B, C, Q, L, S)``: batch, channels, sizes before, along and after ``dim``."""
    B, C = x.shape[:2]
    _, L, S = _views(x, dim)
    return B, C, x.numel() // (B * C * L * S), L, S


def _correlate_channels(x5: Tensor, w: Tensor) -> Tensor:
    """:func:`_correlate3` with one kernel per channel: ``x5`` (B, C, Q, L, S), ``w`` (C, k).

    Each block is one matrix product batched over batch and channels, the ``C``
    Toeplitz matrices broadcasting over the batch.
    """
    L, S = x5.shape[-2:]
    h = (w.shape[-1] - 1) // 2
    m = _block_size(L, h)
    t = _toeplitz(w, m)  # (C, m + 2h, m)
    y = x5.new_empty(x5.shape)
    for a0, a1, c0, c1, p0 in _blocks(L, h, m):
        tb = t[:, p0 : p0 + c1 - c0, : a1 - a0]
        if S == 1:  # (B, C, Q, K) @ (C, K, m)
            y[..., a0:a1, 0] = torch.matmul(x5[..., c0:c1, 0], tb)
        else:  # (C, 1, m, K) @ (B, C, Q, K, S)
            y[..., a0:a1, :] = torch.matmul(tb.transpose(-1, -2).unsqueeze(1), x5[..., c0:c1, :])
    return y


def _tap_grads_channels(g5: Tensor, x5: Tensor, k: int) -> Tensor:
    """:func:`_tap_grads3` per channel of ``(B, C, Q, L, S)`` views, shape ``(C, k)``."""
    C, L, S = x5.shape[1], x5.shape[3], x5.shape[4]
    h = (k - 1) // 2
    m = _block_size(L, h)
    p = x5.new_zeros(C, m, m + 2 * h)
    for a0, a1, c0, c1, p0 in _blocks(L, h, m):
        if S == 1:
            blk = torch.matmul(g5[..., a0:a1, 0].transpose(-1, -2), x5[..., c0:c1, 0]).sum(0)
        else:
            blk = torch.matmul(g5[..., a0:a1, :], x5[..., c0:c1, :].transpose(-1, -2)).sum((0, 2))
        p[:, : a1 - a0, p0 : p0 + c1 - c0] += blk
    return _diagonal_sums(p, k)


def band_correlate(x: Tensor, w: Tensor, dim: int) -> Tensor:
    """'Same' correlation of ``x`` (B, C, ...) with ``w`` (k,) or (C, k) along ``dim``, zero boundary."""
    dim = dim % x.dim()
    if w.dim() == 1:
        return _correlate3(x.reshape(_views(x, dim)), w).view(x.shape)
    return _correlate_channels(x.reshape(_channel_views(x, dim)), w).view(x.shape)


def band_tap_grads(g: Tensor, x: Tensor, k: int, dim: int, per_channel: bool) -> Tensor:
    """Kernel gradient of :func:`band_correlate`: ``(k,)``, or ``(C, k)`` if ``per_channel``."""
    dim = dim % x.dim()
    if not per_channel:
        shape = _views(x, dim)
        return _tap_grads3(g.reshape(shape), x.reshape(shape), k)
    shape = _channel_views(x, dim)
    return _tap_grads_channels(g.reshape(shape), x.reshape(shape), k)
