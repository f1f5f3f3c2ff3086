#!/usr/bin/env python3
"""Open a chapter in JupyterLab in headless Chromium, run it, and check what a reader sees.

JupyterLab (with the ``jupyterlab-myst`` extension, which renders MyST markdown) is started
headless on 127.0.0.1 with a random token, in a temporary folder that holds a *copy* of the
chapter (so running it never rewrites ``book/``) and a fresh Lab settings folder (every cell
rendered, no news or update checks). The chapter is opened in Debian's Chromium, driven by
Playwright, with every request that is not to the loopback server blocked, and run top to
bottom (Run All). The check fails, naming the chapter and the cell, when:

* a code cell did not run or raised an error;
* a markdown cell shows raw MyST source instead of rendering it: a role such as
  ``{glue:text}`` or ``{cite}``, a directive fence such as ``:::{dropdown}`` or
  ```` ```{admonition} ````;
* a glued value is missing: a ``{glue:text}`` role whose key no code cell glued (the site
  build would fail on it too), or a rendered glue placeholder with no value in it.

A screenshot of the whole notebook after the run goes to ``_build/screenshots/lab__NAME.png``.
Exit status 0 if every chapter passed, 1 otherwise; without Chromium (and no way to install it)
the check prints that it was SKIPPED and exits 0.

Usage::

    python tests/site/check_lab.py [book/recovery_1d.ipynb ...] [--timeout 300] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_site  # noqa: E402

REPO = check_site.REPO
DEFAULT_CHAPTERS = ["book/recovery_1d.ipynb"]
DEFAULT_SCREENSHOTS = check_site.DEFAULT_SCREENSHOTS
# MyST source that a renderer should have replaced: a role name before a backtick, a
# directive fence (``` or ::: followed by {name}), or a colon fence line alone.
RAW_MYST = re.compile(
    r"\{(?:glue|cite|ref|numref|eq|doc|term|math|abbr|sub|sup|download)(?::[\w-]+)?\}`?"
    r"|(?:`{3,}|:{3,})\s*\{[\w:-]+\}"
    r"|^\s*:{3,}\s*$",
    re.M,
)
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`(?P<key>[^`:]+)(?::[^`]*)?`")
LAB_SETTINGS = {
    # Render every cell (not only those scrolled into view) so the whole notebook is checked.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # No news feed and no update check: nothing is fetched from the network.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class LabReport:
    """What went wrong in one chapter."""

    chapter: str
    failures: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def fail(self, message: str) -> None:
        self.failures.append(f"{self.chapter}: {message}")


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(root: Path, port: int, token: str, python: str = sys.executable) -> list[str]:
    """The command that starts JupyterLab headless; ``--allow-root`` only for root."""
    cmd = [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


@contextlib.contextmanager
def lab_server(root: Path, scratch: Path, *, startup_timeout: float = 90.0, without_myst: bool = False):
    """Run JupyterLab on ``root``; yield its base URL and token; stop it on exit.

    ``without_myst`` disables the jupyterlab-myst extension (plain Lab markdown), which the
    check's own tests use to show that raw MyST is caught.
    """
    port, token = _free_port(), secrets.token_hex(16)
    if without_myst:
        labconfig = scratch / "config" / "labconfig"
        labconfig.mkdir(parents=True, exist_ok=True)
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"jupyterlab-myst": True}}), encoding="utf-8"
        )
    settings = scratch / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(scratch / "lab-workspaces"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        PYTHONUNBUFFERED="1",
    )
    log = (scratch / "lab.log").open("w")
    proc = subprocess.Popen(lab_command(root, port, token), cwd=root, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with status {proc.returncode}:\n{_tail(scratch / 'lab.log')}"
                )
            try:
                with urllib.request.urlopen(f"{base}api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"JupyterLab did not start in {startup_timeout:.0f} s:\n{_tail(scratch / 'lab.log')}"
                )
            time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- in-page probes

PROBE_JS = r"""
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = Array.from(document.querySelectorAll(".jp-Notebook .jp-Cell"));
  return cells.map((cell, index) => {
    const kind = cell.classList.contains("jp-MarkdownCell") ? "markdown"
      : cell.classList.contains("jp-CodeCell") ? "code" : "raw";
    const out = {index, kind};
    if (kind === "markdown") {
      // jupyterlab-myst renders into a ".myst" widget; plain Lab into ".jp-RenderedMarkdown".
      const rendered = cell.querySelector(".jp-Cell-inputWrapper .myst, .jp-RenderedMarkdown");
      out.rendered = !!rendered && cell.classList.contains("jp-mod-rendered") &&
        rendered.offsetParent !== null;
      out.myst = !!rendered && rendered.classList.contains("myst");
      const clone = rendered ? rendered.cloneNode(true) : document.createElement("div");
      clone.querySelectorAll("pre, code, kbd, samp, script, style, .katex, .math, mjx-container")
        .forEach((el) => el.remove());
      out.text = clone.innerText || clone.textContent || "";
      out.citeNotFound = Array.from((rendered || cell).querySelectorAll('[title="Citation Not Found"]'))
        .map((el) => el.textContent.trim());
      out.html = rendered ? rendered.innerHTML.slice(0, 4000) : "";
    }
    return out;
  });
}
"""

MODEL_JS = r"""
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel && panel.context ? panel.context.model.toJSON() : null;
}
"""


def _open_and_run(page, base: str, token: str, name: str, timeout_s: float) -> None:
    # A fresh workspace per chapter (?reset), so no tab of an earlier chapter is restored.
    workspace = "w" + secrets.token_hex(4)
    page.goto(
        f"{base}lab/workspaces/{workspace}/tree/{urllib.parse.quote(name)}?reset&token={token}",
        wait_until="load",
    )
    page.wait_for_function(
        """(name) => {
          const p = window.jupyterapp && window.jupyterapp.shell.currentWidget;
          return !!p && !!p.context && p.context.path === name && !!p.content &&
            document.querySelectorAll(".jp-Notebook .jp-Cell").length > 0;
        }""",
        arg=name,
        timeout=90_000,
    )
    # The kernel is ready when the session context reports idle.
    page.wait_for_function(
        """() => {
          const p = window.jupyterapp.shell.currentWidget;
          const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;
          return !!k && k.status === "idle";
        }""",
        timeout=90_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # Done when no cell is queued or running and the kernel is idle again.
    page.wait_for_function(
        """() => {
          const p = window.jupyterapp.shell.currentWidget;
          const k = p.sessionContext.session.kernel;
          const busy = Array.from(document.querySelectorAll(".jp-CodeCell .jp-InputPrompt"))
            .some((el) => el.textContent.includes("*"));
          return !busy && k.status === "idle";
        }""",
        timeout=int(timeout_s * 1000),
        polling=500,
    )
    # Leave edit mode and render every markdown cell (Run All renders them too).
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:render-all-markdown')")
    page.wait_for_timeout(1000)


def check_chapter(
    context, base: str, token: str, name: str, source: Path, *, timeout_s: float, screenshot: Path | None
) -> tuple[LabReport, list[dict]]:
    """Open ``name`` (a path under the server's root) in Lab, run it and check it."""
    report = LabReport(name)
    start = time.monotonic()
    page = context.new_page()
    blocked: list[str] = []
    errors: list[str] = []

    def route(route_):
        host = urllib.parse.urlsplit(route_.request.url).hostname or ""
        if host in check_site.LOOPBACK_HOSTS:
            route_.continue_()
        else:
            blocked.append(route_.request.url)
            route_.abort("blockedbyclient")

    page.route("**/*", route)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    cells: list[dict] = []
    try:
        _open_and_run(page, base, token, name, timeout_s)
        cells = page.evaluate(PROBE_JS)
        model = page.evaluate(MODEL_JS)
        _check_outputs(report, model)
        _check_markdown(report, cells, model)
        for url in sorted(set(blocked)):
            report.fail(f"request to the network (blocked): {url}")
        for msg in errors:
            report.fail(f"JavaScript error in Lab: {msg[:200]}")
    except Exception as exc:  # a timeout, a closed page
        report.fail(f"did not open and run in JupyterLab: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        if screenshot is not None:
            _screenshot(page, screenshot, report)
        page.close()
    report.elapsed = time.monotonic() - start
    return report, cells


def _check_outputs(report: LabReport, model: dict | None) -> None:
    if not model:
        report.fail("no notebook model in the Lab page")
        return
    for index, cell in enumerate(model.get("cells", [])):
        if cell.get("cell_type") != "code" or not "".join(cell.get("source", "")).strip():
            continue
        if cell.get("execution_count") is None:
            report.fail(f"code cell {index} did not run")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                report.fail(f"code cell {index} raised {out.get('ename')}: {str(out.get('evalue'))[:200]}")


def _glued_keys(model: dict) -> set[str]:
    keys = set()
    for cell in model.get("cells", []):
        for out in cell.get("outputs", []):
            scrap = (out.get("metadata") or {}).get("scrapbook") or {}
            if scrap.get("name"):
                keys.add(scrap["name"])
    return keys


def _check_markdown(report: LabReport, cells: list[dict], model: dict | None) -> None:
    glued = _glued_keys(model or {})
    sources = [c for c in (model or {}).get("cells", [])]
    for cell in cells:
        if cell["kind"] != "markdown":
            continue
        where = f"markdown cell {cell['index']}"
        if not cell["rendered"]:
            report.fail(f"{where} is not rendered")
            continue
        for match in RAW_MYST.finditer(cell["text"]):
            start = max(0, match.start() - 30)
            context = " ".join(cell["text"][start : match.end() + 30].split())
            report.fail(f"{where} shows raw MyST {match.group(0).strip()!r} in '...{context}...'")
        if cell["index"] < len(sources):
            src = sources[cell["index"]].get("source", "")
            src = "".join(src) if isinstance(src, list) else src
            for m in GLUE_ROLE.finditer(src):
                if m.group("key") not in glued:
                    report.fail(f"{where} pastes glue key {m.group('key')!r}, which no code cell glued")


def _screenshot(page, path: Path, report: LabReport) -> None:
    """The whole notebook: the window is stretched to the notebook's height, then restored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    try:
        height = page.evaluate(
            """() => {
              // The notebook scrolls inside its panel: the window must fit the whole list.
              const els = document.querySelectorAll(
                ".jp-NotebookPanel-notebook, .jp-WindowedPanel-outer, .jp-WindowedPanel-inner");
              const tallest = Math.max(0, ...Array.from(els).map((el) => el.scrollHeight));
              return tallest + 250;
            }"""
        )
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 30_000))})
        page.evaluate(
            """() => document.querySelectorAll(".jp-NotebookPanel-notebook, .jp-WindowedPanel-outer")
              .forEach((el) => { el.scrollTop = 0; })"""
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(path), timeout=60_000)
    except Exception as exc:
        report.fail(f"screenshot failed: {exc}")
    finally:
        page.set_viewport_size(size)


# --------------------------------------------------------------------------- driver


def run_check(
    chapters: list[Path],
    *,
    chromium: str,
    timeout_s: float,
    screenshots: Path | None,
    keep: bool = False,
    dump: Path | None = None,
    without_myst: bool = False,
) -> list[LabReport]:
    """Check each chapter (a notebook path) in one JupyterLab server and one browser."""
    reports = []
    scratch = Path(tempfile.mkdtemp(prefix="sigma-lab-"))
    root = scratch / "root"
    root.mkdir()
    try:
        for chapter in chapters:
            shutil.copy2(chapter, root / chapter.name)
        with (
            lab_server(root, scratch, without_myst=without_myst) as (base, token),
            check_site.browser(chromium) as context,
        ):
            for chapter in chapters:
                shot = screenshots / f"lab__{chapter.stem}.png" if screenshots else None
                report, cells = check_chapter(
                    context, base, token, chapter.name, chapter, timeout_s=timeout_s, screenshot=shot
                )
                reports.append(report)
                if dump is not None:
                    dump.mkdir(parents=True, exist_ok=True)
                    (dump / f"{chapter.stem}.json").write_text(json.dumps(cells, indent=1), encoding="utf-8")
    finally:
        if keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="notebooks (default: book/recovery_1d.ipynb)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to run one chapter")
    parser.add_argument("--screenshots", type=Path, default=DEFAULT_SCREENSHOTS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (Lab log)")
    parser.add_argument("--dump", type=Path, help="write what each markdown cell rendered to this folder")
    parser.add_argument(
        "--without-myst", action="store_true", help="disable jupyterlab-myst (shows raw MyST)"
    )
    args = parser.parse_args(argv)

    start = time.monotonic()
    chromium, why = check_site.ensure_chromium()
    if chromium is None:
        print(f"JupyterLab check SKIPPED: {why}.", flush=True)
        return 0
    chapters = [p.resolve() for p in (args.chapters or [REPO / c for c in DEFAULT_CHAPTERS])]
    print(f"JupyterLab check: {', '.join(c.name for c in chapters)} in {chromium}", flush=True)
    reports = run_check(
        chapters,
        chromium=chromium,
        timeout_s=args.timeout,
        screenshots=args.screenshots,
        keep=args.keep,
        dump=args.dump,
        without_myst=args.without_myst,
    )
    failed = [r for r in reports if r.failures]
    for r in reports:
        status = "ok" if not r.failures else f"FAILED ({len(r.failures)})"
        print(f"  {r.chapter:32s} {status} ({r.elapsed:.0f} s)")
    for r in failed:
        for message in r.failures:
            print(f"FAIL {message}")
    print(
        f"JupyterLab check: {len(reports) - len(failed)} passed, {len(failed)} failed in "
        f"{time.monotonic() - start:.0f} s; screenshots in {args.screenshots}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
