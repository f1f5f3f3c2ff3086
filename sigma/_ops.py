"""The spatial engines as opaque operators for ``torch.compile``.

Traced by dynamo, the shifted sums become ``k`` separate slices and the kernel gradient
``k`` separate reductions, which the compiled code runs slower than the eager engines
(measured: about 1.4x slower forward + backward at σ = 16 on CPU). Registered as custom
operators (:func:`torch.library.custom_op`), they stay one call each inside the compiled
graph, run the eager engines of :mod:`sigma._conv`, and the graph around them (kernel
construction, whatever else the model does) is still compiled. Each has a fake
(meta) implementation for tracing and an autograd formula; the kernel-gradient operator
is itself differentiable, so double backward works compiled as well.

Used only while ``torch.compile`` traces; eager calls and ``torch.func`` transforms (vmap,
grad) keep the autograd Functions of :mod:`sigma._conv`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _conv
from ._band import band_correlate, band_tap_grads


def use_ops() -> bool:
    """Whether the blurs should call these operators: while ``torch.compile`` traces (dynamo
    folds this to a constant; asking for ``torch.func`` transforms here would break the graph)."""
    return torch.compiler.is_compiling()


@torch.library.custom_op("sigma::correlate_axis", mutates_args=())
def correlate_axis(x: Tensor, w: Tensor, dim: int, engine: str) -> Tensor:
    """Zero-boundary 'same' correlation of ``x`` (B, C, ...) with ``w`` (k,) or (C, k) along ``dim``;
    ``engine``: ``'direct'`` (shifted sums) or ``'matmul'`` (banded products)."""
    y = _conv._ShiftCorr.forward(x, w, dim) if engine == "direct" else band_correlate(x, w, dim)
    return y.contiguous()


@correlate_axis.register_fake
def _(x, w, dim, engine):
    return x.new_empty(x.shape)


@torch.library.custom_op("sigma::correlate_axis_tap_grads", mutates_args=())
def tap_grads(g: Tensor, x: Tensor, k: int, dim: int, per_channel: bool, engine: str) -> Tensor:
    """``gw[..., j] = sum g[i] x[i + j - h]`` along ``dim``: ``(k,)``, or ``(C, k)`` if ``per_channel``."""
    if engine == "matmul":
        return band_tap_grads(g, x, k, dim, per_channel).contiguous()
    return _conv.tap_grads(g, x, k, dim, per_channel).contiguous()


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
    return _conv._ShiftCorr2d.forward(x, w).contiguous()


@correlate_2d.register_fake
def _(x, w):
    return x.new_empty(x.shape)


@torch.library.custom_op("sigma::correlate_2d_tap_grads", mutates_args=())
def tap_grads_2d(g: Tensor, x: Tensor, ky: int, kx: int, per_channel: bool) -> Tensor:
    """Kernel gradient of :func:`correlate_2d`: ``(ky, kx)``, or ``(C, ky, kx)`` if ``per_channel``."""
    return _conv.tap_grads_2d(g, x, ky, kx, per_channel).contiguous()


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
