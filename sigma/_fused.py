"""The ``'fused'`` correlation engine: compiled per-axis loops over a reused bordered buffer.

A 'same' correlation along one axis of ``x`` (B, C, ...) with a kernel ``w`` (k,) or (C, k),
``k = 2h + 1``, is

    y[i] = sum_{j=0}^{k-1} w[j] * x_ext[i + j - h],

``x_ext`` being ``x`` extended by the boundary rule of ``mode`` (:mod:`sigma._padding`). The
eager shifted sums (:mod:`sigma._shift`) run it as ``k`` whole-tensor multiply-adds, ``k``
passes over memory. Here :func:`torch.compile` (inductor: C++/OpenMP loops on CPU, Triton
kernels on CUDA) *fuses* the ``k`` shifted products into one loop that reads each input
once and writes each output once. The taps are a tensor input of that loop, so a new σ
with the same kernel size runs the same compiled code.

**The bordered buffer.** The loop reads ``xp``, the input extended by ``h`` samples on both
sides of the axis. Padding inside the compiled loop costs masked loads (measured slower);
an eager ``F.pad`` costs two memory passes into fresh memory. Instead ``x`` is copied into
a buffer that is kept and reused (a small LRU per thread, keyed by shape, padding, dtype,
device, role and border kind), whose borders stay zero for ``'zeros'`` and are rewritten
from the mode's index map for the other modes: ``2h`` positions per line, written as one
(possibly reversed, or repeated) slice per side where the map reads a run of inputs (the
usual case; a gather where a pad is longer than the axis). A kept buffer is only ever
scratch input of a compiled loop, never saved for backward, so forwards and backwards may
interleave freely.

Separable 2D blurs run both axes in one compiled graph: :mod:`sigma._fused2d`.

**The backward pass** (:class:`_FusedAxis`) correlates the output gradient, zero-extended
(into another kept buffer), with the flipped kernel (the adjoint), then adds the border part
of the result back onto the input positions the borders were read from (the same slices,
or ``index_add_``). The tap gradient ``gw[j] = sum g[i] x_ext[i + j - h]`` reads the bordered
input, which the forward pass then writes into a new tensor (not a kept buffer) and saves:
the backward pass need not copy ``x`` again. Its ``k`` products are summed in the compiled
loop over the contiguous dim only (sums of at most 4096 terms: inductor's float32 sums of
more terms go through a cascade helper that runs several times slower), the rest eagerly.
When both gradients are needed, adjoint and tap sums run as one compiled loop: on cached
data no faster than two loops, but on (8, 3, 256, 256) images, which do not stay in the
cache, 5-10 % faster with the saved bordered input. Each gradient costs about one forward
loop, so forward + backward costs about three forwards. When a graph is being built (double
backward) the backward pass uses plain differentiable operations instead.

**Compile cost and cache.** One compiled callable per loop (forward, adjoint, taps, both),
kernel size, dtype, device type, kernel layout (shared or per channel), axis kind (last or
not) and shape mode (:func:`_compiled`). Each gets its own code object, so dynamo's
recompile limit (8 per code object) is never reached however many kernel sizes are used,
and no global dynamo setting is touched. The first shapes a loop sees get static code
(``dynamic=False``); any other shapes one more compile with symbolic sizes
(``dynamic=True``) that serves them all (:func:`_run`). Static code measured 8-15 % faster;
``dynamic=None`` recompiled once per dimension that changed (28 compiled graphs against 16
over a sweep of seven shapes), and ``dynamic=False`` alone once per shape, until dynamo's
limit sent the loops back to slow Python. Measured on a 2-core CPU with an empty inductor
cache: the first call of a process about 14 s (the availability probe and inductor's
start-up), then 1-2 s per new kernel size for a forward loop on small inputs, 2-8 s for a
separable blur's forward and 2-8 s for its backward on (8, 3, 256, 256) (σ = 1 to 8).

**When it does not run compiled.** Inside a user's own ``torch.compile`` (and under
``torch.func`` transforms or while exporting) it emits the plain differentiable expression
(boundary padding plus the sum of shifted slices times the taps), which the outer compile
fuses itself. Where ``torch.compile`` cannot work (no C++ compiler, no Triton:
:func:`available`) it runs that same expression eagerly and logs one warning.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import types
from collections import OrderedDict

import torch
from torch import Tensor

from ._autograd import traced
from ._padding import MODES, fold_kernel, index_map, pad_axis

log = logging.getLogger("sigma")

#: buffers kept per thread (least recently used dropped first)
MAX_BUFFERS = 8

#: environment variable that, set to anything but "" or "0", forces the eager fallback
DISABLE_ENV = "SIGMA_FUSED_DISABLE"


# ----------------------------------------------------------------------------- availability

_probed: dict[str, tuple[bool, str]] = {}  # device type -> (works, why not)
_forced: bool | None = None
_warned = False


def _probe(device_type: str) -> tuple[bool, str]:
    """Compile and run a tiny function on ``device_type``: (whether it worked, why not)."""

    def tiny(a: Tensor, b: Tensor) -> Tensor:
        return a.narrow(0, 0, 2) * b[0] + a.narrow(0, 1, 2) * b[1]

    try:
        a = torch.arange(3.0, device=device_type)
        b = torch.tensor([2.0, 3.0], device=device_type)
        got = torch.compile(_fresh(tiny, "probe"), dynamic=False, fullgraph=True)(a, b)
        if got.tolist() != [3.0, 8.0]:
            return False, f"the probe computed {got.tolist()} instead of [3.0, 8.0]"
    except Exception as err:  # any failure to compile means: not here
        return False, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return True, ""


def available(device: torch.device | str = "cpu") -> bool:
    """Whether the compiled loops run on ``device``'s type: a C++ compiler (CPU) or Triton (CUDA)
    that inductor can use. Probed once per device type, lazily, by compiling and running a tiny
    function (a few seconds the first time); ``SIGMA_FUSED_DISABLE=1`` in the environment (read
    at every call) or :func:`_set_available` override it."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return False
    if _forced is not None:
        return _forced
    kind = torch.device(device).type
    if kind not in _probed:
        _probed[kind] = _probe(kind)
    return _probed[kind][0]


