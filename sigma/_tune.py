"""``sigma.tune()``: measure ``method='auto'``'s constants on this machine and store them.

Each constant of :class:`sigma._auto.Plan` is a crossover between two engines, and where it
falls depends on the CPU (vector width, cache sizes, the BLAS and FFT libraries' kernels) and
the thread count. :func:`tune` races the engines on representative shapes, float32, with and
without a backward pass, and fits each crossover; the result is stored in the user's cache
directory (:func:`sigma._auto.cache_dir`), keyed by CPU model and PyTorch version,
and ``'auto'`` follows it from then on (this process and later ones).

Timings are medians of interleaved repeats. Nothing here runs unless called.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from . import _auto, _fused, _fused2d
from ._conv import correlate2d, correlate_axis, correlate_separable

#: The images the crossovers are measured on: the benchmark's (8, 3, 256, 256).
IMAGE = (8, 3, 256, 256)
TAPS_1D = (3, 5, 7, 9, 11, 13, 15, 17, 21, 25)
#: longer kernels raced only with ``fused=True``: the compiled loops can stay ahead of the banded
#: products well past the shifted sums' crossover (33 taps, σ = 8, on a 2-core AVX2 CPU)
TAPS_FUSED = (33, 49)
#: half-sizes for banded products against the FFT: block windows of 64 to 256 inputs
HALF_SIZES_WINDOW = (16, 24, 32, 48, 64)
SIDES_2D = (3, 5, 7, 9, 11, 13, 15)
#: kernel sizes per axis at which the fused forward races recomputed row sums against a stored
#: row pass (2D kernels of 9, 25 and 49 taps)
TAPS_INLINE = (3, 5, 7)


def _median_ms(fns: dict, repeats: int, budget: float = 0.1) -> dict:
    """Time of each callable in ``fns`` (ms): ``repeats`` interleaved rounds (the order reversed
    every other round), each callable called for at least ``budget`` seconds (and 3 times) per
    round; the median over the rounds of each round's median call."""
    for f in fns.values():  # warm up: allocator, plans, compiled loops
        f()
    rounds = {name: [] for name in fns}
    for r in range(repeats):
        for name in list(fns) if r % 2 == 0 else list(reversed(fns)):
            calls, start = [], time.perf_counter()
            while len(calls) < 3 or time.perf_counter() - start < budget:
                t0 = time.perf_counter()
                fns[name]()
                calls.append(1e3 * (time.perf_counter() - t0))
            rounds[name].append(statistics.median(calls))
    return {name: statistics.median(v) for name, v in rounds.items()}


#: a tuned crossover leaves the built-in one only where that loses more than this factor
MARGIN = 1.1


def _threshold(sizes, faster, slower, default: int) -> int:
    """The crossover that fits the races: take the ``faster`` engine up to size ``T`` (0, or one
    of ``sizes``) and the ``slower`` beyond. Every ``T`` whose worst loss against the faster of
    the two at each size stays within :data:`MARGIN` is acceptable, and the one nearest the
    built-in ``default`` is kept (timing noise below 10 % moves nothing); where none is, the
    ``T`` with the smallest worst loss."""
    candidates = [0, *sizes]

    def worst(T):
        return max((f if n <= T else s) / min(f, s) for n, f, s in zip(sizes, faster, slower, strict=True))

    ok = [T for T in candidates if worst(T) <= MARGIN]
    if ok:
        return min(ok, key=lambda T: (abs(T - default), T))
    return min(candidates, key=lambda T: (worst(T), abs(T - default)))


def _run(call, x: torch.Tensor, w: torch.Tensor, grad: bool):
    """A callable running ``call(x, w)`` forward only, or forward + backward into ``x`` and ``w``."""
    if not grad:

        def fwd():
            with torch.no_grad():
                call(x, w)

        return fwd
    xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
    g = torch.ones_like(x)  # a contiguous output gradient, as a loss graph hands back

    def fwd_bwd():
        call(xg, wg).backward(g)
        xg.grad = wg.grad = None

    return fwd_bwd


def _kernel(k: int) -> torch.Tensor:
    t = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    w = torch.exp(-0.5 * (t / max(1.0, k / 8)) ** 2)
    return w / w.sum()


def _separable(x, method):
    return lambda x_, w_: correlate_separable(x_, w_, w_, "zeros", method)


