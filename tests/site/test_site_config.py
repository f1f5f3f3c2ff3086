"""Fast checks of the book's site configuration and of the browser check's parts that need no browser."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

import sigma

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_site  # noqa: E402

REPO = check_site.REPO
# The reading order's fixed points: the introduction, then the core path from the Gaussian; the
# explorer right after the 1D recovery chapter; the API reference last. The other chapters may
# move, but every page in book/ is in the table of contents exactly once.
FIRST = ["intro", "gaussian", "recovery_1d"]
FOLLOWS = {"explorer": "recovery_1d"}
LAST = "api"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))


def _sources() -> list[Path]:
    """Source files of the toc's pages that exist in this checkout."""
    found = []
    for page in check_site.toc_pages():
        found += [p for p in (REPO / f"{page}.md", REPO / f"{page}.ipynb") if p.exists()]
    return found


def test_toc_lists_every_chapter_in_reading_order():
    pages = check_site.toc_pages()
    names = [p.removeprefix("book/") for p in pages]
    assert names[: len(FIRST)] == FIRST and names[-1] == LAST, names
    for page, before in FOLLOWS.items():
        assert names.index(page) == names.index(before) + 1, names
    sources = sorted({p.stem for p in (REPO / "book").iterdir() if p.suffix in (".md", ".ipynb")})
    assert sorted(names) == sources and len(set(names)) == len(names), (names, sources)


def test_toc_has_three_parts_and_a_short_core():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    assert check_site.toc_captions() == ["Core", "Deeper", "Appendix and reference"]
    core = toc["parts"][0]["chapters"]
    assert len(core) <= 8, core
    appendix = [c["file"].removeprefix("book/") for c in toc["parts"][2]["chapters"]]
    assert {"seed", "in_your_model", "performance", "notation", "api"} <= set(appendix)


def test_config_builds_only_the_book_from_stored_outputs(config):
    assert config["only_build_toc_files"] is True
    for pattern in ["README.md", "tests", ".venv", "benchmarks", "_build"]:
        assert pattern in config["exclude_patterns"]
    assert config["execute"]["execute_notebooks"] == "off"  # pages show what nbval checked


def test_site_needs_no_network(config):
    settings = config["sphinx"]["config"]
    assert "://" not in settings["mathjax_path"]
    vendored = [REPO / folder / settings["mathjax_path"] for folder in settings["html_static_path"]]
    assert any(p.is_file() and p.stat().st_size > 1_000_000 for p in vendored), vendored
    assert settings["nb_ipywidgets_js"] == {}  # no require.js / widget embed script from a CDN
    # A _static folder at the root would make Jupyter Book add every .js in it to every page.
    assert not (REPO / "_static").exists()


def test_repository_url_is_set_in_one_place(config):
    url = config["repository"]["url"]
    assert url.startswith("https://") and config["repository"]["branch"]
    # Set once; besides that only the site footer's HTML links (LICENSE, citation) name it.
    lines = [ln for ln in (REPO / "_config.yml").read_text(encoding="utf-8").splitlines() if url in ln]
    assert len([ln for ln in lines if "<a href=" not in ln]) == 1, lines
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]


def test_api_page_documents_every_public_name():
    text = (REPO / "book" / "api.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\.\. auto(?:function|class|data|exception):: sigma\.(\w+)$", text, flags=re.M)
    assert sorted(documented) == sorted(sigma.__all__)
    assert len(documented) == len(set(documented))
    assert ".. automodule:: sigma.book.plot" in text


