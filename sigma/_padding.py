"""Boundary handling along one axis, for any padding size: one table of modes.

Padding is an index map: padded position ``i`` (running from ``-before`` to
``L + after - 1``) reads input position ``index(i)``. Unlike ``torch.nn.functional.pad``
this works for pads larger than the input (a kernel wider than the signal), and it is
exactly ``scipy.ndimage``'s extension rule for each mode (:data:`PADDING_TABLE` lists them,
with the names scipy and kornia give each; the layers' docstrings show the same table).

Everything else derives from :data:`MODES`: the padding (:func:`pad_axis`), the
*folding* of kernels wider than the signal onto a shorter support without changing
the result (:func:`fold_kernel`), and the period the FFT engine wraps periodic modes
onto (:func:`period`). Adding a mode is one entry here (and its SciPy reference in
the tests, which fail without it).

The engines resolve a ``padding_mode`` name once, at their entry, into its
:class:`BoundaryMode` (:func:`boundary`, after ``scipy.ndimage``'s ``_extend_mode_to_code``)
and pass that object down; every function here takes either.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class BoundaryMode:
    """One boundary rule.

    Attributes:
        name: the ``padding_mode`` it is registered under.
        scipy: the equal ``scipy.ndimage`` mode (documentation).
        fold: how taps beyond the signal fold: ``'drop'`` (they read zeros), ``'clamp'``
            (they read the edge sample: summed into the edge taps) or ``'periodic'``
            (the extension repeats with :attr:`period`; kernels stay as they are).
        index: padded position ``i`` (a tensor) and length ``L`` -> input index read;
            None for ``'zeros'`` (nothing is read).
        period: ``L`` -> period of the extension, for periodic modes.
    """

    name: str
    scipy: str
    fold: str
    index: Callable[[Tensor, int], Tensor] | None
    period: Callable[[int], int] | None = None


def _mirror(i: Tensor, L: int) -> Tensor:
    if L == 1:
        return torch.zeros_like(i)
    p = 2 * L - 2
    m = i.remainder(p)
    return torch.where(m < L, m, p - m)


def _symmetric(i: Tensor, L: int) -> Tensor:
    m = i.remainder(2 * L)
    return torch.where(m < L, m, 2 * L - 1 - m)


MODES: dict[str, BoundaryMode] = {
    m.name: m
    for m in (
        BoundaryMode("zeros", "constant", "drop", None),
        BoundaryMode("reflect", "mirror", "periodic", _mirror, lambda L: max(1, 2 * L - 2)),
        BoundaryMode("symmetric", "reflect", "periodic", _symmetric, lambda L: 2 * L),
        BoundaryMode("replicate", "nearest", "clamp", lambda i, L: i.clamp(0, L - 1)),
        BoundaryMode("circular", "wrap", "periodic", lambda i, L: i.remainder(L), lambda L: L),
    )
}

#: The accepted ``padding_mode`` names.
PADDING_MODES = frozenset(MODES)


def boundary(mode: str | BoundaryMode) -> BoundaryMode:
    """The :class:`BoundaryMode` of a ``padding_mode`` name (validated upstream), or ``mode``
    itself if it is one already."""
    return mode if isinstance(mode, BoundaryMode) else MODES[mode]


def period(length: int, mode: str | BoundaryMode) -> int | None:
    """Period of the extension of a ``length``-sample signal, or None if not periodic."""
    m = boundary(mode)
    return m.period(length) if m.period is not None else None


def index_map(length: int, before: int, after: int, mode: str | BoundaryMode, device=None) -> Tensor:
    """Input index read by each padded position, shape ``(before + length + after,)``.

    Not defined for ``'zeros'`` (there the padded positions read nothing).
    """
    rule = boundary(mode).index
    if rule is None:
        raise ValueError(f"index_map is undefined for padding_mode={boundary(mode).name!r}")
    return rule(torch.arange(-before, length + after, device=device), length)


def pad_axis(x: Tensor, before: int, after: int, mode: str | BoundaryMode, dim: int) -> Tensor:
    """Pad ``x`` along ``dim`` by ``before``/``after`` positions with the rule of ``mode``."""
    if before == 0 and after == 0:
        return x
    if boundary(mode).index is None:
        spec = [0, 0] * (x.dim() - (dim % x.dim()) - 1) + [before, after]
        return F.pad(x, spec)
    return x.index_select(dim, index_map(x.shape[dim], before, after, mode, x.device))


def folded_radius(h: int, length: int, mode: str | BoundaryMode) -> int:
    """Half-size of the kernel :func:`fold_kernel` returns."""
    fold = boundary(mode).fold
    if fold == "drop":
        return min(h, length - 1)
    if fold == "clamp":
        return min(h, length)
    return h


def fold_kernel(
    w: Tensor, h: int, length: int, mode: str | BoundaryMode, dim: int = -1
) -> tuple[Tensor, int]:
    """Shrink a correlation kernel of half-size ``h`` (along ``dim``) to an equivalent one.

    For a signal of ``length`` samples:

    * ``'drop'`` (``'zeros'``): taps at offsets ``|j| >= length`` only ever read zeros,
      so they are dropped (half-size ``min(h, length - 1)``).
    * ``'clamp'`` (``'replicate'``): every tap at ``j <= -length`` reads the first
      sample and every tap at ``j >= length`` the last, so their weights are summed
      into the taps at ``-length`` and ``length`` (half-size ``min(h, length)``).
    * ``'periodic'`` modes are returned unchanged (the FFT engine folds them onto
      the period instead).

    Returns:
        ``(w_folded, h_folded)``; correlating with ``w_folded`` gives exactly the
        same result as with ``w``.
    """
    hn = folded_radius(h, length, mode)
    if hn == h:
        return w, h
    if boundary(mode).fold == "drop":
        return w.narrow(dim, h - hn, 2 * hn + 1), hn
    left = w.narrow(dim, 0, h - hn + 1).sum(dim, keepdim=True)
    mid = w.narrow(dim, h - hn + 1, 2 * hn - 1)
    right = w.narrow(dim, h + hn, h - hn + 1).sum(dim, keepdim=True)
    return torch.cat([left, mid, right], dim), hn


#: The modes as the layers' docstrings show them (``help(sigma.Blur2d)``, the API page), with the
#: names ``scipy.ndimage`` and kornia (``border_type``) give each.
PADDING_TABLE = """\
================  ============================  =======================  ======================
``padding_mode``  extension of ``a b c d``      ``scipy.ndimage`` mode   kornia ``border_type``
================  ============================  =======================  ======================
``'zeros'``       ``0 0 | a b c d | 0 0``       ``'constant'`` (cval 0)  ``'constant'``
``'reflect'``     ``c b | a b c d | c b``       ``'mirror'``             ``'reflect'``
``'symmetric'``   ``b a | a b c d | d c``       ``'reflect'``            (none)
``'replicate'``   ``a a | a b c d | d d``       ``'nearest'``            ``'replicate'``
``'circular'``    ``c d | a b c d | a b``       ``'wrap'``               ``'circular'``
================  ============================  =======================  ======================
"""


def with_padding_table(cls: type) -> type:
    """Class decorator: put :data:`PADDING_TABLE` where the docstring says ``PADDING_TABLE``."""
    cls.__doc__ = cls.__doc__.replace("    PADDING_TABLE\n", textwrap.indent(PADDING_TABLE, "    "))
    return cls
