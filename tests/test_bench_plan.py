"""``benchmarks/bench_plan.py`` runs end to end on a tiny input (its plumbing only: the plans it
compares, the methods it races, the regret it prints and writes); speed is measured by running
it, never in tests."""

import csv
import dataclasses

import pytest

from sigma import _auto


@pytest.fixture
def bench_plan(monkeypatch, benchmark_script):
    module = benchmark_script("bench_plan")
    real = module._median_ms
    monkeypatch.setattr(module, "SHAPE", (1, 2, 24, 24))
    monkeypatch.setattr(module, "_median_ms", lambda fns, repeats, budget=0.1: real(fns, repeats, budget=0.0))
    monkeypatch.setenv("SIGMA_FUSED_DISABLE", "1")  # 'fused' through its eager fallback: no compile
    asked = []

    def tune(*, store, fused=False):  # a tuned plan without minutes of races
        asked.append((store, fused))
        return dataclasses.replace(_auto.BUILTIN, direct_max_taps_1d=3, fused_max_taps=9 if fused else 0)

    monkeypatch.setattr(module.sigma, "tune", tune)
    yield module, asked
    _auto.use_plan(None)


@pytest.mark.parametrize("fused", [False, True])
def test_bench_plan_races_and_reports(bench_plan, tmp_path, capsys, fused):
    module, asked = bench_plan
    out = tmp_path / "plan.csv"
    assert module.main(["--sigmas", "1", "--repeats", "3", "--out", str(out)] + ["--fused"] * fused) == 0
    assert asked == [(False, fused)]  # tuned, not stored, with the fused loops only when asked
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("structure"))
    assert ("fused" in header.split()) is fused
    assert "worst regret, builtin plan" in printed and "worst regret, tuned plan" in printed
    rows = list(csv.DictReader(out.open()))
    assert [(r["structure"], r["mode"]) for r in rows] == [
        (s, m) for s in module.STRUCTURES for m in ("forward+backward", "forward")
    ]
    for r in rows:
        assert float(r["auto[builtin]"]) > 0 and float(r["auto[tuned]"]) > 0 and float(r["direct"]) > 0
        # the fused loops serve the separable blurs only
        assert ("fused" in r and r["fused"] != "") is (fused and r["structure"] != "blur2d_full")
