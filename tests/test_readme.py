"""The README's Python examples run as printed (in a scratch folder: one of them writes a file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch, capsys):
    if "onnx" in code:
        pytest.importorskip("onnxscript")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    if "recovered σ" in code:  # the ten-line example learns σ = 3 from σ = 1
        out = capsys.readouterr().out
        assert abs(float(out.split("=")[-1]) - 3.0) < 0.01