def _set_available(value: bool | None) -> None:
    """Force :func:`available` to ``value`` (None: probe again, as normal), and re-arm the one
    fallback warning. For tests."""
    global _forced, _warned
    _forced, _warned = value, False


def _warn_fallback(device: torch.device) -> None:
    """Log, once per process, that the eager fallback runs instead of the compiled loops."""
    global _warned
    if _warned:
        return
    _warned = True
    what = "a C++ compiler" if device.type == "cpu" else "Triton"
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        why = f"{DISABLE_ENV} is set"
    elif _forced is not None:
        why = "disabled"
    else:
        why = _probed.get(device.type, (False, "unknown"))[1]
    log.warning(
        f"sigma: method='fused' needs {what} for torch.compile ({why}); using eager shifted sums instead"
    )


# ----------------------------------------------------------------------------- plain expression


def _tap(w: Tensor, j: int, ndim: int) -> Tensor:
    """Tap ``j`` of ``w`` (k,) or (C, k), shaped to broadcast against a (B, C, ...) tensor of ``ndim`` dims."""
    return w[j] if w.dim() == 1 else w[:, j].reshape((1, -1) + (1,) * (ndim - 2))


def _shifted_sum(xp: Tensor, w: Tensor, dim: int, n: int) -> Tensor:
    """``y[i] = sum_j w[j] xp[i + j]`` along ``dim`` for ``i < n``: ``xp`` (B, C, ...), ``w`` (k,) or (C, k)."""
    y = xp.narrow(dim, 0, n) * _tap(w, 0, xp.dim())
    for j in range(1, w.shape[-1]):
        y = torch.addcmul(y, xp.narrow(dim, j, n), _tap(w, j, xp.dim()))
    return y


