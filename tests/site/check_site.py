#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium, offline, and check what a reader sees.

The site in ``_build/html`` (built first if it is missing) is served on a loopback port and
every page listed in ``_toc.yml`` is opened in Debian's Chromium, driven by Playwright, with
every request that is not to the loopback server blocked. For each page it checks that:

* no request failed or was blocked (nothing is fetched from the network) and the page logged
  no JavaScript error;
* every ``<img>`` loaded (``naturalWidth > 0``);
* every math element was typeset by MathJax without a TeX error, and no raw ``$...$``,
  ``\\(`` or ``\\[`` is left in the page text outside code;
* every internal link points to a file of the site and, with an ``#anchor``, to an element
  with that id;
* the sidebar lists every page of the table of contents, under its part's caption;
* on a chapter with interactive widgets, each interactive cell shows no widget output (it
  needs a live kernel) and is followed by a static figure that loaded;
* glued values are pasted: no raw MyST role (``{glue:text}``, ``{cite}`` ...) is left in the page
  text, no docutils error box is shown, every pasted value is non-empty, and the page pastes as
  many values as its notebook's markdown has glue roles (a key that was not found pastes nothing);
* on a notebook page, the Binder and Colab launch buttons open that page's own notebook;
* every kernel-free animation the page's notebook stores is on the page (matplotlib's ``to_jshtml()``: an ``<input type="range">`` inside
  an ``.animation`` block) works offline: moving its slider changes the displayed frame, and
  moving it back restores the first one.

A full-page screenshot of each page goes to ``_build/screenshots/``. Failures name the page
and the element. Exit status: 0 if every page passed, 1 otherwise. Without Chromium on a
machine where it cannot be installed (no root), the check prints that it was SKIPPED and why,
and exits 0.

Usage::

    python tests/site/check_site.py [--site DIR] [--page book/intro ...] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SITE = REPO / "_build" / "html"
DEFAULT_SCREENSHOTS = REPO / "_build" / "screenshots"
TOC = REPO / "_toc.yml"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
PAGE_TIMEOUT_MS = 30_000
# Text that MathJax should have replaced: $$, $...$, \( \) \[ \] and \begin{...}.
RAW_TEX = re.compile(r"\$\$|\$[^\s$][^$\n]{0,200}?\$|\\\(|\\\)|\\\[|\\\]|\\begin\{")
# reStructuredText that was shown instead of rendered (e.g. autodoc output parsed as Markdown).
RAW_RST = re.compile(r"(?<![\w.])\.\. [a-z][\w:-]*::|:param \w+:|:returns?:|:raises \w+:|:rtype:")
# A code cell that builds interactive widgets.
INTERACT_CALL = re.compile(r"\binteract(?:ive|_manual)?\s*\(")
# A MyST role shown as text instead of rendered ("{glue:text}`sigma_hat:.3f`", "{cite}`key`").
RAW_ROLE = re.compile(r"\{(?:glue|cite|ref|numref|eq|doc|term|download|abbr|math)(?::[\w-]*)?\}")
# A glue role in a notebook's markdown: {glue}`key`, {glue:text}`key:.3f`, {glue:md}`key` ...
GLUE_ROLE = re.compile(r"\{glue(?::[\w-]*)?\}`[^`]+`")
FENCED_CODE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)


@dataclass
class PageReport:
    """What went wrong on one page."""

    page: str
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(f"{self.page}: {message}")


# --------------------------------------------------------------------------- table of contents


def toc_pages(toc: Path = TOC) -> list[str]:
    """Docnames of the book in reading order (root first) from a jb-book ``_toc.yml``."""
    import yaml

    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    pages = [_docname(data["root"])]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(_docname(entry["file"]))
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in data.get("parts", []):
        walk(part.get("chapters"))
    walk(data.get("chapters"))
    return pages


def toc_captions(toc: Path = TOC) -> list[str]:
    """The part captions of a jb-book ``_toc.yml`` (Core, Deeper, ...), in order; [] without parts."""
    import yaml

    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    return [part["caption"] for part in data.get("parts", []) if part.get("caption")]


def _docname(path: str) -> str:
    return re.sub(r"\.(md|ipynb|rst)$", "", path.strip("/"))


