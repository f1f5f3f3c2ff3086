"""The blurs as standard operators, for export: ``torch.export``, ONNX and ``torch.jit.trace``.

The engines of :mod:`sigma._conv` are fast because they write into preallocated outputs
(shifted in-place sums, banded products into slices) and choose their algorithm from the
shapes. An exporter needs the opposite: a graph of standard operators that another runtime
can execute for any input size. While a model is exported (:func:`exporting`), every
correlation therefore runs as the boundary padding of :func:`sigma._padding.pad_axis`
(``F.pad``, or a gather of the mode's index map) followed by one depthwise convolution
(``conv1d``/``conv2d`` with ``groups=C``): ONNX ``Pad``/``Gather`` and ``Conv``. The taps are
computed in the graph from the current σ, so an exported model keeps σ as a weight.

The kernel *size* is a shape, so it must be fixed when the graph is made: the blurs read it
from ``radius=``, and without it :func:`support_read` refuses the export with a message that
says so (``torch.jit.trace``, which can only record one size, warns instead). The legacy ONNX
exporter (``dynamo=False``) is refused with a message naming the default one.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ._padding import pad_axis


def exporting() -> str | None:
    """Which exporter is recording the call: ``'export'`` (``torch.export``, and ONNX with
    ``dynamo=True``, the default), ``'trace'`` (``torch.jit.trace``) or None.

    Raises:
        RuntimeError: under the legacy ONNX exporter (``torch.onnx.export(..., dynamo=False)``),
            whose graphs lose the kernel's shape (it refuses the convolution) or, for the
            per-pixel blur, the input's; rather than risk a wrong model, it is refused here.
    """
    if torch.compiler.is_exporting():
        return "export"
    if torch.jit.is_tracing():
        if torch.onnx.is_in_onnx_export():
            raise RuntimeError(
                "sigma's blurs export to ONNX with torch.onnx.export(model, args, dynamo=True) (the "
                "default exporter) and a fixed radius=; the legacy exporter (dynamo=False) is not supported"
            )
        return "trace"
    return None


def support_read(name: str) -> None:
    """Called where the kernel support is about to be read from σ's value (no ``radius=``).

    Under ``torch.export`` and ONNX export that read cannot become part of a graph: raise,
    naming ``radius=``. Under ``torch.compile`` it is a graph break, with a message that names
    ``radius=`` (the error ``fullgraph=True`` shows). Under ``torch.jit.trace`` the read happens
    once and the traced module keeps that kernel size whatever σ becomes: warn.
    """
    how = exporting()
    if how == "export":
        raise ValueError(
            f"the kernel size follows the value of {name}, which an exported graph cannot read: "
            "build the layer (or call the blur) with a fixed radius= to export it, e.g. "
            "radius=sigma.kernel_radius(largest_sigma)"
        )
    if how is None and torch.compiler.is_compiling():
        # a graph break (the read below is one anyway); with fullgraph=True this is the error
        torch._dynamo.graph_break(
            msg=f"the kernel size follows the value of {name}: pass radius= for one graph"
        )
        return
    if how == "trace":
        warnings.warn(
            f"torch.jit.trace records the kernel size that {name} has now; the traced module keeps "
            "that size if σ changes later. Pass a fixed radius= to make the size explicit.",
            stacklevel=3,
        )


def _depthwise(w: Tensor, channels: int, taps_dims: int, ndim: int) -> Tensor:
    """``w`` (k...) or (C, k...) as a depthwise weight ``(C, 1, ...)`` of ``ndim`` dims, its
    ``taps_dims`` kernel dims last. Built by unsqueezing, never from ``w``'s sizes, so that
    ``torch.jit.trace`` (and the legacy ONNX exporter) sees a weight of known shape."""
    if w.dim() == taps_dims:
        w = w.unsqueeze(0)
    while w.dim() < ndim:
        w = w.unsqueeze(1)
    return w.expand((channels,) + (-1,) * (ndim - 1))


def conv_axis(x: Tensor, w: Tensor, dim: int, mode: str) -> Tensor:
    """Correlate ``x`` (B, C, ...) with ``w`` (k,) or (C, k) along ``dim``: pad, then a depthwise conv."""
    dim = dim % x.dim()
    h = (w.shape[-1] - 1) // 2
    xp = pad_axis(x, h, h, mode, dim)
    C = x.shape[1]
    weight = _depthwise(w, C, 1, x.dim()).to(x.dtype)  # (C, 1, k) or (C, 1, 1, k)
    if x.dim() == 3:
        return F.conv1d(xp, weight, groups=C)
    if dim == 2:
        weight = weight.transpose(-1, -2)  # (C, 1, k, 1): down the rows
    return F.conv2d(xp, weight, groups=C)


def conv_separable(x: Tensor, wy: Tensor, wx: Tensor, mode: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) along the columns with ``wx``, then down the rows with ``wy``."""
    return conv_axis(conv_axis(x, wx, -1, mode), wy, -2, mode)


def conv_2d(x: Tensor, w: Tensor, mode: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with a dense kernel ``w`` (ky, kx) or (C, ky, kx)."""
    hy, hx = (w.shape[-2] - 1) // 2, (w.shape[-1] - 1) // 2
    xp = pad_axis(pad_axis(x, hy, hy, mode, -2), hx, hx, mode, -1)
    C = x.shape[1]
    return F.conv2d(xp, _depthwise(w, C, 2, 4).to(x.dtype), groups=C)