def _plain(x: Tensor, w: Tensor, dim: int, mode: str) -> Tensor:
    """The correlation as plain differentiable operations: padding, then shifted sums.
    ``x`` (B, C, ...), ``w`` (k,) or (C, k) already folded; returns the shape of ``x``."""
    h = (w.shape[-1] - 1) // 2
    return _shifted_sum(pad_axis(x, h, h, mode, dim), w, dim, x.shape[dim])


def _plain_backward(g: Tensor, x: Tensor, w: Tensor, dim: int, mode: str, need_x: bool, need_w: bool):
    """Gradients of :func:`_plain` as differentiable operations (for double backward):
    ``gx`` like ``x`` and ``gw`` like ``w``, or None where not needed."""
    k, L = w.shape[-1], x.shape[dim]
    h = (k - 1) // 2
    gx = gw = None
    if need_x:
        if MODES[mode].index is None:
            gx = _shifted_sum(pad_axis(g, h, h, "zeros", dim), w.flip(-1), dim, L)
        else:  # the gradient of the extended signal, summed onto the positions it was read from
            gext = _shifted_sum(pad_axis(g, 2 * h, 2 * h, "zeros", dim), w.flip(-1), dim, L + 2 * h)
            gx = torch.zeros_like(x).index_add(dim, index_map(L, h, h, mode, x.device), gext)
    if need_w:
        xp = pad_axis(x, h, h, mode, dim)
        dims = [d for d in range(x.dim()) if not (w.dim() == 2 and d == 1)]
        gw = torch.stack([(g * xp.narrow(dim, j, L)).sum(dims) for j in range(k)], -1)
    return gx, gw


# ----------------------------------------------------------------------------- compiled loops
#
# They see every tensor as (B, R, L, S): the axis is dim 2, R the dims between batch and
# axis (channels first), S the dims after it (1 along the last axis). Taps are (k,), or
# (R, k) per row when the kernel is per channel.


def _row_tap(w: Tensor, j: int) -> Tensor:
    return w[j] if w.dim() == 1 else w[:, j].view(1, -1, 1, 1)


def _corr_loop(xp: Tensor, w: Tensor, dim: int = 2) -> Tensor:
    """``y[..., i, ...] = sum_j w[j] xp[..., i + j, ...]`` along ``dim`` (2 or 3): ``xp``
    (B, R, n + k - 1, S) -> (B, R, n, S) along dim 2."""
    k = w.shape[-1]
    n = xp.shape[dim] - k + 1
    y = xp.narrow(dim, 0, n) * _row_tap(w, 0)
    for j in range(1, k):
        y = y + xp.narrow(dim, j, n) * _row_tap(w, j)
    return y


def _adjoint_loop(gp: Tensor, w: Tensor, border: bool):
    """The gradient of the extended input from the zero-extended output gradient ``gp``
    (B, R, L + 2q, S), ``q = 2h`` if ``border`` else ``h``: the correlation with the flipped
    kernel. Returns its interior (B, R, L, S) and, if ``border``, its 2h border positions
    (B, R, 2h, S), left ones first."""
    k = w.shape[-1]
    h = (k - 1) // 2
    q = 2 * h if border else h
    L = gp.shape[2] - 2 * q
    wf = w.flip(-1)
    inner = _corr_loop(gp.narrow(2, q - h, L + 2 * h), wf)
    if not border:
        return (inner,)
    ends = torch.cat([_corr_loop(gp.narrow(2, 0, 3 * h), wf), _corr_loop(gp.narrow(2, h + L, 3 * h), wf)], 2)
    return inner, ends


#: inductor sums float32 reductions longer than this through a slower cascade helper
_SHORT_SUM = 4096


