"""The benchmark script runs end to end on a tiny input and writes a complete CSV.

Only its plumbing is tested here (rows, columns, the interleaved schedule, the verdicts
computed from a CSV); speed is measured by ``make bench``, never in tests.
"""

import contextlib
import csv
import io
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_blur.py"
#: the committed CSV's header: the chapter and sigma.book.data read these columns
OLD_FIELDS = (
    "op,impl,dtype,sigma,kernel_size,median_ms,iqr_ms,peak_mib,shape,cpu,cpu_isa,threads,torch,device".split(
        ","
    )
)
NEW_FIELDS = ["mode", "rounds", "round_min_ms", "round_max_ms", "calls", "baselines"]


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_blur")


@pytest.fixture(scope="module")
def tiny_run(bench, tmp_path_factory):
    """One tiny run of every row group (compiled rows with the fast 'eager' backend, and the
    fused engine's rows through its eager fallback: no compile per kernel size)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SIGMA_FUSED_DISABLE", "1")
    out = tmp_path_factory.mktemp("bench") / "blur.csv"
    args = ["--quick", "--shape", "1x2x12x12", "--sigmas", "1", "--out", str(out)]
    args += ["--min-run-time", "0.002", "--rounds", "2", "--compile", "--compile-backend", "eager"]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            status = bench.main(args)
    finally:
        mp.undo()
    return status, list(csv.DictReader(out.open())), out, printed.getvalue()


def test_benchmark_writes_every_implementation(tiny_run):
    rows = tiny_run[1]
    impls = {(r["op"], r["impl"]) for r in rows}
    methods = ("sigma[auto]", "sigma[direct]", "sigma[matmul]", "sigma[fft]")
    for impl in methods + ("kornia", "original", "dense_conv"):
        assert ("blur2d_sphere", impl) in impls
    for impl in methods + ("kornia", "opencv", "scipy"):
        assert ("blur2d_sphere/forward", impl) in impls
    for op in ("blur2d_diag", "blur2d_full", "dog2d"):
        for mode in ("", "/forward"):
            assert {(op + mode, m) for m in methods} <= impls
    assert ("blur2d_full", "dense_conv") in impls
    assert ("blur2d_sphere", "sigma[fused]") in impls and ("blur2d_full", "sigma[fused]") not in impls
    assert {("backward_cost", "fused forward"), ("backward_cost", "fused forward+backward")} <= impls
    assert {("blur2d_local_sphere", "sigma"), ("blur2d_local_sphere", "unfold")} <= impls
    assert ("blur2d_local_sphere/forward", "sigma") in impls
    for impl in ("order=0", "order=(1,1)", "order=(2,0)", "discrete"):
        assert any((r["op"], r["impl"], r["sigma"]) == ("scale_space", impl, "1.0") for r in rows), impl
    small = {(r["shape"], r["impl"]) for r in rows if r["op"] == "small_input"}
    for shape in ("1x1x8x8", "1x3x32x32"):
        for impl in (
            "sigma.Blur2d",
            "kornia.GaussianBlur2d",
            "sigma.Blur2d[compiled]",
            "sigma.Blur2d[compiled, radius]",
            "nn.Conv2d",
            "nn.Conv2d[compiled]",
        ):
            assert (shape, impl) in small
    for op in ("module_sphere", "module_full"):
        assert {(op, "eager"), (op, "compiled")} <= impls
    assert {("backward_cost", "forward"), ("backward_cost", "forward+backward")} <= impls
    for r in rows:
        assert float(r["median_ms"]) > 0
        assert r["cpu"] and r["cpu_isa"] and r["torch"] and r["threads"] and r["device"] == "cpu"
        assert r["mode"] == ("forward" if r["op"].endswith("/forward") else "forward+backward")
        assert r["rounds"] == "2" and int(r["calls"]) >= 2
        assert float(r["round_min_ms"]) <= float(r["median_ms"]) <= float(r["round_max_ms"])
        assert "opencv" in r["baselines"] and "kornia" in r["baselines"]


def test_new_columns_come_after_the_old_ones(bench, tiny_run):
    header = tiny_run[2].open().readline().strip().split(",")
    assert header == OLD_FIELDS + NEW_FIELDS
    assert list(bench.FIELDS) == header


def test_run_prints_regret_table_and_verdicts(tiny_run):
    status, _, _, printed = tiny_run
    assert status in (0, 1)  # timings on a tiny input decide nothing
    assert "# auto regret" in printed and "dog2d" in printed
    assert "# targets (float32): measured value and verdict" in printed
    assert "compiled (inductor) module vs eager" in printed


def test_the_log_names_the_allocator_settings(bench, tiny_run):
    """The settings that change glibc's malloc, or a preloaded allocator, are recorded (they move
    CPU timings between processes); other tunables and variables are not."""
    assert bench.allocator({}) == "glibc defaults"
    env = {
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2:glibc.malloc.trim_threshold=4294967296",
        "MALLOC_ARENA_MAX_": "2",
        "LD_PRELOAD": "/usr/lib/libjemalloc.so.2",
        "PATH": "/bin",
    }
    assert bench.allocator(env) == (
        "GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967296; MALLOC_ARENA_MAX_=2; "
        "LD_PRELOAD=/usr/lib/libjemalloc.so.2"
    )
    assert bench.allocator({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}) == "glibc defaults"
    assert "# allocator: " in tiny_run[3]


def test_schedule_alternates(bench):
    assert bench.schedule(["a", "b", "c"], 5) == [
        list("abc"),
        list("cba"),
        list("abc"),
        list("cba"),
        list("abc"),
    ]


def test_measure_races_in_alternating_rounds(bench):
    import torch

    log = []
    fns = {name: (lambda name=name: log.append(name)) for name in "abc"}
    stats = bench.measure(fns, torch.device("cpu"), 0.0, rounds=4)
    assert log == list("abc") + list("abccbaabccba")  # warm-up, then one call per round each
    assert all(t["rounds"] == 4 and t["calls"] == 4 for t in stats.values())


def test_summarize_takes_the_median_of_round_medians(bench):
    t = bench.summarize([[0.001, 0.003, 0.002], [0.010], [0.004, 0.004], [0.005], [0.001]])
    assert t["median_ms"] == pytest.approx(4.0)  # round medians 2, 10, 4, 5, 1 ms
    assert (t["round_min_ms"], t["round_max_ms"]) == (pytest.approx(1.0), pytest.approx(10.0))
    assert (t["rounds"], t["calls"]) == (5, 8)


def _row(op, impl, s, ms, lo=None, hi=None, shape="8x3x256x256", **extra):
    lo, hi = lo or ms, hi or ms
    mode = "forward" if op.endswith("/forward") else "forward+backward"
    return dict(op=op, impl=impl, dtype="float32", sigma=s, median_ms=ms, iqr_ms=0, shape=shape, mode=mode,
                round_min_ms=lo, round_max_ms=hi, **extra)  # fmt: skip


def synthetic_rows(kornia_fastest=50.0):
    rows = []
    for s in (0.5, 1.0, 4.0, 64.0):
        rows += [
            _row("blur2d_sphere", "sigma[auto]", s, 10.0, 9.0, 11.0),
            _row("blur2d_sphere", "sigma[direct]", s, 10.0),
            _row("blur2d_sphere", "sigma[fft]", s, 9.0),
            _row("blur2d_sphere", "kornia", s, 100.0, kornia_fastest, 200.0),
            _row("blur2d_sphere/forward", "sigma[auto]", s, 4.0),
            _row("backward_cost", "forward", s, 4.0),
            _row("backward_cost", "forward+backward", s, 10.0),
            _row("blur2d_sphere/forward", "sigma[direct]", s, 4.0),
            _row("blur2d_sphere/forward", "opencv", s, 5.0, 4.5, 6.0),
            _row("blur2d_local_sphere", "sigma", s, 3.0),
            _row("module_sphere", "eager", s, 10.0),
            _row("module_sphere", "compiled", s, 8.0),
        ]
    for shape in ("1x1x8x8", "1x3x32x32"):
        rows += [
            _row("small_input", "sigma.Blur2d", 1.0, 0.1, shape=shape),
            _row("small_input", "kornia.GaussianBlur2d", 1.0, 0.2, 0.15, 0.3, shape=shape),
            _row("small_input", "sigma.Blur2d[compiled]", 1.0, 0.05, shape=shape),
        ]
    return rows


def test_verdicts_from_a_synthetic_csv(bench):
    verdicts = {t.name.split(":")[0]: (t.verdict, t.detail) for t in bench.check_targets(synthetic_rows())}
    kornia = next(v for k, v in verdicts.items() if k.startswith("forward + backward vs kornia"))
    assert kornia[0] is True and "worst 5.00" in kornia[1] and "rounds 4.5-22.2x" in kornia[1]
    backward = next(v for k, v in verdicts.items() if k.startswith("(forward + backward) / forward"))
    assert backward[0] is True and "worst 2.50" in backward[1]  # 10 / 4
    regret = next(v for k, v in verdicts.items() if k.startswith("auto / fastest"))
    assert regret[0] is True and "worst 1.11" in regret[1]  # 10 / 9, forward + backward
    opencv = next(v for k, v in verdicts.items() if k.startswith("forward vs OpenCV"))
    assert opencv[0] is True and "worst 1.12" in opencv[1]  # 4.5 / 4, σ 1 and 4 only
    small = next(v for k, v in verdicts.items() if k.startswith("small inputs"))
    assert small[0] is True and "worst 0.67" in small[1]  # 0.1 / 0.15
    compiled = next(v for k, v in verdicts.items() if k.startswith("compiled"))
    assert compiled[0] is True and "worst 1.25" in compiled[1] and "1x1x8x8 σ=1: 2.00x" in compiled[1]
    dense = next(v for k, v in verdicts.items() if k.startswith("blur2d_full at"))
    assert dense[0] is None  # not measured: skipped, not failed
    # kornia's fastest round decides: a median 10x ahead with a fast round 3x ahead fails
    failing = {t.name: t.verdict for t in bench.check_targets(synthetic_rows(kornia_fastest=30.0))}
    assert [name for name, ok in failing.items() if ok is False] == [next(iter(failing))]


def test_report_exit_status_from_a_csv(bench, tmp_path, capsys):
    for fastest, status in ((50.0, 0), (30.0, 1)):
        path = tmp_path / f"{fastest}.csv"
        rows = synthetic_rows(fastest)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        assert bench.main(["--report", str(path)]) == status
    printed = capsys.readouterr().out
    assert "[FAIL] forward + backward vs kornia" in printed and "[SKIP] blur2d_full at σ=8" in printed
    assert "blur2d_local_sphere" in printed.split("# auto regret")[1]


def test_committed_csv_still_reads(bench, capsys):
    """The committed CSV (written by this harness: rounds and spreads) feeds sigma.book.data and the report."""
    from sigma.book import data

    rows = data.benchmark_results("cpu")
    assert set(OLD_FIELDS) <= set(rows[0]) and {"rounds", "round_min_ms", "round_max_ms", "mode"} <= set(
        rows[0]
    )
    assert bench.report(rows) in (0, 1)
    printed = capsys.readouterr().out
    assert "rounds" in printed and "no spread recorded" not in printed and "blur2d_full" in printed
    assert "[SKIP]" not in printed  # every target has rows, the compiled ones included


OTHER_MACHINES = sorted((BENCH.parent / "results").glob("*/blur_*.csv"))


@pytest.mark.parametrize("path", OTHER_MACHINES, ids=lambda p: p.parent.name)
def test_other_machines_csv_reads(bench, path, capsys):
    """Each CSV recorded on another machine (benchmarks/results/<machine>/) names its CPU and
    vector instructions, and the report judges every target from it; its log is committed beside it."""
    from sigma.book import speed

    rows = speed.read_rows(path)
    machines = {(r["cpu"], r["cpu_isa"], r["threads"], r["torch"]) for r in rows}
    assert len(machines) == 1 and all(machines.pop()), f"{path} mixes machines or lacks one"
    assert bench.report(rows) in (0, 1)
    printed = capsys.readouterr().out
    assert "[SKIP]" not in printed and "# auto regret" in printed
    log = path.with_suffix(".log").read_text()
    assert "# targets (float32)" in log and rows[0]["cpu_isa"] in log


def test_other_machines_recorded():
    assert OTHER_MACHINES, "benchmarks/results/ holds no other machine's CSV"


def test_plan_lists_rows(bench, capsys):
    assert (
        bench.main(["--plan", "--quick", "--shape", "1x1x8x8", "--sigmas", "1", "--ops", "blur2d_sphere"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "blur2d_sphere/forward" in printed and "opencv" in printed and "# 2 rows" in printed


def test_baselines_compute_the_same_blur(bench):
    import numpy as np
    import torch

    import sigma

    x = torch.randn(1, 2, 20, 20, dtype=torch.float64)
    s = torch.tensor(1.5, dtype=torch.float64)
    ref = sigma.blur2d_sphere(x, s)
    torch.testing.assert_close(bench.kornia_blur(x, s), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(bench.original_blur(x, s), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(bench.dense_blur(x, sigma.gauss2d_sphere(s)), ref, rtol=0, atol=1e-12)
    smap = torch.full((1, 1, 20, 20), 1.5, dtype=torch.float64)
    torch.testing.assert_close(bench.unfold_local(x, smap, 3), ref, rtol=0, atol=1e-12)
    planes = x.float().numpy()
    for fn in (bench.opencv_blur, bench.scipy_blur):
        np.testing.assert_allclose(fn(planes, 1.5), ref.numpy(), rtol=0, atol=1e-5)


def test_fused_engine_rows_compute_the_fused_blur_and_its_gradients(bench):
    """The backward_cost rows' ``fused engine: *`` parts compute what the fused op computes: its
    output, and from a gradient of ones the input gradient and both kernels' tap gradients."""
    import torch

    import sigma
    from sigma import _fused, _fused2d
    from sigma.book import speed
    from sigma.kernels import _gauss1d

    if not _fused.available():
        pytest.skip("torch.compile cannot run here (no C++ compiler)")
    x = torch.randn(1, 2, 12, 12, dtype=torch.float64)
    parts = dict(bench.fused_engine_cases(x, 1.0))
    assert list(parts) == [f"fused engine: {p}" for p in speed.ENGINE_PARTS]
    _, _, y = parts["fused engine: forward"]()
    torch.testing.assert_close(
        y, sigma.blur2d_sphere(x, 1.0, bench.STD_DEVS, method="fused"), rtol=0, atol=1e-12
    )
    w = _gauss1d(torch.tensor(1.0, dtype=x.dtype), sigma.kernel_radius(1.0, bench.STD_DEVS))
    xr, wy, wx = (t.clone().requires_grad_() for t in (x, w, w))
    expected = torch.autograd.grad(_fused2d.fused_separable(xr, wy, wx, "zeros").sum(), (xr, wy, wx))
    got = parts["fused engine: backward"]()
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    gx, gwy, gwx = parts["fused engine: input gradient"]()
    torch.testing.assert_close(gx, expected[0], rtol=0, atol=1e-12)
    assert gwy is None and gwx is None


