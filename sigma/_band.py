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

import math

import torch
from torch import Tensor

from ._autograd import apply, eager_twin
from ._taps import tap_grads_graph

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


def _views(x: Tensor, dim: int, per_channel: bool) -> tuple[int, int, int, int, int]:
    """``(B, C, Q, L, S)``: batch, channels, sizes before, along and after ``dim``.

    With a shared kernel the whole tensor is one batch of one channel.
    """
    L = x.shape[dim]
    S = math.prod(x.shape[dim + 1 :])
    B, C = x.shape[:2] if per_channel else (1, 1)
    return B, C, x.numel() // (B * C * L * S), L, S


def _correlate(x5: Tensor, w: Tensor) -> Tensor:
    """Correlation of ``x5`` (B, C, Q, L, S) with ``w`` (C, k) along ``L``, zero outside.

    Every block of outputs is one matrix product reading its window of inputs in
    place, batched over batch and channels with the ``C`` Toeplitz matrices
    broadcasting over the batch: ``x[..., window] @ T`` on rows (``S == 1``), and
    ``T^T @ x[..., window, :]`` with trailing data (``S > 1``).
    """
    B, C, Q, L, S = x5.shape
    h = (w.shape[-1] - 1) // 2
    m = _block_size(L, h)
    t = _toeplitz(w, m)  # (C, m + 2h, m)
    y = x5.new_empty(x5.shape)
    for a0, a1, c0, c1, p0 in _blocks(L, h, m):
        tb = t[:, p0 : p0 + c1 - c0, : a1 - a0]
        if S == 1 and B == C == 1:  # one plain product, written in place
            torch.mm(x5[0, 0, :, c0:c1, 0], tb[0], out=y[0, 0, :, a0:a1, 0])
        elif S == 1:  # (B, C, Q, K) @ (C, K, m)
            y[..., a0:a1, 0] = torch.matmul(x5[..., c0:c1, 0], tb)
        else:  # (C, 1, m, K) @ (B, C, Q, K, S)
            y[..., a0:a1, :] = torch.matmul(tb.transpose(-1, -2).unsqueeze(1), x5[..., c0:c1, :])
    return y


def _tap_grads(g5: Tensor, x5: Tensor, k: int) -> Tensor:
    """``gw[c, j] = sum g[.., c, .., i, ..] x[.., c, .., i + j - h, ..]`` over ``(B, C, Q, L, S)`` views."""
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
    shape = _views(x, dim % x.dim(), w.dim() == 2)
    return _correlate(x.reshape(shape), w.reshape(-1, w.shape[-1])).view(x.shape)


def band_tap_grads(g: Tensor, x: Tensor, k: int, dim: int, per_channel: bool) -> Tensor:
    """Kernel gradient of :func:`band_correlate`: ``(k,)``, or ``(C, k)`` if ``per_channel``."""
    shape = _views(x, dim % x.dim(), per_channel)
    gw = _tap_grads(g.reshape(shape), x.reshape(shape), k)
    return gw if per_channel else gw[0]


def band_correlate_unfolded(x: Tensor, w: Tensor, dim: int) -> Tensor:
    """:func:`band_correlate` without in-place writes, for ``torch.compile`` and ``torch.func``.

    The zero-padded axis is cut into overlapping windows of ``m + 2h`` inputs every ``m``
    samples (:meth:`Tensor.unfold`, a view), and one batched product with the Toeplitz
    matrix gives every block's ``m`` outputs; autograd differentiates it in ``x`` and ``w``.
    """
    dim = dim % x.dim()
    L, k = x.shape[dim], w.shape[-1]
    h = (k - 1) // 2
    m = _block_size(L, h)
    nb = -(-L // m)
    xt = x.movedim(dim, -1)
    xp = torch.nn.functional.pad(xt, (h, h + nb * m - L))
    windows = xp.unfold(-1, m + 2 * h, m)  # (..., nb, m + 2h)
    t = _toeplitz(w, m)  # (m + 2h, m) or (C, m + 2h, m)
    if w.dim() == 2:  # one kernel per channel: broadcast over the axes after the channels
        t = t.reshape(t.shape[:1] + (1,) * (windows.dim() - 4) + t.shape[1:])
    y = (windows @ t).flatten(-2).narrow(-1, 0, L)
    return y.movedim(-1, dim)


class _BandCorr(torch.autograd.Function):
    """Zero-boundary 'same' correlation along ``dim`` by banded products (:func:`band_correlate`).

    The backward pass is the correlation with the flipped kernel and one more product for
    the kernel; when a graph is being built (double backward) it uses differentiable
    operations only.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, w: Tensor, dim: int) -> Tensor:
        return band_correlate(x, w, dim)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, w, dim = inputs
        ctx.save_for_backward(x, w)
        ctx.dim = dim

    @staticmethod
    def backward(ctx, g: Tensor):
        x, w = ctx.saved_tensors
        dim = ctx.dim
        graph = torch.is_grad_enabled()
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = apply(_BandCorr, g, w.flip(-1), dim) if graph else band_correlate(g, w.flip(-1), dim)
        if ctx.needs_input_grad[1]:
            if graph:
                gw = tap_grads_graph(g, x, w, dim)
            else:
                gw = band_tap_grads(g, x, w.shape[-1], dim, w.dim() == 2)
        return gx, gw, None


_BandCorr.eager = eager_twin(_BandCorr)