def _taps_loop(gp: Tensor, xp: Tensor, k: int) -> Tensor:
    """Partial tap gradients ``sum g[i] xp[i + j]``, ``g`` the interior of ``gp`` (B, R, L + 2q, S),
    ``xp`` (B, R, L + k - 1, S): summed over S, the contiguous dim, when ``1 < S <= 4096``, giving
    (B, R, L, 1, k); else over the axis, giving (B, R, 1, S, k)."""
    L = xp.shape[2] - k + 1
    return _tap_sums(gp.narrow(2, (gp.shape[2] - L) // 2, L), xp, k, 2)


def _tap_sums(g: Tensor, xp: Tensor, k: int, dim: int) -> Tensor:
    """``sum g[..., i, ...] xp[..., i + j, ...]`` (``i`` along ``dim``, 2 or 3) for each tap ``j``,
    ``g`` and ``xp`` 4D: summed over the last dim when ``1 < size <= 4096``, else over dim 2;
    the partial sums stacked along a new last dim of size ``k``."""
    n = g.shape[dim]
    d = 3 if 1 < g.shape[3] <= _SHORT_SUM else 2
    return torch.stack([(g * xp.narrow(dim, j, n)).sum(d, keepdim=True) for j in range(k)], -1)


def _fresh(fn, tag: str):
    """A copy of ``fn`` with a code object of its own: dynamo keeps its compiled variants per
    code object (at most 8), so each compiled callable gets its own."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


#: loop builders registered by other modules: kind -> ``(k, flag) -> plain function`` (the 2D
#: loops of :mod:`sigma._fused2d`)
LOOPS: dict = {}


def _make(kind: str, k, flag):
    """The plain loop behind one compiled callable (closures: their flags are constants)."""
    if kind in LOOPS:
        return LOOPS[kind](k, flag)
    if kind == "corr":

        def loop(xp, w):
            return _corr_loop(xp, w)

    elif kind == "adjoint":

        def loop(gp, w):
            return _adjoint_loop(gp, w, flag)

    elif kind == "both":

        def loop(gp, xp, w):
            return _adjoint_loop(gp, w, flag) + (_taps_loop(gp, xp, k),)

    else:  # 'taps'

        def loop(gp, xp):
            return _taps_loop(gp, xp, k)

    return loop


@functools.cache
def _compiled(kind: str, k, flag, key: tuple, dynamic: bool):
    """One compiled callable, with a code object of its own, per loop kind, kernel size, flag,
    ``key`` (dtype, device type, kernel per row, along the last axis) and shape mode."""
    dtype, device_type, per_row, last = key
    tag = "_".join(
        [
            kind,
            "k" + "x".join(map(str, k if isinstance(k, tuple) else (k,))),
            str(dtype).removeprefix("torch."),
        ]
        + [device_type, "".join("rs"[not r] for r in (per_row if isinstance(per_row, tuple) else (per_row,)))]
        + ["last" if last else "inner", "dynamic" if dynamic else "static"]
        + (
            [f"flag{''.join(str(int(f)) for f in flag)}"]
            if isinstance(flag, tuple)
            else ["border"]
            if flag
            else []
        )
    )
    return torch.compile(_fresh(_make(kind, k, flag), tag), dynamic=dynamic)


_first_shapes: dict[tuple, tuple] = {}


def _run(kind: str, k, flag, per_row, *args: Tensor):
    """Call the compiled loop ``kind`` on ``args`` (tensors (B, R, Lp, S), taps).

    The first input shapes seen for a loop get static code (``dynamic=False``, the fastest:
    measured 8-15 % faster than symbolic sizes); any other shapes one more compile with
    symbolic sizes (``dynamic=True``) that serves them all. (``dynamic=None`` recompiles once per
    dimension that changes, ``dynamic=False`` once per shape.)
    """
    first = args[0]
    key = (first.dtype, first.device.type, per_row, first.shape[3] == 1)
    shapes = tuple(a.shape for a in args)
    static = _first_shapes.setdefault((kind, k, flag, key), shapes) == shapes
    return _compiled(kind, k, flag, key, not static)(*args)


# ----------------------------------------------------------------------------- buffers

_local = threading.local()


def _buffer(shape: tuple[int, ...], pad: int, dtype, device, role: str, zero_border: bool) -> Tensor:
    """A kept buffer (B, R, L + 2 pad, S), zero-filled when first made. Per thread (concurrent
    calls must not share one); reused while its key comes back."""
    cache = getattr(_local, "buffers", None)
    if cache is None:
        cache = _local.buffers = OrderedDict()
    key = (shape, pad, dtype, device, role, zero_border)
    if device.type == "cuda":  # kernels on another stream may still be reading a buffer
        key += (torch.cuda.current_stream(device).cuda_stream,)
    buf = cache.pop(key, None)
    if buf is None:
        with torch.inference_mode(False):  # a normal tensor, writable in and out of inference mode
            buf = torch.zeros(shape, dtype=dtype, device=device)
    cache[key] = buf
    while len(cache) > MAX_BUFFERS:
        cache.popitem(last=False)
    return buf


def _clear_buffers() -> None:
    """Drop this thread's kept buffers (frees their memory)."""
    _local.buffers = OrderedDict()


@functools.lru_cache(maxsize=256)
def _border_index(L: int, h: int, mode: str, device: torch.device) -> Tensor:
    """Input positions read by the ``2h`` border positions of ``mode`` (left ones first), (2h,)."""
    idx = index_map(L, h, h, mode, device)
    return torch.cat([idx[:h], idx[h + L :]])


@functools.lru_cache(maxsize=256)
def _border_runs(L: int, h: int, mode: str) -> tuple[tuple[int, int, int] | None, ...]:
    """For the left and the right ``h`` border positions of ``mode``: ``(first, step, side)`` when
    the input positions they read form a run of step 1, -1 or 0 (a slice, a reversed slice or
    one repeated sample: the usual case), else None (pads longer than the axis)."""
    src = index_map(L, h, h, mode).tolist()
    runs = []
    for side, part in enumerate((src[:h], src[h + L :])):
        step = part[1] - part[0] if h > 1 else 1
        ok = step in (-1, 0, 1) and all(b - a == step for a, b in zip(part[:-1], part[1:], strict=True))
        runs.append((part[0], step, side) if ok else None)
    return tuple(runs)


def _run_view(t: Tensor, first: int, step: int, h: int) -> Tensor:
    """The ``h`` positions ``first, first + step, ...`` of ``t`` along dim 2 (step 1, -1 or 0)."""
    if step == 1:
        return t.narrow(2, first, h)
    if step == -1:
        return t.narrow(2, first - h + 1, h).flip(2)
    return t.narrow(2, first, 1).expand(-1, -1, h, -1)


def _lines(shape: torch.Size, dim: int) -> tuple[int, int, int, int]:
    """(B, R, L, S) of a (B, C, ...) shape seen along ``dim`` (non-negative, >= 1)."""
    return shape[0], math.prod(shape[1:dim]), shape[dim], math.prod(shape[dim + 1 :])


def _as_nd(buf: Tensor, shape: torch.Size, dim: int) -> Tensor:
    """The (B, R, Lp, S) buffer viewed with the dims of ``shape`` (its axis ``dim`` Lp long)."""
    return buf.view(*shape[:dim], buf.shape[2], *shape[dim + 1 :])


def _fill_border(buf: Tensor, L: int, pad: int, mode: str) -> None:
    """Write the ``pad`` positions on both sides of the interior of ``buf`` (B, R, L + 2 pad, S)
    from the interior, by the index map of ``mode`` (nothing to do for ``'zeros'``)."""
    if MODES[mode].index is None or pad == 0:
        return
    inner = buf.narrow(2, pad, L)
    for dst, run in zip((0, pad + L), _border_runs(L, pad, mode), strict=True):
        if run is None:  # a pad longer than the axis: gather by the index map
            idx = _border_index(L, pad, mode, buf.device).narrow(0, dst and pad, pad)
            buf.narrow(2, dst, pad).copy_(inner.index_select(2, idx))
        else:
            buf.narrow(2, dst, pad).copy_(_run_view(inner, run[0], run[1], pad))


def _add_border(gx: Tensor, ends: tuple[Tensor, Tensor], L: int, h: int, mode: str) -> None:
    """Add the gradients ``ends`` (B, R, h, S), left and right, of the border positions onto the
    positions of ``gx`` (B, R, L, S) they were read from: the adjoint of :func:`_fill_border`."""
    for side, run in enumerate(_border_runs(L, h, mode)):
        part = ends[side]
        if run is None:
            gx.index_add_(2, _border_index(L, h, mode, gx.device).narrow(0, side * h, h), part)
        elif run[1] == 0:
            gx.narrow(2, run[0], 1).add_(part.sum(2, keepdim=True))
        elif run[1] == 1:
            gx.narrow(2, run[0], h).add_(part)
        else:
            gx.narrow(2, run[0] - h + 1, h).add_(part.flip(2))


def _bordered(t: Tensor, dim: int, pad: int, mode: str, alloc=None, role: str = "x") -> Tensor:
    """``t`` (B, C, ...) copied into a buffer (B, R, L + 2 pad, S), extended by ``mode``: a kept
    one (:func:`_buffer`, the default ``alloc``) or one from ``alloc``."""
    B, R, L, S = _lines(t.shape, dim)
    zeros = MODES[mode].index is None
    buf = (alloc or _buffer)((B, R, L + 2 * pad, S), pad, t.dtype, t.device, role, zeros)
    _as_nd(buf, t.shape, dim).narrow(dim, pad, L).copy_(t)
    _fill_border(buf, L, pad, mode)
    return buf


def _rows(w: Tensor, shape: torch.Size, dim: int) -> Tensor:
    """The taps per (B, R, L, S) row: ``w`` (k,) as it is, (C, k) repeated for the dims between
    channels and axis; detached (the compiled code needs no autograd, nor its guards)."""
    w = w.detach().contiguous()
    if w.dim() == 1:
        return w
    M = math.prod(shape[2:dim])
    return w if M == 1 else w.repeat_interleave(M, 0)


def _forward(x: Tensor, w: Tensor, dim: int, mode: str, xp: Tensor | None = None) -> Tensor:
    """The compiled correlation, no autograd: ``x`` (B, C, ...), ``w`` (k,) or (C, k) folded,
    ``dim`` >= 2; reads ``x`` through ``xp`` (B, R, L + k - 1, S) if given (bordered already),
    else through a kept buffer. Returns a new tensor shaped like ``x``."""
    k = w.shape[-1]
    wr = _rows(w, x.shape, dim)
    with torch.no_grad():
        if xp is None:
            xp = _bordered(x, dim, (k - 1) // 2, mode, _buffer)
        return _run("corr", k, False, wr.dim() == 2, xp, wr).view(x.shape)


def _backward(
    g: Tensor, x: Tensor, w: Tensor, xp: Tensor | None, dim: int, mode: str, need: tuple[bool, bool]
):
    """The compiled gradients of :func:`_forward`, no graph: ``gx`` like ``x`` (if ``need[0]``) and
    ``gw`` like ``w`` (if ``need[1]``; ``xp``, the bordered ``x``, is then given), else None.

    The adjoint and the tap gradient run in one compiled loop when both are needed."""
    k = w.shape[-1]
    h = (k - 1) // 2
    L = x.shape[dim]
    zeros = MODES[mode].index is None
    wr = _rows(w, x.shape, dim)
    rows = wr.dim() == 2
    with torch.no_grad():
        gp = _bordered(g, dim, h if zeros or not need[0] else 2 * h, "zeros", _buffer, "g")
        if need[0] and need[1]:
            *out, partial = _run("both", k, not zeros, rows, gp, xp, wr)
        elif need[0]:
            out = _run("adjoint", k, not zeros, rows, gp, wr)
        else:
            partial = _run("taps", k, False, rows, gp, xp)
        gx = gw = None
        if need[0]:
            gx = out[0]
            if not zeros:
                _add_border(gx, (out[1].narrow(2, 0, h), out[1].narrow(2, h, h)), L, h, mode)
            gx = gx.view(x.shape)
        if need[1]:
            gw = _tap_total(partial, w)
    return gx, gw


def _tap_total(partial: Tensor, w: Tensor) -> Tensor:
    """Partial tap sums (B, R, ., ., k) summed over everything but the taps (and the channels):
    ``w``'s shape, (k,) or (C, k) (the R rows of a per-channel kernel being C groups of lines)."""
    k = w.shape[-1]
    return (
        partial.reshape(-1, k).sum(0)
        if w.dim() == 1
        else partial.sum((0, 2, 3)).view(w.shape[0], -1, k).sum(1)
    )


def _fresh_buffer(shape: tuple[int, ...], pad, dtype, device, role: str, zero_border: bool) -> Tensor:
    """A new buffer (not kept), bordered by ``pad`` along dim 2, or by ``pad = (py, px)`` along
    dims 2 and 3; its borders zeroed if ``zero_border``."""
    buf = torch.empty(shape, dtype=dtype, device=device)
    if zero_border:
        for dim, p in enumerate(pad if isinstance(pad, tuple) else (pad,), 2):
            if p:
                buf.narrow(dim, 0, p).zero_()
                buf.narrow(dim, shape[dim] - p, p).zero_()
    return buf


class _FusedAxis(torch.autograd.Function):
    """:func:`_forward` with its gradients in ``x`` (B, C, ...) and ``w`` (k,) or (C, k).

    When ``w`` needs a gradient, the forward pass borders ``x`` into a new tensor (not a kept
    buffer) and saves it with ``x`` and ``w``: the tap gradient reads it, and the backward pass
    need not copy ``x`` again (measured 5-10 % faster forward + backward on images that do not
    fit in the cache). The backward pass runs the compiled loops, or, when a graph is being built
    (double backward), :func:`_plain_backward`.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, dim: int, mode: str) -> Tensor:
        ctx.dim, ctx.mode = dim, mode
        xp = None
        if ctx.needs_input_grad[1]:
            xp = _bordered(x, dim, (w.shape[-1] - 1) // 2, mode, _fresh_buffer)
        ctx.save_for_backward(x, w, xp)
        return _forward(x, w, dim, mode, xp)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, w, xp = ctx.saved_tensors
        need = tuple(ctx.needs_input_grad[:2])
        if torch.is_grad_enabled():
            gx, gw = _plain_backward(g, x, w, ctx.dim, ctx.mode, *need)
        else:
            gx, gw = _backward(g, x, w, xp, ctx.dim, ctx.mode, need)
        return gx, gw, None, None


# ----------------------------------------------------------------------------- public


def _prepare(x: Tensor, w: Tensor, dim: int, mode: str) -> tuple[Tensor, int]:
    """``w`` in ``x``'s dtype, folded for the length of axis ``dim`` (non-negative) of ``x``."""
    return fold_kernel(w.to(x.dtype), (w.shape[-1] - 1) // 2, x.shape[dim], mode)


def _compiled_ok(x: Tensor, w: Tensor, h: int) -> bool:
    """Whether this call runs the compiled loops, warning once if only because they cannot run
    here. Else :func:`_plain`, also whenever :func:`sigma._autograd.traced` (a user's
    ``torch.compile`` fuses the expression itself; ``torch.func``, forward-mode AD, export and
    fake tensors need plain operations)."""
    if h == 0 or x.numel() == 0 or traced(x, w):
        return False
    if not available(x.device):
        _warn_fallback(x.device)
        return False
    return True


def fused_axis(x: Tensor, w: Tensor, dim: int, mode: str) -> Tensor:
    """Correlate ``x`` (B, C, ...) with ``w`` (k,) or (C, k), k odd, along spatial axis ``dim``.

    ``y[i] = sum_j w[j] x_ext[i + j - h]`` with ``x_ext`` extended by ``mode`` (a name of
    :data:`sigma._padding.MODES`); kernels wider than the axis are folded first. Differentiable
    in ``x`` and ``w`` (double backward too).

    Returns:
        A tensor shaped like ``x``.
    """
    dim = dim % x.dim()
    w, h = _prepare(x, w, dim, mode)
    if not _compiled_ok(x, w, h):
        return _plain(x, w, dim, mode)
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return _FusedAxis.apply(x, w, dim, mode)
    return _forward(x, w, dim, mode)
