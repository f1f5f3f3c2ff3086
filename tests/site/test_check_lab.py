"""The JupyterLab check can fail: small notebooks with one fault each are opened in Lab.

A clean notebook (glue, a citation, a dropdown, an admonition, math) passes; a code cell that
raises, a ``{glue:text}`` key that nothing glued, and MyST shown raw (the jupyterlab-myst
extension disabled) each fail with a message naming the notebook and the cell.

These tests start JupyterLab and Chromium, so they run from ``make lab-test``
(``SIGMA_LAB_TESTS=1``), not from the library suite.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

if not os.environ.get("SIGMA_LAB_TESTS"):
    pytest.skip("JupyterLab browser tests run from `make lab-test`", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_lab  # noqa: E402
import check_site  # noqa: E402

GLUE = "from sigma.book import glue\nglue('sigma_hat', 2.998)\nglue('steps', 100)"
PROSE = [
    "# A chapter\n\nAs in {cite}`shelhamer2019blurring`, σ̂ = {glue:text}`sigma_hat:.3f` after "
    "{glue:text}`steps` steps, and $\\hat\\sigma \\approx \\sigma^*$.",
    ":::{dropdown} Hint\nLook at the loss.\n:::",
    ":::{admonition} Predict, then run\nWhat will σ̂ be?\n:::",
]


def _write(folder: Path, name: str, cells: list[tuple[str, str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(src) if kind == "code" else nbformat.v4.new_markdown_cell(src)
        for kind, src in cells
    ]
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    path, why = check_site.find_chromium()
    if path is None:
        pytest.skip(f"JupyterLab check SKIPPED: {why}")
    return path


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lab-notebooks")
    clean = [("markdown", PROSE[0]), ("code", GLUE), ("markdown", PROSE[1]), ("markdown", PROSE[2])]
    return {
        "clean": _write(folder, "clean.ipynb", clean),
        "error": _write(folder, "error.ipynb", [*clean, ("code", "1 / 0")]),
        "unglued": _write(
            folder, "unglued.ipynb", [*clean, ("markdown", "The loss is {glue:text}`final_loss:.2e`.")]
        ),
    }


@pytest.fixture(scope="module")
def reports(notebooks, chromium) -> dict[str, list[str]]:
    """Every notebook checked in one Lab (with jupyterlab-myst)."""
    names = list(notebooks)
    got = check_lab.run_check(
        [notebooks[n] for n in names], chromium=chromium, timeout_s=120, screenshots=None
    )
    return {n: r.failures for n, r in zip(names, got, strict=True)}


def test_clean_notebook_passes(reports):
    assert reports["clean"] == []


def test_cell_error_is_named(reports):
    assert reports["error"] == ["error.ipynb: code cell 4 raised ZeroDivisionError: division by zero"]


def test_unglued_key_is_named(reports):
    assert reports["unglued"] == [
        "unglued.ipynb: markdown cell 4 pastes glue key 'final_loss', which no code cell glued"
    ]


def test_raw_myst_is_named_without_the_extension(notebooks, chromium):
    (report,) = check_lab.run_check(
        [notebooks["clean"]], chromium=chromium, timeout_s=120, screenshots=None, without_myst=True
    )
    text = "\n".join(report.failures)
    for cell, raw in [(0, "{cite}"), (0, "{glue:text}"), (2, ":::{dropdown}"), (3, ":::{admonition}")]:
        assert f"markdown cell {cell} shows raw MyST '{raw}" in text, text
    assert all(f.startswith("clean.ipynb: markdown cell") for f in report.failures)
