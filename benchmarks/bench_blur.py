"""Speed of differentiable Gaussian blurs: sigma against the alternatives, side by side.

Every row times one forward pass plus the backward pass with respect to the input
and the scale parameters (median of repeated runs with ``torch.utils.benchmark``,
the implementations of one row group taking turns), on
an input of shape (8, 3, 256, 256), for σ in {0.5, 1, 2, 4, 8, 16, 32, 64}, in float32
and float64. Compared implementations:

* ``sigma``'s blurs with ``method='auto'`` (the default), ``'direct'``, ``'matmul'``
  and ``'fft'``;
* ``kornia.filters.gaussian_blur2d`` with the same kernel support and a constant border;
* the original-style blur: channels packed into the batch and a single-channel
  separable ``conv2d`` per axis;
* a dense 2D depthwise convolution with the full k x k kernel;
* for the per-pixel blur, an im2col implementation (``F.unfold``) of the same sum;
* scale-space variants of ``blur2d_sphere`` (op ``scale_space``, σ in {1, 4, 16}): the
  Gaussian derivatives ``order=(1, 1)`` and ``order=(2, 0)`` and ``kernel='discrete'``
  beside the plain blur (``order=0``), reported as their cost relative to it.

Slow baselines are skipped where a single run would take too long (the table says
which). Results go to ``sigma/book/results/blur_<device>.csv`` together with the
machine description, and the script checks the project's speed targets at the end.

Usage: ``python benchmarks/bench_blur.py [--quick] [--device cpu|cuda] [--out PATH]``
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils import benchmark

import sigma

SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
SHAPE = (8, 3, 256, 256)
STD_DEVS = 2.0
# Skip a baseline when its kernel has more taps than this (one run would take minutes).
DENSE_MAX_SIGMA = 8.0
UNFOLD_MAX_SIGMA = 4.0  # k = 17: the unfolded matrix is already 1.8 GB in float32
LOCAL_MAX_SIGMA = 8.0
ORIGINAL_MAX_SIGMA = 64.0
OPS = ("blur2d_sphere", "blur2d_full", "blur2d_local_sphere", "scale_space")
SCALE_SPACE_SIGMAS = (1.0, 4.0, 16.0)
#: scale_space rows: implementation name -> blur2d_sphere options
SCALE_SPACE = {
    "order=0": {},
    "order=(1,1)": {"order": (1, 1)},
    "order=(2,0)": {"order": (2, 0)},
    "discrete": {"kernel": "discrete"},
}
ROUNDS = 3  # implementations take turns this many times (see `measure`)


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


# ----------------------------------------------------------------------------- cases


def full_cov(s: float, dtype, device) -> torch.Tensor:
    """The benchmark's rotated covariance: major axis σ, minor axis σ/2, at 30 degrees."""
    return sigma.rotated_cov(s, s / 2, math.pi / 6, dtype=dtype).to(device)


def cases(op: str, s: float, x: torch.Tensor):
    """(implementation name, function of no arguments doing forward + backward) pairs."""
    dtype, device = x.dtype, x.device
    p = torch.tensor(s, dtype=dtype, device=device, requires_grad=True)  # scale parameter
    out = []

    def fb(fn):
        def run():
            y = fn()
            y.backward(torch.ones_like(y))

        return run

    if op == "blur2d_sphere":
        for m in ("auto", "direct", "matmul", "fft"):
            out.append((f"sigma[{m}]", fb(lambda m=m: sigma.blur2d_sphere(x, p, STD_DEVS, method=m))))
        out.append(("kornia", fb(lambda: kornia_blur(x, p))))
        if s <= ORIGINAL_MAX_SIGMA:
            out.append(("original", fb(lambda: original_blur(x, p))))
        if s <= DENSE_MAX_SIGMA:
            out.append(("dense_conv", fb(lambda: dense_blur(x, sigma.gauss2d_sphere(p, STD_DEVS)))))
    elif op == "blur2d_full":
        logchol = sigma.cov_to_logchol(full_cov(s, dtype, device)).requires_grad_()
        for m in ("auto", "direct", "matmul", "fft"):
            if m in ("direct", "matmul") and s > DENSE_MAX_SIGMA:
                continue
            out.append(
                (f"sigma[{m}]", fb(lambda m=m: sigma.blur2d_full(x, sigma.logchol_to_cov(logchol), method=m)))
            )
        if s <= DENSE_MAX_SIGMA:
            out.append(
                ("dense_conv", fb(lambda: dense_blur(x, sigma.gauss2d_full(sigma.logchol_to_cov(logchol)))))
            )
    elif op == "scale_space" and s in SCALE_SPACE_SIGMAS:
        for name, opts in SCALE_SPACE.items():
            out.append((name, fb(lambda opts=opts: sigma.blur2d_sphere(x, p, STD_DEVS, **opts))))
    elif op == "blur2d_local_sphere" and s <= LOCAL_MAX_SIGMA:
        gen = torch.Generator().manual_seed(0)
        base = (0.5 + 0.5 * torch.rand(x.shape[0], 1, *x.shape[2:], generator=gen)).to(device, dtype)
        scale = torch.tensor(s, dtype=dtype, device=device, requires_grad=True)
        h = sigma.kernel_radius(s, STD_DEVS)
        out.append(("sigma", fb(lambda: sigma.blur2d_local_sphere(x, base * scale, radius=h))))
        if s <= UNFOLD_MAX_SIGMA:
            out.append(("unfold", fb(lambda: unfold_local(x, base * scale, h))))
    return out


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
    import gc

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


