"""The package's modules form layers: no import circle, lazy imports included.

Each engine builds on :mod:`sigma._autograd` and the modules below it; nothing imports back up
(a function-level import counts as an import: it is how a circle hides).
"""

from __future__ import annotations

import ast
from pathlib import Path

import sigma

PACKAGE = Path(sigma.__file__).parent


def imports(path: Path) -> set[str]:
    """The ``sigma`` modules one file imports, anywhere in it (module names without the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
        elif (
            isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("sigma.")
        ):
            found.add(node.module.split(".")[1])
    return found - {"book"}


def graph() -> dict[str, set[str]]:
    mods = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: imports(path) & set(mods) for name, path in mods.items()}


def cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``g`` (a list of modules, first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_circle():
    assert cycle(graph()) is None, " -> ".join(cycle(graph()))


def test_the_check_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_engines_sit_on_the_ground_floor():
    g = graph()
    assert g["_autograd"] <= {"_export"}
    assert g["_taps"] == set()
    for engine in ("_shift", "_band", "_dense", "_fft", "_fused"):
        assert "_conv" not in g[engine] and "_auto" not in g[engine], engine
    assert "_conv" not in g["_ops"]
    assert "_conv" not in g["_auto"]  # the rule knows no tensors, and no dispatcher
