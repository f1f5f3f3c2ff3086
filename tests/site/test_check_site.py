"""The browser check can fail: break a copy of the built site and check that it says where.

Each test copies ``_build/html``, breaks one thing on one page (a figure path, a math
expression, an internal link, an external script, the sidebar, an interactive chapter's
static figure), runs the checker on that page of the copy in Chromium, and asserts that it
fails with a message naming the page and the broken element, and nothing else.

These tests need the built site and Chromium, so they run from ``make site-test`` (which
sets ``SIGMA_SITE_TESTS=1`` after the checker has built and checked the site), not from the
library suite.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

if not os.environ.get("SIGMA_SITE_TESTS"):
    pytest.skip("browser tests of the built site run from `make site-test`", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_site  # noqa: E402

# SIGMA_SITE_TOC: a different table of contents, for a site built with `jupyter-book build --toc`.
ALL_PAGES = check_site.toc_pages(Path(os.environ.get("SIGMA_SITE_TOC", check_site.TOC)))
INTERACTIVE = check_site.interactive_pages(ALL_PAGES)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the whole module (a Playwright browser context)."""
    path, why = check_site.find_chromium()
    if path is None:
        pytest.skip(f"browser check SKIPPED: {why}")
    with check_site.browser(path) as context:
        yield context


@pytest.fixture(scope="module")
def built_site() -> Path:
    site = check_site.DEFAULT_SITE
    if not (site / "index.html").is_file():
        check_site.build_site(site)
    return site


@pytest.fixture
def site_copy(built_site, tmp_path) -> Path:
    copy = tmp_path / "html"
    shutil.copytree(built_site, copy)
    return copy


def _edit_main(path: Path, old: str | re.Pattern, new: str) -> None:
    """Replace the first match of ``old`` inside the page's main content."""
    text = path.read_text(encoding="utf-8")
    start = text.index('id="main-content"')
    head, body = text[:start], text[start:]
    if isinstance(old, str):
        assert old in body, f"{old!r} not found in {path.name}"
        body = body.replace(old, new, 1)
    else:
        body, n = old.subn(new, body, count=1)
        assert n == 1, f"{old.pattern!r} not found in {path.name}"
    path.write_text(head + body, encoding="utf-8")


def _failures(site: Path, page: str, context) -> list[str]:
    reports = check_site.run_check(
        site, [page], all_pages=ALL_PAGES, interactive=INTERACTIVE, context=context, check_index=False
    )
    return [f for r in reports for f in r.failures]


_BASELINE: dict[str, set[str]] = {}


def _baseline(page: str, chromium) -> set[str]:
    """Failures of the unbroken page (none when `make site-test` has just passed)."""
    if page not in _BASELINE:
        _BASELINE[page] = set(_failures(check_site.DEFAULT_SITE, page, chromium))
    return _BASELINE[page]


def _assert_fails_on(failures: list[str], page: str, chromium, *needles: str) -> None:
    """The broken page fails, and every new failure names the page and the broken element."""
    new = [f for f in failures if f not in _baseline(page, chromium)]
    assert new, f"the checker passed a broken {page}"
    for f in new:
        assert f.startswith(f"{page}.html: "), f"unexpected failure elsewhere: {f}"
        assert all(n in f for n in needles), f"failure does not name {needles}: {f}"


def _page_with(pattern: str) -> str:
    """The first page of the built site whose HTML contains ``pattern``."""
    for page in ALL_PAGES:
        path = check_site.DEFAULT_SITE / f"{page}.html"
        if path.is_file() and re.search(pattern, path.read_text(encoding="utf-8")):
            return page
    pytest.skip(f"no page of the built site contains {pattern!r}")


def test_broken_figure_path_is_named(site_copy, chromium):
    page = _page_with(r'<img alt="[^"]*" src="\.\./_images/')
    _edit_main(
        site_copy / f"{page}.html",
        re.compile(r'src="\.\./_images/[^"]+"'),
        'src="../_images/no_such_figure.png"',
    )
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "no_such_figure.png")


@pytest.mark.parametrize(
    ("broken", "message"),
    [(r"\(3^^3\)", "TeX error"), (r"\(3 \timez 3\)", "undefined TeX macro")],
    ids=["tex-error", "undefined-macro"],
)
def test_broken_math_expression_is_named(site_copy, chromium, broken, message):
    page = "book/intro"
    _edit_main(site_copy / f"{page}.html", r"\(3 \times 3\)", broken)
    tex = broken[2:-2]  # MathJax reports the TeX without its delimiters
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "math element 0", message, tex)


def test_math_left_as_raw_tex_is_named(site_copy, chromium):
    page = "book/intro"
    _edit_main(
        site_copy / f"{page}.html",
        r'<span class="math notranslate nohighlight">\(3 \times 3\)',
        r'<span class="notranslate nohighlight">\(3 \times 3\)',
    )
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "raw TeX", r"\(")


def test_link_to_a_missing_page_is_named(site_copy, chromium):
    page = "book/intro"
    _edit_main(site_copy / f"{page}.html", 'href="api.html"', 'href="no_such_chapter.html"')
    _assert_fails_on(
        _failures(site_copy, page, chromium), page, chromium, 'href="no_such_chapter.html"', "missing file"
    )