def _timer(fn, device: torch.device) -> benchmark.Timer:
    if device.type == "cuda":
        return benchmark.Timer(
            stmt="fn(); torch.cuda.synchronize()",
            globals={"fn": fn, "torch": torch},
            num_threads=torch.get_num_threads(),
        )
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())


def measure(fns: dict, device: torch.device, min_run_time: float, rounds: int = ROUNDS) -> dict:
    """``{name: (median ms, iqr ms)}`` for functions timed side by side.

    The functions take turns: ``rounds`` rounds, each giving every function
    ``min_run_time / rounds`` seconds of ``blocked_autorange``, and the statistics are
    over all blocks of all rounds. A slow-down of the machine during the run then
    falls on every implementation alike instead of on whichever ran at that moment.
    A function whose first round already took longer than ``min_run_time`` is not
    run again.
    """
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up (FFT plans, allocator)
    for r in range(rounds):
        for name, fn in fns.items():
            if r and sum(times[name]) > min_run_time:
                continue
            m = _timer(fn, device).blocked_autorange(min_run_time=min_run_time / rounds)
            times[name] += m.times
    out = {}
    for name, ts in times.items():
        q1, med, q3 = torch.tensor(ts, dtype=torch.float64).quantile(
            torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
        )
        out[name] = (med.item() * 1e3, (q3 - q1).item() * 1e3)
    return out


# ----------------------------------------------------------------------------- targets


def check_targets(rows: list[dict]) -> list[tuple[str, bool, str]]:
    def t(op, impl, s, dtype="float32"):
        for r in rows:
            if (r["op"], r["impl"], float(r["sigma"]), r["dtype"]) == (op, impl, s, dtype):
                return float(r["median_ms"])
        return math.nan

    results = []
    worst = min(
        (t("blur2d_sphere", "kornia", s) / t("blur2d_sphere", "sigma[auto]", s), s)
        for s in SIGMAS
        if 1 <= s <= 32
    )
    results.append(
        (
            "blur2d_sphere (auto) >= 4x faster than kornia for σ in [1, 32]",
            worst[0] >= 4,
            f"smallest speed-up {worst[0]:.1f}x at σ = {worst[1]:g}",
        )
    )
    ratio = t("blur2d_sphere", "sigma[auto]", 64.0) / t("blur2d_sphere", "sigma[auto]", 1.0)
    results.append(("blur2d_sphere time(σ=64) <= 1.5 x time(σ=1)", ratio <= 1.5, f"ratio {ratio:.2f}"))
    sp = t("blur2d_full", "dense_conv", 8.0) / t("blur2d_full", "sigma[auto]", 8.0)
    results.append(("blur2d_full at σ=8 >= 10x faster than a dense conv2d", sp >= 10, f"speed-up {sp:.1f}x"))
    sp = t("blur2d_local_sphere", "unfold", 4.0) / t("blur2d_local_sphere", "sigma", 4.0)
    results.append(("blur2d_local_sphere at k=17 >= 5x faster than unfold", sp >= 5, f"speed-up {sp:.1f}x"))
    return results


