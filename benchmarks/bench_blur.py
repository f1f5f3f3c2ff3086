"""Speed of differentiable Gaussian blurs: sigma against the alternatives, side by side.

Every row races its implementations in interleaved rounds: ``--rounds`` rounds (at least 5),
the order reversed every other round, each implementation timed for
``min_run_time / rounds`` seconds per round. A row's time is the median of the per-round
medians; the smallest and largest per-round medians (the spread) are recorded beside it. A
slow-down of the machine during a row then falls on every implementation alike, and a
baseline whose speed swings between rounds (kornia's oneDNN layout choices) is compared
against its fastest round as well as its median.

Rows, on an input of shape (8, 3, 256, 256), σ in {0.5, 1, 2, 4, 8, 16, 32, 64}, float32 and
float64, in two grad cases (``mode``): forward + backward with respect to the input and the
scale parameters (op ``blur2d_sphere`` etc.), and forward only under ``torch.no_grad()`` (op
``blur2d_sphere/forward`` etc.). Compared implementations:

* ``sigma``'s blurs (``blur2d_sphere``, ``blur2d_diag`` with σ and σ/2, ``blur2d_full``,
  ``blur2d_local_sphere``, ``dog2d`` with σ and 1.6 σ) with ``method='auto'`` and every exact
  method the function accepts (``'direct'``, ``'matmul'``, ``'fft'``): the ``auto`` regret
  table divides auto's time by the fastest exact method's, per structure, σ and grad case;
* ``kornia.filters.gaussian_blur2d`` with the same kernel support and a constant border;
* forward only: OpenCV's ``cv2.GaussianBlur`` (per plane, ``BORDER_CONSTANT``, the same
  kernel size) and ``scipy.ndimage.gaussian_filter`` (the same radius, mode ``'constant'``);
* the original-style blur: channels packed into the batch and a single-channel
  separable ``conv2d`` per axis;
* a dense 2D depthwise convolution with the full k x k kernel;
* for the per-pixel blur, an im2col implementation (``F.unfold``) of the same sum;
* scale-space variants of ``blur2d_sphere`` (op ``scale_space``, σ in {1, 4, 16}): the
  Gaussian derivatives ``order=(1, 1)`` and ``order=(2, 0)`` and ``kernel='discrete'``
  beside the plain blur (``order=0``), reported as their cost relative to it;
* the backward's cost (op ``backward_cost``, ``blur2d_sphere`` with ``auto``, σ <= 4): the
  forward with autograd recording (impl ``forward``) raced against forward + backward as a
  training step runs them (the output gradient made once, the gradients set to None before
  each call, nothing accumulated; the other rows' backward makes a gradient of ones per call and
  accumulates into ``x.grad``, the same for every implementation they race); with
  ``'fused'``, the same pair for it, and its engine alone (no autograd, no kernel building):
  the forward as training runs it (bordering ``x`` into a new buffer, the compiled loop that
  keeps the row pass), the backward (all gradients) and the input gradient alone;
* small inputs (op ``small_input``, shapes (1, 1, 8, 8) and (1, 3, 32, 32), float32,
  forward + backward): ``sigma.Blur2d`` against kornia's ``GaussianBlur2d`` module;
* an N-jet layer (op ``njet_layer``, shape (32, 16, 32, 32), σ in {1, 2}, float32, forward +
  backward): ``sigma.NJetConv2d(16, 16, order=2)`` as it runs by default (one folded dense
  convolution up to 5 x 5 taps, the separable jet beyond), the separable jet forced
  (``method='direct'``), and ``nn.Conv2d(16, 16, 3)``, the layer it would replace;
* with ``--compile``: ``torch.compile`` (inductor) modules beside eager ones (ops
  ``module_sphere`` and ``module_full``, both modules built with the fixed ``radius=`` the
  README recommends for compiling; and in the small-input rows). Inductor compiles for
  about 30 s per module on a laptop CPU, so these rows are off by default.

Slow baselines are skipped where a single run would take too long (the table says
which). Results go to ``sigma/book/results/blur_<device>.csv`` together with the
machine description; the script then prints the ``auto`` regret table and every speed
target with its measured value and verdict, and exits with status 1 if a target fails
(a target with no rows in the run, e.g. compiled vs eager without ``--compile``, is
skipped). The tables and verdicts are computed by ``sigma.book.speed``, which the performance
chapter uses too. ``--report CSV`` prints the same tables from an existing CSV without measuring;
``--plan`` lists the rows a run would time and a lower bound of its duration. ``--update`` keeps
the rows of the ops not timed in this run from the existing CSV (re-time one group).

Usage: ``python benchmarks/bench_blur.py [--quick] [--device cpu|cuda] [--out PATH]
[--rounds N] [--ops OP,...] [--update] [--compile] [--report CSV] [--plan]``
"""

