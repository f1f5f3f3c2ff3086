"""How much of a CPU timing is glibc's allocator: the same blurs in fresh processes, as started by
default and with glibc told to keep freed memory.

glibc hands large freed blocks back to the kernel (``munmap``, or trimming the heap's top), and the
next call that allocates them faults every page in again. Whether a process falls into that regime
depends on its allocation history, so the same code runs at different speeds in different
processes. This script starts ``--processes`` fresh Python processes per setting; each times
``sigma.blur2d_sphere`` forward on (8, 3, 256, 256) float32 with the fused engine at σ = 1 (where
the compiled loops are available) and the FFT engine at σ = 16, in interleaved rounds, and reports
its median time and minor page faults per call. The settings:

* ``default``: the environment as it is;
* ``keep``: ``GLIBC_TUNABLES`` with a 4 GiB trim threshold and a 1 GiB mmap threshold, so that
  freed blocks stay in the process (what jemalloc or tcmalloc do by default).

Usage: ``python benchmarks/bench_allocator.py [--processes 8] [--rounds 5]`` (about a minute per
8 processes on 2 cores; Linux only: page faults are read with ``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

KEEP = "glibc.malloc.trim_threshold=4294967296:glibc.malloc.mmap_threshold=1073741824"
SETTINGS = {"default": None, "keep": KEEP}
#: the forward calls timed in each process: name -> (σ, method)
CASES = {"fused, σ = 1": (1.0, "fused"), "fft, σ = 16": (16.0, "fft")}
SHAPE = (8, 3, 256, 256)


def child(rounds: int, calls: int) -> dict:
    """Time each case in this process: ``{case: (median ms, page faults per call)}``."""
    import torch

    import sigma
    from sigma import _fused

    torch.manual_seed(0)
    x = torch.randn(SHAPE)
    cases = {n: c for n, c in CASES.items() if c[1] != "fused" or _fused.available("cpu")}
    fns = {
        n: (lambda s=s, m=m: sigma.blur2d_sphere(x, torch.tensor(s), 2.0, method=m))
        for n, (s, m) in cases.items()
    }
    times = {n: [] for n in fns}
    faults = dict.fromkeys(fns, 0)
    with torch.no_grad():
        for f in fns.values():  # warm up: compiled loops, FFT plans, the allocator
            f()
            f()
        for r in range(rounds):
            for n in list(fns) if r % 2 == 0 else list(reversed(fns)):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                for _ in range(calls):
                    t0 = time.perf_counter()
                    fns[n]()
                    times[n].append(1e3 * (time.perf_counter() - t0))
                faults[n] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {n: (statistics.median(times[n]), faults[n] / len(times[n])) for n in fns}


def run(processes: int, rounds: int, calls: int) -> dict:
    """``{setting: [child results]}``, the settings' processes alternating."""
    out = {s: [] for s in SETTINGS}
    for _ in range(processes):
        for setting, tunables in SETTINGS.items():
            env = dict(os.environ)
            if tunables:
                env["GLIBC_TUNABLES"] = tunables
            cmd = [sys.executable, __file__, "--child", "--rounds", str(rounds), "--calls", str(calls)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            out[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def report(results: dict) -> list[str]:
    """One line per setting and case: the processes' medians and page faults per call."""
    lines = []
    for setting, runs in results.items():
        for case in runs[0]:
            ms = sorted(r[case][0] for r in runs)
            pf = sorted(r[case][1] for r in runs)
            lines.append(
                f"{setting:8s} {case:14s} median ms per process {ms[0]:6.2f} - {ms[-1]:6.2f}"
                f" (median {statistics.median(ms):.2f}); page faults per call {pf[0]:7.0f} - {pf[-1]:7.0f};"
                f" processes over 1000 faults per call: {sum(p > 1000 for p in pf)} of {len(pf)}"
            )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=8, help="fresh processes per setting")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per process")
    p.add_argument("--calls", type=int, default=20, help="timed calls per case and round")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("processes", "rounds", "calls"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.child:
        print(json.dumps(child(args.rounds, args.calls)))
        return 0
    if not sys.platform.startswith("linux"):
        print("bench_allocator.py measures glibc's allocator: Linux only")
        return 0
    import torch

    print(
        f"# {args.processes} processes per setting, {SHAPE} float32, forward, {torch.get_num_threads()} threads"
    )
    print(f"# keep: GLIBC_TUNABLES={KEEP}")
    for line in report(run(args.processes, args.rounds, args.calls)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
