"""No hand-typed computed numbers in the book's prose.

A number that the code computes must reach the prose through glue (``glue("name", value)`` in
the code cell, ``{glue:text}`name:.3f``` in the markdown), so the page always prints what the
notebook computed. This test reads every markdown cell of ``book/*.ipynb`` and every
``book/*.md`` page and fails on each number with three or more significant digits (1337, 256,
3.14, 0.125, 1.25e-3; not 100, 0.05, 2.5 or 1e-3) that is typed in the text, naming the file,
the cell and the number.

What is not prose is removed first: glue roles and every other code span, fenced code
(a ```` ```{code-cell} ```` too, but not the prose of a ```` ```{note} ```` directive), URLs and
link targets, HTML tags, directive options, figure paths, labels, and bibliographic years
(19xx, 20xx). Numbers inside ``$...$`` or ``$$...$$`` math count like any other.

Inputs that the text itself sets (a seed 1337, an image size 256) may stay typed: list them,
as typed, in the notebook's metadata, ``"book": {"typed_inputs": ["1337", "256"]}`` (for a
``.md`` page: the same key in its YAML front matter).

Run ``python tests/test_prose_numbers.py [FILE ...]`` to list the findings without pytest.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"

# --------------------------------------------------------------------------- what is not prose

# A code fence opens with 3+ backticks or tildes; its info string may name a directive.
FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")
# Directives whose body is code (dropped); every other directive's body is prose (kept).
CODE_DIRECTIVES = {"code", "code-block", "code-cell", "sourcecode", "literalinclude", "eval-rst", "raw"}
# Directives whose argument is a path or a key, not prose.
PATH_DIRECTIVES = {
    "figure",
    "image",
    "include",
    "literalinclude",
    "glue",
    "glue:figure",
    "glue:any",
    "bibliography",
}
# A colon fence (:::{dropdown} Hint) opens or closes a directive whose body is prose.
COLON_FENCE = re.compile(r"^[ \t]*:{3,}[ \t]*(?:\{(?P<name>[^}]*)\}[ \t]*(?P<arg>[^\n]*))?$")
DIRECTIVE_OPTION = re.compile(r"^[ \t]*:[\w-]+:(?:[ \t][^\n]*)?$")
LABEL_LINE = re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$")
# A role and its code span: {glue:text}`name:.3f`, {cite}`key`, {math}`x^2`.
ROLE = re.compile(r"\{(?P<name>[\w:.+-]+)\}(?P<ticks>`+)(?P<body>.*?)(?<!`)(?P=ticks)(?!`)", re.S)
CODE_SPAN = re.compile(r"(?P<ticks>`+)(?P<body>.+?)(?<!`)(?P=ticks)(?!`)", re.S)
URL = re.compile(r"(?:https?|ftp|file)://[^\s)>\]\"']+|\bwww\.[^\s)>\]\"']+|\bdoi:\s*\S+", re.I)
# The target of a Markdown link or image: ](target) or ](target "title").
LINK_TARGET = re.compile(r"\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\)")
REF_DEFINITION = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S+.*$", re.M)
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.S)
HTML_ENTITY = re.compile(r"&#?\w+;")
YEAR = re.compile(r"(?<![\w.,])(?:19|20)\d\d(?![\w.,]\d)(?:[a-z](?![a-z]))?")

# --------------------------------------------------------------------------- numbers

# A decimal number: digits with optional thousands separators, a fraction and an exponent.
# Not part of an identifier (float64, H200, fig2) or of a version or section number (2.13.0).
NUMBER = re.compile(
    r"(?<![\w.])(?<![A-Za-z]-)"
    r"(?P<mantissa>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<exponent>[eE][-+\u2212]?\d+)?"
    r"(?![.,]?\d)(?!\.\w)"
)


def significant_digits(token: str) -> int:
    """Significant digits of a typed number: leading zeros never count, trailing zeros of an
    integer do not count (100 has one), trailing zeros after a decimal point do (2.50 has three).

    >>> [significant_digits(t) for t in ["1337", "256", "3.14", "0.125", "1e-3", "100", "0.05", "2.5"]]
    [4, 3, 3, 3, 1, 1, 1, 2]
    """
    mantissa = re.split(r"[eE]", token, maxsplit=1)[0].replace(",", "")
    if "." in mantissa:
        return len(mantissa.replace(".", "").lstrip("0"))
    return len(mantissa.lstrip("0").rstrip("0"))


def _blank(match: re.Match) -> str:
    """Replace a match by spaces and its newlines, so positions and line numbers survive."""
    return "".join("\n" if c == "\n" else " " for c in match.group(0))


def prose_of(markdown: str) -> str:
    """The text of a markdown cell that a reader reads as prose (code, paths and years blanked).

    >>> prose_of("σ̂ = {glue:text}`s:.3f` after `n=1000` steps (2019, https://x.org/1234)").split()
    ['σ̂', '=', 'after', 'steps', '(', ',', ')']
    """
    out: list[str] = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        opened = FENCE_OPEN.match(line)
        if opened:
            fence = opened.group("fence")
            info = opened.group("info").strip()
            close = re.compile(rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
            j = i + 1
            while j < len(lines) and not close.match(lines[j]):
                j += 1
            body = lines[i + 1 : j]
            directive = re.match(r"\{([^}]*)\}\s*(.*)", info)
            if directive and directive.group(1).strip() not in CODE_DIRECTIVES:
                name, arg = directive.group(1).strip(), directive.group(2)
                out.append("" if name in PATH_DIRECTIVES else arg)  # a title is prose
                out.extend("" if DIRECTIVE_OPTION.match(b) else b for b in body)
            else:  # code: keep the line count only
                out.extend("" for _ in body)
            out.append("")  # the closing fence
            i = j + 1
            continue
        colon = COLON_FENCE.match(line)
        if colon:
            name = (colon.group("name") or "").strip()
            out.append("" if name in PATH_DIRECTIVES else (colon.group("arg") or ""))
        elif DIRECTIVE_OPTION.match(line) or LABEL_LINE.match(line):
            out.append("")
        else:
            out.append(line)
        i += 1
    text = "\n".join(out)
    text = HTML_TAG.sub(_blank, text)
    text = REF_DEFINITION.sub(_blank, text)
    # {math}`...` is math and counts; every other role's content is a key or a glued value.
    text = ROLE.sub(lambda m: m.group("body") if m.group("name") == "math" else _blank(m), text)
    text = CODE_SPAN.sub(_blank, text)
    text = LINK_TARGET.sub(lambda m: "]" + _blank(m)[1:], text)
    text = URL.sub(_blank, text)
    text = HTML_ENTITY.sub(_blank, text)
    text = YEAR.sub(_blank, text)
    return text


@dataclass(frozen=True)
class Finding:
    """A typed number with three or more significant digits in a file's prose."""

    path: str
    where: str  # "cell 7" for a notebook, "line 12" for a markdown page
    number: str
    context: str

    def __str__(self) -> str:
        return f"{self.path}, {self.where}: {self.number!r} in '...{self.context}...'"


