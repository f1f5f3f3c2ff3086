"""Shifted sums (``method='direct'``): one whole-tensor multiply-add per tap.

``_ShiftCorr`` correlates along one axis, ``_ShiftCorr2d`` with a dense 2D kernel; both with
zeros outside the input (the dispatcher pads for the other boundary modes) and in place,
with no padded copy and no temporaries. Cheapest for short kernels; the cost grows with the
number of taps. The kernel gradient takes the cheapest of three exact forms
(:func:`tap_grads`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._autograd import apply, eager_twin, traced
from ._band import band_tap_grads
from ._taps import overlap as _overlap
from ._taps import tap as _tap
from ._taps import tap_grads_graph


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
                gw = tap_grads_graph(g, x, w, dim)
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


_ShiftCorr.eager = eager_twin(_ShiftCorr)
