"""The JupyterLab check can fail: small notebooks with one fault each are opened in Lab.

In a notebook with glue, a citation, a dropdown, an admonition and math, a code cell that
raises and a ``{glue:text}`` key that nothing glued each fail, naming the notebook and the cell,
and nothing else does; the same notebook without the jupyterlab-myst extension fails on every
role and directive it shows raw.

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

# What glue() publishes (see sigma.book.glue), written out so the kernel need not import torch.
GLUE = """from IPython.display import display
for name, text in [("sigma_hat", "2.998"), ("steps", "100")]:
    prefix = "application/papermill.record/"
    display({prefix + "text/plain": text}, raw=True, metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})"""
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
    broken = [*clean, ("markdown", "The loss is {glue:text}`final_loss:.2e`."), ("code", "1 / 0")]
    return {"clean": _write(folder, "clean.ipynb", clean), "broken": _write(folder, "broken.ipynb", broken)}


def test_broken_notebook_fails_where_it_is_broken_and_nowhere_else(notebooks, chromium):
    """Glue, a citation, a dropdown, an admonition and math pass; the error and the unglued key do not."""
    (report,) = check_lab.run_check([notebooks["broken"]], chromium=chromium, timeout_s=120, screenshots=None)
    assert report.failures == [
        "broken.ipynb: code cell 5 raised ZeroDivisionError: division by zero",
        "broken.ipynb: markdown cell 4 pastes glue key 'final_loss', which no code cell glued",
    ]


def test_raw_myst_is_named_without_the_extension(notebooks, chromium):
    (report,) = check_lab.run_check(
        [notebooks["clean"]], chromium=chromium, timeout_s=120, screenshots=None, without_myst=True
    )
    text = "\n".join(report.failures)
    for cell, raw in [(0, "{cite}"), (0, "{glue:text}"), (2, ":::{dropdown}"), (3, ":::{admonition}")]:
        assert f"markdown cell {cell} shows raw MyST '{raw}" in text, text
    assert all(f.startswith("clean.ipynb: markdown cell") for f in report.failures)
