"""The Binder configuration installs the CPU build of torch, the package and what the chapters import.

Binder cannot be reached from the tests, so this checks the file itself: the extra index of
the CPU wheels, pins identical to requirements.txt (torch with its ``+cpu`` label), the
package from the repository, and a requirement for every third-party module a chapter or
``sigma.book`` imports. It also checks that the site's launch buttons point at this
repository's notebooks (Binder opens ``book/<chapter>.ipynb`` in JupyterLab).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder" / "requirements.txt"
# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "IPython": "ipykernel", "mpl_toolkits": "matplotlib"}
# provided by another requirement (ipython by ipykernel, mpmath is pinned for gradient_checks)
PROVIDED = {"sigma", "myst_nb"}  # myst_nb: sigma.book.glue falls back without it


def _requirements(path: Path) -> tuple[dict[str, str], list[str]]:
    pins, other = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
        else:
            other.append(line)
    return pins, other


def _imports(source: str) -> set[str]:
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _third_party_imports() -> set[str]:
    found = set()
    for nb in (REPO / "book").glob("*.ipynb"):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                src = cell["source"]
                found |= _imports("".join(src) if isinstance(src, list) else src)
    for module in (REPO / "sigma" / "book").glob("*.py"):
        found |= _imports(module.read_text(encoding="utf-8"))
    return {n for n in found if n not in sys.stdlib_module_names and n not in PROVIDED}


def test_cpu_torch_and_the_package():
    pins, other = _requirements(BINDER)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in other
    assert pins["torch"].endswith("+cpu")
    assert "." in other or "-e ." in other, "the package from the repository"


def test_pins_match_requirements_txt():
    pins, _ = _requirements(BINDER)
    main, _ = _requirements(REPO / "requirements.txt")
    assert pins["torch"].removesuffix("+cpu") == main["torch"].removesuffix("+cpu")
    for name, version in pins.items():
        if name != "torch" and name in main:
            assert version == main[name], f"{name}: binder pins {version}, requirements.txt {main[name]}"


def test_every_chapter_import_is_installed():
    pins, _ = _requirements(BINDER)
    missing = {n for n in _third_party_imports() if DISTRIBUTION.get(n, n).lower() not in pins}
    assert not missing, f"binder/requirements.txt lacks what the chapters import: {sorted(missing)}"


def test_runtime_is_a_supported_python():
    runtime = (REPO / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"python-3\.(1[0-9])", runtime), runtime


def test_launch_buttons_open_this_repository_in_jupyterlab():
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    repo, launch = config["repository"], config["launch_buttons"]
    assert repo["url"].startswith("https://github.com/") and repo["branch"] == "main"
    # path_to_book is the folder of _config.yml inside the repository: the root, so a chapter
    # opens as book/<chapter>.ipynb, where the notebooks are.
    assert repo.get("path_to_book", "") in ("", ".")
    assert (REPO / "book" / "recovery_1d.ipynb").is_file()
    assert launch["notebook_interface"] == "jupyterlab"
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert launch["colab_url"] == "https://colab.research.google.com"
