"""A chapter opened alone (a hosted notebook service, a downloaded .ipynb) installs the package and runs.

Every chapter's setup cell installs the distribution when ``import sigma`` fails
(``%pip install --quiet sigma-blur``), and the data the chapters read ship inside the package.
This test proves that path offline:

1. build the project's wheel (``pip wheel --no-deps --no-build-isolation``, from a copy of the
   package sources so the shared checkout gets no ``build/`` folder);
2. make a clean environment without the project: a fresh venv (no pip of its own) whose
   ``site-packages`` holds one ``.pth`` file pointing at a *shadow* folder of symbolic links to
   every entry of ``.venv``'s ``site-packages`` except the project's own (its ``.dist-info`` and
   the editable-install hooks). torch, numpy, matplotlib, ipykernel, nbconvert and pip import
   there, but ``import sigma`` fails and pip does not see ``sigma-blur`` installed;
3. copy one chapter alone into an empty folder and execute it with that venv's Python
   (``python -m nbconvert --execute``), with pip restricted to the folder holding the
   wheel (``PIP_NO_INDEX=1``, ``PIP_FIND_LINKS=...``) so the setup cell's ``%pip install``
   installs the wheel;
4. check that every cell ran without error and that the kernel imported ``sigma`` from the new
   venv's own ``site-packages`` (where the install put it, with its ``.dist-info``).

Each chapter gets its own fresh venv (a second ``%pip install`` would otherwise be skipped);
the shadow folder and the wheel are made once. The check can fail: a wheel built without its
package data (the benchmark CSV) must make the performance chapter fail, and does.

These tests take about a minute and a half, so they run from ``make test-standalone`` (part of
``make test``, with ``SIGMA_STANDALONE_TESTS=1``), not from the library suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

if not os.environ.get("SIGMA_STANDALONE_TESTS"):
    pytest.skip("standalone-chapter tests run from `make test-standalone`", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = ["recovery_1d", "real_image", "performance"]
# Where the chapters are read from (default book/; another folder to test other versions of them).
BOOK = Path(os.environ.get("SIGMA_STANDALONE_BOOK", REPO / "book"))
DISTRIBUTION = "sigma-blur"
# Package sources the wheel is built from (what pyproject.toml reads).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "sigma")
CHAPTER_TIMEOUT_S = 300
# Appended to the copied chapter: where the kernel found the package.
PROBE_CELL = (
    "import importlib.metadata as _md, sigma as _sigma\n"
    "print('SIGMA_FILE', _sigma.__file__)\n"
    "print('SIGMA_DIST', _md.distribution('sigma-blur').locate_file(''))"
)


def _is_project_entry(name: str) -> bool:
    """An entry of site-packages that belongs to the project itself (its editable install).

    >>> [_is_project_entry(n) for n in ["sigma_blur-0.1.0.dist-info", "__editable__.sigma_blur-0.1.0.pth",
    ...  "__editable___sigma_blur_0_1_0_finder.py", "sigma", "torch", "sigmastuff-1.0.dist-info"]]
    [True, True, True, True, False, False]
    """
    norm = name.lower().replace("-", "_")
    return (
        norm.startswith("sigma_blur_")
        or (norm.startswith("__editable__") and "sigma_blur" in norm)
        or norm in {"sigma", "sigma_blur.egg_link", "sigma.egg_link"}
    )


def build_wheel(out: Path, scratch: Path, *, with_data: bool = True) -> Path:
    """The project's wheel in ``out``, built from a copy of the package sources."""
    src = scratch / ("src" if with_data else "src-nodata")
    src.mkdir(parents=True)
    for name in WHEEL_SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, src / name)
    if not with_data:
        for csv in (src / "sigma" / "book" / "results").glob("*.csv"):
            csv.unlink()
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        str(src),
    ]
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    (wheel,) = out.glob("sigma_blur-*.whl")
    return wheel


def make_shadow(shadow: Path) -> list[str]:
    """Symbolic links to every entry of this environment's site-packages except the project's."""
    site = Path(sysconfig.get_paths()["purelib"])
    shadow.mkdir(parents=True)
    left_out = []
    for entry in sorted(site.iterdir()):
        if _is_project_entry(entry.name):
            left_out.append(entry.name)
        elif entry.suffix != ".pth":  # .pth files act only in a site directory; the shadow is not one
            (shadow / entry.name).symlink_to(entry)
    return left_out


def make_venv(root: Path, shadow: Path) -> tuple[Path, Path]:
    """A fresh venv that sees the shadow folder; returns (python, site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "zz_shadow_of_dot_venv.pth").write_text(f"{shadow}\n", encoding="utf-8")
    # The kernel nbconvert starts: this venv's Python, nothing from the user's Jupyter folders.
    spec = root / "share" / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (standalone test)",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    return python, site


def clean_env(venv: Path, wheels: Path, scratch: Path) -> dict[str, str]:
    """Environment of a reader's notebook server: pip sees only the wheel folder."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "JUPYTER", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONNOUSERSITE="1",
        JUPYTER_PATH=str(venv / "share" / "jupyter"),
        JUPYTER_DATA_DIR=str(scratch / "jupyter-data"),
        JUPYTER_CONFIG_DIR=str(scratch / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(scratch / "jupyter-runtime"),
        IPYTHONDIR=str(scratch / "ipython"),
    )
    return env


