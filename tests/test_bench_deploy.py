"""benchmarks/bench_deploy.py runs each path and refuses an ONNX model that differs from eager."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bench(benchmark_script):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    return benchmark_script("bench_deploy")


def test_prints_a_row_per_layer(bench, capsys):
    args = ["--size", "32", "--rounds", "2", "--seconds", "0.02", "--no-compile"]
    assert bench.main(args + ["--layers", "Blur2d sigma=1.5,Blur2d full"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| Blur2d")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "nan" and float(cells[1]) > 0 and float(cells[2]) > 0


def test_onnx_runner_checks_the_model(bench):
    import sigma

    class Wrong(torch.nn.Module):  # ONNX sees one function, eager another
        def forward(self, x):
            return x * 2 if torch.compiler.is_exporting() else x

    x = torch.randn(1, 3, 16, 16)
    run = bench.onnx_runner(sigma.Blur2d(1.0, radius=2).eval(), x)
    assert run()[0].shape == (1, 3, 16, 16)
    with pytest.raises(AssertionError, match="differs from eager"):
        bench.onnx_runner(Wrong().eval(), x)
