"""Correlation engines behind every blur: one ``method=`` switch, several exact algorithms.

``correlate_axis`` correlates a ``(B, C, ...)`` tensor with a 1D kernel along one
spatial axis; ``correlate2d`` with a dense 2D kernel. Kernels are ``(k,)`` (shared by
all channels) or ``(C, k)`` (one per channel); offsets run from ``-h`` to ``h``:

    y[i] = sum_j w[j] * x_padded[i + j]

Methods:

* ``'direct'``: shifted sums, one whole-tensor multiply-add per tap (a depthwise
  convolution for dense 2D kernels); cheapest for short kernels, cost grows with
  the kernel size.
* ``'matmul'``: banded matrix products (:mod:`sigma._band`), one product per block
  of outputs; reads the data once per pass, so its cost grows slowly with σ until
  a block's window covers the whole axis.
* ``'fft'``: the same linear correlation through real FFTs, sized so that nothing
  wraps around (or, for periodic modes, folded onto the period); cost independent
  of the kernel size once the padded length is fixed.
* ``'auto'``: picks one from the kernel and input sizes, per axis.

All are differentiable in the input and the kernel (and therefore in σ) by autograd.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _export
from ._band import BLOCK, band_correlate, band_correlate_unfolded, band_tap_grads
from ._dense import DENSE_MAX_LENGTH, axis_matrix, dense_axis, dense_separable
from ._padding import MODES, fold_kernel, folded_radius, index_map, pad_axis, period

# method='auto' is a deterministic rule of the shapes, the kernel size, the device and the
# grad case (whether a backward pass will follow), never a timing at run time. Its
# constants were measured on CPU with benchmarks/bench_blur.py (the book's performance
# chapter shows the races they come from):
#
# * an axis of at most DENSE_MAX_LENGTH samples: one whole-axis matrix ('matmul'), a few
#   operations in all, where the shifted sums' per-tap operations and the FFT's transforms
#   cost more than the arithmetic;
# * kernels up to AUTO_DIRECT_MAX_TAPS_1D taps: shifted sums ('direct');
# * longer kernels: banded products ('matmul') while a block reads at most
#   AUTO_MATMUL_MAX_WINDOW inputs (AUTO_MATMUL_MAX_WINDOW_GRAD when a backward pass will
#   follow: the banded kernel gradient costs a product of a block of outputs against its
#   whole window; measured equal to the forward's on CPU, kept apart for other devices);
#   the FFT beyond;
# * dense 2D kernels (full covariance): 2D shifted sums up to AUTO_DIRECT_MAX_TAPS_2D taps
#   (AUTO_DIRECT_MAX_TAPS_2D_GRAD with a backward pass), the 2D FFT beyond.
#
# Between the shifted sums and the whole-axis matrices (axes up to DENSE_AUTO_MAX_LENGTH on
# CPU) 'auto' decides by a cost model in microseconds: shifted sums cost AUTO_OP_US per
# operation plus AUTO_PASS_NS per element and tap; the matrices AUTO_DENSE_FIXED_US plus their
# multiply-adds at AUTO_MATMUL_GFLOPS; a backward pass multiplies each by its measured factor.
AUTO_OP_US = 20.0
AUTO_PASS_NS = 0.064
AUTO_DENSE_FIXED_US = 120.0
AUTO_MATMUL_GFLOPS = 120.0
AUTO_GRAD_FACTOR_DIRECT = 4.3
AUTO_GRAD_FACTOR_DENSE = 3.4
DENSE_AUTO_MAX_LENGTH = 128
AUTO_DIRECT_MAX_TAPS_1D = 9
AUTO_MATMUL_MAX_WINDOW = 256
AUTO_MATMUL_MAX_WINDOW_GRAD = 256
AUTO_DIRECT_MAX_TAPS_2D = 81
AUTO_DIRECT_MAX_TAPS_2D_GRAD = 25


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


# ----------------------------------------------------------------------------- autograd Functions


def eager_twin(cls: type) -> type:
    """An old-style copy of the new-style autograd Function ``cls``, for the eager path.

    ``torch.func`` (vmap, grad) needs Functions whose ``forward`` takes no ``ctx``, with
    ``setup_context`` and a vmap rule; but their ``apply`` binds its arguments with
    :func:`inspect.signature` on every call, tens of microseconds per correlation. The twin
    runs the same ``forward``, ``setup_context`` and ``backward`` without that, and
    :func:`apply` picks it unless a transform or ``torch.compile`` is active.
    """

    def forward(ctx, *args):
        out = cls.forward(*args)
        cls.setup_context(ctx, args, out)
        return out

    return type(
        cls.__name__ + "Eager",
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(cls.backward), "__doc__": cls.__doc__},
    )


def apply(cls: type, *args):
    """``cls.apply(*args)``, through its eager twin outside ``torch.func`` and ``torch.compile``;
    while a model is exported, ``cls``'s forward as plain operations (no opaque autograd node
    in the graph; autograd differentiates them if asked)."""
    if _export.exporting():
        return cls.forward(*args)
    return (cls if traced(*(a for a in args if isinstance(a, Tensor))) else cls.eager).apply(*args)


# ----------------------------------------------------------------------------- direct


def _tap(w: Tensor, j: int, ref: Tensor) -> Tensor:
    """Tap ``j`` of a ``(k,)`` or ``(C, k)`` kernel, shaped to broadcast against ``ref`` (B, C, ...)."""
    t = w[..., j]
    return t if w.dim() == 1 else t.reshape((1, -1) + (1,) * (ref.dim() - 2))


def _overlap(o: int, L: int) -> tuple[int, int, int]:
    """For offset ``o``: (first output index, first input index, length) of ``y[i] += w * x[i + o]``."""
    return max(0, -o), max(0, o), L - abs(o)


class _ShiftCorr(torch.autograd.Function):
    """'Same' correlation with zero boundary as a sum of shifted copies along ``dim``.

    ``y[i] = sum_{o=-h}^{h} w[o + h] * x[i + o]``, reading zero outside ``x``; ``w`` is
    ``(k,)`` or ``(C, k)`` with ``k = 2h + 1 <= 2L - 1``. The forward pass accumulates
    the ``k`` shifted, overlapping slices in place: no padded copy and no temporaries.
    The backward pass is this same correlation with the flipped kernel (its adjoint)
    and one dot product per tap for the kernel. When a graph is being built (double
    backward) it uses differentiable operations only.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, w: Tensor, dim: int) -> Tensor:
        k = w.shape[-1]
        h, L = (k - 1) // 2, x.shape[dim]
        y = torch.mul(x, _tap(w, h, x))
        for j in range(k):
            if j != h:
                a, b, n = _overlap(j - h, L)
                y.narrow(dim, a, n).addcmul_(x.narrow(dim, b, n), _tap(w, j, x))
        return y

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, w, dim = inputs
        ctx.save_for_backward(x, w)
        ctx.dim = dim

    @staticmethod
    def backward(ctx, g: Tensor):
        x, w = ctx.saved_tensors
        dim, k = ctx.dim, w.shape[-1]
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = apply(_ShiftCorr, g, w.flip(-1), dim)
        if ctx.needs_input_grad[1]:
            if torch.is_grad_enabled() or traced():  # double backward, compile: differentiable form
                gw = _tap_grads_graph(g, x, w, dim)
            else:
                gw = tap_grads(g, x, k, dim, w.dim() == 2)
        return gx, gw, None