def test_backward_cost_rows_time_a_training_step(bench, monkeypatch):
    """``backward_cost``'s forward + backward runs as a training step: each call leaves the
    gradients of that call alone (set to None first, nothing accumulated), from a gradient of
    ones made once; the other rows keep accumulating (the same for every implementation)."""
    import torch

    import sigma

    monkeypatch.setenv("SIGMA_FUSED_DISABLE", "1")
    x = torch.randn(1, 2, 12, 12, dtype=torch.float64, requires_grad=True)
    p = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    expected = torch.autograd.grad(sigma.blur2d_sphere(x, p, bench.STD_DEVS).sum(), x)[0]
    made = []
    real_ones = torch.ones_like
    monkeypatch.setattr(torch, "ones_like", lambda t, **kw: made.append(1) or real_ones(t, **kw))
    fns = dict(bench.cases("backward_cost", 1.0, x))
    for name in ("forward+backward", "fused forward+backward"):
        made.clear()
        for _ in range(3):
            fns[name]()
        torch.testing.assert_close(x.grad, expected, rtol=0, atol=1e-12)
        assert len(made) == 1
    x.grad = None
    (_, blur), *_ = bench.cases("blur2d_sphere", 1.0, x)
    blur()
    blur()
    torch.testing.assert_close(x.grad, 2 * expected, rtol=0, atol=1e-12)


def test_overhead_table_runs(bench, capsys):
    assert bench.main(["--overhead", "--min-run-time", "0.001", "--rounds", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sigma.Blur2d(radius=3)" in out and "kornia.filters.GaussianBlur2d" in out
