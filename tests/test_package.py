"""The release artifacts: ``python -m build`` makes an sdist and a wheel that pass ``twine check``.

The wheel holds the ``sigma`` package and the data its book module reads (the benchmark CSVs,
the seed notebook text) and nothing else of the repository; the sdist holds the same plus the
README, the licenses and the citation file. The wheel is then imported on its own, from an
unpacked copy, to show that the shipped data is found without the repository.

The build uses ``--no-isolation`` (setuptools and build are pinned in requirements.txt), so it
runs offline in a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sigma"
# Data files that pyproject.toml ships (package-data); every one of them must be in the wheel.
DATA_GLOBS = ("book/results/*.csv", "book/seed/*.txt")
FORBIDDEN_TOP = ("tests/", "book/", "benchmarks/", "tools/", ".github/", "_build/", "conftest.py")


def _source_files() -> set[str]:
    """What the wheel must contain besides its .dist-info: the modules and the package data."""
    modules = {p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    data = {p for pattern in DATA_GLOBS for p in PACKAGE.glob(pattern)}
    return {p.relative_to(REPO).as_posix() for p in modules | data}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_names_follow_the_distribution(dist):
    assert dist["wheel"].name.startswith("sigma_blur-") and dist["wheel"].name.endswith("-py3-none-any.whl")
    assert dist["sdist"].name.startswith("sigma_blur-")


def test_wheel_holds_the_package_and_its_data_only(dist):
    with zipfile.ZipFile(dist["wheel"]) as zf:
        names = set(zf.namelist())
    info = {n for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    assert names - info == _source_files()
    assert {"sigma/book/results/blur_cpu.csv"} <= names
    assert not [n for n in names if n.startswith(FORBIDDEN_TOP)]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in info)


def test_wheel_metadata(dist):
    with zipfile.ZipFile(dist["wheel"]) as zf:
        (meta_name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(meta_name).decode())
    assert meta["Name"] == "sigma-blur"
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Author"] == "The sigma authors"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Source"] == "https://github.com/sigma-book/sigma"
    assert urls["Documentation"] == "https://sigma-book.github.io/sigma/"
    assert any(c.startswith("Programming Language :: Python :: 3") for c in meta.get_all("Classifier"))
    assert meta["Requires-Python"] == ">=3.10"
    assert meta.get_content_type() == "text/plain" and meta.get_payload().startswith("# ")  # the README


def test_sdist_holds_the_package_readme_licenses_and_citation(dist):
    with tarfile.open(dist["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert _source_files() <= names
    assert {"README.md", "LICENSE", "LICENSE-BOOK", "CITATION.cff", "pyproject.toml", "PKG-INFO"} <= names
    assert not [n for n in names if n.startswith(FORBIDDEN_TOP)]


def test_twine_check_passes(dist):
    cmd = [sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unpacked_wheel_imports_and_reads_its_data(dist, tmp_path):
    with zipfile.ZipFile(dist["wheel"]) as zf:
        zf.extractall(tmp_path)
    code = (
        "import sigma, sigma.book.data as d, sigma.book.seed as s\n"
        "print(sigma.__file__)\n"
        "assert d.benchmark_results('cpu'), 'no benchmark rows'\n"
        "assert s.text().strip(), 'empty seed text'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Path(proc.stdout.splitlines()[0]).is_relative_to(tmp_path)