def test_link_to_a_missing_anchor_is_named(site_copy, chromium):
    page = "book/intro"
    _edit_main(site_copy / f"{page}.html", 'href="api.html"', 'href="api.html#no-such-section"')
    _assert_fails_on(
        _failures(site_copy, page, chromium), page, chromium, "#no-such-section", "missing anchor"
    )


def test_request_to_the_network_is_blocked_and_named(site_copy, chromium):
    page = "book/api"
    url = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js"
    _edit_main(site_copy / f"{page}.html", "<h1>", f'<script src="{url}"></script><h1>')
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, url)


def test_sidebar_missing_a_chapter_is_named(site_copy, chromium):
    page = "book/intro"
    path = site_copy / f"{page}.html"
    text = path.read_text(encoding="utf-8")
    entry = re.compile(r'<li class="toctree-l1"><a class="reference internal" href="api.html">[^<]*</a></li>')
    text, n = entry.subn("", text, count=1)
    assert n == 1
    path.write_text(text, encoding="utf-8")
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "sidebar", "book/api")


@pytest.mark.skipif(not INTERACTIVE, reason="no interactive chapter in the table of contents")
def test_interactive_cell_without_its_static_figure_is_named(site_copy, chromium):
    page = sorted(INTERACTIVE)[0]
    path = site_copy / f"{page}.html"
    text = path.read_text(encoding="utf-8")
    # Drop the figure of the first remove-input cell (the static twin of the interact cell).
    start = text.index("cell tag_remove-input")
    img = re.compile(r"<img [^>]*>")
    match = img.search(text, start)
    path.write_text(text[: match.start()] + text[match.end() :], encoding="utf-8")
    _assert_fails_on(
        _failures(site_copy, page, chromium), page, chromium, "interactive cell", "static figure"
    )


# --------------------------------------------------------------------------- glue and animations


def test_raw_glue_role_is_named(site_copy, chromium):
    page = "book/intro"
    _edit_main(site_copy / f"{page}.html", "<h1>", "<p>σ̂ = {glue:text}`sigma_hat:.3f` here.</p><h1>")
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "raw MyST role", "{glue:text}")


def test_glue_role_that_pasted_nothing_is_named(site_copy, chromium):
    page = _page_with(r'<span class="pasted-text">')
    _edit_main(site_copy / f"{page}.html", re.compile(r'<span class="pasted-text">[^<]*</span>'), "")
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "glue roles pasted nothing")


def test_empty_glued_value_is_named(site_copy, chromium):
    page = _page_with(r'<span class="pasted-text">')
    _edit_main(
        site_copy / f"{page}.html",
        re.compile(r'<span class="pasted-text">[^<]*</span>'),
        '<span class="pasted-text"></span>',
    )
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "empty glued value")


def _jshtml() -> str:
    """A three-frame matplotlib to_jshtml() player, without its CDN stylesheet link."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import animation

    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    (line,) = ax.plot([0, 1], [0, 0])
    ax.set_ylim(-1, 3)

    def draw(i):
        line.set_ydata([0, i])
        return (line,)

    anim = animation.FuncAnimation(fig, draw, frames=3)
    try:
        html = anim.to_jshtml(default_mode="once")
    finally:
        plt.close(fig)
    return re.sub(r'<link\s+rel="stylesheet"\s+href="https?://[^"]*"\s*/?>\s*', "", html)


def _animated_page(site: Path) -> str:
    """A page of ``site`` with a to_jshtml() animation: the book's own, else intro with one added."""
    for page in ALL_PAGES:
        path = site / f"{page}.html"
        if path.is_file() and 'class="animation"' in path.read_text(encoding="utf-8"):
            return page
    _edit_main(site / "book/intro.html", "<h1>", f"<div>{_jshtml()}</div><h1>")
    return "book/intro"


def test_working_animation_passes(site_copy, chromium):
    """The slider check itself passes a working player (the book's, or one added to a page)."""
    page = _animated_page(site_copy)
    new = [f for f in _failures(site_copy, page, chromium) if f not in _baseline(page, chromium)]
    assert new == []


def test_animation_slider_that_does_not_move_the_frame_is_named(site_copy, chromium):
    page = _animated_page(site_copy)
    # The slider no longer tells the player to show another frame.
    _edit_main(site_copy / f"{page}.html", re.compile(r'oninput="[^"]*set_frame[^"]*"'), "")
    _assert_fails_on(
        _failures(site_copy, page, chromium), page, chromium, "animation 0", "did not change the frame"
    )


def test_launch_button_to_another_notebook_is_named(site_copy, chromium):
    page = "book/recovery_1d"
    path = site_copy / f"{page}.html"
    text = path.read_text(encoding="utf-8")
    assert "urlpath=lab/tree/book/recovery_1d.ipynb" in text
    path.write_text(
        text.replace("urlpath=lab/tree/book/recovery_1d.ipynb", "urlpath=lab/tree/recovery_1d.ipynb")
    )
    _assert_fails_on(_failures(site_copy, page, chromium), page, chromium, "launch button", "mybinder.org")