from __future__ import annotations

import argparse
import csv
import gc
import inspect
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import sigma
from sigma import _fused, _fused2d
from sigma.book.speed import (
    ENGINE_PARTS,
    MODES,
    STRUCTURES,
    check_targets,
    njet_costs,
    op_name,
    read_rows,
    regret_table,
    scale_space_costs,
)

SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
SHAPE = (8, 3, 256, 256)
STD_DEVS = 2.0
# Skip a baseline when its kernel has more taps than this (one run would take minutes).
DENSE_MAX_SIGMA = 8.0
FUSED_MAX_SIGMA = 8.0  # method='fused' rows up to 65 taps (one compile per kernel size)
UNFOLD_MAX_SIGMA = 4.0  # k = 17: the unfolded matrix is already 1.8 GB in float32
LOCAL_MAX_SIGMA = 8.0
ORIGINAL_MAX_SIGMA = 64.0
OPS = STRUCTURES + (
    "backward_cost",
    "scale_space",
    "small_input",
    "njet_layer",
    "module_sphere",
    "module_full",
)
#: njet_layer rows: a CNN-typical layer input (B, C, H, W) and the layer's σ
NJET_SHAPE = (32, 16, 32, 32)
NJET_SIGMAS = (1.0, 2.0)
#: backward_cost rows (blur2d_sphere, auto): the forward with autograd recording, raced against
#: forward + backward; the backward's cost is their difference
BACKWARD_COST_MAX_SIGMA = 4.0
SCALE_SPACE_SIGMAS = (1.0, 4.0, 16.0)
#: scale_space rows: implementation name -> blur2d_sphere options
SCALE_SPACE = {
    "order=0": {},
    "order=(1,1)": {"order": (1, 1)},
    "order=(2,0)": {"order": (2, 0)},
    "discrete": {"kernel": "discrete"},
}
SMALL_SHAPES = ((1, 1, 8, 8), (1, 3, 32, 32))
SMALL_SIGMAS = (1.0, 2.0)
#: σ of the compiled-vs-eager module rows (each module compiles once per σ)
COMPILE_SIGMAS = (1.0, 4.0, 16.0)
DOG_RATIO = 1.6  # surround σ / centre σ
ROUNDS = 5  # at least this many interleaved rounds per row (see `measure`)
#: CSV columns: the first 14 are the original ones (same names and meanings); new ones go at the end
FIELDS = (
    "op",
    "impl",
    "dtype",
    "sigma",
    "kernel_size",
    "median_ms",
    "iqr_ms",
    "peak_mib",
    "shape",
    "cpu",
    "cpu_isa",
    "threads",
    "torch",
    "device",
    "mode",
    "rounds",
    "round_min_ms",
    "round_max_ms",
    "calls",
    "baselines",
)


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, str]:
    info = {
        "cpu": cpu_model(),
        # the vector instructions PyTorch's CPU kernels use (e.g. AVX2, AVX512): timings,
        # and which convolution code oneDNN picks, depend on it
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
    return info


def allocator(environ=None) -> str:
    """What decides how this process's memory allocator behaves, as the run's log records it: the
    settings that change glibc's malloc (``GLIBC_TUNABLES``' malloc entries, ``MALLOC_*_``) and a
    preloaded allocator (``LD_PRELOAD``, e.g. jemalloc); ``'glibc defaults'`` where there are none.
    On CPU they move timings between processes (``benchmarks/bench_allocator.py``)."""
    env = os.environ if environ is None else environ
    parts = []
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t.startswith("glibc.malloc.")]
    if tunables:
        parts.append("GLIBC_TUNABLES=" + ":".join(tunables))
    parts += [f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("MALLOC_") and k.endswith("_")]
    if env.get("LD_PRELOAD"):
        parts.append(f"LD_PRELOAD={env['LD_PRELOAD']}")
    return "; ".join(parts) or "glibc defaults"


# ----------------------------------------------------------------------------- baselines


