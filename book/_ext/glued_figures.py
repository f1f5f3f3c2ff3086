"""A Sphinx extension that lets a page show a figure glued in another chapter.

myst-nb pastes glued *text* across pages (``{glue:text}`chapter.ipynb::key```), but a glued
*image* pasted into another page is never written to the site. The introduction's opening figure
is computed in a chapter (``glue("opening_figure", fig)`` in ``local_blur.ipynb``), so before the
build reads any page this writes each figure listed in :data:`FIGURES` from the chapter's stored,
nbval-checked outputs to ``book/_generated/<key>.png``, where a plain ``{figure}`` directive finds
it. Nothing is computed here: the pixels are the chapter's.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

#: (chapter notebook, glue key) of every figure another page shows
FIGURES = [("local_blur.ipynb", "opening_figure")]
GLUE_PNG = "application/papermill.record/image/png"


def glued_png(notebook: Path, key: str) -> bytes:
    """The PNG bytes glued under ``key`` in ``notebook``'s stored outputs."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == key and GLUE_PNG in out.get(
                "data", {}
            ):
                return base64.b64decode(out["data"][GLUE_PNG])
    raise ValueError(f"{notebook.name} has no glued figure {key!r}: execute the chapter (make execute)")


def write_figures(book: Path) -> list[Path]:
    written = []
    for notebook, key in FIGURES:
        target = book / "_generated" / f"{key}.png"
        target.parent.mkdir(exist_ok=True)
        png = glued_png(book / notebook, key)
        if not target.is_file() or target.read_bytes() != png:
            target.write_bytes(png)
        written.append(target)
    return written


def _on_builder_inited(app) -> None:
    write_figures(Path(app.srcdir) / "book")


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
