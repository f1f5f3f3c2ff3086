"""Does ``method='auto'`` hold on this CPU? Its regret under the built-in plan and a tuned one.

``auto``'s constants (:class:`sigma._auto.Plan`) are crossovers between engines, measured on one
machine. This script measures, on the machine it runs on, how far ``auto`` falls behind the
fastest exact method under the built-in plan, then runs :func:`sigma.tune` (not stored) and
measures the same cells again under the tuned plan, all in one process, interleaved (5 rounds,
the order reversed every other round, each callable timed for 0.15 s per round):

    regret = auto's time / the fastest of 'direct', 'matmul' and 'fft'

per structure (``blur2d_sphere``, ``blur2d_diag`` with σ and σ/2, ``blur2d_full`` with σ and σ/2
rotated by 30°), σ and grad case, on float32 (8, 3, 256, 256) images. The target is a regret of at
most 1.2 in every cell. Run it under another CPU's kernels too (``python tools/other_kernels.py
.venv/bin/python benchmarks/bench_plan.py``): PyTorch's DEFAULT capability, oneDNN SSE4.1 and MKL
SSE4.2 move the crossovers as another CPU would, and show whether the built-in constants or only
a tuned plan hold there.

With ``--fused``, the tuned plan is measured with ``sigma.tune(fused=True)`` (the compiled fused
loops raced too, and picked where they win) and ``'fused'`` joins the exact methods of the separable
structures: the regret is then against the fastest of the four, the fused loops included.

Usage: ``python benchmarks/bench_plan.py [--sigmas 0.5,1,...] [--repeats N] [--fused] [--out CSV]``.
"""

from __future__ import annotations

import argparse
import csv
import math
import time

import torch

import sigma
from sigma import _auto
from sigma._tune import _median_ms  # interleaved rounds, a time budget per call and round

SHAPE = (8, 3, 256, 256)
SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
EXACT = ("direct", "matmul", "fft")
STRUCTURES = ("blur2d_sphere", "blur2d_diag", "blur2d_full")
REGRET_MAX = 1.2
FULL_SPATIAL_MAX_SIGMA = 4.0


def call(structure: str, x: torch.Tensor, p: torch.Tensor, method: str) -> torch.Tensor:
    if structure == "blur2d_sphere":
        return sigma.blur2d_sphere(x, p, method=method)
    if structure == "blur2d_diag":
        return sigma.blur2d_diag(x, p, p / 2, method=method)
    cov = sigma.rotated_cov(p, p / 2, math.pi / 6)
    return sigma.blur2d_full(x, cov, method=method)


def cell(structure: str, s: float, grad: bool, plans: dict, repeats: int, fused: bool = False) -> dict:
    """Median ms of each exact method and of auto under each plan, interleaved over rounds."""
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    p = torch.tensor(s, requires_grad=grad)
    xi = x.requires_grad_(grad)
    g = torch.ones_like(x)

    def run(method, plan=None):
        def f():
            if plan is not None:
                _auto.use_plan(plan)
            try:
                if grad:
                    call(structure, xi, p, method).backward(g)  # contiguous, as from a loss graph
                    xi.grad = p.grad = None
                else:
                    with torch.no_grad():
                        call(structure, xi, p, method)
            finally:
                _auto.use_plan(None)

        return f

    # a dense 2D kernel beyond σ = 4 has hundreds of taps: its shifted sums and banded rows take
    # seconds a call and lose to the FFT by far, so they are not raced there
    exact = ("fft",) if structure == "blur2d_full" and s > FULL_SPATIAL_MAX_SIGMA else EXACT
    if fused and structure != "blur2d_full":  # the compiled loops serve the separable blurs
        exact += ("fused",)
    fns = {m: run(m) for m in exact} | {f"auto[{n}]": run("auto", pl) for n, pl in plans.items()}
    return _median_ms(fns, repeats, budget=0.15)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS))
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds per cell")
    ap.add_argument("--fused", action="store_true", help="tune with fused=True and race 'fused' too")
    ap.add_argument("--out", default=None, help="CSV of every cell (default: print only)")
    args = ap.parse_args(argv)
    sigmas = [float(v) for v in args.sigmas.split(",")]
    print(
        f"# {_auto.machine_key()}, {torch.get_num_threads()} threads, "
        f"capability {torch.backends.cpu.get_cpu_capability()}"
    )
    t0 = time.perf_counter()
    tuned = sigma.tune(store=False, fused=args.fused)
    _auto.use_plan(None)
    print(
        f"# tuned in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(
            f"{k}={v}" for k, v in vars(tuned).items() if getattr(_auto.BUILTIN, k) != v and k != "source"
        )
    )
    plans = {"builtin": _auto.BUILTIN, "tuned": tuned}
    methods = EXACT + (("fused",) if args.fused else ())
    rows, worst = [], {n: 0.0 for n in plans}
    print(
        f"{'structure':14} {'mode':17} {'σ':>4} "
        + "".join(f"{m:>9}" for m in methods)
        + "".join(f"{'auto[' + n + ']':>15}" for n in plans)
        + "  regret builtin / tuned"
    )
    for structure in STRUCTURES:
        for grad in (True, False):
            mode = "forward+backward" if grad else "forward"
            for s in sigmas:
                t = cell(structure, s, grad, plans, args.repeats, args.fused)
                best = min(t[m] for m in methods if m in t)
                reg = {n: t[f"auto[{n}]"] / best for n in plans}
                for n in plans:
                    worst[n] = max(worst[n], reg[n])
                print(
                    f"{structure:14} {mode:17} {s:4g} "
                    + "".join(f"{t[m]:9.2f}" if m in t else f"{'-':>9}" for m in methods)
                    + "".join(f"{t[f'auto[{n}]']:15.2f}" for n in plans)
                    + "  "
                    + " / ".join(f"{reg[n]:.2f}" for n in plans),
                    flush=True,
                )
                rows.append(
                    dict(
                        structure=structure,
                        mode=mode,
                        sigma=s,
                        **{
                            k: f"{t[k]:.4f}" if k in t else ""
                            for k in (*methods, *(f"auto[{n}]" for n in plans))
                        },
                    )
                )
    for n in plans:
        verdict = "met" if worst[n] <= REGRET_MAX else "missed"
        print(f"worst regret, {n} plan: {worst[n]:.2f} (target <= {REGRET_MAX}: {verdict})")
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
