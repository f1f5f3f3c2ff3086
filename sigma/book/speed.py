"""Verdicts on the benchmark's rows: the ``auto`` regret table and the speed targets.

``benchmarks/bench_blur.py`` writes one CSV row per (op, implementation, dtype, σ, shape); this
module reads such rows and turns them into the tables and verdicts the benchmark prints
(``--report``, ``benchmarks/README.md``) and the numbers the performance and digits chapters
show, so all share one implementation. Everything here works on plain row dicts (the
CSV's strings, or numbers in tests) and needs neither torch nor the benchmark's baselines.

Units: every time is in milliseconds per call (``median_ms``, ``round_min_ms``,
``round_max_ms``); ratios are dimensionless. Rows of an older CSV without the spread columns
are read with their median standing in for the fastest and slowest round.

* :func:`read_rows`: a CSV file as a list of row dicts; :func:`ms`: one timing of a row.
* :func:`split_op`: ``"blur2d_sphere/forward"`` -> ``("blur2d_sphere", "forward")``.
* :func:`regret_table`: ``auto``'s time over the fastest exact method's, per structure, grad
  case and σ.
* :func:`check_targets`: every speed target as a :class:`Target` with its worst measured value
  and verdict (``None``: no rows for it).
* :func:`scale_space_costs`: the derivative blurs and the discrete kernel against the plain blur.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

#: the structures of the auto-regret table, in its order
STRUCTURES = ("blur2d_sphere", "blur2d_diag", "blur2d_full", "blur2d_local_sphere", "dog2d")
#: grad cases: forward + backward (the op's plain name) and forward only (op + FORWARD_SUFFIX)
MODES = ("forward+backward", "forward")
FORWARD_SUFFIX = "/forward"
#: the bound of each target (see :func:`check_targets`)
KORNIA_MIN_SPEEDUP = 4.0
#: (forward + backward) / forward: the backward alone at most 1.5 times the forward
BACKWARD_MAX_RATIO = 2.5
BACKWARD_MAX_SIGMA = 4.0
#: backward_cost rows' impls ``fused engine: <part>``: the fused engine without autograd or kernel building
ENGINE_PARTS = ("forward", "backward", "input gradient")
REGRET_MAX = 1.2
OPENCV_MIN_SPEEDUP = 1.0
OPENCV_SIGMAS = (1.0, 8.0)
SMALL_MAX_RATIO = 1.0
COMPILED_MIN_SPEEDUP = 1.0
DENSE_MIN_SPEEDUP = 10.0
UNFOLD_MIN_SPEEDUP = 5.0
#: rows the regret table leaves out: auto itself, and the opt-in compiled engine
NOT_AUTO = ("sigma[auto]", "sigma[fused]")


@dataclass(frozen=True)
class Target:
    """One speed target and what the rows say about it.

    Attributes:
        key: a short identifier (``"kornia"``, ``"backward"``, ``"regret"``, ``"opencv"``,
            ``"small"``, ``"compiled"``, ``"dense"``, ``"unfold"``).
        name: the target as the benchmark prints it, bound included.
        bound: the value the worst case must reach (a ratio, dimensionless).
        sense: ``">="`` (the worst is the smallest value) or ``"<="`` (the largest).
        worst: the worst measured value, or ``None`` when no rows measure the target.
        verdict: ``True`` met, ``False`` not met, ``None`` not measured.
        lines: ``(value, text)`` per measured case (per σ, or per shape and σ), in row order.
    """

    key: str
    name: str
    bound: float
    sense: str
    worst: float | None
    verdict: bool | None
    lines: tuple[tuple[float, str], ...]

    @property
    def detail(self) -> str:
        """The measured value as the benchmark prints it: the worst, then the worst cases."""
        if self.verdict is None:
            return "not measured in this run"
        shown = sorted(self.lines, key=lambda line: line[0], reverse=self.sense == "<=")
        if len(self.lines) > 8:  # the five worst, in order
            shown, rest = shown[:5], f"; {len(self.lines) - 5} more no worse"
        else:
            shown, rest = self.lines, ""
        return f"worst {self.worst:.2f}; " + "; ".join(text for _, text in shown) + rest

    @property
    def status(self) -> str:
        """``"PASS"``, ``"FAIL"`` or ``"SKIP"`` (not measured)."""
        return "SKIP" if self.verdict is None else "PASS" if self.verdict else "FAIL"


def read_rows(path) -> list[dict]:
    """The rows of a benchmark CSV, one dict per row keyed by the header (values are strings)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def op_name(op: str, mode: str) -> str:
    """The CSV op name of ``op`` in grad case ``mode`` (one of :data:`MODES`)."""
    return op + FORWARD_SUFFIX if mode == "forward" else op


