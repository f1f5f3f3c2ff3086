"""sigma.book.glue writes the same output as myst-nb's glue, with or without myst-nb installed.

A chapter opened alone (a hosted notebook service) has the package but not myst-nb; its glue
calls must still produce the outputs that the site's builder and nbval read. Each case glues
a value with myst-nb and with the fallback (myst-nb hidden from the import system) and
compares the captured display data and metadata.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from sigma.book.glue import GLUE_PREFIX, glue

myst_nb = pytest.importorskip("myst_nb")


@pytest.fixture(scope="module", autouse=True)
def _shell():
    """An IPython shell, so that display data are published (and can be captured)."""
    InteractiveShell.instance()


def _outputs(fn, *args, **kwargs) -> list[tuple[dict, dict]]:
    with capture_output(stdout=False, stderr=False, display=True) as captured:
        fn(*args, **kwargs)
    return [(out.data, out.metadata) for out in captured.outputs]


def _fallback(monkeypatch, *args, **kwargs) -> list[tuple[dict, dict]]:
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "myst_nb", None)  # `from myst_nb import glue` raises ImportError
        with pytest.raises(ImportError):
            import myst_nb as _  # noqa: F401
        return _outputs(glue, *args, **kwargs)


VALUES = [2.998, 100, -0.125, 1e-10, "1e-10", "hello, σ", np.float64(3.25), True]


@pytest.mark.parametrize("display", [False, True], ids=["hidden", "shown"])
@pytest.mark.parametrize("value", VALUES, ids=[repr(v) for v in VALUES])
def test_fallback_matches_myst_nb(monkeypatch, value, display):
    reference = _outputs(myst_nb.glue, "key", value, display=display)
    assert _fallback(monkeypatch, "key", value, display=display) == reference
    assert _outputs(glue, "key", value, display=display) == reference  # with myst-nb: myst-nb's


@pytest.mark.parametrize("display", [False, True], ids=["hidden", "shown"])
def test_output_format(monkeypatch, display):
    """What the builder reads: one output, the MIME types prefixed when hidden, the name in metadata."""
    ((data, metadata),) = _fallback(monkeypatch, "sigma_hat", 2.998, display=display)
    prefix = "" if display else GLUE_PREFIX
    assert data == {f"{prefix}text/plain": "2.998"}
    assert metadata["scrapbook"] == {"name": "sigma_hat", "mime_prefix": prefix}


def test_default_is_hidden(monkeypatch):
    ((data, _),) = _fallback(monkeypatch, "n", 7)
    assert list(data) == [GLUE_PREFIX + "text/plain"]
    ((data, _),) = _outputs(glue, "n", 7)
    assert list(data) == [GLUE_PREFIX + "text/plain"]


@pytest.mark.parametrize("name", ["", None, 3])
def test_bad_name(name):
    with pytest.raises(TypeError, match="name"):
        glue(name, 1.0)


def test_fallback_is_taken_and_differs_from_a_wrong_bundle(monkeypatch):
    """The comparison can fail: a shown value is not a hidden one, and the fallback ran without myst-nb."""
    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda *a, **k: calls.append(a))
    hidden = _fallback(monkeypatch, "x", 1.5, display=False)
    assert calls == []  # myst-nb was not reachable
    assert hidden != _fallback(monkeypatch, "x", 1.5, display=True)
    assert hidden != _fallback(monkeypatch, "y", 1.5, display=False)