def tap_grads(g: Tensor, x: Tensor, k: int, dim: int, per_channel: bool) -> Tensor:
    """Kernel gradient of the zero-boundary 'same' correlation along ``dim``, no graph:
    ``gw[..., j] = sum g[i] x[i + j - h]``, ``(k,)`` or ``(C, k)`` if ``per_channel``.

    The cheapest of three exact forms: one dot product per tap of the flattened tensors
    (a shared kernel, contiguous tensors, and along the last axis short kernels only),
    banded products along the last axis, or per-tap products into one reused buffer.
    """
    h, L = (k - 1) // 2, x.shape[dim]
    if not per_channel and g.is_contiguous() and x.is_contiguous() and _flat_taps_pay(k, dim, x):
        return _tap_grads_flat(g, x, k, dim)
    if dim % x.dim() == x.dim() - 1:
        # along the last axis, long kernels: one banded product per block of
        # outputs costs less than k passes over the data
        return band_tap_grads(g, x, k, dim, per_channel)
    dims = [d for d in range(g.dim()) if not (per_channel and d == 1)]
    buf = torch.empty_like(g)
    taps = []
    for j in range(k):
        a, b, n = _overlap(j - h, L)
        prod = torch.mul(g.narrow(dim, a, n), x.narrow(dim, b, n), out=buf.narrow(dim, 0, n))
        taps.append(prod.sum(dims))
    return torch.stack(taps, -1)