def interactive_pages(pages: list[str], repo: Path = REPO) -> set[str]:
    """Pages whose notebook has a code cell that builds widgets with ``interact``."""
    found = set()
    for page in pages:
        nb = repo / f"{page}.ipynb"
        if not nb.exists():
            continue
        cells = json.loads(nb.read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            if cell.get("cell_type") == "code" and INTERACT_CALL.search(source):
                found.add(page)
                break
    return found


def glue_roles(page: str, repo: Path = REPO) -> int:
    """How many glue roles the markdown of the page's notebook (or .md page) has, outside code."""
    sources = []
    nb = repo / f"{page}.ipynb"
    md = repo / f"{page}.md"
    if nb.exists():
        for cell in json.loads(nb.read_text(encoding="utf-8")).get("cells", []):
            if cell.get("cell_type") == "markdown":
                source = cell.get("source", "")
                sources.append("".join(source) if isinstance(source, list) else source)
    elif md.exists():
        sources.append(md.read_text(encoding="utf-8"))
    return sum(len(GLUE_ROLE.findall(FENCED_CODE.sub("", text))) for text in sources)


def stored_players(page: str, repo: Path = REPO) -> int:
    """How many kernel-free players (``to_jshtml()`` output) the page's notebook stores, shown or not."""
    nb = repo / f"{page}.ipynb"
    if not nb.exists():
        return 0
    count = 0
    for cell in json.loads(nb.read_text(encoding="utf-8")).get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or "remove-cell" in tags or "remove-output" in tags:
            continue
        for out in cell.get("outputs", []):
            html = out.get("data", {}).get("text/html", "")
            count += '<div class="animation">' in ("".join(html) if isinstance(html, list) else html)
    return count


# --------------------------------------------------------------------------- browser and site


def find_chromium() -> tuple[str | None, str]:
    """Path of a Chromium executable (``$SIGMA_CHROMIUM`` first), or None and why not."""
    override = os.environ.get("SIGMA_CHROMIUM")
    candidates = (override,) if override else CHROMIUM_CANDIDATES
    for name in candidates:
        path = shutil.which(name) if name else None
        if path:
            return path, ""
    return None, f"no Chromium executable found (looked for {', '.join(candidates)})"


def ensure_chromium() -> tuple[str | None, str]:
    """Find Chromium; as root with apt-get, install Debian's package when it is missing."""
    path, why = find_chromium()
    if path or os.environ.get("SIGMA_CHROMIUM"):
        return path, why
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("Chromium is missing: installing Debian's chromium package with apt-get", flush=True)
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
                return None, f"{why}, and `{' '.join(cmd)}` failed"
        return find_chromium()
    return None, f"{why}, and this user cannot install it (not root, or no apt-get)"


def build_site(site: Path) -> None:
    """Build the book into ``site`` with warnings as errors (what ``make book`` does)."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(REPO), "--builder", "html", "-W", "--keep-going"]
    if site.resolve() != DEFAULT_SITE.resolve():
        raise SystemExit(f"site {site} does not exist; build it first")
    print("No built site found: building it with", " ".join(cmd[1:]), flush=True)
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        raise SystemExit("the book build failed; see the messages above")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class' name
        pass


class SiteServer:
    """Serve a directory on 127.0.0.1 (a free port) from a background thread."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _IdCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" or (name == "name" and tag == "a"):
                self.ids.add(value or "")


def _ids_in(path: Path) -> frozenset[str]:
    """Every ``id`` (and ``<a name>``) in an HTML file."""
    return _ids_cached(path, path.stat().st_mtime_ns)


@functools.cache
def _ids_cached(path: Path, mtime_ns: int) -> frozenset[str]:
    parser = _IdCollector()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


# --------------------------------------------------------------------------- in-page probes

PROBE_JS = r"""
() => {
  const describe = (el) => {
    const tag = el.tagName.toLowerCase();
    const id = el.id ? `#${el.id}` : "";
    return `<${tag}${id}>`;
  };
  const main = document.querySelector("#main-content") || document.body;
  const out = {};
  out.images = Array.from(document.images).map((img) => ({
    src: img.getAttribute("src"), alt: img.getAttribute("alt") || "",
    ok: img.complete && img.naturalWidth > 0,
  }));
  const items = (window.MathJax && MathJax.startup && MathJax.startup.document)
    ? MathJax.startup.document.getMathItemsWithin(document.body) : [];
  const texOf = (el) => {
    const item = items.find((it) => it.start && el.contains(it.start.node));
    return (item ? item.math : el.textContent).trim().slice(0, 80);
  };
  out.math = Array.from(main.querySelectorAll(".math")).map((el) => {
    const err = el.querySelector("[data-mjx-error]");
    return {
      tex: texOf(el),
      typeset: !!el.querySelector("mjx-container"),
      error: err ? err.getAttribute("data-mjx-error") : "",
      merror: !!el.querySelector("mjx-merror"),
      // An undefined macro is drawn as red text (MathJax's noundefined package).
      undefined: Array.from(el.querySelectorAll('[data-mml-node="mtext"][fill="red"]'))
        .map((t) => t.textContent || (t.querySelector("title") || {}).textContent || "?"),
    };
  });
  out.mathErrors = Array.from(main.querySelectorAll("mjx-merror, [data-mjx-error]"))
    .filter((el) => !el.closest(".math"))
    .map((el) => el.getAttribute("data-mjx-error") || el.textContent.slice(0, 80));
  const clone = main.cloneNode(true);
  clone.querySelectorAll("pre, code, kbd, samp, script, style, textarea, mjx-container, .math, .highlight")
    .forEach((el) => el.remove());
  out.text = clone.textContent;
  out.links = Array.from(document.querySelectorAll("a[href]")).map((a) => ({
    href: a.href, raw: a.getAttribute("href"), text: a.textContent.trim().slice(0, 60),
  }));
  const sidebar = document.querySelector(".bd-sidebar-primary");
  out.sidebarVisible = !!sidebar && sidebar.checkVisibility();
  out.sidebar = Array.from(document.querySelectorAll("nav.bd-docs-nav a")).map((a) => a.href);
  out.captions = Array.from(document.querySelectorAll("nav.bd-docs-nav .caption-text"))
    .filter((el) => el.checkVisibility()).map((el) => el.textContent.trim());
  out.widgets = Array.from(document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets, .widget-area'
  )).map(describe);
  out.pasted = Array.from(main.querySelectorAll(".pasted-text, .pasted-inline, .pasted-math"))
    .filter((el) => !el.parentElement.closest(".pasted-text, .pasted-inline, .pasted-math"))
    .map((el) => ({text: el.textContent.trim(), html: el.outerHTML.slice(0, 120)}));
  out.systemMessages = Array.from(main.querySelectorAll(".system-message, .problematic"))
    .map((el) => el.textContent.trim().replace(/\s+/g, " ").slice(0, 160));
  out.cells = Array.from(main.querySelectorAll("div.cell")).map((cell, index) => {
    const input = cell.querySelector(".cell_input");
    const next = cell.nextElementSibling;
    const imgs = next ? Array.from(next.querySelectorAll("img")) : [];
    return {
      index,
      source: input ? input.textContent : "",
      hasOutput: !!cell.querySelector(".cell_output"),
      nextIsCell: !!next && next.classList.contains("cell"),
      nextHasInput: !!next && !!next.querySelector(".cell_input"),
      nextImages: imgs.map((img) => ({src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0})),
    };
  });
  return out;
}
"""


# Move the slider of every to_jshtml() animation: the frame must change, and come back.
ANIMATION_JS = r"""
async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const loaded = async (img) => {
    for (let i = 0; i < 50 && !(img.complete && img.naturalWidth > 0); i++) await sleep(50);
    return img.complete && img.naturalWidth > 0;
  };
  const main = document.querySelector("#main-content") || document.body;
  const blocks = Array.from(main.querySelectorAll(".animation"))
    .filter((el) => el.querySelector('input[type="range"]'));
  const out = [];
  for (const [index, block] of blocks.entries()) {
    const slider = block.querySelector('input[type="range"]');
    const img = block.querySelector("img");
    const r = {index, id: slider.id || "", min: Number(slider.min || 0), max: Number(slider.max || 0)};
    if (!img) { r.error = "no <img> to show the frames"; out.push(r); continue; }
    const move = async (value) => {
      slider.value = String(value);
      slider.dispatchEvent(new Event("input", {bubbles: true}));
      slider.dispatchEvent(new Event("change", {bubbles: true}));
      await sleep(150);
      return {src: img.getAttribute("src") || "", ok: await loaded(img)};
    };
    const first = await move(r.min);
    const last = await move(r.max);
    const back = await move(r.min);
    r.firstOk = first.ok; r.lastOk = last.ok;
    r.changed = first.src !== last.src;
    r.restored = back.src === first.src;
    r.srcStart = first.src.slice(0, 60);
    out.push(r);
  }
  return out;
}
"""


def _check_animations(page, report: PageReport, expected: int = 0) -> None:
    try:
        animations = page.evaluate(ANIMATION_JS)
    except Exception as exc:
        report.fail(f"the animation check could not run: {exc}")
        return
    if len(animations) < expected:
        report.fail(f"the page shows {len(animations)} of the {expected} players its notebook stores")
    for a in animations:
        where = f"animation {a['index']} (slider #{a['id']})" if a["id"] else f"animation {a['index']}"
        if a.get("error"):
            report.fail(f"{where}: {a['error']}")
            continue
        if a["max"] <= a["min"]:
            report.fail(f"{where}: its slider has a single position ({a['min']}..{a['max']})")
            continue
        if not (a["firstOk"] and a["lastOk"]):
            report.fail(f"{where}: a frame did not load (naturalWidth 0)")
        if not a["changed"]:
            report.fail(f"{where}: moving the slider from {a['min']} to {a['max']} did not change the frame")
        elif not a["restored"]:
            report.fail(f"{where}: moving the slider back to {a['min']} did not restore the first frame")


def _wait_for_math(page, report: PageReport) -> None:
    has_math = page.evaluate("() => document.querySelectorAll('#main-content .math').length > 0")
    if not has_math:
        return
    try:
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15_000
        )
        page.evaluate("() => MathJax.startup.promise.then(() => true)")
    except Exception as exc:  # a Playwright timeout or a MathJax error
        report.fail(f"MathJax did not load or did not finish typesetting ({type(exc).__name__})")


