"""tools/check_notebooks.py finds what it promises on small synthetic notebooks (nothing is executed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import check_notebooks  # noqa: E402


def _code(source: str, count: int | None, outputs: list | None = None) -> dict:
    return {
        "cell_type": "code",
        "source": source,
        "execution_count": count,
        "metadata": {},
        "outputs": outputs or [],
    }


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _write(tmp_path: Path, cells: list[dict]) -> Path:
    path = tmp_path / "chapter.ipynb"
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [{"cell_type": "markdown", "source": "# T", "metadata": {}}, *cells],
    }
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_executed_in_order_passes(tmp_path):
    path = _write(tmp_path, [_code("x = 1", 1), _code("", None), _code("print(x)", 2, [_stream("1\n")])])
    assert check_notebooks.notebook_problems(path) == []


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([_code("a = 1", 1), _code("print(a)", 3, [_stream("1\n")])], "has execution count 3, expected 2"),
        ([_code("a = 1", 2), _code("print(a)", 1, [_stream("1\n")])], "has execution count 2, expected 1"),
        ([_code("a = 1", 1), _code("print(a)", None)], "was not executed, expected 2"),
        ([_code("a = 1", None), _code("print(a)", None)], "not executed (no code cell"),
        ([_code("a = 1", 1), _code("b = 2", 2)], "no stored outputs"),
        (
            [
                _code(
                    "1 / 0",
                    1,
                    [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "x", "traceback": []}],
                )
            ],
            "stores an error output (ZeroDivisionError",
        ),
        (
            [
                _code(
                    "1",
                    1,
                    [{"output_type": "execute_result", "execution_count": 4, "data": {}, "metadata": {}}],
                )
            ],
            "result of execution 4",
        ),
        (
            [_code("", None, [_stream("stale\n")]), _code("print(1)", 1, [_stream("1\n")])],
            "has outputs but no source",
        ),
        (
            [_code("x = 1  # one dimensionassert float(x) > 0", 1, [_stream("1\n")])],
            "code inside a comment never runs",
        ),
        (
            [_code("y = 2  # the sizeglue('y', y)", 1, [_stream("1\n")])],
            "code inside a comment never runs",
        ),
    ],
)
def test_problems_are_reported(tmp_path, cells, message):
    problems = check_notebooks.notebook_problems(_write(tmp_path, cells))
    assert any(message in p for p in problems), problems


def test_toc_lists_every_book_notebook_and_nothing_missing():
    notebooks = sorted((REPO / "book").glob("*.ipynb"))
    problems, listed = check_notebooks.toc_problems(notebooks)
    assert problems == []
    assert listed == {p.resolve() for p in notebooks}


def test_notebook_outside_the_toc_is_reported(tmp_path):
    path = _write(tmp_path, [_code("print(1)", 1, [_stream("1\n")])])
    problems, _ = check_notebooks.toc_problems([path])
    assert any("not listed in _toc.yml" in p for p in problems)


def test_comments_that_only_mention_assert_pass(tmp_path):
    cell = _code("x = 1  # the assert below checks it\nassert x == 1", 1, [_stream("1\n")])
    assert check_notebooks.notebook_problems(_write(tmp_path, [cell])) == []
