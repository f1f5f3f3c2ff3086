"""Inference speed of each σ layer as deployed: eager PyTorch, ONNX Runtime, torch.compile.

Every layer is built with a fixed ``radius=`` (what export and compile need), exported with
``torch.onnx.export(..., dynamo=True)``, checked to run equal to eager in ONNX Runtime, compiled
with inductor, and the three are raced side by side in interleaved rounds (the order reversed
every other round; the median of the per-round medians is reported, with the spread). Input:
``(1, 3, 224, 224)`` float32 by default, inference (``torch.inference_mode``); ONNX Runtime runs
on as many threads as PyTorch.

Usage: ``python benchmarks/bench_deploy.py [--size N] [--rounds N] [--layers NAME,...]
[--no-compile]``. Prints a table (milliseconds per call, and ONNX Runtime and compiled against
eager) and the machine it ran on.
"""

from __future__ import annotations

import argparse
import io
import logging
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

import sigma

LAYERS: dict[str, Callable[[], torch.nn.Module]] = {
    "Blur2d sigma=1.5": lambda: sigma.Blur2d(1.5, radius=3),
    "Blur2d sigma=4": lambda: sigma.Blur2d(4.0, radius=8),
    "Blur2d full": lambda: sigma.Blur2d(1.5, "full", radius=3),
    "GaussConv2d 3->16": lambda: sigma.GaussConv2d(3, 16, 3, sigma=1.5, radius=3),
    "NJetConv2d 3->16": lambda: sigma.NJetConv2d(3, 16, order=2, sigma=1.5, radius=4),
    "DynamicBlur2d": lambda: sigma.DynamicBlur2d(3, sigma=1.0, sigma_range=(0.5, 2.0)),
}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def onnx_runner(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    import onnxruntime as ort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    buf = io.BytesIO(program.model_proto.SerializeToString())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    name, data = session.get_inputs()[0].name, x.numpy()
    (y,) = session.run(None, {name: data})
    with torch.inference_mode():
        ref = model(x)
    err = float((torch.from_numpy(y) - ref).abs().max() / ref.abs().max())
    if err > 1e-5:
        raise AssertionError(f"ONNX Runtime differs from eager by {err:.1e}")
    return lambda: session.run(None, {name: data})


def race(runners: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, tuple]:
    """Median of per-round medians (ms), and the fastest and slowest round, per runner."""
    per_round = {k: [] for k in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, times, end = runners[name], [], time.perf_counter() + seconds / rounds
            while time.perf_counter() < end or len(times) < 3:
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            per_round[name].append(1e3 * statistics.median(times))
    return {k: (statistics.median(v), min(v), max(v)) for k, v in per_round.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=224, help="image side (input 1 x 3 x N x N)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5, help="timing per implementation and row")
    ap.add_argument("--layers", default=",".join(LAYERS), help="comma-separated layer names")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (inductor)")
    args = ap.parse_args(argv)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # its notes on optional packages
    torch.manual_seed(0)
    x = torch.randn(1, 3, args.size, args.size)
    print(
        f"# {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, input {tuple(x.shape)}"
    )
    print("| layer | eager ms | ONNX Runtime ms | compiled ms | ORT / eager | compiled / eager |")
    print("|---|---|---|---|---|---|")
    for name in args.layers.split(","):
        model = LAYERS[name]().eval()
        runners = {"eager": lambda m=model: m(x), "onnx": onnx_runner(model, x)}
        if not args.no_compile:
            torch._dynamo.reset()
            compiled = torch.compile(model)
            runners["compiled"] = lambda c=compiled: c(x)
        with torch.inference_mode():
            for fn in runners.values():
                fn()  # warm up (and compile)
            res = race(runners, args.rounds, args.seconds)
        e = res["eager"][0]
        c = res.get("compiled", (float("nan"),))[0]
        print(
            f"| {name} | {e:.2f} | {res['onnx'][0]:.2f} | {c:.2f} | {res['onnx'][0] / e:.2f} | {c / e:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
