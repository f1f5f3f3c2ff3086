"""The ``'fused'`` engine for separable 2D blurs: both axes in one compiled graph.

A separable 2D blur (:func:`fused_separable`) copies ``x`` once into a
buffer bordered in both axes (the rows of the interior extended first, then the whole columns,
which fills the corners as the product of the two extensions) and runs one compiled graph: the
row pass over every bordered row, then the column pass over its result (:func:`_sep_loop`).
Inductor emits the two loops into one kernel; the row pass's output is the column pass's
bordered input, so there is no second copy, no second buffer and no second call. Its backward
(:class:`_FusedSep`) is one compiled graph too (:func:`_sep_back_loop`): the column adjoint of
the zero-extended output gradient, the row adjoint of that (the input gradient, over the whole
bordered extent where the mode is not zeros, then folded back), and both tap gradients, which
read the saved bordered input and the saved row pass.

The compiled-callable plumbing (one code object per loop, static then symbolic shapes), the
kept buffers, the border fills and the fallback are those of :mod:`sigma._fused`, whose
:data:`~sigma._fused.LOOPS` this module extends with the loops ``'sep'`` and ``'sep_back'``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _auto
from ._fused import (
    LOOPS,
    _add_border,
    _buffer,
    _compiled_ok,
    _corr_loop,
    _fill_border,
    _fresh_buffer,
    _plain,
    _plain_backward,
    _prepare,
    _row_tap,
    _run,
    _tap_sums,
    _tap_total,
    fused_axis,
)
from ._padding import MODES

# ----------------------------------------------------------------------------- compiled loops

#: in the backward loop (:func:`_sep_back_loop`), kernels of at most this many taps in 2D (ky * kx)
#: recompute the column adjoint where it is read instead of storing it; the forward's threshold
#: is a plan constant, ``fused_inline_max_taps`` (:mod:`sigma._auto`), which ``sigma.tune`` measures
INLINE_MAX_TAPS = 25


def _sep_loop(xp: Tensor, wy: Tensor, wx: Tensor, keep: bool, inline: bool):
    """Both axes of a separable correlation in one compiled graph, ``xp`` (B, C, H + 2hy, W + 2hx)
    bordered in both axes: along the rows over every bordered row, ``t`` (B, C, H + 2hy, W), then
    down the columns of ``t``, ``y`` (B, C, H, W). Returns ``(t, y)`` if ``keep``, else ``(y,)``.

    With ``inline`` (which :func:`_sep_forward` sets only without ``keep``), each output computes the ``ky`` row sums it needs from
    ``xp`` instead of reading a stored row pass: more multiply-adds, but ``t`` never goes through
    memory. Which is faster depends on the CPU: inlining measured faster at 3 taps per axis on
    every CPU tried, and at 5 taps 1.1-1.7x faster on one AMD EPYC (AVX2), but 8-23 % slower on an
    AMD EPYC with AVX-512 and about 15 % slower on an Intel Xeon (AVX-512); slower from 7 taps
    everywhere. The operations and their order are the same, so the result is bit for bit the same.
    """
    ky = wy.shape[-1]
    if inline:
        H = xp.shape[2] - ky + 1
        y = _corr_loop(xp.narrow(2, 0, H), wx, 3) * _row_tap(wy, 0)
        for j in range(1, ky):
            y = y + _corr_loop(xp.narrow(2, j, H), wx, 3) * _row_tap(wy, j)
        return (y,)
    t = _corr_loop(xp, wx, 3)
    y = _corr_loop(t, wy, 2)
    return (t, y) if keep else (y,)


def _sep_back_loop(gp: Tensor, xp: Tensor, t: Tensor, wy: Tensor, wx: Tensor, need: tuple[bool, bool, bool]):
    """The gradients of :func:`_sep_loop` in one compiled graph. ``gp`` is the output gradient
    zero-extended by ``(qy, qx)``: ``(hy, hx)`` gives the input gradient's interior (zero borders),
    ``(2hy, 2hx)`` its whole bordered extent (B, C, H + 2hy, W + 2hx). ``need``: the input
    gradient, ``wy``'s and ``wx``'s partial tap sums (:func:`_tap_sums`)."""
    ky, kx = wy.shape[-1], wx.shape[-1]
    hy = (ky - 1) // 2
    H, W = t.shape[2] - 2 * hy, t.shape[3]
    qx = (gp.shape[3] - W) // 2
    qy = (gp.shape[2] - H) // 2
    wyf, wxf = wy.flip(-1), wx.flip(-1)
    if ky * kx <= INLINE_MAX_TAPS:  # small kernels: gt's columns recomputed where read (as in _sep_loop)

        def gt(c0: int, n: int) -> Tensor:
            return _corr_loop(gp.narrow(3, c0, n), wyf, 2)

    else:  # the gradient of t, stored: H + 2qy - 2hy rows, W + 2qx columns
        gt_all = _corr_loop(gp, wyf, 2)

        def gt(c0: int, n: int) -> Tensor:
            return gt_all.narrow(3, c0, n)

    out = []
    if need[0]:  # the row adjoint of gt: W + 2qx - 2hx columns
        n = gp.shape[3] - kx + 1
        gx = gt(0, n) * _row_tap(wxf, 0)
        for j in range(1, kx):
            gx = gx + gt(j, n) * _row_tap(wxf, j)
        out.append(gx)
    if need[1]:
        out.append(_tap_sums(gp.narrow(2, qy, H).narrow(3, qx, W), t, ky, 2))
    if need[2]:
        inner = gt(qx, W)
        rows = inner.shape[2]
        out.append(_tap_sums(inner, xp.narrow(2, hy - (rows - H) // 2, rows), kx, 3))
    return tuple(out)


def _sep_kind(k, flag: tuple[bool, bool]):
    keep, inline = flag

    def loop(xp, wy, wx):
        return _sep_loop(xp, wy, wx, keep, inline)

    return loop


def _sep_back_kind(k, need: tuple[bool, bool, bool]):
    def loop(gp, xp, t, wy, wx):
        return _sep_back_loop(gp, xp, t, wy, wx, need)

    return loop


LOOPS["sep"] = _sep_kind
LOOPS["sep_back"] = _sep_back_kind


# ----------------------------------------------------------------------------- buffers and autograd


def _grid(buf: Tensor, axis: int) -> Tensor:
    """A (B, C, Hp, Wp) buffer viewed as (B, R, Lp, S) lines along ``axis`` (2 or 3): its columns
    (B * C, 1, Hp, Wp), or its rows (B * C, Hp, Wp, 1). ``buf`` may be a narrowed view along dim 2."""
    B, C, Hp, Wp = buf.shape
    return buf.view(B * C, 1, Hp, Wp) if axis == 2 else buf.view(B * C, Hp, Wp, 1)


def _bordered2(t: Tensor, hy: int, hx: int, mode: str, alloc, role: str = "x") -> Tensor:
    """``t`` (B, C, H, W) copied into a buffer (B, C, H + 2hy, W + 2hx) from ``alloc``, extended by
    ``mode`` in both axes: along the rows of the interior rows first, then down the whole columns
    (which fills the corners as the product of the two extensions)."""
    B, C, H, W = t.shape
    zeros = MODES[mode].index is None
    buf = alloc((B, C, H + 2 * hy, W + 2 * hx), (hy, hx), t.dtype, t.device, role, zeros)
    buf.narrow(2, hy, H).narrow(3, hx, W).copy_(t)
    if not zeros:
        _fill_border(_grid(buf.narrow(2, hy, H), 3), W, hx, mode)
        _fill_border(_grid(buf, 2), H, hy, mode)
    return buf


def _fold2(gp: Tensor, H: int, W: int, hy: int, hx: int, mode: str) -> Tensor:
    """The gradient ``gp`` (B, C, H + 2hy, W + 2hx) of a buffer from :func:`_bordered2` summed
    onto the interior it was filled from (the adjoint of the two fills, in reverse order), in
    place; returns the interior (B, C, H, W), contiguous."""
    cols = _grid(gp, 2)
    _add_border(cols.narrow(2, hy, H), (cols.narrow(2, 0, hy), cols.narrow(2, hy + H, hy)), H, hy, mode)
    rows = _grid(gp.narrow(2, hy, H), 3)
    _add_border(rows.narrow(2, hx, W), (rows.narrow(2, 0, hx), rows.narrow(2, hx + W, hx)), W, hx, mode)
    return gp.narrow(2, hy, H).narrow(3, hx, W).contiguous()


def _sep_forward(
    x: Tensor,
    wy: Tensor,
    wx: Tensor,
    mode: str,
    xp: Tensor | None = None,
    keep: bool = False,
    inline: bool | None = None,
):
    """The compiled separable correlation, no autograd: ``x`` (B, C, H, W), ``wy`` (ky,) or (C, ky)
    and ``wx`` likewise, folded; reads ``x`` through ``xp`` if given (bordered already by
    :func:`_bordered2`), else through a kept buffer. Returns ``(t, y)`` if ``keep``, else ``(y,)``.
    ``inline``: recompute the row sums (see :func:`_sep_loop`); None: where the plan's
    ``fused_inline_max_taps`` says so."""
    ky, kx = wy.shape[-1], wx.shape[-1]
    if inline is None:
        inline = ky * kx <= _auto.plan().fused_inline_max_taps
    flag = (keep, inline and not keep)
    wy, wx = wy.detach().contiguous(), wx.detach().contiguous()
    with torch.no_grad():
        if xp is None:
            xp = _bordered2(x, (ky - 1) // 2, (kx - 1) // 2, mode, _buffer)
        return _run("sep", (ky, kx), flag, (wy.dim() == 2, wx.dim() == 2), xp, wy, wx)


def _sep_backward(g, x, wy, wx, xp, t, mode: str, need: tuple[bool, bool, bool]):
    """The compiled gradients of :func:`_sep_forward`, no graph: ``gx`` like ``x``, ``gwy`` like
    ``wy``, ``gwx`` like ``wx``, or None where ``need`` says no (``xp`` and ``t``, saved by the
    forward pass, are needed for the tap gradients)."""
    ky, kx = wy.shape[-1], wx.shape[-1]
    hy, hx = (ky - 1) // 2, (kx - 1) // 2
    H, W = x.shape[-2:]
    # the gradient of the bordered rows and columns is needed for the input gradient's borders,
    # and that of the bordered rows of t for wx's taps, where the borders are not zeros
    border = MODES[mode].index is not None
    full = need[0] and border
    wy, wx = wy.detach().contiguous(), wx.detach().contiguous()
    with torch.no_grad():
        gp = _bordered2(g, hy * (1 + (full or border and need[2])), hx * (1 + full), "zeros", _buffer, "g")
        if t is None:  # only the input gradient: the loop does not read them
            xp = t = g.new_empty(1, 1, H + 2 * hy, W)
        out = list(_run("sep_back", (ky, kx), need, (wy.dim() == 2, wx.dim() == 2), gp, xp, t, wy, wx))
        gx = gwy = gwx = None
        if need[0]:
            gx = out.pop(0)
            if full:
                gx = _fold2(gx, H, W, hy, hx, mode)
        if need[1]:
            gwy = _tap_total(out.pop(0), wy)
        if need[2]:
            gwx = _tap_total(out.pop(0), wx)
    return gx, gwy, gwx


class _FusedSep(torch.autograd.Function):
    """:func:`_sep_forward` with its gradients in ``x`` (B, C, H, W), ``wy`` and ``wx``.

    When a kernel needs a gradient, the forward pass borders ``x`` into a new tensor and keeps
    the row pass ``t``: the tap gradients read them. Double backward: the plain operations."""

    @staticmethod
    def forward(ctx, x: Tensor, wy: Tensor, wx: Tensor, mode: str) -> Tensor:
        ctx.mode = mode
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            xp = _bordered2(x, (wy.shape[-1] - 1) // 2, (wx.shape[-1] - 1) // 2, mode, _fresh_buffer)
            t, y = _sep_forward(x, wy, wx, mode, xp, keep=True)
        else:
            xp = t = None
            (y,) = _sep_forward(x, wy, wx, mode)
        ctx.save_for_backward(x, wy, wx, xp, t)
        return y

    @staticmethod
    def backward(ctx, g: Tensor):
        x, wy, wx, xp, t = ctx.saved_tensors
        need = tuple(ctx.needs_input_grad[:3])
        mode = ctx.mode
        if torch.is_grad_enabled():  # a graph is being built: plain operations, axis by axis
            rows = _plain(x, wx, 3, mode)
            gt, gwy = _plain_backward(g, rows, wy, 2, mode, need[0] or need[2], need[1])
            gx = gwx = None
            if gt is not None:
                gx, gwx = _plain_backward(gt, x, wx, 3, mode, need[0], need[2])
            return gx, gwy, gwx, None
        gx, gwy, gwx = _sep_backward(g, x, wy, wx, xp, t, mode, need)
        return gx, gwy, gwx, None


# ----------------------------------------------------------------------------- public


def fused_separable(x: Tensor, wy: Tensor, wx: Tensor, mode: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with ``wx`` along the rows (dim -1), then with ``wy`` down the
    columns (dim -2); ``wy``, ``wx`` (ky,) / (kx,) or (C, ky) / (C, kx). Differentiable in all three.

    Both axes run in one compiled graph (:func:`_sep_loop`) over one buffer bordered in both
    axes: the row pass covers the bordered rows too, so the column pass reads it directly, with
    no second copy. Kernels of one tap, inputs with no elements, and calls that must not run
    compiled code take two :func:`fused_axis` passes.

    Returns:
        A tensor of shape ``(B, C, H, W)``.
    """
    fy, hy = _prepare(x, wy, 2, mode)
    fx, hx = _prepare(x, wx, 3, mode)
    if x.dim() != 4 or hy == 0 or not _compiled_ok(x, fx, hx):
        return fused_axis(fused_axis(x, wx, -1, mode), wy, -2, mode)
    if torch.is_grad_enabled() and (x.requires_grad or fy.requires_grad or fx.requires_grad):
        return _FusedSep.apply(x, fy, fx, mode)
    return _sep_forward(x, fy, fx, mode)[0]