def scale_space_costs(rows: list[dict]) -> list[str]:
    """Cost of each scale-space variant relative to the plain blur (``order=0``), per dtype and σ."""
    base = {
        (r["dtype"], float(r["sigma"])): float(r["median_ms"])
        for r in rows
        if r["op"] == "scale_space" and r["impl"] == "order=0"
    }
    lines = []
    for r in rows:
        key = (r["dtype"], float(r["sigma"]))
        if r["op"] == "scale_space" and r["impl"] != "order=0" and key in base:
            ratio = float(r["median_ms"]) / base[key]
            lines.append(f"{r['impl']:12s} {r['dtype']:8s} σ = {key[1]:<4g} {ratio:5.2f} x order=0")
    return lines


# ----------------------------------------------------------------------------- per-call overhead

OVERHEAD_SHAPE = (1, 3, 32, 32)


def overhead(device: torch.device, min_run_time: float = 0.5) -> dict[str, float]:
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
    return {name: med * 1e3 for name, (med, _) in measure(fns, device, min_run_time).items()}


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="float32 only and shorter timing runs")
    ap.add_argument("--out", default=None, help="CSV path (default: sigma/book/results/blur_<device>.csv)")
    ap.add_argument("--min-run-time", type=float, default=None, help="seconds of timing per row")
    ap.add_argument("--shape", default="x".join(map(str, SHAPE)), help="input shape B x C x H x W")
    ap.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS), help="comma-separated σ values")
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated blurs to time")
    ap.add_argument("--overhead", action="store_true", help="only the per-call overhead table (tiny input)")
    args = ap.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split("x"))
    sigmas = tuple(float(v) for v in args.sigmas.split(","))
    device = torch.device(args.device)
    unknown = set(args.ops.split(",")) - set(OPS)
    if unknown:
        ap.error(f"--ops: unknown {sorted(unknown)}; choose from {', '.join(OPS)}")
    dtypes = (torch.float32,) if args.quick else (torch.float32, torch.float64)
    min_run_time = args.min_run_time or (0.2 if args.quick else 1.0)
    if args.overhead:
        _print_overhead(device, min_run_time)
        return 0
    info = machine(device)
    out = Path(
        args.out
        or Path(__file__).resolve().parent.parent / "sigma" / "book" / "results" / f"blur_{device.type}.csv"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"# machine: {info}")
    print(f"# input {shape}, forward + backward (input and scale), median of repeated runs")
    header = f"{'op':20s} {'dtype':8s} {'σ':>5s} {'k':>4s} {'impl':14s} {'median ms':>10s} {'iqr ms':>8s} {'peak MiB':>9s}"
    print(header)
    rows = []
    start = time.time()
    for dtype in dtypes:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_()
        for op in args.ops.split(","):
            for s in sigmas:
                k = 2 * sigma.kernel_radius(s, STD_DEVS) + 1
                fns = dict(cases(op, s, x))
                timings = measure(fns, device, min_run_time) if fns else {}
                for impl, fn in fns.items():
                    med, iqr = timings[impl]
                    mem = peak_memory_mb(fn, device)
                    x.grad = None
                    row = dict(
                        op=op,
                        impl=impl,
                        dtype=str(dtype).replace("torch.", ""),
                        sigma=s,
                        kernel_size=k,
                        median_ms=f"{med:.3f}",
                        iqr_ms=f"{iqr:.3f}",
                        peak_mib=f"{mem:.1f}",
                        shape="x".join(map(str, shape)),
                        **info,
                    )
                    rows.append(row)
                    print(
                        f"{op:20s} {row['dtype']:8s} {s:5g} {k:4d} {impl:14s} {med:10.2f} {iqr:8.2f} {mem:9.1f}",
                        flush=True,
                    )
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"# wrote {len(rows)} rows to {out} in {time.time() - start:.0f} s")
    costs = scale_space_costs(rows)
    if costs:
        print("# scale space: cost relative to the plain blur")
        for line in costs:
            print("  " + line)
    failed = 0
    if torch.float32 in dtypes:
        print("# targets (float32):")
        for name, ok, detail in check_targets(rows):
            failed += not ok
            print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    _print_overhead(device, min_run_time)
    return 1 if failed else 0


def _print_overhead(device: torch.device, min_run_time: float) -> None:
    print(f"# per-call overhead: forward + backward on {OVERHEAD_SHAPE}, float32, median")
    for name, us in overhead(device, min_run_time).items():
        print(f"  {name:44s} {us:8.1f} us")


if __name__ == "__main__":
    sys.exit(main())
