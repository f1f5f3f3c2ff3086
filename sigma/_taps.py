"""Per-tap index arithmetic and the differentiable kernel gradient the spatial engines share.

A 'same' correlation ``y[i] = sum_j w[j] x[i + j - h]`` with zeros outside ``x`` is, tap by tap,
a multiply-add of two overlapping slices (:func:`overlap`); its kernel gradient is one
product-and-sum of such slices per tap (:func:`tap_grads_graph`, the form autograd can
differentiate again). No imports from the package: the engines build on this.
"""

from __future__ import annotations

import torch
from torch import Tensor


def tap(w: Tensor, j: int, ref: Tensor) -> Tensor:
    """Tap ``j`` of a ``(k,)`` or ``(C, k)`` kernel, shaped to broadcast against ``ref`` (B, C, ...)."""
    t = w[..., j]
    return t if w.dim() == 1 else t.reshape((1, -1) + (1,) * (ref.dim() - 2))


def overlap(o: int, L: int) -> tuple[int, int, int]:
    """For offset ``o``: (first output index, first input index, length) of ``y[i] += w * x[i + o]``."""
    return max(0, -o), max(0, o), L - abs(o)


def tap_grads_graph(g: Tensor, x: Tensor, w: Tensor, dim: int) -> Tensor:
    """Kernel gradient ``gw[..., j] = sum g[i] x[i + j - h]`` with differentiable operations:
    ``(k,)`` for ``w`` of shape ``(k,)``, ``(C, k)`` for ``(C, k)``; ``g``, ``x`` (B, C, ...)."""
    k, L = w.shape[-1], x.shape[dim]
    dims = [d for d in range(g.dim()) if not (w.dim() == 2 and d == 1)]
    taps = []
    for j in range(k):
        a, b, n = overlap(j - (k - 1) // 2, L)
        taps.append((g.narrow(dim, a, n) * x.narrow(dim, b, n)).sum(dims))
    return torch.stack(taps, -1)