def split_op(name: str) -> tuple[str, str]:
    """``(op, mode)`` of a CSV op name (old CSVs have no forward rows).

    Example:
        >>> split_op("blur2d_sphere/forward"), split_op("dog2d")
        (('blur2d_sphere', 'forward'), ('dog2d', 'forward+backward'))
    """
    if name.endswith(FORWARD_SUFFIX):
        return name[: -len(FORWARD_SUFFIX)], "forward"
    return name, "forward+backward"


def _index(rows: list[dict], dtype: str = "float32") -> dict:
    """``{(op, impl, σ, shape): row}`` for one dtype."""
    return {(r["op"], r["impl"], float(r["sigma"]), r["shape"]): r for r in rows if r["dtype"] == dtype}


def ms(row: dict, field: str = "median_ms") -> float:
    """A timing of a row in ms (``field``: ``median_ms``, ``round_min_ms`` or ``round_max_ms``).

    Old CSVs have no spread columns: their median stands in for the fastest and slowest round.
    """
    value = row.get(field) or row["median_ms"]
    return float(value)


def _main_shape(rows: list[dict]) -> str | None:
    """The shape most structure rows (else most rows) were timed on (``"8x3x256x256"``); None: no rows."""
    shapes = [r["shape"] for r in rows if split_op(r["op"])[0] in STRUCTURES] or [r["shape"] for r in rows]
    return max(set(shapes), key=shapes.count) if shapes else None


def regret_table(rows: list[dict], dtype: str = "float32") -> dict:
    """``{(structure, mode): {σ: (auto / fastest exact method, fastest method)}}``.

    Exact methods are the ``sigma[<method>]`` rows other than ``auto`` and the opt-in ``fused``
    (which the built-in plan never picks: its first call per kernel size compiles); times are the medians
    of the rounds. A structure with a single implementation (the per-pixel blur has no
    ``method`` argument, impl ``sigma``) has regret 1 and fastest method ``"sigma"``.

    Example:
        >>> rows = [dict(op="dog2d", impl=i, dtype="float32", sigma="2", median_ms=t)
        ...         for i, t in (("sigma[auto]", "3"), ("sigma[fft]", "2"), ("sigma[direct]", "4"))]
        >>> regret_table(rows)
        {('dog2d', 'forward+backward'): {2.0: (1.5, 'sigma[fft]')}}
    """
    table = {}
    for r in rows:
        op, mode = split_op(r["op"])
        if r["dtype"] != dtype or op not in STRUCTURES:
            continue
        table.setdefault((op, mode), {}).setdefault(float(r["sigma"]), {})[r["impl"]] = ms(r)
    out = {}
    for key, by_sigma in table.items():
        for s, impls in by_sigma.items():
            auto = impls.get("sigma[auto]", impls.get("sigma"))
            exact = {i: t for i, t in impls.items() if i.startswith("sigma[") and i not in NOT_AUTO}
            if auto is None:
                continue
            if not exact:
                exact = {"sigma": auto}
            best = min(exact, key=exact.get)
            out.setdefault(key, {})[s] = (auto / exact[best], best)
    return out


def _verdict(key: str, name: str, lines: list, bound: float, sense: str) -> Target:
    """The :class:`Target` of measured ``(value, text)`` lines against ``bound``."""
    if not lines:
        return Target(key, name, bound, sense, None, None, ())
    value = (min if sense == ">=" else max)(v for v, _ in lines)
    ok = value >= bound if sense == ">=" else value <= bound
    return Target(key, name, bound, sense, value, ok, tuple(lines))


