"""The verdicts of ``sigma.book.speed`` on small synthetic row lists (no timing, no torch).

Each target gets a passing and a failing case; baselines are judged by their fastest round;
a target without rows has verdict None.
"""

import csv
import math

import pytest

from sigma.book import speed

SHAPE = "8x3x256x256"


def row(op, impl, s, ms, lo=None, hi=None, shape=SHAPE, dtype="float32"):
    """One CSV-like row (strings, as read from the file); lo/hi: fastest and slowest round."""
    lo, hi = lo or ms, hi or ms
    mode = speed.split_op(op)[1]
    return dict(op=op, impl=impl, dtype=dtype, sigma=str(float(s)), median_ms=str(ms), shape=shape,
                mode=mode, round_min_ms=str(lo), round_max_ms=str(hi))  # fmt: skip


def target(rows, key):
    found = [t for t in speed.check_targets(rows) if t.key == key]
    assert len(found) == 1
    return found[0]


def test_every_target_without_rows_is_not_measured():
    targets = speed.check_targets([])
    assert [t.key for t in targets] == [
        "kornia",
        "backward",
        "regret",
        "opencv",
        "small",
        "compiled",
        "dense",
        "unfold",
    ]
    for t in targets:
        assert t.verdict is None and t.worst is None and t.lines == ()
        assert t.status == "SKIP" and t.detail == "not measured in this run"


def test_split_op_and_op_name_are_inverse():
    for op in speed.STRUCTURES:
        for mode in speed.MODES:
            assert speed.split_op(speed.op_name(op, mode)) == (op, mode)
    assert speed.split_op("blur2d_full/forward") == ("blur2d_full", "forward")


@pytest.mark.parametrize("kornia_fastest, ok", [(50.0, True), (30.0, False)])
def test_kornia_is_judged_by_its_fastest_round(kornia_fastest, ok):
    # kornia's median is 10x sigma's at every σ; only its fastest round decides
    rows = []
    for s in (0.5, 4.0, 64.0):
        rows += [
            row("blur2d_sphere", "sigma[auto]", s, 10.0, 9.0, 11.0),
            row("blur2d_sphere", "kornia", s, 100.0, kornia_fastest, 200.0),
        ]
    t = target(rows, "kornia")
    assert t.verdict is ok and t.worst == pytest.approx(kornia_fastest / 10.0)
    assert t.bound == 4.0 and t.sense == ">="
    assert len(t.lines) == 3 and t.lines[0][1].startswith("σ=0.5: ")
    assert "medians 10.0x" in t.detail and f"rounds {kornia_fastest / 11:.1f}-" in t.detail


def test_kornia_lines_show_the_fused_loops_without_judging_them():
    # auto misses the bound at σ = 2; the fused loops (opt-in) would not: the verdict stays auto's
    rows = [
        row("blur2d_sphere", "sigma[auto]", 2.0, 30.0),
        row("blur2d_sphere", "kornia", 2.0, 100.0, 90.0, 110.0),
        row("blur2d_sphere", "sigma[fused]", 2.0, 15.0),
        row("blur2d_sphere", "sigma[auto]", 16.0, 10.0),
        row("blur2d_sphere", "kornia", 16.0, 100.0),
    ]
    t = target(rows, "kornia")
    assert t.verdict is False and t.worst == pytest.approx(3.0)
    assert t.lines[0][1].endswith("; sigma[fused] 6.0x") and "fused" not in t.lines[1][1]


@pytest.mark.parametrize("fb, ok", [(10.0, True), (10.4, False), (16.0, False)])
def test_backward_cost(fb, ok):
    # the bound is (forward + backward) / forward <= 2.5: a backward at most 1.5 forwards
    rows = [row("backward_cost", "forward", s, 4.0) for s in (0.5, 4.0, 8.0)]
    rows += [row("backward_cost", "forward+backward", s, fb) for s in (0.5, 4.0)]
    rows += [row("backward_cost", "forward+backward", 8.0, 100.0)]  # σ > 4: not part of the target
    t = target(rows, "backward")
    assert t.verdict is ok and t.worst == pytest.approx(fb / 4.0)
    assert [text.split(":")[0] for _, text in t.lines] == ["σ=0.5", "σ=4"]


def test_backward_cost_shows_the_fused_engine_alone():
    """Where the fused engine's parts were timed, the backward line adds its ratio without autograd
    or kernel building, and its input gradient's alone; they inform, the verdict stays the op's."""
    rows = [row("backward_cost", "forward", 1.0, 4.0), row("backward_cost", "forward+backward", 1.0, 12.0)]
    rows += [
        row("backward_cost", "fused forward", 1.0, 2.0),
        row("backward_cost", "fused forward+backward", 1.0, 6.0),
    ]
    parts = {"forward": 1.0, "backward": 2.2, "input gradient": 0.9}
    rows += [row("backward_cost", f"fused engine: {p}", 1.0, v) for p, v in parts.items()]
    t = target(rows, "backward")
    assert t.worst == pytest.approx(3.0) and t.verdict is False
    assert t.lines[0][1] == "σ=1: auto 3.00, fused 3.00 (fused engine alone 3.20, input gradient only 1.90)"
    rows = [r for r in rows if r["impl"] != "fused engine: input gradient"]
    assert target(rows, "backward").lines[0][1].endswith("(fused engine alone 3.20)")
    assert speed.ENGINE_PARTS == tuple(parts)


