"""The notebook this project grew from, shipped with the package, and a way to run it.

``seed_notebook.txt`` (next to this file) is the original notebook "Learning Filter Scale
by ∂σ (with a PyTorch Module)" as plain text: each ``In [None]:`` line opens a code cell,
and every other paragraph is markdown. The book's page "The original notebook, side by
side" runs its code cells unchanged, with one exception: the first cell changes directory
into another project's checkout, and those lines (:data:`PATH_HACK`) are removed.

Example:
    >>> from sigma.book import seed
    >>> len(seed.cells())
    7
    >>> "segmentron" in "".join(seed.cells())
    False
    >>> seed.cells()[0].splitlines()[0]
    'import matplotlib.pyplot as plt'
"""

from __future__ import annotations

import ast
import re
from importlib import resources
from typing import Any

__all__ = ["PATH_HACK", "text", "blocks", "cells", "to_python", "run"]

#: The lines of the seed's first cell that change directory into another project's
#: checkout (``segmentron-master``); the only part of the seed the book does not run.
PATH_HACK = """\
# work from the project root
import os
import sys
import subprocess
from pathlib import Path

# root here refers to the segmentron-master folder
root_dir = Path(subprocess.check_output(['git', 'rev-parse', '--show-toplevel']).strip().decode("utf-8"))
root_dir = root_dir / "segmentron-master"
os.chdir(root_dir)
sys.path.append(str(root_dir))
"""

_MARKER = "In [None]:"


def text() -> str:
    """The seed notebook as shipped: its full plain text, markdown and code."""
    return resources.files(__package__).joinpath("seed_notebook.txt").read_text(encoding="utf-8")


def _compiles(source: str) -> bool:
    # IPython's line magics (``%matplotlib inline``) are not Python; blank them for the test
    plain = re.sub(r"(?m)^\s*[%!].*$", "", source)
    try:
        ast.parse(plain)
    except SyntaxError:
        return False
    return True


def _is_comment(paragraph: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in paragraph.splitlines())


def _split_chunk(chunk: str) -> tuple[str, str]:
    """Split the text after one ``In [None]:`` marker into (code, markdown).

    Paragraphs are separated by blank lines. The code is the longest run of leading
    paragraphs that parses as Python, less any trailing comment-only paragraphs (a
    markdown heading such as ``## Toy Experiment`` parses as a comment); the rest is
    the markdown that follows the cell.
    """
    paragraphs = chunk.strip("\n").split("\n\n")
    n = max((k for k in range(1, len(paragraphs) + 1) if _compiles("\n\n".join(paragraphs[:k]))), default=0)
    while n > 0 and _is_comment(paragraphs[n - 1]):
        n -= 1
    code = "\n\n".join(paragraphs[:n])
    markdown = "\n\n".join(paragraphs[n:])
    return code.strip("\n"), markdown.strip("\n")


def blocks() -> list[tuple[str, str]]:
    """The seed as ``(kind, source)`` pairs in order, ``kind`` being ``'markdown'`` or ``'code'``.

    Code is returned exactly as in the seed (path hack included); see :func:`cells`.
    """
    head, *chunks = text().split(_MARKER)
    out: list[tuple[str, str]] = []
    if head.strip():
        out.append(("markdown", head.strip("\n")))
    for chunk in chunks:
        code, markdown = _split_chunk(chunk)
        out.append(("code", code))
        if markdown:
            out.append(("markdown", markdown))
    return out


def cells() -> list[str]:
    """The seed's code cells, in order, with only the path hack (:data:`PATH_HACK`) removed.

    Raises:
        ValueError: if the first cell does not contain :data:`PATH_HACK` verbatim (the
            shipped text was changed), so nothing else can be removed by mistake.
    """
    code = [source for kind, source in blocks() if kind == "code"]
    if not code or PATH_HACK not in code[0] + "\n":
        raise ValueError("the seed's first code cell must contain PATH_HACK verbatim")
    code[0] = (code[0] + "\n").replace(PATH_HACK, "", 1).rstrip("\n")
    return code


def to_python(source: str) -> str:
    """Plain Python for a cell that may use IPython syntax (``%matplotlib inline``).

    Uses IPython's own input transformer, so a line magic becomes the call IPython
    itself would make (``get_ipython().run_line_magic(...)``).
    """
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def run(source: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute one seed cell in ``namespace`` (a dict shared between cells) and return it.

    Line magics need a running IPython (a notebook kernel); elsewhere a namespace may
    supply its own ``get_ipython``.
    """
    if "get_ipython" not in namespace:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython comes with every notebook
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            namespace["get_ipython"] = get_ipython
    exec(compile(to_python(source), "<seed>", "exec"), namespace)
    return namespace
