"""Glue: hand a value computed in a chapter to the prose around it.

A chapter computes a number in a code cell and calls ``glue("name", value)``; its
markdown writes ``{glue:text}`name:.3f``` and the built page prints exactly that value.
The output is exactly what myst-nb's ``glue`` writes (the site's builder reads that
format; tests/test_glue.py compares the two), produced by the few lines below rather than
by importing myst-nb, which pulls in Sphinx and costs seconds per chapter, and which a
notebook opened alone does not have.
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue", "GLUE_PREFIX"]

#: MIME-type prefix that marks a glued output which the page must not show in place.
GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, display: bool = False) -> None:
    """Store ``value``'s display data in the cell's output under ``name``.

    Args:
        name: the key the prose uses, as in ``{glue:text}`name```.
        value: any object; numbers are what the prose formats (``:.2f``).
        display: also show the value where the cell is (default False: the page
            prints it only where the prose pastes it).

    Raises:
        TypeError: if ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got name={name!r}")
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
