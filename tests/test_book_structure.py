"""The book's chapters open the same way: a title, then a "Key takeaway" box."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))
BOX = re.compile(r"^# .+\n\n:::\{admonition\} Key takeaway\n:class: important\n(?P<body>.+?)\n:::\n", re.S)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_with_its_key_takeaway(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    text = "".join(first["source"])
    match = BOX.match(text)
    assert match, (
        f"{path.name}: the first cell must be '# Title', a blank line, then the Key takeaway admonition"
    )
    body = match.group("body")
    assert "For the paper:" in body, f"{path.name}: the takeaway says what the chapter says about the paper"
    assert len(body.split()) <= 90, (
        f"{path.name}: a takeaway is one or two sentences ({len(body.split())} words)"
    )