def _local_path(url: str, site: Path, base: str) -> tuple[Path, str] | None:
    """File under ``site`` and fragment for a URL on the test server, else None."""
    if not url.startswith(base):
        return None
    parsed = urllib.parse.urlsplit(url)
    rel = urllib.parse.unquote(parsed.path)[len(urllib.parse.urlsplit(base).path) :]
    if rel == "" or rel.endswith("/"):
        rel += "index.html"
    return site / rel, urllib.parse.unquote(parsed.fragment)


def check_page(
    page,
    url: str,
    name: str,
    site: Path,
    base: str,
    *,
    all_pages: list[str],
    interactive: bool,
    events: dict,
    captions: list[str] = (),
    screenshot: Path | None,
    glue_expected: int = 0,
    notebook: bool = False,
    players_expected: int = 0,
) -> PageReport:
    """Open ``url`` in ``page`` and run every check; ``events`` collects the listeners' findings."""
    report = PageReport(name)
    for key in events:
        events[key].clear()
    try:
        page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
    except Exception as exc:
        report.fail(f"page did not load: {exc}")
        return report
    _wait_for_math(page, report)
    data = page.evaluate(PROBE_JS)

    def site_relative(text: str) -> str:  # "http://127.0.0.1:PORT/a/b.png" -> "/a/b.png"
        return text.replace(base, "/")

    for url_ in events["blocked"]:
        report.fail(f"request to the network (blocked; the site must be self-contained): {url_}")
    for what in events["failed"]:
        report.fail(f"failed request: {site_relative(what)}")
    for msg in events["console"]:
        report.fail(f"console error: {site_relative(msg)}")
    for msg in events["pageerror"]:
        report.fail(f"JavaScript error: {site_relative(msg)}")

    for img in data["images"]:
        if not img["ok"]:
            report.fail(f'<img src="{img["src"]}" alt="{img["alt"][:40]}"> did not load (naturalWidth 0)')

    for i, m in enumerate(data["math"]):
        if not m["typeset"]:
            report.fail(f"math element {i} was not typeset by MathJax: [{m['tex']}]")
        elif m["error"] or m["merror"]:
            report.fail(f"math element {i} has a TeX error ({m['error'] or 'merror'}): [{m['tex']}]")
        elif m["undefined"]:
            report.fail(f"math element {i} uses an undefined TeX macro (shown in red): [{m['tex']}]")
    for err in data["mathErrors"]:
        report.fail(f"MathJax error in the page: {err!r}")
    for match in RAW_TEX.finditer(data["text"]):
        start = max(0, match.start() - 30)
        context = " ".join(data["text"][start : match.end() + 30].split())
        report.fail(f"raw TeX left in the page text: {match.group(0)!r} in '...{context}...'")

    for match in RAW_ROLE.finditer(data["text"]):
        start = max(0, match.start() - 30)
        context = " ".join(data["text"][start : match.end() + 40].split())
        report.fail(f"raw MyST role left in the page text: {match.group(0)!r} in '...{context}...'")
    for msg in data["systemMessages"]:
        report.fail(f"error box in the page (a role or directive that failed): {msg!r}")
    for pasted in data["pasted"]:
        if not pasted["text"]:
            report.fail(f"an empty glued value: {pasted['html']}")
    if len(data["pasted"]) < glue_expected:
        report.fail(
            f"{glue_expected - len(data['pasted'])} of the notebook's {glue_expected} glue roles pasted "
            f"nothing on the page (a key that was not glued, or not found)"
        )
    _check_animations(page, report, players_expected)
    if notebook:  # Binder and Colab open this page's own notebook
        docname = name.removesuffix(".html")
        launch = [
            link["href"]
            for link in data["links"]
            if "mybinder.org" in link["href"] or "colab.research.google.com" in link["href"]
        ]
        if not launch:
            report.fail("no Binder or Colab launch button on a notebook page")
        for href in launch:
            if not href.endswith(f"/{docname}.ipynb"):
                report.fail(f"launch button {href} does not open {docname}.ipynb")

    for match in RAW_RST.finditer(data["text"]):
        start = max(0, match.start() - 30)
        context = " ".join(data["text"][start : match.end() + 30].split())
        report.fail(f"raw reStructuredText left in the page text: {match.group(0)!r} in '...{context}...'")

    seen = set()
    for link in data["links"]:
        target = _local_path(link["href"], site, base)
        if target is None or link["href"] in seen:
            continue
        seen.add(link["href"])
        path, fragment = target
        element = f'<a href="{link["raw"]}"> ("{link["text"]}")'
        if not path.is_file():
            report.fail(f"internal link {element} points to a missing file {path.relative_to(site)}")
        elif fragment and path.suffix == ".html" and fragment not in _ids_in(path):
            report.fail(
                f"internal link {element} points to a missing anchor #{fragment} in {path.relative_to(site)}"
            )

    if not data["sidebarVisible"]:
        report.fail("the sidebar (table of contents) is not visible")
    listed = set()
    for href in data["sidebar"]:
        target = _local_path(href, site, base)
        if target:
            listed.add(target[0].resolve())
    for other in all_pages:
        if (site / f"{other}.html").resolve() not in listed:
            report.fail(f"the sidebar does not list the chapter {other}")
    if captions and data["captions"] != list(captions):
        report.fail(
            f"the sidebar shows the parts {data['captions']}, the table of contents has {list(captions)}"
        )

    if data["widgets"]:
        report.fail(
            f"widget output that needs a live kernel (a blank box offline): {', '.join(data['widgets'])}"
        )
    if interactive:
        interact_cells = [c for c in data["cells"] if INTERACT_CALL.search(c["source"])]
        if not interact_cells:
            report.fail("interactive chapter, but no cell calling interact() was found on the page")
        for c in interact_cells:
            where = f"interactive cell {c['index']}"
            if c["hasOutput"]:
                report.fail(f"{where} shows its output on the static page (tag it remove-output)")
            if not (c["nextIsCell"] and c["nextImages"]):
                report.fail(f"{where} is not followed by a static figure (a remove-input cell drawing it)")
            else:
                if c["nextHasInput"]:
                    report.fail(f"the static figure after {where} shows its code (tag it remove-input)")
                for img in c["nextImages"]:
                    if not img["ok"]:
                        report.fail(
                            f'the static figure after {where}, <img src="{img["src"]}">, did not load'
                        )

    if screenshot is not None:
        _screenshot(page, screenshot, report)
    return report


