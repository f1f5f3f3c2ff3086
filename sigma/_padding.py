"""Boundary handling along one axis, for any padding size.

Padding is an index map: padded position ``i`` (running from ``-before`` to
``L + after - 1``) reads input position ``index_map(i)``. Unlike ``torch.nn.functional.pad``
this works for pads larger than the input (a kernel wider than the signal), and it is
exactly ``scipy.ndimage``'s extension rule for each mode:

==============  ==========================  ======================
``padding_mode``  extension                   ``scipy.ndimage`` mode
==============  ==========================  ======================
``'zeros'``      ``0 0 | a b c d | 0 0``       ``'constant'`` (cval 0)
``'reflect'``    ``c b | a b c d | c b``       ``'mirror'``
``'replicate'``  ``a a | a b c d | d d``       ``'nearest'``
``'circular'``   ``c d | a b c d | a b``       ``'wrap'``
==============  ==========================  ======================

Kernels wider than the signal can also be *folded* onto a shorter support without
changing the result (see :func:`fold_kernel`), which keeps work bounded by the
input size rather than by σ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def index_map(length: int, before: int, after: int, mode: str, device=None) -> Tensor:
    """Input index read by each padded position, shape ``(before + length + after,)``.

    Not defined for ``'zeros'`` (there the padded positions read nothing).
    """
    i = torch.arange(-before, length + after, device=device)
    if mode == "replicate":
        return i.clamp(0, length - 1)
    if mode == "circular":
        return i.remainder(length)
    if mode == "reflect":
        if length == 1:
            return torch.zeros_like(i)
        period = 2 * length - 2
        m = i.remainder(period)
        return torch.where(m < length, m, period - m)
    raise ValueError(f"index_map is undefined for padding_mode={mode!r}")


def pad_axis(x: Tensor, before: int, after: int, mode: str, dim: int) -> Tensor:
    """Pad ``x`` along ``dim`` by ``before``/``after`` positions with the rule of ``mode``."""
    if before == 0 and after == 0:
        return x
    if mode == "zeros":
        spec = [0, 0] * (x.dim() - (dim % x.dim()) - 1) + [before, after]
        return F.pad(x, spec)
    return x.index_select(dim, index_map(x.shape[dim], before, after, mode, x.device))


def fold_kernel(w: Tensor, h: int, length: int, mode: str, dim: int = -1) -> tuple[Tensor, int]:
    """Shrink a correlation kernel of half-size ``h`` (along ``dim``) to an equivalent one.

    For a signal of ``length`` samples:

    * ``'zeros'``: taps at offsets ``|j| >= length`` only ever read zeros, so they are
      dropped (half-size ``min(h, length - 1)``).
    * ``'replicate'``: every tap at ``j <= -length`` reads the first sample and every
      tap at ``j >= length`` the last, so their weights are summed into the taps at
      ``-length`` and ``length`` (half-size ``min(h, length)``).
    * ``'reflect'`` and ``'circular'`` are periodic and are returned unchanged.

    Returns:
        ``(w_folded, h_folded)``; correlating with ``w_folded`` gives exactly the
        same result as with ``w``.
    """
    if mode == "zeros" and h > length - 1:
        hn = length - 1
        return w.narrow(dim, h - hn, 2 * hn + 1), hn
    if mode == "replicate" and h > length:
        hn = length
        left = w.narrow(dim, 0, h - hn + 1).sum(dim, keepdim=True)
        mid = w.narrow(dim, h - hn + 1, 2 * hn - 1)
        right = w.narrow(dim, h + hn, h - hn + 1).sum(dim, keepdim=True)
        return torch.cat([left, mid, right], dim), hn
    return w, h
