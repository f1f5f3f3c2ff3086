"""Correlation engines behind every blur: one ``method=`` switch, several exact algorithms.

``correlate_axis`` correlates a ``(B, C, ...)`` tensor with a 1D kernel along one
spatial axis; ``correlate_separable`` with one kernel per axis of an image;
``correlate2d`` with a dense 2D kernel. Kernels are ``(k,)`` (shared by all channels) or
``(C, k)`` (one per channel); offsets run from ``-h`` to ``h``:

    y[i] = sum_j w[j] * x_padded[i + j]

This module only dispatches. The boundary mode is resolved once, here, to a
:class:`~sigma._padding.BoundaryMode`, and the engines receive that object:

* ``'direct'``: shifted sums (:mod:`sigma._shift`), one whole-tensor multiply-add per tap;
  cheapest for short kernels, cost grows with the kernel size.
* ``'matmul'``: banded matrix products (:mod:`sigma._band`), one product per block of
  outputs; on axes of at most ``DENSE_MAX_LENGTH`` samples, one whole-axis matrix
  (:mod:`sigma._dense`).
* ``'fft'``: the same linear correlation through real FFTs (:mod:`sigma._fft`), sized so
  that nothing wraps around; cost independent of the kernel size.
* ``'fused'``: compiled per-axis loops over a reused bordered buffer (:mod:`sigma._fused`),
  one pass over memory per axis forward and per gradient; the first call per kernel size
  compiles. Separable kernels only.
* ``'auto'``: the rule of :mod:`sigma._auto`, per axis.

Kernels come one per channel, or, for one σ per sample, one per sample and channel: the blurs
fold the samples into the channels. Where whole-axis matrices run, one σ per sample shared by its
channels keeps one kernel pair per sample instead (:func:`correlate_pairs_per_sample`).

All are differentiable in the input and the kernel (and therefore in σ) by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _auto, _export, _fused, _fused2d, _ops
from ._autograd import apply, eager_twin, traced, will_backward
from ._band import _BandCorr, band_correlate_unfolded
from ._dense import DENSE_MAX_LENGTH, axis_matrix, dense_axis, dense_pairs_per_sample, dense_separable
from ._fft import fast_fft_size, fft_2d, fft_axis
from ._padding import BoundaryMode, boundary, fold_kernel, pad_axis
from ._shift import _ShiftCorr, _ShiftCorr2d

__all__ = [
    "DENSE_MAX_LENGTH",
    "NO_FFT_DTYPES",
    "apply",
    "correlate2d",
    "correlate_axis",
    "correlate_separable",
    "eager_twin",
    "fast_fft_size",
    "traced",
]

# pocketfft (CPU) has no half-precision transforms, and cuFFT only power-of-two ones
NO_FFT_DTYPES = (torch.float16, torch.bfloat16)

# the compiled fused loops: float32 and float64
FUSED_DTYPES = (torch.float32, torch.float64)


def _spatial_axis(x: Tensor, w: Tensor, dim: int, mode: BoundaryMode, engine: str) -> Tensor:
    """Shifted sums (``'direct'``) or banded products (``'matmul'``) along ``dim``: the kernel
    folded onto the axis, the input padded by ``mode`` unless it is ``'zeros'`` (the engines
    read zeros outside already)."""
    L = x.shape[dim]
    # the kernel follows the data's dtype: under autocast a blur inside a model receives the
    # half-precision output of an earlier layer while its kernel comes from float32 parameters
    w, h = fold_kernel(w.to(x.dtype), (w.shape[-1] - 1) // 2, L, mode)

    def run(x):
        if _ops.use_ops():  # compiling: the eager engines as opaque operators
            return _ops.correlate_axis(x, w, dim, engine)
        if engine == "direct":
            return apply(_ShiftCorr, x, w, dim)
        if traced(x, w):  # vmap, grad: the banded products on unfolded windows
            return band_correlate_unfolded(x, w, dim)
        return apply(_BandCorr, x, w, dim)

    if mode.index is None:
        return run(x)
    return run(pad_axis(x, h, h, mode, dim)).narrow(dim, h, L)


def _dense_axis(x: Tensor, w: Tensor, dim: int, mode: BoundaryMode) -> Tensor:
    """:func:`sigma._dense.dense_axis`; while ``torch.compile`` traces, its matrix product as an
    opaque operator (inductor 2.13 fails on the product's 4D view with symbolic sizes when a
    convolution reads it: "cannot determine truth value of Relational")."""
    if _ops.use_ops():
        return _ops.axis_matrix_product(x, axis_matrix(w.to(x.dtype), x.shape[dim], mode), dim)
    return dense_axis(x, w, dim, mode)


def _dense_separable(x: Tensor, wy: Tensor, wx: Tensor, mode: BoundaryMode) -> Tensor:
    """:func:`sigma._dense.dense_separable`; while compiling, its products as one opaque operator."""
    if _ops.use_ops():
        ay = axis_matrix(wy.to(x.dtype), x.shape[-2], mode)
        ax = ay if wx is wy and x.shape[-1] == x.shape[-2] else axis_matrix(wx.to(x.dtype), x.shape[-1], mode)
        return _ops.matrices_2d(x, ay, ax)
    return dense_separable(x, wy, wx, mode)


def _direct_2d(x: Tensor, w: Tensor, mode: BoundaryMode) -> Tensor:
    """Dense 2D kernel by 2D shifted sums (a depthwise ``conv2d`` off the CPU)."""
    H, W = x.shape[-2:]
    w, hy = fold_kernel(w.to(x.dtype), (w.shape[-2] - 1) // 2, H, mode, dim=-2)
    w, hx = fold_kernel(w, (w.shape[-1] - 1) // 2, W, mode, dim=-1)
    if x.device.type == "cpu":  # shifted sums; a depthwise conv2d is several times slower on CPU

        def run(x):
            return _ops.correlate_2d(x, w) if _ops.use_ops() else apply(_ShiftCorr2d, x, w)

        if mode.index is None:
            return run(x)
        xp = pad_axis(pad_axis(x, hy, hy, mode, -2), hx, hx, mode, -1)
        return run(xp)[..., hy : hy + H, hx : hx + W]
    xp = pad_axis(pad_axis(x, hy, hy, mode, -2), hx, hx, mode, -1)
    C = x.shape[1]
    weight = w.expand(C, *w.shape[-2:]) if w.dim() == 2 else w
    return F.conv2d(xp, weight.unsqueeze(1), groups=C)


def _band_2d(x: Tensor, w: Tensor, mode: BoundaryMode) -> Tensor:
    """Dense 2D kernel by banded products: one product along the rows per kernel row."""
    H, W = x.shape[-2:]
    w, hy = fold_kernel(w, (w.shape[-2] - 1) // 2, H, mode, dim=-2)
    w, _ = fold_kernel(w, (w.shape[-1] - 1) // 2, W, mode, dim=-1)
    xp = pad_axis(x, hy, hy, mode, -2)
    y = None
    for r in range(2 * hy + 1):
        t = _spatial_axis(xp.narrow(-2, r, H), w[..., r, :], -1, mode, "matmul")
        y = t if y is None else y + t
    return y


def _check_fft(x: Tensor, engine: str, auto: bool) -> str:
    """``engine``, unless it is the FFT and ``x``'s dtype has none: then the banded products
    under ``'auto'``, and a ``TypeError`` when the FFT was asked for."""
    if engine != "fft" or x.dtype not in NO_FFT_DTYPES:
        return engine
    if auto:
        return "matmul"
    raise TypeError(
        f"method='fft' does not support x of dtype {x.dtype}; use method='matmul' or 'direct', "
        "or convert x to float32"
    )


def _check_fused(x: Tensor) -> None:
    if x.dtype not in FUSED_DTYPES:
        raise TypeError(
            f"method='fused' supports float32 and float64, got x of dtype {x.dtype}; "
            "use method='direct' or 'matmul', or convert x"
        )


def _fused_allowed(x: Tensor) -> bool:
    """Whether ``'auto'`` may pick the fused loops for ``x``: a plan that wants them, a dtype
    they support, not inside a user's compile or a transform, and a working compiler."""
    return (
        _auto.plan().fused_max_taps > 0
        and x.dtype in FUSED_DTYPES
        and not traced(x)
        and not _export.exporting()
        and _fused.available(x.device)
    )