class _BandCorr(torch.autograd.Function):
    """The same correlation as :class:`_ShiftCorr` through banded matrix products.

    See :mod:`sigma._band`. The backward pass is the correlation with the flipped
    kernel and one more product for the kernel; when a graph is being built (double
    backward) it uses differentiable operations only.
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
                gw = _tap_grads_graph(g, x, w, dim)
            else:
                gw = band_tap_grads(g, x, w.shape[-1], dim, w.dim() == 2)
        return gx, gw, None


_ShiftCorr.eager = eager_twin(_ShiftCorr)
_BandCorr.eager = eager_twin(_BandCorr)


def _tap_grads_graph(g: Tensor, x: Tensor, w: Tensor, dim: int) -> Tensor:
    """Kernel gradient ``gw[..., j] = sum g[i] x[i + j - h]`` with differentiable operations."""
    k, L = w.shape[-1], x.shape[dim]
    dims = [d for d in range(g.dim()) if not (w.dim() == 2 and d == 1)]
    taps = []
    for j in range(k):
        a, b, n = _overlap(j - (k - 1) // 2, L)
        taps.append((g.narrow(dim, a, n) * x.narrow(dim, b, n)).sum(dims))
    return torch.stack(taps, -1)


#: along the last axis, the kernel gradient takes one dot product per tap up to this many
#: taps and the banded products beyond: a dot product costs about one pass over the data,
#: a banded tap-gradient about ten, whatever the kernel size (measured on CPU, float32 and
#: float64, (8, 3, 256, 256))
FLAT_TAPS_MAX_LAST_AXIS = 9


def _flat_taps_pay(k: int, dim: int, x: Tensor) -> bool:
    """Whether :func:`_tap_grads_flat` beats :func:`band_tap_grads` for ``k`` taps along ``dim``."""
    return dim % x.dim() != x.dim() - 1 or k <= FLAT_TAPS_MAX_LAST_AXIS


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``torch.dot(a, b)`` of two flat views, through a matrix-vector product in float32
    when either view starts off a 64-byte boundary: MKL's float32 dot product runs about
    five times slower on such views, its matrix-vector product does not (and in float64
    the dot product is the faster of the two either way)."""
    if a.dtype == torch.float32 and a.device.type == "cpu" and (a.data_ptr() % 64 or b.data_ptr() % 64):
        return torch.mv(a.view(1, -1), b).view(())
    return torch.dot(a, b)


def _tap_grads_flat(g: Tensor, x: Tensor, k: int, dim: int) -> Tensor:
    """``gw[j] = sum_i g[i] * x[i + j - h]`` along ``dim`` (zero outside), for contiguous tensors.

    Each tap is one dot product of the flattened tensors shifted by ``o`` steps along
    ``dim``. That shift also pairs the last ``|o|`` positions of each run along ``dim``
    with the first ones of the next run; those pairs are subtracted, all offsets at
    once, from two small ``(h, h)`` products of the run ends. No full-size temporary.
    """
    h, L, N = (k - 1) // 2, x.shape[dim], x.numel()
    s = math.prod(x.shape[dim:]) // L if L else 1  # elements per step along dim
    gf, xf = g.reshape(-1), x.reshape(-1)
    taps = [
        _dot(gf[max(0, -o) * s : N - max(0, o) * s], xf[max(0, o) * s : N - max(0, -o) * s])
        for o in range(-h, h + 1)
    ]
    gw = torch.stack(taps)
    gv, xv = g.view(-1, L, s), x.view(-1, L, s)
    if gv.shape[0] > 1 and h > 0:
        # ends[a, b] = sum g[q, L - h + a] x[q + 1, b]; starts[a, b] = sum g[q + 1, a] x[q, L - h + b]
        ends = torch.einsum("qas,qbs->ab", gv[:-1, L - h :], xv[1:, :h])
        starts = torch.einsum("qas,qbs->ab", gv[1:, :h], xv[:-1, L - h :])
        fix = [torch.diagonal(starts, h - p).sum() for p in range(h, 0, -1)]  # o = -h .. -1
        fix += [gw.new_zeros(())]
        fix += [torch.diagonal(ends, -(h - o)).sum() for o in range(1, h + 1)]  # o = 1 .. h
        gw = gw - torch.stack(fix)
    return gw


