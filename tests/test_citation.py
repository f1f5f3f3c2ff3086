"""CITATION.cff, the intro's "Citing" section, the bibliography and pyproject.toml agree.

``make lint`` validates CITATION.cff against the Citation File Format schema (cffconvert);
this test checks that the other places that cite the paper or the package say the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CFF = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
# The [project] table's top-level string keys (tomllib is Python 3.11+; the package supports 3.10).
_PYPROJECT = (REPO / "pyproject.toml").read_text(encoding="utf-8")
PROJECT = dict(
    re.findall(r'^(\w+) = "([^"]*)"$', _PYPROJECT.split("[project]", 1)[1].split("\n[", 1)[0], re.M)
)


def _bibtex_entries(text: str) -> dict[str, dict[str, str]]:
    """Key -> {field: value} for each BibTeX entry in ``text`` (one level of braces)."""
    entries = {}
    for m in re.finditer(r"@\w+\{(?P<key>[\w:-]+),(?P<body>.*?)\n\}", text, re.S):
        fields = re.findall(r"(\w+)\s*=\s*\{((?:[^{}]|\{[^{}]*\})*)\}", m["body"])
        entries[m["key"]] = {k: " ".join(v.split()) for k, v in fields}
    return entries


def _citing_section(path: str = "book/intro.md", heading: str = "Citing") -> str:
    text = (REPO / path).read_text(encoding="utf-8")
    m = re.search(rf"^## {heading}\n(?P<body>.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"{path} has no '## {heading}' section"
    return m["body"]


def _authors(cff_authors: list[dict]) -> str:
    return " and ".join(f"{a['family-names']}, {a['given-names']}" for a in cff_authors)


PAPER = CFF["preferred-citation"]


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(_bibtex_entries(_citing_section())["shelhamer2019blurring"], id="intro"),
        pytest.param(
            _bibtex_entries(_citing_section("README.md", "Citing and license"))["shelhamer2019blurring"],
            id="README",
        ),
        pytest.param(
            _bibtex_entries((REPO / "book" / "references.bib").read_text(encoding="utf-8"))[
                "shelhamer2019blurring"
            ],
            id="references.bib",
        ),
    ],
)
def test_paper_entry_matches_preferred_citation(entry):
    assert entry["title"] == PAPER["title"]
    assert entry["author"] == _authors(PAPER["authors"])
    assert entry["year"] == str(PAPER["year"])
    assert entry["journal"] == PAPER["journal"]
    assert entry["url"] == PAPER["url"]
    assert "doi" not in entry or entry["doi"] == PAPER["doi"]


def test_software_entry_matches_citation_file_and_package():
    entry = _bibtex_entries(_citing_section())["sigma_blur"]
    assert entry["title"] == CFF["title"]
    assert entry["author"] == "{" + CFF["authors"][0]["name"] + "}"
    init = (REPO / "sigma" / "__init__.py").read_text(encoding="utf-8")
    (package_version,) = re.findall(r'^__version__ = "([^"]+)"$', init, re.M)
    assert entry["version"] == CFF["version"] == PROJECT["version"] == package_version
    assert entry["url"] == CFF["repository-code"]
    assert set(CFF["license"]) == {PROJECT["license"], "CC-BY-4.0"}