def kornia_blur(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    import kornia

    h = sigma.kernel_radius(float(s.detach()), STD_DEVS)
    return kornia.filters.gaussian_blur2d(x, (2 * h + 1, 2 * h + 1), s.view(1, 1).expand(1, 2), "constant")


def original_blur(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Channels packed into the batch; one single-channel conv2d per axis (the original code's form)."""
    B, C, H, W = x.shape
    g = sigma.gauss1d(s, STD_DEVS)
    h = (g.shape[-1] - 1) // 2
    y = F.conv2d(x.reshape(B * C, 1, H, W), g.view(1, 1, -1, 1), padding=(h, 0))
    y = F.conv2d(y, g.view(1, 1, 1, -1), padding=(0, h))
    return y.view(B, C, H, W)


def dense_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise conv2d with the full 2D kernel (k x k taps per pixel)."""
    C = x.shape[1]
    ky, kx = kernel.shape[-2:]
    return F.conv2d(x, kernel.expand(C, 1, ky, kx), padding=(ky // 2, kx // 2), groups=C)


def unfold_local(x: torch.Tensor, smap: torch.Tensor, h: int) -> torch.Tensor:
    """im2col form of the per-pixel blur: materializes the (B, C, k*k, H*W) patch matrix."""
    B, C, H, W = x.shape
    k = 2 * h + 1
    cols = F.unfold(x, k, padding=h).view(B, C, k * k, H * W)
    t = torch.arange(-h, h + 1, dtype=x.dtype, device=x.device)
    r2 = (t.view(-1, 1) ** 2 + t.view(1, -1) ** 2).reshape(1, 1, k * k, 1)
    w = torch.exp(-0.5 * r2 / smap.reshape(B, 1, 1, H * W) ** 2)
    w = w / w.sum(2, keepdim=True)
    return (cols * w).sum(2).view(B, C, H, W)


def baseline_versions() -> str:
    """Versions of the baseline libraries, for the CSV's ``baselines`` column."""
    out = []
    for name, module in (("kornia", "kornia"), ("opencv", "cv2"), ("scipy", "scipy")):
        try:
            out.append(f"{name} {__import__(module).__version__}")
        except ImportError:
            out.append(f"{name} absent")
    return "; ".join(out)


def opencv_blur(planes, s: float):
    """``cv2.GaussianBlur`` on every (H, W) plane of a (B, C, H, W) NumPy array, zero border."""
    import cv2
    import numpy as np

    h = sigma.kernel_radius(s, STD_DEVS)
    out = np.empty_like(planes)
    for b in range(planes.shape[0]):
        for c in range(planes.shape[1]):
            cv2.GaussianBlur(
                planes[b, c],
                (2 * h + 1, 2 * h + 1),
                s,
                dst=out[b, c],
                sigmaY=s,
                borderType=cv2.BORDER_CONSTANT,
            )
    return out


def scipy_blur(planes, s: float):
    """``scipy.ndimage.gaussian_filter`` over the last two axes, same radius, zero border."""
    from scipy import ndimage

    h = sigma.kernel_radius(s, STD_DEVS)
    return ndimage.gaussian_filter(planes, s, mode="constant", radius=h, axes=(2, 3))


# ----------------------------------------------------------------------------- cases


def full_cov(s: float, dtype, device) -> torch.Tensor:
    """The benchmark's rotated covariance: major axis σ, minor axis σ/2, at 30 degrees."""
    return sigma.rotated_cov(s, s / 2, math.pi / 6, dtype=dtype).to(device)


def methods_of(fn) -> tuple[str, ...]:
    """``('auto', exact methods...)`` that ``fn`` accepts, or ``()`` if it takes no ``method``."""
    if "method" not in inspect.signature(fn).parameters:
        return ()
    known = set(getattr(sigma._checks, "METHODS", ())) or {"auto", "direct", "matmul", "fft"}
    first = [m for m in ("auto", "direct", "matmul", "fft") if m in known]
    return tuple(first + sorted(known - set(first)))


def _compiled(module, backend: str):
    """``torch.compile(module)``, after clearing dynamo's caches.

    Every row builds its own modules and is timed before the next row is built, so no
    earlier compiled module is needed again; without the reset, the recompiles of
    ``Blur2d.forward`` across rows would reach dynamo's recompile limit and later rows
    would silently run eager.
    """
    torch._dynamo.reset()
    return torch.compile(module, backend=backend)


def cases(
    op: str, s: float, x: torch.Tensor, mode: str = "forward+backward", compile_backend: str | None = None
):
    """(implementation name, function of no arguments) pairs for one row.

    ``mode='forward+backward'``: each function runs the forward and the backward with
    respect to the input and the scale parameters. ``mode='forward'``: the forward only,
    under ``torch.no_grad()`` (the inference path). ``compile_backend``: also time
    ``torch.compile``'d modules with this backend (module and small-input rows).
    """
    dtype, device = x.dtype, x.device
    backward = mode == "forward+backward"
    p = torch.tensor(s, dtype=dtype, device=device, requires_grad=backward)  # scale parameter
    xi = x if backward else x.detach()
    out = []

    def fb(fn):
        if not backward:

            def fwd():
                with torch.no_grad():
                    fn()

            return fwd

        def run():
            y = fn()
            y.backward(torch.ones_like(y))

        return run

    def step(fn):
        """Forward + backward as a training step runs them (``backward_cost`` rows): the output
        gradient arrives from the layers above, so it is made once here (their work is not this
        layer's cost), and the gradients start from None, as after ``zero_grad()`` (which sets
        them to None by default), so the backward accumulates into nothing."""
        grad = []

        def run():
            xi.grad = p.grad = None
            y = fn()
            if not grad:
                grad.append(torch.ones_like(y))
            y.backward(grad[0])

        return run

    def with_methods(name, call, skip=()):
        if s > FUSED_MAX_SIGMA or dtype != torch.float32:
            # the fused loops unroll every tap (long kernels compile for minutes), and each dtype
            # compiles its own: float32 rows only, up to 33 taps
            skip = tuple(skip) + ("fused",)
        for m in methods_of(getattr(sigma, name)):
            if m not in skip:
                out.append((f"sigma[{m}]", fb(lambda m=m: call(m))))

    if op == "blur2d_sphere":
        with_methods(op, lambda m: sigma.blur2d_sphere(xi, p, STD_DEVS, method=m))
        out.append(("kornia", fb(lambda: kornia_blur(xi, p))))
        if not backward and device.type == "cpu":
            planes = x.detach().numpy()
            out.append(("opencv", lambda: opencv_blur(planes, s)))
            out.append(("scipy", lambda: scipy_blur(planes, s)))
        if backward and s <= ORIGINAL_MAX_SIGMA:
            out.append(("original", fb(lambda: original_blur(xi, p))))
        if backward and s <= DENSE_MAX_SIGMA:
            out.append(("dense_conv", fb(lambda: dense_blur(xi, sigma.gauss2d_sphere(p, STD_DEVS)))))
    elif op == "blur2d_diag":
        with_methods(op, lambda m: sigma.blur2d_diag(xi, p, p / 2, STD_DEVS, method=m))
    elif op == "dog2d":
        with_methods(op, lambda m: sigma.dog2d(xi, p, DOG_RATIO * p, STD_DEVS, method=m))
    elif op == "blur2d_full":
        logchol = sigma.cov_to_logchol(full_cov(s, dtype, device)).requires_grad_(backward)
        skip = ("fused", "direct", "matmul") if s > DENSE_MAX_SIGMA else ("fused",)  # fused: separable only
        with_methods(op, lambda m: sigma.blur2d_full(xi, sigma.logchol_to_cov(logchol), method=m), skip)
        if backward and s <= DENSE_MAX_SIGMA:
            out.append(
                ("dense_conv", fb(lambda: dense_blur(xi, sigma.gauss2d_full(sigma.logchol_to_cov(logchol)))))
            )
    elif op == "backward_cost" and backward and s <= BACKWARD_COST_MAX_SIGMA:
        out.append(("forward", lambda: sigma.blur2d_sphere(xi, p, STD_DEVS)))  # graph recorded, no backward
        out.append(("forward+backward", step(lambda: sigma.blur2d_sphere(xi, p, STD_DEVS))))
        if "fused" in methods_of(sigma.blur2d_sphere):
            out.append(("fused forward", lambda: sigma.blur2d_sphere(xi, p, STD_DEVS, method="fused")))
            out.append(
                ("fused forward+backward", step(lambda: sigma.blur2d_sphere(xi, p, STD_DEVS, method="fused")))
            )
            if _fused.available(x.device):  # the engine's own calls, not the eager fallback
                out.extend(fused_engine_cases(x.detach(), s))
    elif op == "scale_space" and s in SCALE_SPACE_SIGMAS and backward:
        for name, opts in SCALE_SPACE.items():
            out.append((name, fb(lambda opts=opts: sigma.blur2d_sphere(xi, p, STD_DEVS, **opts))))
    elif op == "blur2d_local_sphere" and s <= LOCAL_MAX_SIGMA:
        gen = torch.Generator().manual_seed(0)
        base = (0.5 + 0.5 * torch.rand(x.shape[0], 1, *x.shape[2:], generator=gen)).to(device, dtype)
        h = sigma.kernel_radius(s, STD_DEVS)
        methods = methods_of(sigma.blur2d_local_sphere)
        if methods:
            with_methods(op, lambda m: sigma.blur2d_local_sphere(xi, base * p, radius=h, method=m))
        else:  # one implementation, named as in the committed CSV
            out.append(("sigma", fb(lambda: sigma.blur2d_local_sphere(xi, base * p, radius=h))))
        if backward and s <= UNFOLD_MAX_SIGMA:
            out.append(("unfold", fb(lambda: unfold_local(xi, base * p, h))))
    elif op in ("module_sphere", "module_full") and backward and compile_backend and s in COMPILE_SIGMAS:
        # a fixed radius, as the README recommends for torch.compile (one graph, no host read),
        # in the eager module too, so that the two differ only in the compilation
        structure, h = op.split("_", 1)[1], sigma.kernel_radius(s, STD_DEVS)
        eager = sigma.Blur2d(s, structure, radius=h, device=device, dtype=dtype)
        compiled = _compiled(
            sigma.Blur2d(s, structure, radius=h, device=device, dtype=dtype), compile_backend
        )
        out.append(("eager", fb(lambda: eager(xi))))
        out.append(("compiled", fb(lambda: compiled(xi))))
    return out


def fused_engine_cases(x: torch.Tensor, s: float):
    """The fused engine's separable blur without autograd or kernel building (backward_cost rows):
    ``fused engine: forward`` borders ``x`` into a new buffer and runs the compiled loop that keeps
    the row pass (what training runs), ``fused engine: backward`` computes the input gradient and
    both kernel gradients from a gradient of ones, ``fused engine: input gradient`` the first alone.
    Their ratio is set by the loops' arithmetic: the input gradient is one more separable blur
    (the adjoint), the kernel gradients one more correlation per axis."""
    from sigma.kernels import _gauss1d

    h = sigma.kernel_radius(s, STD_DEVS)
    w = _gauss1d(torch.tensor(s, dtype=x.dtype, device=x.device), h)

    def forward():
        xp = _fused2d._bordered2(x, h, h, "zeros", _fused._fresh_buffer)
        return xp, *_fused2d._sep_forward(x, w, w, "zeros", xp, keep=True)

    xp, t, y = forward()
    g = torch.ones_like(y)

    def backward(need):
        return lambda: _fused2d._sep_backward(g, x, w, w, xp, t, "zeros", need)

    parts = (forward, backward((True, True, True)), backward((True, False, False)))
    return [(f"fused engine: {name}", fn) for name, fn in zip(ENGINE_PARTS, parts, strict=True)]


def small_cases(shape, s: float, device: torch.device, compile_backend: str | None = None):
    """Small-input rows: forward + backward of ``sigma.Blur2d`` against kornia's module."""
    import kornia

    torch.manual_seed(0)
    x = torch.randn(shape, device=device, requires_grad=True)
    h = sigma.kernel_radius(s, STD_DEVS)
    ours = sigma.Blur2d(s, device=device)
    theirs = kornia.filters.GaussianBlur2d((2 * h + 1, 2 * h + 1), (s, s), border_type="constant")
    out = [
        ("sigma.Blur2d", lambda: ours(x).sum().backward()),
        ("kornia.GaussianBlur2d", lambda: theirs(x).sum().backward()),
    ]
    if compile_backend:
        compiled = _compiled(sigma.Blur2d(s, device=device), compile_backend)
        out.append(("sigma.Blur2d[compiled]", lambda: compiled(x).sum().backward()))
        # the same with a fixed radius= (one graph, as the README recommends for compiling), and
        # the layer a σ layer stands in for, eager and compiled: what compiling costs any layer at
        # this size (its fixed per-call cost), the reference for the compiled target's small rows
        with_radius = torch.compile(sigma.Blur2d(s, radius=h, device=device), backend=compile_backend)
        out.append(("sigma.Blur2d[compiled, radius]", lambda: with_radius(x).sum().backward()))
        C = shape[1]
        conv = torch.nn.Conv2d(C, C, 3, padding=1, device=device)
        conv_compiled = torch.compile(
            torch.nn.Conv2d(C, C, 3, padding=1, device=device), backend=compile_backend
        )
        out.append(("nn.Conv2d", lambda: conv(x).sum().backward()))
        out.append(("nn.Conv2d[compiled]", lambda: conv_compiled(x).sum().backward()))
    return out


def njet_cases(s: float, device: torch.device):
    """N-jet rows: forward + backward of ``sigma.NJetConv2d`` (order 2) against ``nn.Conv2d`` 3 x 3."""
    torch.manual_seed(0)
    B, C, H, W = NJET_SHAPE
    x = torch.randn(NJET_SHAPE, device=device, requires_grad=True)
    layers = {
        "sigma.NJetConv2d": sigma.NJetConv2d(C, C, order=2, sigma=s, device=device),
        "sigma.NJetConv2d[separable]": sigma.NJetConv2d(
            C, C, order=2, sigma=s, method="direct", device=device
        ),
        "nn.Conv2d 3x3": torch.nn.Conv2d(C, C, 3, padding=1, device=device),
    }
    return [(name, lambda m=m: m(x).sum().backward()) for name, m in layers.items()]


# ----------------------------------------------------------------------------- measuring


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(field)


def peak_memory_mb(fn, device: torch.device) -> float:
    """Peak memory one call adds on top of what was live before it, in MiB.

    CUDA: the caching allocator's peak. CPU (Linux): the process' peak resident set
    size (``VmHWM``), reset through ``/proc/self/clear_refs`` just before the call, minus
    the resident size before it; this counts every page the call touched, whichever
    allocator handed it out.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    import ctypes

    gc.collect()
    try:  # hand freed heap pages back to the OS, so reused pages do not hide the peak
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
    except OSError:
        return math.nan
    fn()
    return max(0, _status_kib("VmHWM") - before) / 1024


def schedule(names, rounds: int) -> list[list[str]]:
    """The order in which the implementations run in each round: as given, then reversed, ..."""
    names = list(names)
    return [names if r % 2 == 0 else names[::-1] for r in range(rounds)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_calls(fn, device: torch.device, budget: float) -> list[float]:
    """Seconds per call of ``fn``, called until ``budget`` seconds have passed (at least once)."""
    times = []
    spent = 0.0
    while not times or spent < budget:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return times


def summarize(per_round: list[list[float]]) -> dict[str, float]:
    """Statistics (ms) of one implementation's per-round call times (seconds).

    ``median_ms``: median of the per-round medians; ``round_min_ms`` / ``round_max_ms``:
    the fastest and slowest per-round medians (the spread); ``iqr_ms``: interquartile
    range of all calls; ``calls``: number of timed calls.
    """
    medians = [statistics.median(ts) for ts in per_round]
    every = sorted(t for ts in per_round for t in ts)
    q = statistics.quantiles(every, n=4, method="inclusive") if len(every) > 1 else [every[0]] * 3
    return {
        "median_ms": statistics.median(medians) * 1e3,
        "iqr_ms": (q[2] - q[0]) * 1e3,
        "round_min_ms": min(medians) * 1e3,
        "round_max_ms": max(medians) * 1e3,
        "rounds": len(per_round),
        "calls": len(every),
    }


def measure(fns: dict, device: torch.device, min_run_time: float, rounds: int = ROUNDS) -> dict:
    """``{name: statistics}`` (see `summarize`) for functions raced in interleaved rounds.

    Every function is called once first (warm-up: FFT plans, the allocator, compilation).
    Then ``rounds`` rounds: in each, every function is called for ``min_run_time / rounds``
    seconds (at least once), in the order of `schedule` (reversed every other round), so a
    slow-down of the machine falls on every implementation alike and no implementation
    always runs first or last.
    """
    for fn in fns.values():
        fn()
    per_round = {name: [] for name in fns}
    for order in schedule(fns, rounds):
        for name in order:
            per_round[name].append(_time_calls(fns[name], device, min_run_time / rounds))
    return {name: summarize(ts) for name, ts in per_round.items()}


# ----------------------------------------------------------------------------- targets


def print_regret_table(regret: dict) -> None:
    sigmas = sorted({s for by_sigma in regret.values() for s in by_sigma})
    print("# auto regret: auto's time / the fastest exact method's (float32, median of rounds)")
    print(f"  {'structure':22s} {'grad case':17s}" + "".join(f"{'σ=' + format(s, 'g'):>8s}" for s in sigmas))
    for op in STRUCTURES:
        for mode in MODES:
            by_sigma = regret.get((op, mode))
            if by_sigma:
                cells = "".join(f"{by_sigma[s][0]:8.2f}" if s in by_sigma else f"{'-':>8s}" for s in sigmas)
                print(f"  {op:22s} {mode:17s}{cells}")


def report(rows: list[dict]) -> int:
    """Print the scale-space costs, the auto regret table and the targets; 1 if a target fails."""
    costs = scale_space_costs(rows)
    if costs:
        print("# scale space: cost relative to the plain blur")
        for line in costs:
            print("  " + line)
    for s, ratios in sorted(njet_costs(rows).items()):
        cells = ", ".join(f"{impl} {r:.2f} x" for impl, r in ratios.items())
        print(f"# N-jet layer, σ = {s:g}, forward + backward, time / nn.Conv2d 3x3's: {cells}")
    regret = regret_table(rows)
    if regret:
        print_regret_table(regret)
    failed = 0
    print("# targets (float32): measured value and verdict")
    for target in check_targets(rows):
        failed += target.verdict is False
        print(f"  [{target.status}] {target.name}: {target.detail}")
    print(f"# {failed} target(s) failed")
    return 1 if failed else 0


# ----------------------------------------------------------------------------- per-call overhead

OVERHEAD_SHAPE = (1, 3, 32, 32)


def overhead(device: torch.device, min_run_time: float = 0.5, rounds: int = ROUNDS) -> dict[str, float]:
    """Forward + backward time of a layer on a tiny ``(1, 3, 32, 32)`` input (microseconds).

    At this size the work is negligible and the time is per-call overhead: argument
    checks, kernel construction, device-to-host reads. Printed, not written to the CSV.
    """
    import kornia

    torch.manual_seed(0)
    x = torch.randn(OVERHEAD_SHAPE, device=device, requires_grad=True)
    layers = {
        "sigma.Blur2d()": sigma.Blur2d(1.5, device=device),
        "sigma.Blur2d(radius=3)": sigma.Blur2d(1.5, radius=3, device=device),
        "sigma.Blur2d(channels=3)": sigma.Blur2d(1.5, channels=3, device=device),
        "sigma.Blur2d('full')": sigma.Blur2d(1.5, "full", device=device),
        "sigma.Blur2d('full', radius=3)": sigma.Blur2d(1.5, "full", radius=3, device=device),
    }
    s = torch.tensor([[1.5, 1.5]], device=device, requires_grad=True)
    kb = kornia.filters.GaussianBlur2d((7, 7), (1.5, 1.5), border_type="constant")
    fns = {name: (lambda m=m: m(x).sum().backward()) for name, m in layers.items()}
    fns["kornia.filters.GaussianBlur2d (fixed σ)"] = lambda: kb(x).sum().backward()
    fns["kornia.filters.gaussian_blur2d (σ tensor)"] = lambda: (
        kornia.filters.gaussian_blur2d(x, (7, 7), s, "constant").sum().backward()
    )
    return {name: t["median_ms"] * 1e3 for name, t in measure(fns, device, min_run_time, rounds).items()}


# ----------------------------------------------------------------------------- main


def planned_rows(shape, sigmas, ops, modes, dtypes, device, compile_backend=None):
    """Yield ``(op as in the CSV, mode, dtype, σ, shape, kernel size, {impl: fn})`` for every row."""
    for dtype in dtypes:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_()
        for mode in modes:
            for op in ops:
                if op in ("small_input", "njet_layer"):
                    continue
                for s in sigmas:
                    fns = dict(cases(op, s, x, mode, compile_backend))
                    if fns:
                        k = 2 * sigma.kernel_radius(s, STD_DEVS) + 1
                        yield op_name(op, mode), mode, dtype, s, shape, k, fns
        if "small_input" in ops and dtype == torch.float32 and "forward+backward" in modes:
            for small in SMALL_SHAPES:
                for s in SMALL_SIGMAS:
                    k = 2 * sigma.kernel_radius(s, STD_DEVS) + 1
                    yield (
                        "small_input",
                        "forward+backward",
                        dtype,
                        s,
                        small,
                        k,
                        dict(small_cases(small, s, device, compile_backend)),
                    )
        if "njet_layer" in ops and dtype == torch.float32 and "forward+backward" in modes:
            for s in NJET_SIGMAS:
                k = 2 * sigma.kernel_radius(s, STD_DEVS) + 1
                yield "njet_layer", "forward+backward", dtype, s, NJET_SHAPE, k, dict(njet_cases(s, device))


def main(argv=None) -> int:
    # the objects alive now (the interpreter's, or a test runner's) are left out of every later
    # gc.collect (peak_memory_mb runs one before each measured call): each scans only what the
    # benchmark made since
    gc.freeze()
    try:
        return _main(argv)
    finally:
        gc.unfreeze()


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="float32 only and shorter timing runs")
    ap.add_argument("--out", default=None, help="CSV path (default: sigma/book/results/blur_<device>.csv)")
    ap.add_argument(
        "--min-run-time",
        type=float,
        default=None,
        help="seconds of timing per implementation and row, all rounds",
    )
    ap.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"interleaved rounds per row (default {ROUNDS})"
    )
    ap.add_argument("--shape", default="x".join(map(str, SHAPE)), help="input shape B x C x H x W")
    ap.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS), help="comma-separated σ values")
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated row groups to time")
    ap.add_argument("--modes", default=",".join(MODES), help="grad cases: forward+backward, forward")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile'd modules beside eager (about 30 s of compiling per module)",
    )
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend for --compile")
    ap.add_argument(
        "--update", action="store_true", help="keep the existing CSV's rows of the ops not timed in this run"
    )
    ap.add_argument("--overhead", action="store_true", help="only the per-call overhead table (tiny input)")
    ap.add_argument(
        "--report", metavar="CSV", help="print the tables and targets of an existing CSV; no timing"
    )
    ap.add_argument(
        "--plan", action="store_true", help="list the rows a run would time, and a lower bound of its time"
    )
    args = ap.parse_args(argv)
    if args.report:
        return report(read_rows(args.report))
    shape = tuple(int(v) for v in args.shape.split("x"))
    sigmas = tuple(float(v) for v in args.sigmas.split(","))
    device = torch.device(args.device)
    ops = args.ops.split(",")
    unknown = set(ops) - set(OPS)
    if unknown:
        ap.error(f"--ops: unknown {sorted(unknown)}; choose from {', '.join(OPS)}")
    modes = args.modes.split(",")
    if set(modes) - set(MODES):
        ap.error(f"--modes: choose from {', '.join(MODES)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    dtypes = (torch.float32,) if args.quick else (torch.float32, torch.float64)
    min_run_time = args.min_run_time or (0.2 if args.quick else 1.0)
    backend = args.compile_backend if args.compile else None
    if device.type == "cpu":
        try:  # OpenCV gets the threads PyTorch uses
            import cv2

            cv2.setNumThreads(torch.get_num_threads())
        except ImportError:
            pass
    if args.overhead:
        _print_overhead(device, min_run_time, args.rounds)
        return 0
    if args.plan:
        n_rows = n_impl = 0
        for op, _mode, dtype, s, shp, _k, fns in planned_rows(
            shape, sigmas, ops, modes, dtypes, device, backend
        ):
            n_rows += 1
            n_impl += len(fns)
            print(f"{op:28s} {str(dtype)[6:]:8s} σ={s:<5g} {'x'.join(map(str, shp)):12s} {', '.join(fns)}")
        print(
            f"# {n_rows} rows, {n_impl} timed implementations x {min_run_time:g} s = at least "
            f"{n_impl * min_run_time / 60:.1f} min of timing, plus one warm-up and one memory call each "
            f"and the last call of every round (slow baselines: {args.rounds} calls or more)"
        )
        return 0
    info = machine(device)
    info["baselines"] = baseline_versions()
    out = Path(
        args.out
        or Path(__file__).resolve().parent.parent / "sigma" / "book" / "results" / f"blur_{device.type}.csv"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"# machine: {info}")
    print(f"# allocator: {allocator()}")
    print(
        f"# input {shape}; {args.rounds} interleaved rounds per row (order reversed every other round), "
        "median of the per-round medians, spread = fastest and slowest round"
    )
    header = (
        f"{'op':28s} {'dtype':8s} {'σ':>5s} {'k':>4s} {'impl':22s} {'median ms':>10s} "
        f"{'rounds ms':>17s} {'iqr ms':>8s} {'peak MiB':>9s}"
    )
    print(header)
    rows = []
    start = time.time()
    for op, mode, dtype, s, shp, k, fns in planned_rows(shape, sigmas, ops, modes, dtypes, device, backend):
        timings = measure(fns, device, min_run_time, args.rounds)
        for impl, fn in fns.items():
            t = timings[impl]
            mem = peak_memory_mb(fn, device)
            row = dict(
                op=op,
                impl=impl,
                dtype=str(dtype).replace("torch.", ""),
                sigma=s,
                kernel_size=k,
                median_ms=f"{t['median_ms']:.4f}",
                iqr_ms=f"{t['iqr_ms']:.4f}",
                peak_mib=f"{mem:.1f}",
                shape="x".join(map(str, shp)),
                mode=mode,
                rounds=t["rounds"],
                round_min_ms=f"{t['round_min_ms']:.4f}",
                round_max_ms=f"{t['round_max_ms']:.4f}",
                calls=t["calls"],
                **info,
            )
            rows.append(row)
            spread = f"{t['round_min_ms']:.2f}-{t['round_max_ms']:.2f}"
            print(
                f"{op:28s} {row['dtype']:8s} {s:5g} {k:4d} {impl:22s} {t['median_ms']:10.3f} "
                f"{spread:>17s} {t['iqr_ms']:8.2f} {mem:9.1f}",
                flush=True,
            )
    timed = len(rows)
    if args.update and out.is_file():  # keep the other ops' rows, in their order, before the new ones
        ran = {r["op"] for r in rows}
        rows = [r for r in read_rows(out) if r["op"] not in ran] + rows
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    print(f"# wrote {timed} timed rows ({len(rows)} in all) to {out} in {time.time() - start:.0f} s")
    status = report(rows)
    _print_overhead(device, min_run_time, args.rounds)
    return status


def _print_overhead(device: torch.device, min_run_time: float, rounds: int = ROUNDS) -> None:
    print(f"# per-call overhead: forward + backward on {OVERHEAD_SHAPE}, float32, median of rounds")
    for name, us in overhead(device, min_run_time, rounds).items():
        print(f"  {name:44s} {us:8.1f} us")


if __name__ == "__main__":
    sys.exit(main())