def tune(*, store: bool = True, fused: bool = False, repeats: int = 5, verbose: bool = False) -> _auto.Plan:
    """Measure ``method='auto'``'s constants on this machine (about a minute) and use them.

    Races the exact engines on float32 images of shape ``(8, 3, 256, 256)``, forward only and
    forward + backward, and fits each crossover of :class:`sigma._auto.Plan`. From then on
    ``method='auto'`` in this process follows the new plan; with ``store=True`` it is also
    written to the cache directory (``$SIGMA_CACHE_DIR``, else ``$XDG_CACHE_HOME/sigma``,
    else ``~/.cache/sigma``), which later processes on this machine read at their first blur.

    Args:
        store: write the plan to the cache directory.
        fused: also race the compiled fused loops (``method='fused'``), up to 49 taps, and let
            ``'auto'`` pick them up to the longest kernel where they win both forward and forward
            + backward; and measure up to which kernel size their forward recomputes row sums
            rather than storing the row pass. The races compile each kernel size (a few minutes in all on a 2-core
            CPU). Off by default: each new kernel size then compiles on first use (seconds),
            which a training run whose σ grows through many sizes pays each time.
        repeats: interleaved timing rounds per race (at least 3).
        verbose: print each race.

    Returns:
        The measured :class:`sigma._auto.Plan` (its ``source`` names the machine).

    Raises:
        ValueError: if ``repeats`` is below 3.
        TypeError: if ``store``, ``fused`` or ``verbose`` is not a bool.

    To go back to the built-in rule, delete the file it names (:func:`sigma._auto.plan_path`)
    or call ``sigma._auto.use_plan(sigma._auto.BUILTIN)`` for this process.
    """
    for name, v in (("store", store), ("fused", fused), ("verbose", verbose)):
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be True or False, got {v!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 3:
        raise ValueError(f"repeats must be an integer >= 3, got {repeats!r}")
    fused = fused and _fused.available("cpu")
    B = _auto.BUILTIN
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(IMAGE, generator=gen)
    say = print if verbose else (lambda *a, **k: None)
    fields: dict = {}
    fused_races: list = []
    _auto.use_plan(_auto.BUILTIN)  # nothing below uses 'auto'; keep it fixed while measuring
    try:
        for grad in (False, True):
            suffix = "_grad" if grad else ""
            # shifted sums against banded products (and the fused loops), separable, per kernel size
            races = []
            sizes = TAPS_1D + (TAPS_FUSED if fused else ())
            for k in sizes:
                w = _kernel(k)
                engines = ("direct", "matmul") + (("fused",) if fused else ())
                races.append(_median_ms({m: _run(_separable(x, m), x, w, grad) for m in engines}, repeats))
                say(
                    f"separable k={k} grad={grad}: "
                    + ", ".join(f"{m} {v:.2f} ms" for m, v in races[-1].items())
                )
            direct = [t["direct"] for t in races[: len(TAPS_1D)]]
            matmul = [t["matmul"] for t in races[: len(TAPS_1D)]]
            fields["direct_max_taps_1d" + suffix] = max(
                1, _threshold(TAPS_1D, direct, matmul, B.direct_max_taps_1d)
            )
            if fused:  # the fused loops against the faster eager engine, per size and grad case
                fused_races += [
                    (k, t["fused"], min(t["direct"], t["matmul"])) for k, t in zip(sizes, races, strict=True)
                ]

            # banded products against the FFT, separable, on the images: the widest window that
            # wins (a block of 32 outputs reads 32 + 2h inputs; one 2D FFT serves both axes)
            windows, races = [], []
            for h in HALF_SIZES_WINDOW:
                w = _kernel(2 * h + 1)
                races.append(
                    _median_ms({m: _run(_separable(x, m), x, w, grad) for m in ("matmul", "fft")}, repeats)
                )
                say(
                    f"separable h={h} grad={grad}: "
                    + ", ".join(f"{m} {v:.2f} ms" for m, v in races[-1].items())
                )
                windows.append(min(IMAGE[-1], max(32, 2 * h) + 2 * h))
            matmul, fft = [t["matmul"] for t in races], [t["fft"] for t in races]
            fields["matmul_max_window" + suffix] = max(
                64, _threshold(windows, matmul, fft, B.matmul_max_window)
            )

            # dense 2D kernels: 2D shifted sums against the 2D FFT
            taps, races = [], []
            for n in SIDES_2D:
                w2 = _kernel(n).outer(_kernel(n)) + 1e-3  # dense, not separable
                fns = {
                    m: _run(lambda a, b, m=m: correlate2d(a, b, "zeros", m), x, w2, grad)
                    for m in ("direct", "fft")
                }
                races.append(_median_ms(fns, repeats))
                say(f"2D {n}x{n} grad={grad}: " + ", ".join(f"{m} {v:.2f} ms" for m, v in races[-1].items()))
                taps.append(n * n)
            direct, fft = [t["direct"] for t in races], [t["fft"] for t in races]
            fields["direct_max_taps_2d" + suffix] = max(
                1, _threshold(taps, direct, fft, getattr(B, "direct_max_taps_2d" + suffix))
            )
        if fused:  # one constant for both grad cases: the longest kernel that holds in both
            sizes, faster, slower = zip(*fused_races, strict=True)
            fields["fused_max_taps"] = _threshold(sizes, faster, slower, 0)
            fields["fused_inline_max_taps"] = _inline_threshold(x, repeats, say)
        fields.update(_cost_model(repeats, say))
    finally:
        _auto.use_plan(None)
    source = f"{_auto.machine_key()} | {torch.get_num_threads()} threads"
    p = dataclasses.replace(_auto.BUILTIN, **fields, source=source)
    if store:
        say(f"stored in {_auto.store(p)}")
    _auto.use_plan(p)
    return p


def _inline_threshold(x: torch.Tensor, repeats: int, say) -> int:
    """The fused forward with no backward to follow, per kernel size in :data:`TAPS_INLINE`: each
    output recomputing its row sums, against the row pass stored once; the largest 2D kernel
    (``ky * kx`` taps) up to which recomputing holds (see :func:`_threshold`)."""
    inline, stored = [], []
    for k in TAPS_INLINE:
        w = _kernel(k)
        t = _median_ms(
            {
                name: lambda w=w, flag=flag: _fused2d._sep_forward(x, w, w, "zeros", inline=flag)
                for name, flag in (("inline", True), ("stored", False))
            },
            repeats,
        )
        say(
            f"fused forward {k}x{k}: recomputed row sums {t['inline']:.2f} ms, stored row pass {t['stored']:.2f} ms"
        )
        inline.append(t["inline"])
        stored.append(t["stored"])
    return _threshold([k * k for k in TAPS_INLINE], inline, stored, _auto.BUILTIN.fused_inline_max_taps)


def _cost_model(repeats: int, say) -> dict:
    """The cost model between shifted sums and whole-axis matrices on short axes: per-operation
    and per-element costs of the shifted sums, fixed cost and throughput of the matrices, and
    each one's (forward + backward) / forward factor."""
    gen = torch.Generator().manual_seed(1)
    k = 9
    w = _kernel(k)
    small = torch.randn(1, 1, 64, 64, generator=gen)
    large = torch.randn(16, 3, 96, 96, generator=gen)
    fwd = {}
    for size, t in (("small", small), ("large", large)):
        for m in ("direct", "dense"):
            fwd[f"{m}_{size}"] = _run(lambda a, b, m=m: correlate_axis(a, b, -1, "zeros", m), t, w, False)
            fwd[f"{m}_{size}_grad"] = _run(lambda a, b, m=m: correlate_axis(a, b, -1, "zeros", m), t, w, True)
    t = _median_ms(fwd, repeats)
    say("cost model: " + ", ".join(f"{n} {v:.3f} ms" for n, v in t.items()))
    op_us = max(1.0, 1e3 * t["direct_small"] / k)
    pass_ns = max(1e-3, 1e6 * (t["direct_large"] - k * op_us * 1e-3) / (k * large.numel()))
    dense_fixed_us = max(1.0, 1e3 * t["dense_small"])
    flops = 2 * large.numel() * large.shape[-1]
    matmul_gflops = max(1.0, flops / max(1e-6, (t["dense_large"] - dense_fixed_us * 1e-3) * 1e6))
    return {
        "op_us": round(op_us, 2),
        "pass_ns": round(pass_ns, 4),
        "dense_fixed_us": round(dense_fixed_us, 1),
        "matmul_gflops": round(matmul_gflops, 1),
        "grad_factor_direct": round(t["direct_large_grad"] / t["direct_large"], 2),
        "grad_factor_dense": round(t["dense_large_grad"] / t["dense_large"], 2),
    }