def test_citations_resolve_to_the_bibliography():
    bib = (REPO / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    assert "shelhamer2019blurring" in keys and "1904.11487" in bib
    intro = (REPO / "book" / "intro.md").read_text(encoding="utf-8")
    assert "{cite}`shelhamer2019blurring`" in intro and "```{bibliography}" in intro
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        if path.name != "intro.md":
            # The list is printed once, on the introduction; a second {bibliography} with the
            # same key is a "duplicate citation" warning, which fails the -W build.
            assert "{bibliography}" not in text, (
                f"{path.name}: cite with {{cite}} only; intro.md prints the list"
            )
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in group.split(","):
                assert key.strip() in keys, f"{path.name} cites unknown key {key.strip()!r}"


def test_interactive_cells_have_a_static_twin():
    for page in check_site.interactive_pages(check_site.toc_pages()):
        cells = json.loads((REPO / f"{page}.ipynb").read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if cell["cell_type"] != "code" or not check_site.INTERACT_CALL.search(source):
                continue
            assert "remove-output" in cell["metadata"].get("tags", []), f"{page} cell {i}"
            twin = cells[i + 1]
            assert twin["cell_type"] == "code" and "remove-input" in twin["metadata"].get("tags", [])
            assert any("image/png" in o.get("data", {}) for o in twin["outputs"]), f"{page} cell {i + 1}"


def test_interactive_pages_are_found_from_their_notebooks(tmp_path):
    def notebook(name, source):
        cells = [{"cell_type": "code", "source": source, "metadata": {}, "outputs": []}]
        (tmp_path / f"{name}.ipynb").write_text(json.dumps({"cells": cells}), encoding="utf-8")

    notebook("widgets", ["import ipywidgets as widgets\n", "widgets.interact(f, x=1.0);"])
    notebook("plain", "print('interactive')")
    (tmp_path / "text.md").write_text("interact(f)", encoding="utf-8")
    assert check_site.interactive_pages(["widgets", "plain", "text"], repo=tmp_path) == {"widgets"}


@pytest.mark.parametrize(
    "text", [r"a \(x\) b", r"see \[x\]", "the $\\sigma$ here", "$$x$$", r"\begin{align}"]
)
def test_raw_tex_is_recognized(text):
    assert check_site.RAW_TEX.search(text)


@pytest.mark.parametrize("text", ["x[0] and y(1)", "a 5 $ fee", "e.g. the end.", "σ = 3"])
def test_ordinary_text_is_not_raw_tex(text):
    assert not check_site.RAW_TEX.search(text)


def test_raw_rst_is_recognized():
    assert check_site.RAW_RST.search(".. py:function:: blur1d(x)")
    assert check_site.RAW_RST.search(":param sigma: the scale")
    assert not check_site.RAW_RST.search("e.g. .. and so on: param sigma")


def test_toc_with_parts_and_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: a.ipynb\n        sections:\n          - file: a1\n  - caption: B\n"
        "    chapters:\n      - file: b\n",
        encoding="utf-8",
    )
    assert check_site.toc_pages(toc) == ["intro", "a", "a1", "b"]


def test_local_urls_map_to_files_and_anchors(tmp_path):
    base = "http://127.0.0.1:8000/"
    assert check_site._local_path(f"{base}book/a.html#x%20y", tmp_path, base) == (
        tmp_path / "book/a.html",
        "x y",
    )
    assert check_site._local_path(base, tmp_path, base) == (tmp_path / "index.html", "")
    assert check_site._local_path("https://example.org/a.html", tmp_path, base) is None


def test_ids_are_read_from_the_html(tmp_path):
    page = tmp_path / "p.html"
    page.write_text(
        '<section id="one"><a name="two"></a><span id="three"></span></section>', encoding="utf-8"
    )
    assert check_site._ids_in(page) == {"one", "two", "three"}


def test_without_a_browser_the_check_says_skipped_and_passes(monkeypatch, capsys):
    monkeypatch.setattr(check_site, "ensure_chromium", lambda: (None, "no Chromium executable found"))
    assert check_site.main([]) == 0
    out = capsys.readouterr().out
    assert "SKIPPED" in out and "no Chromium executable found" in out


def test_chromium_override_and_no_install_without_root(monkeypatch):
    monkeypatch.setenv("SIGMA_CHROMIUM", "/nonexistent/chromium")
    path, why = check_site.find_chromium()
    assert path is None and "/nonexistent/chromium" in why
    monkeypatch.setenv("SIGMA_CHROMIUM", sys.executable)
    assert check_site.find_chromium() == (sys.executable, "")

    monkeypatch.delenv("SIGMA_CHROMIUM")
    monkeypatch.setattr(check_site, "find_chromium", lambda: (None, "no Chromium executable found"))
    monkeypatch.setattr(check_site.os, "geteuid", lambda: 1000)

    def no_install(*args, **kwargs):
        raise AssertionError("must not try to install without root")

    monkeypatch.setattr(check_site.subprocess, "run", no_install)
    path, why = check_site.ensure_chromium()
    assert path is None and "not root" in why