def _run_axis(x: Tensor, w: Tensor, dim: int, mode: BoundaryMode, engine: str) -> Tensor:
    """One engine along ``dim`` (``engine`` already checked against the dtype)."""
    if engine == "dense" or engine == "matmul" and x.shape[dim] <= DENSE_MAX_LENGTH:
        return _dense_axis(x, w, dim, mode)
    if engine in ("direct", "matmul"):
        return _spatial_axis(x, w, dim, mode, engine)
    if engine == "fused":
        return _fused.fused_axis(x, w, dim, mode.name)
    return fft_axis(x, w, (w.shape[-1] - 1) // 2, dim, mode)


def correlate_axis(x: Tensor, w: Tensor, dim: int, mode: str | BoundaryMode, method: str) -> Tensor:
    """Correlate ``x`` (B, C, ...) with kernel ``w`` (k,) or (C, k) along ``dim``; ``mode`` a
    ``padding_mode`` name, ``method`` one of :data:`sigma._checks.METHODS`. Returns ``x``'s shape."""
    mode = boundary(mode)
    if _export.exporting():
        return _export.conv_axis(x, w, dim, mode.name)
    auto = method == "auto"
    if auto:
        method = _auto.axis_engine(
            (w.shape[-1] - 1) // 2,
            x.shape[dim],
            x.numel(),
            mode,
            will_backward(x, w),
            x.device,
            fused=_fused_allowed(x),
        )
    elif method == "fused":
        _check_fused(x)
    return _run_axis(x, w, dim, mode, _check_fft(x, method, auto))


def correlate_separable(x: Tensor, wy: Tensor, wx: Tensor, mode: str | BoundaryMode, method: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with ``wy`` down the rows and ``wx`` along the columns.

    The spatial methods run two 1D passes; the FFT method does one 2D transform pair
    with the outer-product kernel, which on images costs less than two 1D pairs (no
    second padded copy, and the column transforms run on half-spectra). ``'auto'``
    chooses per axis, and uses the 2D FFT if either axis would need an FFT.
    """
    mode = boundary(mode)
    if _export.exporting():
        return _export.conv_separable(x, wy, wx, mode.name)
    auto = method == "auto"
    if auto:
        ey, ex = _auto.separable_engines(
            (wy.shape[-1] - 1) // 2,
            (wx.shape[-1] - 1) // 2,
            x.shape[-2:],
            x.numel(),
            mode,
            will_backward(x, wy, wx),
            x.device,
            fused=_fused_allowed(x),
        )
        ey, ex = _check_fft(x, ey, True), _check_fft(x, ex, True)
    else:
        if method == "fused":
            _check_fused(x)
        ey = ex = _check_fft(x, method, False)
        if ey == "matmul" and max(x.shape[-2:]) <= DENSE_MAX_LENGTH:
            ey = ex = "dense"
    if ey == ex == "dense":
        return _dense_separable(x, wy, wx, mode)
    if ey == ex == "fused":
        return _fused2d.fused_separable(x, wy, wx, mode.name)
    if ey == ex == "fft":
        return correlate2d(x, wy.unsqueeze(-1) * wx.unsqueeze(-2), mode, "fft")
    return _run_axis(_run_axis(x, wx, -1, mode, ex), wy, -2, mode, ey)


def correlate_pairs_per_sample(
    x: Tensor, wy: list[Tensor], wx: list[Tensor], pairs: list[tuple[int, int]], mode: str, method: str
) -> Tensor | None:
    """Separable correlations of ``x`` (B, C, H, W) with one kernel pair per sample, shared by its
    channels (``wy[i]``, ``wx[j]`` of shape (B, k)), for each ``(i, j)`` of ``pairs``: (B, C, P, H, W)
    by per-sample whole-axis matrices (:func:`sigma._dense.dense_pairs_per_sample`) where ``method``
    runs whole-axis matrices (``'matmul'`` on short axes, or ``'auto'``'s choice), else None: the
    caller then folds the samples into the channels for the other engines. Also None while
    ``torch.compile`` traces or a model is exported (those paths have their own operators)."""
    if _ops.use_ops() or _export.exporting():
        return None
    H, W = x.shape[-2:]
    if method == "auto":
        hy, hx = (max(w.shape[-1] for w in wy) - 1) // 2, (max(w.shape[-1] for w in wx) - 1) // 2
        grad = will_backward(x, *wy, *wx)
        engines = _auto.separable_engines(hy, hx, (H, W), x.numel(), mode, grad, x.device, _fused_allowed(x))
        if engines != ("dense", "dense"):
            return None
    elif method != "matmul" or max(H, W) > DENSE_MAX_LENGTH:
        return None
    return dense_pairs_per_sample(x, wy, wx, pairs, boundary(mode))


def correlate2d(x: Tensor, w: Tensor, mode: str | BoundaryMode, method: str) -> Tensor:
    """Correlate ``x`` (B, C, H, W) with a dense kernel ``w`` (ky, kx) or (C, ky, kx)."""
    mode = boundary(mode)
    if _export.exporting():
        return _export.conv_2d(x, w, mode.name)
    hy, hx = (w.shape[-2] - 1) // 2, (w.shape[-1] - 1) // 2
    auto = method == "auto"
    if auto:
        method = _auto.dense_2d_engine(hy, hx, x.shape[-2:], will_backward(x, w))
    elif method == "fused":
        raise ValueError(
            "method='fused' runs separable kernels only; a full-covariance kernel needs "
            "method='auto', 'direct', 'matmul' or 'fft'"
        )
    method = _check_fft(x, method, auto)
    if method == "direct":
        return _direct_2d(x, w, mode)
    if method == "matmul":
        return _band_2d(x, w, mode)
    return fft_2d(x, w, hy, hx, mode)
