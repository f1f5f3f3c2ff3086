#!/usr/bin/env python3
"""Check the book's notebooks as they are stored: listed, executed in order, outputs kept, no errors.

The site shows the notebooks' stored outputs and never re-executes them, so what is committed is
what readers see. For each notebook this checks, in a fraction of a second and without running
anything:

* it is listed in ``_toc.yml`` (and every page that ``_toc.yml`` lists exists);
* it was executed top to bottom in one kernel session: the code cells that have source carry the
  execution counts 1, 2, 3, ... in order (``make execute`` or ``jupyter nbconvert --execute``
  produce exactly this; a cell re-run by hand or a cell left unexecuted breaks it);
* its outputs are stored: at least one code cell has outputs, an ``execute_result`` carries the
  count of its own cell, and a cell without source has no outputs;
* no output is an error (a traceback stored in the page);
* no code hides in a comment (an ``assert`` or a ``glue(`` call after a ``#``: a lost line
  break that turned a check into a comment).

Usage: ``python tools/check_notebooks.py [NOTEBOOK ...]`` (default, or when no argument is a\nnotebook: every ``book/*.ipynb``).
Exit status 1 if anything is wrong; each problem is printed as ``path: cell N: message``.
Run by ``make lint`` and by the pre-commit hook ``notebooks``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# an assert or a glue call after a '#': a lost line break turned a check into a comment
CODE_IN_COMMENT = re.compile(r"#.*(assert\s*(float|bool|abs|not|all|any|len|\()|glue\()")
TOC = REPO / "_toc.yml"


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` of a Jupyter Book ``_toc.yml`` (root, chapters, parts, sections), in order."""
    found = [toc["root"]] if "root" in toc else []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []):
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk({k: v for k, v in toc.items() if k in ("parts", "chapters", "sections")})
    return found


def toc_problems(notebooks: list[Path]) -> tuple[list[str], set[Path]]:
    """Problems with _toc.yml itself, and the notebook paths it lists."""
    problems, listed = [], set()
    for entry in toc_files(yaml.safe_load(TOC.read_text(encoding="utf-8"))):
        stem = REPO / entry
        matches = [stem.with_name(stem.name + ext) for ext in (".ipynb", ".md")]
        matches = [p for p in matches if p.exists()] or ([stem] if stem.suffix and stem.exists() else [])
        if not matches:
            problems.append(f"_toc.yml: lists {entry!r}, which is neither {entry}.ipynb nor {entry}.md")
        listed.update(p.resolve() for p in matches if p.suffix == ".ipynb")
    for nb in notebooks:
        if nb.resolve() not in listed:
            problems.append(f"{_rel(nb)}: not listed in _toc.yml (add it, or remove the notebook)")
    return problems, listed


def notebook_problems(path: Path) -> list[str]:
    """Problems with one notebook's stored state (see the module docstring)."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        return [f"{_rel(path)}: cannot read the notebook: {err}"]
    if nb.get("nbformat") != 4:
        return [f"{_rel(path)}: nbformat must be 4, got {nb.get('nbformat')!r}"]
    problems: list[str] = []
    code = [
        c
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()
    ]
    if code and all(c.get("execution_count") is None for c in code):
        return [f"{_rel(path)}: not executed (no code cell has an execution count; run `make execute`)"]
    expected, n_outputs = 1, 0
    for index, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        where = f"{_rel(path)}: cell {index}"
        source = "".join(cell.get("source", ""))
        outputs = cell.get("outputs", [])
        count = cell.get("execution_count")
        if not source.strip():
            if outputs:
                problems.append(f"{where}: has outputs but no source")
            continue
        if count != expected:
            state = "was not executed" if count is None else f"has execution count {count}"
            problems.append(f"{where}: {state}, expected {expected} (re-run the notebook top to bottom)")
        expected = (count if isinstance(count, int) else expected) + 1
        n_outputs += len(outputs)
        for line in source.splitlines():
            if CODE_IN_COMMENT.search(line):
                problems.append(f"{where}: code inside a comment never runs: {line.strip()[:80]!r}")
        for out in outputs:
            kind = out.get("output_type")
            if kind == "error":
                problems.append(f"{where}: stores an error output ({out.get('ename')}: {out.get('evalue')})")
            elif kind == "execute_result" and out.get("execution_count") != count:
                problems.append(
                    f"{where}: result of execution {out.get('execution_count')} in a cell executed as {count}"
                )
    if n_outputs == 0:
        problems.append(f"{_rel(path)}: no stored outputs (execute it with `make execute`)")
    return problems


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def main(argv: list[str]) -> int:
    # Other paths (pre-commit passes _toc.yml when it changes) mean: check every notebook.
    notebooks = [Path(a) for a in argv if a.endswith(".ipynb")] or sorted((REPO / "book").glob("*.ipynb"))
    problems, _ = toc_problems(notebooks)
    for nb in notebooks:
        problems += notebook_problems(nb)
    for line in problems:
        print(line)
    print(f"check_notebooks: {len(notebooks)} notebook(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