def _screenshot(page, path: Path, report: PageReport) -> None:
    """Save the whole page: the viewport is stretched to the page's height (Playwright's
    ``full_page`` capture lays out the theme's sticky sidebars wrongly), then restored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    try:
        height = page.evaluate("() => document.documentElement.scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 60_000))})
        page.wait_for_timeout(200)
        page.screenshot(path=str(path), timeout=PAGE_TIMEOUT_MS)
    except Exception as exc:
        report.fail(f"screenshot failed: {exc}")
    finally:
        page.set_viewport_size(size)


@contextlib.contextmanager
def browser(chromium: str):
    """A headless Chromium (fresh profile in a temporary folder) as a Playwright context."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="sigma-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        try:
            yield context
        finally:
            context.close()


def run_check(
    site: Path,
    pages: list[str],
    *,
    all_pages: list[str],
    interactive: set[str],
    chromium: str | None = None,
    context=None,
    screenshots: Path | None = None,
    check_index: bool = True,
    sources: Path = REPO,
    captions: list[str] = (),
) -> list[PageReport]:
    """Check ``pages`` of the site; one report per page (and one for the front door).

    Runs in ``context`` (from :func:`browser`) when given, else in a new browser started
    from the ``chromium`` executable.
    """
    if context is None:
        with browser(chromium) as context:
            return run_check(
                site,
                pages,
                all_pages=all_pages,
                interactive=interactive,
                context=context,
                screenshots=screenshots,
                check_index=check_index,
                sources=sources,
                captions=captions,
            )

    reports = []
    events: dict[str, list[str]] = {"blocked": [], "failed": [], "console": [], "pageerror": []}

    def route(route_):
        host = urllib.parse.urlsplit(route_.request.url).hostname or ""
        if host in LOOPBACK_HOSTS:
            route_.continue_()
        else:
            events["blocked"].append(route_.request.url)
            route_.abort("blockedbyclient")

    def on_console(msg):
        if msg.type == "error":
            loc = msg.location.get("url", "") if isinstance(msg.location, dict) else ""
            events["console"].append(f"{msg.text} (at {loc})" if loc else msg.text)

    def on_failed(request):
        host = urllib.parse.urlsplit(request.url).hostname or ""
        if host in LOOPBACK_HOSTS:  # blocked ones are reported as blocked
            events["failed"].append(f"{request.url} ({request.failure})")

    def on_response(response):
        if response.status >= 400:
            events["failed"].append(f"{response.url} (HTTP {response.status})")

    with SiteServer(site) as server:
        base = server.base
        page = context.new_page()
        try:
            page.route("**/*", route)
            page.on("console", on_console)
            page.on("pageerror", lambda exc: events["pageerror"].append(str(exc)))
            page.on("requestfailed", on_failed)
            page.on("response", on_response)

            if check_index:  # the site's front door redirects to the first page
                index = PageReport("index.html")
                try:
                    page.goto(base, wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_url(f"{base}{all_pages[0]}.html", timeout=10_000)
                except Exception:
                    index.fail(f"does not lead to {all_pages[0]}.html (ended at {page.url})")
                reports.append(index)

            for name in pages:
                shot = screenshots / f"{name.replace('/', '__')}.png" if screenshots else None
                if not (site / f"{name}.html").is_file():
                    missing = PageReport(f"{name}.html")
                    missing.fail("page missing from the built site")
                    reports.append(missing)
                    continue
                reports.append(
                    check_page(
                        page,
                        f"{base}{name}.html",
                        f"{name}.html",
                        site,
                        base,
                        all_pages=all_pages,
                        interactive=name in interactive,
                        events=events,
                        screenshot=shot,
                        glue_expected=glue_roles(name, sources),
                        notebook=(sources / f"{name}.ipynb").is_file(),
                        captions=captions,
                        players_expected=stored_players(name, sources),
                    )
                )
        finally:
            page.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE, help="built site (default: _build/html)")
    parser.add_argument("--toc", type=Path, default=TOC, help="table of contents (default: _toc.yml)")
    parser.add_argument("--page", action="append", dest="pages", help="check only this page (repeatable)")
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=DEFAULT_SCREENSHOTS,
        help="folder for full-page screenshots (default: _build/screenshots)",
    )
    args = parser.parse_args(argv)

    start = time.monotonic()
    chromium, why = ensure_chromium()
    if chromium is None:
        print(f"Browser check of the site SKIPPED: {why}.", flush=True)
        print("Install Debian's Chromium (apt-get install -y chromium) to run it.", flush=True)
        return 0
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("The browser check needs Playwright for Python (pip install -r requirements.txt).")
        return 1

    site = args.site.resolve()
    if not (site / "index.html").is_file():
        build_site(site)
    all_pages = toc_pages(args.toc)
    pages = args.pages or all_pages
    interactive = interactive_pages(all_pages)
    if args.screenshots:
        shutil.rmtree(args.screenshots, ignore_errors=True)
    print(
        f"Browser check: {len(pages)} pages of {site} in {chromium}, network blocked except loopback",
        flush=True,
    )
    reports = run_check(
        site,
        pages,
        all_pages=all_pages,
        interactive=interactive,
        chromium=chromium,
        screenshots=args.screenshots,
        captions=toc_captions(args.toc),
    )
    failed = [r for r in reports if r.failures]
    for r in reports:
        status = "ok" if not r.failures else f"FAILED ({len(r.failures)})"
        print(f"  {r.page:32s} {status}")
    for r in failed:
        for message in r.failures:
            print(f"FAIL {message}")
    elapsed = time.monotonic() - start
    print(
        f"Browser check: {len(reports) - len(failed)} pages passed, {len(failed)} failed "
        f"in {elapsed:.0f} s; screenshots in {args.screenshots}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