def run_chapter(
    chapter: str, venv: Path, python: Path, wheels: Path, scratch: Path
) -> tuple[int, str, dict | None]:
    """Copy ``book/<chapter>.ipynb`` alone into an empty folder and execute it there."""
    folder = scratch / "reader"
    folder.mkdir()
    nb = json.loads((BOOK / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    nb["cells"].append(
        {"cell_type": "code", "execution_count": None, "id": "standalone-probe", "metadata": {},
         "outputs": [], "source": PROBE_CELL}
    )  # fmt: skip
    (folder / f"{chapter}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    cmd = [
        str(python), "-m", "nbconvert", "--to", "notebook", "--execute",
        f"--ExecutePreprocessor.timeout={CHAPTER_TIMEOUT_S}", "--ExecutePreprocessor.kernel_name=python3",
        "--output", "executed.ipynb", f"{chapter}.ipynb",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=folder,
        env=clean_env(venv, wheels, scratch),
        capture_output=True,
        text=True,
        timeout=CHAPTER_TIMEOUT_S + 60,
    )
    out = folder / "executed.ipynb"
    executed = json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
    return proc.returncode, proc.stdout[-3000:] + proc.stderr[-6000:], executed


def _stream(cell: dict) -> str:
    return "".join(
        "".join(o.get("text", "")) if isinstance(o.get("text"), list) else o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("standalone")


@pytest.fixture(scope="module")
def wheels(scratch) -> Path:
    out = scratch / "wheels"
    build_wheel(out, scratch)
    return out


@pytest.fixture(scope="module")
def shadow(scratch) -> Path:
    path = scratch / "shadow"
    left_out = make_shadow(path)
    assert left_out, "the project's editable install was not found in .venv"
    return path


@pytest.fixture
def venv(tmp_path, shadow):
    python, site = make_venv(tmp_path / "venv", shadow)
    return tmp_path / "venv", python, site


# --------------------------------------------------------------------------- tests


def test_clean_environment_has_the_stack_but_not_the_project(venv, wheels, tmp_path):
    root, python, _site = venv
    env = clean_env(root, wheels, tmp_path)
    # (torch, numpy and matplotlib are imported by the chapters themselves below)
    probe = "import ipykernel, nbconvert, pip, scipy; print('stack ok')"
    run = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True, "timeout": 120}  # not the repo
    ok = subprocess.run([str(python), "-c", probe], **run)
    assert ok.returncode == 0 and "stack ok" in ok.stdout, ok.stderr[-2000:]
    no = subprocess.run([str(python), "-c", "import sigma"], **run)
    assert no.returncode != 0 and "No module named 'sigma'" in no.stderr
    show = subprocess.run([str(python), "-m", "pip", "show", DISTRIBUTION], **run)
    assert show.returncode != 0, f"pip believes {DISTRIBUTION} is installed:\n{show.stdout}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_alone_and_installs_the_package(chapter, venv, wheels, tmp_path):
    root, python, site = venv
    rc, log, executed = run_chapter(chapter, root, python, wheels, tmp_path)
    assert rc == 0, f"{chapter} failed when run alone:\n{log}"
    assert executed is not None
    errors = [
        (i, o.get("ename"), o.get("evalue"))
        for i, cell in enumerate(executed["cells"])
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, f"{chapter}: cells with errors {errors}"
    probe = _stream(executed["cells"][-1])
    file_line = next(line for line in probe.splitlines() if line.startswith("SIGMA_FILE "))
    dist_line = next(line for line in probe.splitlines() if line.startswith("SIGMA_DIST "))
    sigma_file = Path(file_line.split(" ", 1)[1])
    assert sigma_file.is_relative_to(site), f"the kernel imported sigma from {sigma_file}, not from {site}"
    assert Path(dist_line.split(" ", 1)[1]).resolve() == site.resolve()
    assert list(site.glob("sigma_blur-*.dist-info")), "no sigma_blur .dist-info in the new venv"
    assert (site / "sigma" / "book" / "results" / "blur_cpu.csv").is_file()


def test_the_check_fails_on_a_wheel_without_its_data(venv, scratch, tmp_path):
    """A wheel without package data: the performance chapter cannot find its CSV and fails."""
    root, python, _site = venv
    broken = tmp_path / "wheels-nodata"
    build_wheel(broken, tmp_path, with_data=False)
    rc, log, _executed = run_chapter("performance", root, python, broken, tmp_path)
    assert rc != 0, "the performance chapter ran although the wheel has no benchmark CSV"
    assert any(s in log for s in ("blur_cpu.csv", "blur_<device>.csv", "FileNotFoundError")), log