def check_targets(rows: list[dict]) -> list[Target]:
    """Every speed target (float32 rows) with its worst measured value and verdict.

    1. ``kornia``: forward + backward, kornia's time / ``sigma[auto]``'s, σ 0.5-64: >= 4;
    2. ``backward``: (forward + backward) / forward of ``backward_cost``, σ <= 4: <= 2.5, i.e. the
       backward alone at most 1.5 times the forward (``auto``, and ``fused`` where timed: the
       lower);
    3. ``regret``: ``auto`` / the fastest exact method, every structure, σ, grad case: <= 1.2;
    4. ``opencv``: forward only, OpenCV's time / ``sigma[auto]``'s or ``sigma[fused]``'s (the faster),
       σ 1-8: >= 1;
    5. ``small``: small inputs, ``sigma.Blur2d`` / kornia's ``GaussianBlur2d``: <= 1;
    6. ``compiled``: eager / compiled (``module_*`` rows and compiled small-input rows): >= 1;
    7. ``dense``: ``blur2d_full`` at σ = 8, dense conv2d / ``auto``: >= 10;
    8. ``unfold``: ``blur2d_local_sphere`` at k = 17 (σ = 4), unfold / ``sigma``: >= 5.

    Baselines (kornia, OpenCV) are compared through their fastest round (``round_min_ms``),
    our implementations through their median; the ratios of the medians and the range over
    the rounds are in each line's text. A target without rows has verdict ``None``.

    Args:
        rows: benchmark rows (see :func:`read_rows`).

    Returns:
        The eight :class:`Target` s, in the order above.
    """
    idx = _index(rows)
    shape = _main_shape(rows)
    results = []

    def row(op, impl, s, shp=None):
        return idx.get((op, impl, s, shp or shape))

    def sigmas_of(op, lo=0.0, hi=math.inf):
        return sorted({float(r["sigma"]) for r in rows if r["op"] == op and lo <= float(r["sigma"]) <= hi})

    # 1. forward + backward vs kornia, every σ in 0.5 ... 64
    lines = []
    for s in sigmas_of("blur2d_sphere", 0.5, 64.0):
        a, k = row("blur2d_sphere", "sigma[auto]", s), row("blur2d_sphere", "kornia", s)
        if a and k:
            fast = ms(k, "round_min_ms") / ms(a)
            lo, hi = (
                ms(k, "round_min_ms") / ms(a, "round_max_ms"),
                ms(k, "round_max_ms") / ms(a, "round_min_ms"),
            )
            spread = f"rounds {lo:.1f}-{hi:.1f}x" if k.get("round_min_ms") else "no spread recorded"
            # the opt-in compiled loops beside auto's built-in plan (they inform, they do not judge)
            f = row("blur2d_sphere", "sigma[fused]", s)
            fused = f"; sigma[fused] {ms(k, 'round_min_ms') / ms(f):.1f}x" if f else ""
            lines.append((fast, f"σ={s:g}: {fast:.1f}x (medians {ms(k) / ms(a):.1f}x, {spread}){fused}"))
    name = "forward + backward vs kornia (its fastest round), σ 0.5-64: >= 4x"
    results.append(_verdict("kornia", name, lines, KORNIA_MIN_SPEEDUP, ">="))
    # 2. (forward + backward) / forward, isotropic, σ <= 4
    lines = []
    for s in sigmas_of("backward_cost", 0.0, BACKWARD_MAX_SIGMA):
        ratios = {}
        for engine, prefix in (("auto", ""), ("fused", "fused ")):
            fb, f = (
                row("backward_cost", prefix + "forward+backward", s),
                row("backward_cost", prefix + "forward", s),
            )
            if fb and f:
                ratios[engine] = ms(fb) / ms(f)
        if ratios:
            best = min(ratios, key=ratios.get)
            text = ", ".join(f"{e} {v:.2f}" for e, v in ratios.items())
            # the fused engine alone (no autograd, no kernel building), where timed: how much of
            # the ratio its compiled loops' arithmetic sets
            ef, eb, ex = (row("backward_cost", f"fused engine: {part}", s) for part in ENGINE_PARTS)
            if ef and eb:
                text += f" (fused engine alone {1 + ms(eb) / ms(ef):.2f}"
                text += f", input gradient only {1 + ms(ex) / ms(ef):.2f})" if ex else ")"
            lines.append((ratios[best], f"σ={s:g}: {text}"))
    name = "(forward + backward) / forward (isotropic; the lower of auto and fused), σ <= 4: <= 2.5"
    results.append(_verdict("backward", name, lines, BACKWARD_MAX_RATIO, "<="))
    # 3. auto regret, every structure, σ and grad case
    lines = [
        (v, f"{op} {mode} σ={s:g}: {v:.2f} (fastest {best})")
        for (op, mode), by_sigma in sorted(regret_table(rows).items())
        for s, (v, best) in sorted(by_sigma.items())
    ]
    name = "auto / fastest exact method, every structure, σ, grad case: <= 1.2"
    results.append(_verdict("regret", name, lines, REGRET_MAX, "<="))
    # 4. forward vs OpenCV, σ 1 ... 8
    lines = []
    op = "blur2d_sphere" + FORWARD_SUFFIX
    for s in sigmas_of(op, *OPENCV_SIGMAS):
        c = row(op, "opencv", s)
        ours = {i: row(op, i, s) for i in ("sigma[auto]", "sigma[fused]") if row(op, i, s)}
        if ours and c:
            best = min(ours, key=lambda i: ms(ours[i]))
            a = ours[best]
            fast = ms(c, "round_min_ms") / ms(a)
            others = ", ".join(
                f"{i} {ms(c, 'round_min_ms') / ms(r):.2f}x" for i, r in ours.items() if i != best
            )
            text = f"σ={s:g}: {fast:.2f}x by {best} (medians {ms(c) / ms(a):.2f}x)" + (
                f"; {others}" if others else ""
            )
            lines.append((fast, text))
    name = "forward vs OpenCV GaussianBlur (its fastest round), σ 1-8, the faster of auto and fused: >= 1.0x"
    results.append(_verdict("opencv", name, lines, OPENCV_MIN_SPEEDUP, ">="))
    # 5. small inputs, per call, vs kornia's module
    lines = []
    for r in rows:
        if r["op"] == "small_input" and r["impl"] == "sigma.Blur2d" and r["dtype"] == "float32":
            k = idx.get(("small_input", "kornia.GaussianBlur2d", float(r["sigma"]), r["shape"]))
            if k:
                ratio = ms(r) / ms(k, "round_min_ms")
                text = f"{r['shape']} σ={float(r['sigma']):g}: {ratio:.2f} (medians {ms(r) / ms(k):.2f})"
                lines.append((ratio, text))
    name = "small inputs, forward + backward, sigma / kornia module (its fastest round): <= 1.0"
    results.append(_verdict("small", name, lines, SMALL_MAX_RATIO, "<="))
    # 6. compiled vs eager
    lines = []
    for r in rows:
        if r["impl"] == "compiled" and r["op"].startswith("module_") and r["dtype"] == "float32":
            e = idx.get((r["op"], "eager", float(r["sigma"]), r["shape"]))
            if e:
                ratio = ms(e) / ms(r)
                lines.append((ratio, f"{r['op']} σ={float(r['sigma']):g}: {ratio:.2f}x"))
        if r["impl"] == "sigma.Blur2d[compiled]" and r["dtype"] == "float32":
            e = idx.get((r["op"], "sigma.Blur2d", float(r["sigma"]), r["shape"]))
            if e:
                ratio = ms(e) / ms(r)
                # what compiling does at this size with a fixed radius=, and to nn.Conv2d 3x3
                refs = [
                    f"{label} {ms(a) / ms(b):.2f}x"
                    for label, eager, compiled in (
                        ("compiled with radius=", "sigma.Blur2d", "sigma.Blur2d[compiled, radius]"),
                        ("nn.Conv2d 3x3", "nn.Conv2d", "nn.Conv2d[compiled]"),
                    )
                    if (a := idx.get((r["op"], eager, float(r["sigma"]), r["shape"])))
                    and (b := idx.get((r["op"], compiled, float(r["sigma"]), r["shape"])))
                ]
                text = f"{r['shape']} σ={float(r['sigma']):g}: {ratio:.2f}x" + (
                    f" ({', '.join(refs)})" if refs else ""
                )
                lines.append((ratio, text))
    name = "compiled (inductor) module vs eager, forward + backward: >= 1.0x"
    results.append(_verdict("compiled", name, lines, COMPILED_MIN_SPEEDUP, ">="))
    # standing targets of the previous speed work
    lines = []
    d, a = row("blur2d_full", "dense_conv", 8.0), row("blur2d_full", "sigma[auto]", 8.0)
    if d and a:
        lines.append((ms(d) / ms(a), f"σ=8: {ms(d) / ms(a):.1f}x"))
    name = "blur2d_full at σ=8 vs a dense conv2d: >= 10x"
    results.append(_verdict("dense", name, lines, DENSE_MIN_SPEEDUP, ">="))
    lines = []
    u, a = row("blur2d_local_sphere", "unfold", 4.0), row("blur2d_local_sphere", "sigma", 4.0)
    if u and a:
        lines.append((ms(u) / ms(a), f"k=17: {ms(u) / ms(a):.1f}x"))
    name = "blur2d_local_sphere at k=17 vs unfold: >= 5x"
    results.append(_verdict("unfold", name, lines, UNFOLD_MIN_SPEEDUP, ">="))
    return results


