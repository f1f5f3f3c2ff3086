"""``benchmarks/bench_allocator.py``'s plumbing on a tiny input: what each process times, the
environment each setting starts it with, and the summary it prints; the speeds themselves are
measured by running it, never in tests."""

import json
import subprocess
import sys

import pytest


@pytest.fixture
def bench(monkeypatch, benchmark_script):
    module = benchmark_script("bench_allocator")
    monkeypatch.setattr(module, "SHAPE", (1, 2, 24, 24))
    return module


def test_a_process_times_every_case_and_counts_its_page_faults(bench, monkeypatch):
    monkeypatch.setenv("SIGMA_FUSED_DISABLE", "1")  # the fused case is skipped, not run eagerly
    out = bench.child(rounds=2, calls=3)
    assert list(out) == ["fft, σ = 16"]
    ms, faults = out["fft, σ = 16"]
    assert ms > 0 and faults >= 0


def test_each_setting_starts_fresh_processes_with_its_environment(bench, monkeypatch):
    seen = []

    def fake_run(cmd, env, **kw):
        seen.append((cmd, env.get("GLIBC_TUNABLES")))
        kept = env.get("GLIBC_TUNABLES") == bench.KEEP
        faults = 0.0 if kept else 3000.0 * (len(seen) == 1)  # one default process in the bad regime
        result = {"fused, σ = 1": [1.0 if kept else 5.0, faults], "fft, σ = 16": [9.0, faults]}
        return subprocess.CompletedProcess(cmd, 0, stdout="log line\n" + json.dumps(result) + "\n")

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    results = bench.run(processes=2, rounds=1, calls=1)
    assert [t for _, t in seen] == [None, bench.KEEP, None, bench.KEEP]
    assert all(cmd[:3] == [sys.executable, bench.__file__, "--child"] for cmd, _ in seen)
    lines = bench.report(results)
    assert len(lines) == 4
    assert lines[0].startswith("default  fused, σ = 1")
    assert "over 1000 faults per call: 1 of 2" in lines[0]
    assert "over 1000 faults per call: 0 of 2" in lines[2]
    assert "5.00 -   5.00" in lines[0] and "1.00 -   1.00" in lines[2]


def test_counts_below_one_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--processes", "0"])
