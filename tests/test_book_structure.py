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


GLUE_ROLE = re.compile(r"\{glue:text\}`[^`]+`")
PAGES = CHAPTERS + sorted(BOOK.glob("*.md"))


def _markdown(path: Path) -> list[str]:
    if path.suffix == ".md":
        return [path.read_text(encoding="utf-8")]
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_no_paragraph_carries_more_than_three_glued_values(path):
    """Glue the headline numbers: a paragraph with more than three wants a table or one number."""
    crowded = [
        para[:80]
        for text in _markdown(path)
        for para in re.split(r"\n\s*\n", text)
        if len(GLUE_ROLE.findall(para)) > 3 and not para.lstrip().startswith("|")  # a table may
    ]
    assert not crowded, f"{path.name}: paragraphs with more than three glued values: {crowded}"


def _words(text: str) -> int:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    return len(re.findall(r"[A-Za-zσ][\w'’-]*", text))


def test_the_core_path_is_short():
    """The core part of the table of contents: at most 8 chapters and, with the introduction, at most
    16,000 words of prose (fenced code and display math not counted)."""
    import yaml

    toc = yaml.safe_load((BOOK.parent / "_toc.yml").read_text(encoding="utf-8"))
    core = [p for p in toc["parts"] if p["caption"] == "Core"][0]["chapters"]
    assert len(core) <= 8
    pages = [BOOK.parent / f"{toc['root']}.md"] + [BOOK.parent / f"{c['file']}.ipynb" for c in core]
    words = {p.stem: sum(_words(t) for t in _markdown(p)) for p in pages}
    assert sum(words.values()) <= 16_000, words