def scale_space_costs(rows: list[dict]) -> list[str]:
    """Cost of each scale-space variant relative to the plain blur (``order=0``), per dtype and σ.

    One printable line per variant, dtype and σ: the variant's median time / ``order=0``'s.
    """
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


def njet_costs(rows: list[dict]) -> dict[float, dict[str, float]]:
    """``{σ: {impl: median time / nn.Conv2d 3x3's}}`` of the ``njet_layer`` rows (forward + backward
    of an order-2 ``sigma.NJetConv2d`` against the 3 x 3 convolution of the same width)."""
    base = {
        float(r["sigma"]): float(r["median_ms"])
        for r in rows
        if r["op"] == "njet_layer" and r["impl"] == "nn.Conv2d 3x3"
    }
    out: dict[float, dict[str, float]] = {}
    for r in rows:
        s = float(r["sigma"]) if r["op"] == "njet_layer" else None
        if s in base and r["impl"] != "nn.Conv2d 3x3":
            out.setdefault(s, {})[r["impl"]] = float(r["median_ms"]) / base[s]
    return out


def auto_choice(op: str, s: float, mode: str, side: int = 256, batch: tuple[int, int] = (8, 3)) -> str | None:
    """The exact method ``method='auto'`` runs for a benchmark row: the rule of :mod:`sigma._auto`,
    the same pure functions the dispatcher calls, under the plan in force (:func:`sigma.tune`).

    ``op`` is a structure with a ``method`` argument (``'blur2d_sphere'``, ``'blur2d_diag'``,
    ``'blur2d_full'`` or ``'dog2d'``) at the benchmark's scales for ``s`` (diag: σ and σ/2; DoG:
    σ and 1.6 σ on the larger one's support; full: σ and σ/2 rotated by 30°), on a float32 CPU
    input of shape ``batch + (side, side)``, zero padding; ``mode`` is a row's grad case. Returns
    ``'sigma[direct]'``, ``'sigma[matmul]'``, ``'sigma[fft]'`` or ``'sigma[fused]'``, or None when
    the two axes run different methods or the whole-axis matrices (which no exact-method row
    times alone).
    """
    import sigma
    from sigma import _auto, _fused

    grad = mode == "forward+backward"
    numel = batch[0] * batch[1] * side * side
    if op == "blur2d_full":
        cov = sigma.rotated_cov(s, s / 2, math.pi / 6)
        ky, kx = sigma.gauss2d_full(cov).shape
        return f"sigma[{_auto.dense_2d_engine((ky - 1) // 2, (kx - 1) // 2, (side, side), grad)}]"
    scales = {"blur2d_sphere": (s, s), "blur2d_diag": (s, s / 2), "dog2d": (1.6 * s, 1.6 * s)}[op]
    hy, hx = (sigma.kernel_radius(v) for v in scales)
    fused = _auto.plan().fused_max_taps > 0 and _fused.available("cpu")
    ey, ex = _auto.separable_engines(hy, hx, (side, side), numel, "zeros", grad, "cpu", fused=fused)
    return f"sigma[{ey}]" if ey == ex and ey != "dense" else None