def typed_numbers(markdown: str) -> list[tuple[int, str, str]]:
    """(line, number, context) of every number with 3+ significant digits in the prose."""
    text = prose_of(markdown)
    found = []
    for m in NUMBER.finditer(text):
        token = m.group(0)
        if significant_digits(token) >= 3:
            line = text.count("\n", 0, m.start()) + 1
            context = " ".join(text[max(0, m.start() - 30) : m.end() + 30].split())
            found.append((line, token, context))
    return found


def _allowed(token: str, allow: set[str]) -> bool:
    return token in allow or token.replace(",", "") in allow or token.replace("\u2212", "-") in allow


def _allow_list(meta: dict, path: Path) -> set[str]:
    typed = (meta or {}).get("book", {}).get("typed_inputs", [])
    if not isinstance(typed, list) or not all(isinstance(t, str) for t in typed):
        raise ValueError(f"{path}: book.typed_inputs must be a list of strings, got {typed!r}")
    return set(typed)


def check_notebook(path: Path) -> list[Finding]:
    """Findings in the markdown cells of one notebook (allow-list: its ``book.typed_inputs``)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    allow = _allow_list(nb.get("metadata", {}), path)
    findings = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for _line, token, context in typed_numbers(source):
            if not _allowed(token, allow):
                findings.append(Finding(_rel(path), f"cell {index}", token, context))
    return findings


def check_markdown_page(path: Path) -> list[Finding]:
    """Findings in a MyST markdown page (allow-list: ``book.typed_inputs`` in its front matter)."""
    import yaml

    text = path.read_text(encoding="utf-8")
    meta: dict = {}
    offset = 0
    front = re.match(r"---[ \t]*\n(.*?\n)---[ \t]*\n", text, re.S)
    if front:
        meta = yaml.safe_load(front.group(1)) or {}
        offset = front.group(0).count("\n")
        text = "\n" * offset + text[front.end() :]
    allow = _allow_list(meta, path)
    return [
        Finding(_rel(path), f"line {line}", token, context)
        for line, token, context in typed_numbers(text)
        if not _allowed(token, allow)
    ]


def check_file(path: Path) -> list[Finding]:
    return check_notebook(path) if path.suffix == ".ipynb" else check_markdown_page(path)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def book_sources(book: Path = BOOK) -> list[Path]:
    return sorted([*book.glob("*.ipynb"), *book.glob("*.md")])


# --------------------------------------------------------------------------- the book


@pytest.mark.parametrize("path", book_sources(), ids=lambda p: p.name)
def test_prose_has_no_typed_computed_numbers(path):
    findings = check_file(path)
    assert not findings, (
        f"{len(findings)} number(s) with 3+ significant digits typed in the prose of {_rel(path)}; "
        "glue computed values ({glue:text}`name:.3f`) or list typed inputs in the notebook metadata "
        '"book": {"typed_inputs": [...]}:\n' + "\n".join(f"  {f}" for f in findings)
    )


# --------------------------------------------------------------------------- the check itself


def _notebook(
    tmp_path: Path, name: str, cells: list[tuple[str, str]], typed: list[str] | None = None
) -> Path:
    meta: dict = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    if typed is not None:
        meta["book"] = {"typed_inputs": typed}
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": meta,
        "cells": [
            {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source}
            | ({"outputs": [], "execution_count": None} if kind == "code" else {})
            for i, (kind, source) in enumerate(cells)
        ],
    }
    path = tmp_path / name
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("token", "digits"),
    [
        ("1337", 4), ("256", 3), ("3.14", 3), ("0.125", 3), ("1e-3", 1), ("1.25e-3", 3),
        ("100", 1), ("0.05", 1), ("2.5", 1 + 1), ("10,000", 1), ("1,337", 4), ("2.50", 3),
        ("120", 2), ("0.0012", 2), (".125", 3),
    ],
)  # fmt: skip
def test_significant_digits(token, digits):
    assert significant_digits(token) == digits


def test_self_check_fails_on_typed_numbers(tmp_path):
    """A notebook with computed numbers typed in its prose fails, each one named."""
    path = _notebook(
        tmp_path,
        "typed.ipynb",
        [
            ("markdown", "# Title\n\nThe fit gives σ̂ = 3.142 after 100 steps."),
            ("code", "sigma_hat = 3.14159  # code is not prose: 3.14159\n"),
            ("markdown", "The loss falls to $1.25 \\times 10^{-3}$, and 12.5 % of the pixels move."),
            ("markdown", ":::{dropdown} Answer\nIt takes 1,337 steps; see `n=4096`.\n:::"),
            ("markdown", "```{note}\nThe error is 0.00123.\n```"),
            ("markdown", "The gradient is −0.125 at σ = 2.5 and 1e-3 at σ = 8."),
        ],
        typed=["256"],
    )
    findings = check_notebook(path)
    got = [(f.where, f.number) for f in findings]
    assert got == [
        ("cell 0", "3.142"),
        ("cell 2", "1.25"),
        ("cell 2", "12.5"),
        ("cell 3", "1,337"),
        ("cell 4", "0.00123"),
        ("cell 5", "0.125"),
    ]
    assert all(f.path.endswith("typed.ipynb") for f in findings)
    assert "σ̂ = 3.142 after" in str(findings[0])
    # and the pytest check reports them
    with pytest.raises(AssertionError, match=r"cell 0: '3\.142'"):
        test_prose_has_no_typed_computed_numbers(path)


def test_self_check_passes_glued_and_allowed_numbers(tmp_path):
    """Glue roles, code, URLs, years, labels, paths, allow-listed inputs and small numbers pass."""
    path = _notebook(
        tmp_path,
        "clean.ipynb",
        [
            (
                "markdown",
                "(sec-results-2024)=\n# Results\n\nσ̂ = {glue:text}`sigma_hat:.3f`, "
                "{glue}`loss` and {glue:md}`table_123`.",
            ),
            (
                "markdown",
                "With seed 1337 on a 256×256 image, lr = 1.0, 100 steps, tolerance 0.05, "
                "σ* = 2.5 and ε = 1e-3, as in {cite}`shelhamer2019blurring` (Shelhamer et al., 2019).",
            ),
            (
                "markdown",
                "Run `fit(x, steps=5000, lr=0.125)`:\n\n```python\nfit(lr=3.14159)\n```\n~~~\n1234.5\n~~~",
            ),
            (
                "markdown",
                "See [the paper](https://arxiv.org/abs/1904.11487) and <https://doi.org/10.1109/123456>, "
                "[chapter 3](recovery_1d.ipynb#fig-123), torch 2.13.0 in float64 on an H200 (AVX-512).",
            ),
            (
                "markdown",
                "```{figure} ../_static/blur_1337.png\n:width: 640px\n:name: fig-4567\n\nA caption.\n```",
            ),
            ("markdown", "```{code-cell} ipython3\nx = 0.123456\n```\n<img src='a.png' width='480'>"),
            ("markdown", "The kernel radius is $h = \\lceil 3\\sigma \\rceil$ and 2⁻⁵² is machine epsilon."),
        ],  # fmt: skip
        typed=["1337", "256"],
    )
    assert check_notebook(path) == []
    test_prose_has_no_typed_computed_numbers(path)


def test_self_check_allow_list_is_exact_and_per_notebook(tmp_path):
    prose = [("markdown", "Seed 1337, size 256.")]
    assert [f.number for f in check_notebook(_notebook(tmp_path, "a.ipynb", prose))] == ["1337", "256"]
    assert [f.number for f in check_notebook(_notebook(tmp_path, "b.ipynb", prose, ["1337"]))] == ["256"]
    with pytest.raises(ValueError, match="typed_inputs"):
        check_notebook(_notebook(tmp_path, "c.ipynb", prose, [1337]))  # numbers, not strings


def test_self_check_markdown_page_front_matter(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "---\nbook:\n  typed_inputs: ['1337']\n---\n# Page\n\nSeed 1337; σ = 3.142.\n", encoding="utf-8"
    )
    findings = check_markdown_page(page)
    assert [(f.where, f.number) for f in findings] == [("line 7", "3.142")]


if __name__ == "__main__":
    files = [Path(a) for a in sys.argv[1:]] or book_sources()
    total = 0
    for f in files:
        for finding in check_file(f):
            print(finding)
            total += 1
    print(f"{total} typed number(s) with 3+ significant digits in {len(files)} file(s)")
    sys.exit(1 if total else 0)