def test_regret_table_names_the_fastest_method():
    rows = [
        row("blur2d_sphere", "sigma[auto]", 2.0, 10.0),
        row("blur2d_sphere", "sigma[direct]", 2.0, 12.0),
        row("blur2d_sphere", "sigma[matmul]", 2.0, 8.0),
        row("blur2d_sphere", "sigma[fft]", 2.0, 9.0),
        row("blur2d_sphere", "kornia", 2.0, 1.0),  # not an exact method of sigma
        row("blur2d_sphere/forward", "sigma[auto]", 2.0, 3.0),
        row("blur2d_sphere/forward", "sigma[fft]", 2.0, 3.0),
        row("blur2d_local_sphere", "sigma", 2.0, 7.0),
        row("blur2d_sphere", "sigma[auto]", 2.0, 1.0, dtype="float64"),
    ]
    table = speed.regret_table(rows)
    assert table[("blur2d_sphere", "forward+backward")] == {2.0: (pytest.approx(1.25), "sigma[matmul]")}
    assert table[("blur2d_sphere", "forward")] == {2.0: (1.0, "sigma[fft]")}
    assert table[("blur2d_local_sphere", "forward+backward")] == {2.0: (1.0, "sigma")}
    assert speed.regret_table(rows, "float64") == {
        ("blur2d_sphere", "forward+backward"): {2.0: (1.0, "sigma")}
    }


@pytest.mark.parametrize("auto, ok", [(10.0, True), (13.0, False)])
def test_regret_target(auto, ok):
    rows = [row("dog2d/forward", "sigma[auto]", 1.0, auto), row("dog2d/forward", "sigma[direct]", 1.0, 10.0)]
    rows += [row("dog2d", "sigma[auto]", 1.0, 5.0), row("dog2d", "sigma[fft]", 1.0, 5.0)]
    t = target(rows, "regret")
    assert t.verdict is ok and t.worst == pytest.approx(auto / 10.0) and t.bound == 1.2
    assert len(t.lines) == 2


@pytest.mark.parametrize("opencv_fastest, ok", [(4.5, True), (3.0, False)])
def test_opencv_forward_only_sigma_1_to_8(opencv_fastest, ok):
    op = "blur2d_sphere/forward"
    rows = []
    for s in (0.5, 1.0, 8.0, 16.0):
        rows += [row(op, "sigma[auto]", s, 4.0), row(op, "opencv", s, 5.0, opencv_fastest, 6.0)]
    rows += [row(op, "opencv", 0.5, 0.1, 0.1), row(op, "opencv", 16.0, 0.1, 0.1)]  # outside σ 1-8
    t = target(rows, "opencv")
    assert t.verdict is ok and t.worst == pytest.approx(opencv_fastest / 4.0)
    assert [text.split(":")[0] for _, text in t.lines] == ["σ=1", "σ=8"]


@pytest.mark.parametrize("sigma_ms, ok", [(0.1, True), (0.2, False)])
def test_small_inputs_per_shape(sigma_ms, ok):
    rows = []
    for shape in ("1x1x8x8", "1x3x32x32"):
        rows += [
            row("small_input", "sigma.Blur2d", 1.0, sigma_ms, shape=shape),
            row("small_input", "kornia.GaussianBlur2d", 1.0, 0.2, 0.15, 0.3, shape=shape),
        ]
    t = target(rows, "small")
    assert t.verdict is ok and t.worst == pytest.approx(sigma_ms / 0.15)
    assert {text.split(" ")[0] for _, text in t.lines} == {"1x1x8x8", "1x3x32x32"}


@pytest.mark.parametrize("compiled_ms, ok", [(8.0, True), (12.0, False)])
def test_compiled_vs_eager(compiled_ms, ok):
    rows = [row("module_sphere", "eager", 4.0, 10.0), row("module_sphere", "compiled", 4.0, compiled_ms)]
    rows += [
        row("small_input", "sigma.Blur2d", 1.0, 0.1, shape="1x1x8x8"),
        row("small_input", "sigma.Blur2d[compiled]", 1.0, 0.05, shape="1x1x8x8"),
    ]
    t = target(rows, "compiled")
    assert t.verdict is ok and t.worst == pytest.approx(min(10.0 / compiled_ms, 2.0))
    assert any("1x1x8x8 σ=1: 2.00x" == text for _, text in t.lines)


