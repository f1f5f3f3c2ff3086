"""The spatial engines as opaque operators for ``torch.compile``.

Traced by dynamo, the shifted sums become ``k`` separate slices and the kernel gradient
``k`` separate reductions, which the compiled code runs slower than the eager engines
(measured: about 1.4x slower forward + backward at σ = 16 on CPU). Registered as custom
operators (:func:`torch.library.custom_op`), they stay one call each inside the compiled
graph, run the eager engines (:mod:`sigma._shift`, :mod:`sigma._band`, :mod:`sigma._dense`), and the graph around them (kernel
construction, whatever else the model does) is still compiled. Each has a fake
(meta) implementation for tracing and an autograd formula; the kernel-gradient operator
is itself differentiable, so double backward works compiled as well.

Used only while ``torch.compile`` traces; eager calls and ``torch.func`` transforms (vmap,
grad) keep the engines' autograd Functions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._band import band_correlate, band_tap_grads
from ._dense import apply_axis_matrix
from ._shift import _ShiftCorr, _ShiftCorr2d
from ._shift import tap_grads as shift_tap_grads
from ._shift import tap_grads_2d as shift_tap_grads_2d


def use_ops() -> bool:
    """Whether the blurs should call these operators: while ``torch.compile`` traces (dynamo
    folds this to a constant; asking for ``torch.func`` transforms here would break the graph)."""
    return torch.compiler.is_compiling()


@torch.library.custom_op("sigma::correlate_axis", mutates_args=())
def correlate_axis(x: Tensor, w: Tensor, dim: int, engine: str) -> Tensor:
    """Zero-boundary 'same' correlation of ``x`` (B, C, ...) with ``w`` (k,) or (C, k) along ``dim``;
    ``engine``: ``'direct'`` (shifted sums) or ``'matmul'`` (banded products)."""
    y = _ShiftCorr.forward(x, w, dim) if engine == "direct" else band_correlate(x, w, dim)
    return y.contiguous()


@correlate_axis.register_fake
def _(x, w, dim, engine):
    return x.new_empty(x.shape)


@torch.library.custom_op("sigma::correlate_axis_tap_grads", mutates_args=())
def tap_grads(g: Tensor, x: Tensor, k: int, dim: int, per_channel: bool, engine: str) -> Tensor:
    """``gw[..., j] = sum g[i] x[i + j - h]`` along ``dim``: ``(k,)``, or ``(C, k)`` if ``per_channel``."""
    if engine == "matmul":
        return band_tap_grads(g, x, k, dim, per_channel).contiguous()
    return shift_tap_grads(g, x, k, dim, per_channel).contiguous()


@tap_grads.register_fake
def _(g, x, k, dim, per_channel, engine):
    return g.new_empty((x.shape[1], k) if per_channel else (k,))


def _setup_correlate(ctx, inputs, output) -> None:
    x, w, dim, engine = inputs
    ctx.save_for_backward(x, w)
    ctx.dim, ctx.engine = dim, engine


def _backward_correlate(ctx, g: Tensor):
    x, w = ctx.saved_tensors
    gx = gw = None
    if ctx.needs_input_grad[0]:
        gx = correlate_axis(g, w.flip(-1), ctx.dim, ctx.engine)
    if ctx.needs_input_grad[1]:
        gw = tap_grads(g, x, w.shape[-1], ctx.dim, w.dim() == 2, ctx.engine)
    return gx, gw, None, None


correlate_axis.register_autograd(_backward_correlate, setup_context=_setup_correlate)


def _setup_taps(ctx, inputs, output) -> None:
    g, x, k, dim, per_channel, engine = inputs
    ctx.save_for_backward(g, x)
    ctx.dim, ctx.engine = dim, engine


def _backward_taps(ctx, ggw: Tensor):
    # gw_j = sum_i g[i] x[i + o_j]: in g a correlation of x with ggw, in x one of g with ggw flipped
    g, x = ctx.saved_tensors
    gg = gx = None
    if ctx.needs_input_grad[0]:
        gg = correlate_axis(x, ggw, ctx.dim, ctx.engine)
    if ctx.needs_input_grad[1]:
        gx = correlate_axis(g, ggw.flip(-1), ctx.dim, ctx.engine)
    return gg, gx, None, None, None, None


tap_grads.register_autograd(_backward_taps, setup_context=_setup_taps)


@torch.library.custom_op("sigma::correlate_2d", mutates_args=())
def correlate_2d(x: Tensor, w: Tensor) -> Tensor:
    """Zero-boundary 'same' correlation of ``x`` (B, C, H, W) with a dense ``w`` (ky, kx) or
    (C, ky, kx) by 2D shifted sums."""
    return _ShiftCorr2d.forward(x, w).contiguous()


@correlate_2d.register_fake
def _(x, w):
    return x.new_empty(x.shape)


@torch.library.custom_op("sigma::correlate_2d_tap_grads", mutates_args=())
def tap_grads_2d(g: Tensor, x: Tensor, ky: int, kx: int, per_channel: bool) -> Tensor:
    """Kernel gradient of :func:`correlate_2d`: ``(ky, kx)``, or ``(C, ky, kx)`` if ``per_channel``."""
    return shift_tap_grads_2d(g, x, ky, kx, per_channel).contiguous()


@tap_grads_2d.register_fake
def _(g, x, ky, kx, per_channel):
    return g.new_empty((x.shape[1], ky, kx) if per_channel else (ky, kx))


def _setup_2d(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward_2d(ctx, g: Tensor):
    x, w = ctx.saved_tensors
    gx = correlate_2d(g, w.flip(-1, -2)) if ctx.needs_input_grad[0] else None
    gw = tap_grads_2d(g, x, w.shape[-2], w.shape[-1], w.dim() == 3) if ctx.needs_input_grad[1] else None
    return gx, gw


correlate_2d.register_autograd(_backward_2d, setup_context=_setup_2d)


def _setup_taps_2d(ctx, inputs, output) -> None:
    g, x, *_ = inputs
    ctx.save_for_backward(g, x)


def _backward_taps_2d(ctx, ggw: Tensor):
    g, x = ctx.saved_tensors
    gg = correlate_2d(x, ggw) if ctx.needs_input_grad[0] else None
    gx = correlate_2d(g, ggw.flip(-1, -2)) if ctx.needs_input_grad[1] else None
    return gg, gx, None, None, None


tap_grads_2d.register_autograd(_backward_taps_2d, setup_context=_setup_taps_2d)


@torch.library.custom_op("sigma::axis_matrix_product", mutates_args=())
def axis_matrix_product(x: Tensor, a: Tensor, dim: int) -> Tensor:
    """``y = A x`` along ``dim`` of ``x`` (B, C, ...) with a whole-axis matrix ``a`` (L, L) or (C, L, L)."""
    return apply_axis_matrix(x, a, dim).contiguous()


@axis_matrix_product.register_fake
def _(x, a, dim):
    return x.new_empty(x.shape)


def _setup_matrix(ctx, inputs, output) -> None:
    x, a, dim = inputs
    ctx.save_for_backward(x, a)
    ctx.dim = dim


def _backward_matrix(ctx, g: Tensor):
    x, a = ctx.saved_tensors
    gx = ga = None
    if ctx.needs_input_grad[0]:
        gx = axis_matrix_product(g, a.transpose(-1, -2), ctx.dim)
    if ctx.needs_input_grad[1]:  # ga[i, j] = sum of g[..., i] x[..., j] over everything else
        B, C, L = x.shape[0], x.shape[1], x.shape[ctx.dim]
        gt = g.movedim(ctx.dim, -1).reshape(B, C, -1, L)
        xt = x.movedim(ctx.dim, -1).reshape(B, C, -1, L)
        prod = gt.transpose(-1, -2) @ xt  # (B, C, L, L)
        ga = prod.sum(0) if a.dim() == 3 else prod.sum((0, 1))
    return gx, ga, None


axis_matrix_product.register_autograd(_backward_matrix, setup_context=_setup_matrix)


@torch.library.custom_op("sigma::matrices_2d", mutates_args=())
def matrices_2d(x: Tensor, ay: Tensor, ax: Tensor) -> Tensor:
    """``A_y x A_x^T`` for ``x`` (B, C, H, W) and whole-axis matrices ``(H, H)``/``(C, H, H)`` and
    ``(W, W)``/``(C, W, W)``."""
    return (ay @ x @ ax.transpose(-1, -2)).contiguous()


@matrices_2d.register_fake
def _(x, ay, ax):
    return x.new_empty(x.shape)


def _setup_matrices(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _sum_to(t: Tensor, like: Tensor) -> Tensor:
    """``t`` (B, C, L, L) summed over the batch (and the channels, for a shared matrix)."""
    return t.sum(0) if like.dim() == 3 else t.sum((0, 1))


def _backward_matrices(ctx, g: Tensor):
    x, ay, ax = ctx.saved_tensors
    gx = gy = gxm = None
    if ctx.needs_input_grad[0]:
        gx = matrices_2d(g, ay.transpose(-1, -2), ax.transpose(-1, -2))
    if ctx.needs_input_grad[1]:  # y = ay @ u, u = x ax^T
        gy = _sum_to(g @ (ax @ x.transpose(-1, -2)), ay)
    if ctx.needs_input_grad[2]:  # y = v ax^T, v = ay x
        gxm = _sum_to(g.transpose(-1, -2) @ (ay @ x), ax)
    return gx, gy, gxm


matrices_2d.register_autograd(_backward_matrices, setup_context=_setup_matrices)
