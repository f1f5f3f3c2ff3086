"""The benchmark script runs end to end on a tiny input and writes a complete CSV.

Only its plumbing is tested here; speed is measured by ``make bench``, never in tests.
"""

import csv
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_blur.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_blur", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_every_implementation(bench, tmp_path, capsys):
    out = tmp_path / "blur.csv"
    args = ["--quick", "--shape", "1x2x12x12", "--sigmas", "1,4", "--out", str(out), "--min-run-time", "0.01"]
    bench.main(args)
    rows = list(csv.DictReader(out.open()))
    impls = {(r["op"], r["impl"]) for r in rows}
    for impl in (
        "sigma[auto]",
        "sigma[direct]",
        "sigma[matmul]",
        "sigma[fft]",
        "kornia",
        "original",
        "dense_conv",
    ):
        assert ("blur2d_sphere", impl) in impls
    assert ("blur2d_full", "dense_conv") in impls
    assert {("blur2d_local_sphere", "sigma"), ("blur2d_local_sphere", "unfold")} <= impls
    for impl in ("order=0", "order=(1,1)", "order=(2,0)", "discrete"):
        for s in ("1.0", "4.0"):
            assert any((r["op"], r["impl"], r["sigma"]) == ("scale_space", impl, s) for r in rows), (impl, s)
    for r in rows:
        assert float(r["median_ms"]) > 0
        assert r["cpu"] and r["cpu_isa"] and r["torch"] and r["threads"] and r["device"] == "cpu"
    printed = capsys.readouterr().out
    assert "# targets (float32):" in printed and "blur2d_sphere" in printed
    assert "# scale space: cost relative to the plain blur" in printed and "order=(2,0)" in printed


def test_baselines_compute_the_same_blur(bench):
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


def test_overhead_table_runs(bench, capsys):
    assert bench.main(["--overhead", "--min-run-time", "0.01", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sigma.Blur2d(radius=3)" in out and "kornia.filters.GaussianBlur2d" in out