def test_compiled_small_rows_name_their_references():
    """A small-input line shows what compiling does with radius= and to nn.Conv2d at that size;
    the references inform, they do not judge."""
    rows = [
        row("small_input", "sigma.Blur2d", 1.0, 0.1, shape="1x1x8x8"),
        row("small_input", "sigma.Blur2d[compiled]", 1.0, 0.2, shape="1x1x8x8"),
        row("small_input", "sigma.Blur2d[compiled, radius]", 1.0, 0.08, shape="1x1x8x8"),
        row("small_input", "nn.Conv2d", 1.0, 0.03, shape="1x1x8x8"),
        row("small_input", "nn.Conv2d[compiled]", 1.0, 0.12, shape="1x1x8x8"),
    ]
    t = target(rows, "compiled")
    assert t.verdict is False and t.worst == pytest.approx(0.5)
    assert [text for _, text in t.lines] == [
        "1x1x8x8 σ=1: 0.50x (compiled with radius= 1.25x, nn.Conv2d 3x3 0.25x)"
    ]


@pytest.mark.parametrize("dense_ms, ok", [(200.0, True), (50.0, False)])
def test_dense_and_unfold_standing_targets(dense_ms, ok):
    rows = [row("blur2d_full", "dense_conv", 8.0, dense_ms), row("blur2d_full", "sigma[auto]", 8.0, 10.0)]
    rows += [
        row("blur2d_local_sphere", "unfold", 4.0, dense_ms),
        row("blur2d_local_sphere", "sigma", 4.0, 20.0),
    ]
    assert target(rows, "dense").verdict is ok  # >= 10x: 20x passes, 5x fails
    assert target(rows, "unfold").verdict is ok  # >= 5x: 10x passes, 2.5x fails


def test_old_csv_without_spread_columns_uses_the_median():
    rows = [row("blur2d_sphere", "sigma[auto]", 1.0, 10.0), row("blur2d_sphere", "kornia", 1.0, 50.0)]
    for r in rows:
        del r["round_min_ms"], r["round_max_ms"], r["mode"]
    t = target(rows, "kornia")
    assert t.verdict is True and t.worst == 5.0 and "no spread recorded" in t.detail


def test_detail_lists_the_five_worst_of_many():
    rows = []
    for i, s in enumerate((0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9)):
        rows += [
            row("blur2d_sphere", "sigma[auto]", s, 10.0),
            row("blur2d_sphere", "sigma[direct]", s, 10.0 - i / 10),
        ]
    t = target(rows, "regret")
    assert t.detail.startswith(f"worst {t.worst:.2f}; blur2d_sphere forward+backward σ=9: ")
    assert t.detail.endswith("; 5 more no worse")


def test_read_rows_and_scale_space_costs(tmp_path):
    rows = [row("scale_space", "order=0", 4.0, 2.0), row("scale_space", "order=(1,1)", 4.0, 3.0)]
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert speed.read_rows(path) == rows
    assert speed.scale_space_costs(rows) == ["order=(1,1)  float32  σ = 4     1.50 x order=0"]


def test_auto_choice_follows_the_engines(monkeypatch):
    """The method auto_choice names is the engine a real call runs (spied on a 256 x 256 image)."""
    import torch

    import sigma
    from sigma import _conv
    from sigma.book.speed import auto_choice

    names = {
        "_spatial_axis": None,
        "fft_axis": "sigma[fft]",
        "fft_2d": "sigma[fft]",
        "_direct_2d": "sigma[direct]",
    }
    for name in names:
        real = getattr(_conv, name)

        def spy(*a, _n=name, _r=real, **k):
            seen.append(names[_n] if _n != "_spatial_axis" else f"sigma[{a[-1]}]")
            return _r(*a, **k)

        monkeypatch.setattr(_conv, name, spy)
    x = torch.randn(1, 1, 256, 256)
    for op, s in (
        ("blur2d_sphere", 1.0),
        ("blur2d_sphere", 16.0),
        ("blur2d_sphere", 64.0),
        ("blur2d_full", 0.5),
        ("blur2d_full", 8.0),
    ):
        seen = []
        with torch.no_grad():
            if op == "blur2d_full":
                sigma.blur2d_full(x, sigma.rotated_cov(s, s / 2, math.pi / 6))
            else:
                sigma.blur2d_sphere(x, s)
        assert set(seen) == {auto_choice(op, s, "forward", batch=(1, 1))}, (op, s, seen)
    assert auto_choice("blur2d_full", 8.0, "forward+backward") == "sigma[fft]"
    assert auto_choice("blur2d_full", 0.5, "forward+backward") == "sigma[direct]"
    assert auto_choice("blur2d_sphere", 1.0, "forward", side=16) is None  # the whole-axis matrices