def _spatial_axis(x: Tensor, w: Tensor, h: int, dim: int, mode: str, corr) -> Tensor:
    """Spatial correlation along ``dim`` with ``corr`` (:class:`_ShiftCorr` or :class:`_BandCorr`;
    None: :func:`band_correlate_unfolded`, the banded products for tracing)."""
    L = x.shape[dim]
    # the kernel follows the data's dtype: under autocast a blur inside a model receives the
    # half-precision output of an earlier layer while its kernel comes from float32 parameters
    w, h = fold_kernel(w.to(x.dtype), h, L, mode)

    def run(x):
        if _ops.use_ops():  # compiling: the eager engines as opaque operators
            return _ops.correlate_axis(x, w, dim, "direct" if corr is _ShiftCorr else "matmul")
        return band_correlate_unfolded(x, w, dim) if corr is None else apply(corr, x, w, dim)

    if MODES[mode].index is None:  # zeros: the engines read zeros outside already
        return run(x)
    return run(pad_axis(x, h, h, mode, dim)).narrow(dim, h, L)


def _band_2d(x: Tensor, w: Tensor, hy: int, hx: int, mode: str) -> Tensor:
    """Dense 2D kernel by banded products: one product along the rows per kernel row."""
    H, W = x.shape[-2:]
    w, hy = fold_kernel(w, hy, H, mode, dim=-2)
    w, hx = fold_kernel(w, hx, W, mode, dim=-1)
    xp = pad_axis(x, hy, hy, mode, -2)
    corr = None if traced(x, w) else _BandCorr
    y = None
    for r in range(2 * hy + 1):
        t = _spatial_axis(xp.narrow(-2, r, H), w[..., r, :], hx, -1, mode, corr)
        y = t if y is None else y + t
    return y


