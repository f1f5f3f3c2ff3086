"""A Sphinx extension with one fix for the book's HTML pages, loaded from ``_config.yml``.

Sphinx 7.4 registers an inline script (``add_js_file(None, body=...)``) added after the
builder starts under two names, ``None`` and ``''``, so pages carry it twice. For
sphinx-thebe's ``const THEBE_JS_URL = ...`` the second copy is a JavaScript error
("Identifier 'THEBE_JS_URL' has already been declared") on every page. This drops the
repeated copies before each page is written.
"""

from __future__ import annotations


def _drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for js in scripts:
        key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