class _ShiftCorr2d(torch.autograd.Function):
    """'Same' correlation of ``x`` (B, C, H, W) with a dense ``w`` (ky, kx) or (C, ky, kx), zero
    boundary, as a sum of shifted copies: one in-place multiply-add per tap, no padded copy.

    ``y[i, j] = sum_{a, b} w[a, b] x[i + a - hy, j + b - hx]``. The backward pass is the
    same correlation with the flipped kernel, and one product-and-sum per tap (into a
    reused buffer) for the kernel; with a graph being built (double backward) it uses
    differentiable operations only. On CPU this is several times faster than a depthwise
    ``conv2d`` for the small kernels it is used for, in the forward and in the weight gradient.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, w: Tensor) -> Tensor:
        ky, kx = w.shape[-2:]
        hy, hx = (ky - 1) // 2, (kx - 1) // 2
        H, W = x.shape[-2:]
        y = torch.mul(x, _tap2(w, hy, hx, x))
        for a in range(ky):
            ra, rb, rn = _overlap(a - hy, H)
            for b in range(kx):
                if (a, b) != (hy, hx) and rn > 0:
                    ca, cb, cn = _overlap(b - hx, W)
                    if cn > 0:
                        y[..., ra : ra + rn, ca : ca + cn].addcmul_(
                            x[..., rb : rb + rn, cb : cb + cn], _tap2(w, a, b, x)
                        )
        return y

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, w = inputs
        ctx.save_for_backward(x, w)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, w = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = apply(_ShiftCorr2d, g, w.flip(-1, -2))
        if ctx.needs_input_grad[1]:
            graph = torch.is_grad_enabled() or traced()
            gw = tap_grads_2d(g, x, w.shape[-2], w.shape[-1], w.dim() == 3, graph)
        return gx, gw


def tap_grads_2d(g: Tensor, x: Tensor, ky: int, kx: int, per_channel: bool, graph: bool = False) -> Tensor:
    """Kernel gradient of :class:`_ShiftCorr2d`: ``(ky, kx)``, or ``(C, ky, kx)`` if ``per_channel``;
    one product-and-sum per tap, into a reused buffer unless ``graph`` (differentiable form)."""
    hy, hx = (ky - 1) // 2, (kx - 1) // 2
    H, W = x.shape[-2:]
    dims = [d for d in range(g.dim()) if not (per_channel and d == 1)]
    buf = None if graph else torch.empty_like(g)
    taps = []
    for a in range(ky):
        ra, rb, rn = _overlap(a - hy, H)
        for b in range(kx):
            ca, cb, cn = _overlap(b - hx, W)
            if rn <= 0 or cn <= 0:
                taps.append(g.new_zeros((x.shape[1],) if per_channel else ()))
                continue
            gs = g[..., ra : ra + rn, ca : ca + cn]
            xs = x[..., rb : rb + rn, cb : cb + cn]
            prod = gs * xs if graph else torch.mul(gs, xs, out=buf[..., :rn, :cn])
            taps.append(prod.sum(dims))
    return torch.stack(taps, -1).unflatten(-1, (ky, kx))


_ShiftCorr2d.eager = eager_twin(_ShiftCorr2d)


def _tap2(w: Tensor, a: int, b: int, ref: Tensor) -> Tensor:
    """Tap ``(a, b)`` of a ``(ky, kx)`` or ``(C, ky, kx)`` kernel, shaped to broadcast against ``ref``."""
    t = w[..., a, b]
    return t if w.dim() == 2 else t.reshape((1, -1) + (1,) * (ref.dim() - 2))


def _direct_2d(x: Tensor, w: Tensor, hy: int, hx: int, mode: str) -> Tensor:
    H, W = x.shape[-2:]
    w, hy = fold_kernel(w.to(x.dtype), hy, H, mode, dim=-2)
    w, hx = fold_kernel(w, hx, W, mode, dim=-1)
    if x.device.type == "cpu":  # shifted sums; a depthwise conv2d is several times slower on CPU

        def run(x):
            return _ops.correlate_2d(x, w) if _ops.use_ops() else apply(_ShiftCorr2d, x, w)

        if MODES[mode].index is None:
            return run(x)
        xp = pad_axis(pad_axis(x, hy, hy, mode, -2), hx, hx, mode, -1)
        return run(xp)[..., hy : hy + H, hx : hx + W]
    xp = pad_axis(pad_axis(x, hy, hy, mode, -2), hx, hx, mode, -1)
    C = x.shape[1]
    weight = w.expand(C, *w.shape[-2:]) if w.dim() == 2 else w
    return F.conv2d(xp, weight.unsqueeze(1), groups=C)


# ----------------------------------------------------------------------------- fft


class _AxisPlan:
    """How to embed one axis in a circular correlation of size ``n`` with no wrap-around.

    ``extend(x)`` builds the extended signal; kernel tap ``j`` (``-h <= j <= h``) is
    placed at ``(j + offset) mod n``, summing taps that coincide (exact for the
    periodic modes), so the result is the first ``length`` samples of the circular
    correlation.
    """

    def __init__(self, length: int, h: int, mode: str):
        self.length, self.mode, self.h_in = length, mode, h
        fold = MODES[mode].fold
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
        if MODES[self.mode].fold == "periodic" and self.n > self.length:
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


def _fft_axis(x: Tensor, w: Tensor, h: int, dim: int, mode: str) -> Tensor:
    plan = _AxisPlan(x.shape[dim], h, mode)
    kc = plan.circular_kernel(w, -1)
    return apply(_FFTCorr, plan.extend(x, dim), kc, (dim % x.dim(),), (plan.length,))[0]


def _fft_2d(x: Tensor, w: Tensor, hy: int, hx: int, mode: str) -> Tensor:
    H, W = x.shape[-2:]
    py, px = _AxisPlan(H, hy, mode), _AxisPlan(W, hx, mode)
    kc = px.circular_kernel(py.circular_kernel(w, -2), -1)
    e = px.extend(py.extend(x, -2), -1)
    return apply(_FFTCorr, e, kc, (x.dim() - 2, x.dim() - 1), (H, W))[0]


# ----------------------------------------------------------------------------- dispatch


def _dense_axis(x: Tensor, w: Tensor, dim: int, mode: str) -> Tensor:
    """:func:`sigma._dense.dense_axis`; while ``torch.compile`` traces, its matrix product as an
    opaque operator (inductor 2.13 fails on the product's 4D view with symbolic sizes when a
    convolution reads it: "cannot determine truth value of Relational")."""
    if _ops.use_ops():
        return _ops.axis_matrix_product(x, axis_matrix(w.to(x.dtype), x.shape[dim], mode), dim)
    return dense_axis(x, w, dim, mode)


def _dense_separable(x: Tensor, wy: Tensor, wx: Tensor, mode: str) -> Tensor:
    """:func:`sigma._dense.dense_separable`; while compiling, its products as one opaque operator."""
    if _ops.use_ops():
        ay = axis_matrix(wy.to(x.dtype), x.shape[-2], mode)
        ax = ay if wx is wy and x.shape[-1] == x.shape[-2] else axis_matrix(wx.to(x.dtype), x.shape[-1], mode)
        return _ops.matrices_2d(x, ay, ax)
    return dense_separable(x, wy, wx, mode)


# pocketfft (CPU) has no half-precision transforms, and cuFFT only power-of-two ones
NO_FFT_DTYPES = (torch.float16, torch.bfloat16)


def traced(*tensors: Tensor) -> bool:
    """Whether ``torch.compile`` is tracing or a ``torch.func`` transform (vmap, grad) is active.

    The banded products and the analytic backward passes write into preallocated
    outputs (``out=`` and in-place slices), which vmap cannot batch and dynamo cannot
    trace; then ``'matmul'`` multiplies unfolded windows instead
    (:func:`sigma._band.band_correlate_unfolded`, the same result to rounding) and the
    backward passes use their plain differentiable forms.
    """
    if torch.compiler.is_compiling() or torch._C._functorch.peek_interpreter_stack() is not None:
        return True
    if _export.exporting():  # torch.jit.trace records plain operations only
        return True
    is_batched = torch._C._functorch.is_batchedtensor
    return any(is_batched(t) for t in tensors)


def _no_fft(x: Tensor, method: str, auto: bool) -> str:
    """``method``, unless it is the FFT and ``x``'s dtype has none: then the banded products
    under ``'auto'``, and a ``TypeError`` when the FFT was asked for."""
    if method != "fft" or x.dtype not in NO_FFT_DTYPES:
        return method
    if auto:
        return "matmul"
    raise TypeError(
        f"method='fft' does not support x of dtype {x.dtype}; use method='matmul' or 'direct', "
        "or convert x to float32"
    )


def will_backward(x: Tensor, w: Tensor) -> bool:
    """The grad case ``'auto'`` chooses for: whether autograd records this call (so a
    backward pass through it may follow)."""
    return torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)


def _dense_pays(numel: int, lengths: tuple[int, ...], taps: tuple[int, ...], grad: bool, device) -> bool:
    """Whether whole-axis matrices beat shifted sums for a blur of ``numel`` elements along axes
    of ``lengths`` with kernels of ``taps`` taps (the cost model above; CPU only, and axes of at
    most DENSE_MAX_LENGTH samples always take the matrices)."""
    if max(lengths) <= DENSE_MAX_LENGTH:
        return True
    if torch.device(device).type != "cpu" or max(lengths) > DENSE_AUTO_MAX_LENGTH:
        return False
    direct = sum(taps) * (AUTO_OP_US + numel * AUTO_PASS_NS * 1e-3)
    dense = AUTO_DENSE_FIXED_US + 2 * numel * sum(lengths) / (AUTO_MATMUL_GFLOPS * 1e3)
    if grad:
        direct, dense = direct * AUTO_GRAD_FACTOR_DIRECT, dense * AUTO_GRAD_FACTOR_DENSE
    return dense < direct


def _auto_axis(h: int, length: int, mode: str, grad: bool = False) -> str:
    """The method ``'auto'`` uses along one axis of ``length`` samples for half-size ``h`` when
    whole-axis matrices do not pay (:func:`_dense_pays`); ``grad``: whether a backward pass
    will follow."""
    if length <= DENSE_MAX_LENGTH:
        return "matmul"  # the whole-axis matrix
    h = folded_radius(h, length, mode)
    if 2 * h + 1 <= AUTO_DIRECT_MAX_TAPS_1D:
        return "direct"
    padded = length if MODES[mode].index is None else length + 2 * h
    block = max(BLOCK, 2 * h)
    window = min(padded, block + 2 * h)
    if window <= (AUTO_MATMUL_MAX_WINDOW_GRAD if grad else AUTO_MATMUL_MAX_WINDOW):
        return "matmul"
    return "fft"


def _auto_2d(hy: int, hx: int, shape: tuple[int, int], grad: bool) -> str:
    """The method ``'auto'`` uses for a dense ``(2 hy + 1, 2 hx + 1)`` kernel on an ``(H, W)`` image."""
    taps = (2 * min(hy, shape[0]) + 1) * (2 * min(hx, shape[1]) + 1)
    return "direct" if taps <= (AUTO_DIRECT_MAX_TAPS_2D_GRAD if grad else AUTO_DIRECT_MAX_TAPS_2D) else "fft"


def correlate_axis(x: Tensor, w: Tensor, dim: int, mode: str, method: str) -> Tensor:
    """Correlate ``x`` (B, C, ...) with kernel ``w`` (k,) or (C, k) along ``dim``."""
    if _export.exporting():
        return _export.conv_axis(x, w, dim, mode)
    h = (w.shape[-1] - 1) // 2
    auto = method == "auto"
    if auto:
        grad, L = will_backward(x, w), x.shape[dim]
        taps = 2 * folded_radius(h, L, mode) + 1
        method = (
            "dense" if _dense_pays(x.numel(), (L,), (taps,), grad, x.device) else _auto_axis(h, L, mode, grad)
        )
    method = _no_fft(x, method, auto)
    if method == "dense" or method == "matmul" and x.shape[dim] <= DENSE_MAX_LENGTH:
        return _dense_axis(x, w, dim, mode)
    if method == "direct":
        return _spatial_axis(x, w, h, dim, mode, _ShiftCorr)
    if method == "matmul" and traced(x, w):
        return _spatial_axis(x, w, h, dim, mode, None)
    if method == "matmul":
        return _spatial_axis(x, w, h, dim, mode, _BandCorr)
    return _fft_axis(x, w, h, dim, mode)


def correlate_separable(x: Tensor, wy: Tensor, wx: Tensor, mode: str, method: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with ``wy`` down the rows and ``wx`` along the columns.

    The spatial methods run two 1D passes; the FFT method does one 2D transform pair
    with the outer-product kernel, which on images costs less than two 1D pairs (no
    second padded copy, and the column transforms run on half-spectra). ``'auto'``
    chooses per axis, and uses the 2D FFT if either axis would need an FFT.
    """
    if _export.exporting():
        return _export.conv_separable(x, wy, wx, mode)
    if method == "auto":
        grad = will_backward(x, wy) or will_backward(x, wx)
        H, W = x.shape[-2:]
        taps = (
            2 * folded_radius((wy.shape[-1] - 1) // 2, H, mode) + 1,
            2 * folded_radius((wx.shape[-1] - 1) // 2, W, mode) + 1,
        )
        if _dense_pays(x.numel(), (H, W), taps, grad, x.device):
            return _dense_separable(x, wy, wx, mode)
        my = _auto_axis((wy.shape[-1] - 1) // 2, x.shape[-2], mode, grad)
        mx = _auto_axis((wx.shape[-1] - 1) // 2, x.shape[-1], mode, grad)
        my, mx = _no_fft(x, my, True), _no_fft(x, mx, True)
        if "fft" not in (my, mx) and my != mx:
            return correlate_axis(correlate_axis(x, wx, -1, mode, mx), wy, -2, mode, my)
        method = "fft" if "fft" in (my, mx) else my
    method = _no_fft(x, method, False)
    if method == "matmul" and max(x.shape[-2:]) <= DENSE_MAX_LENGTH:
        return _dense_separable(x, wy, wx, mode)
    if method in ("direct", "matmul"):
        return correlate_axis(correlate_axis(x, wx, -1, mode, method), wy, -2, mode, method)
    return correlate2d(x, wy.unsqueeze(-1) * wx.unsqueeze(-2), mode, method)


def correlate2d(x: Tensor, w: Tensor, mode: str, method: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with a dense kernel ``w`` (ky, kx) or (C, ky, kx)."""
    if _export.exporting():
        return _export.conv_2d(x, w, mode)
    hy, hx = (w.shape[-2] - 1) // 2, (w.shape[-1] - 1) // 2
    auto = method == "auto"
    if auto:
        method = _auto_2d(hy, hx, x.shape[-2:], will_backward(x, w))
    method = _no_fft(x, method, auto)
    if method == "direct":
        return _direct_2d(x, w, hy, hx, mode)
    if method == "matmul":
        return _band_2d(x, w, hy, hx, mode)
    return _fft_2d(x, w, hy, hx, mode)


from . import _ops  # noqa: E402  (after the engines it wraps)
