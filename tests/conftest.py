"""Shared fixtures for the library tests."""

import importlib.util
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """Run the tests on one intra-op thread.

    The tests use tiny tensors, for which starting and synchronizing worker threads
    costs far more than it saves (most of all on a busy two-core machine); one thread
    also makes every floating-point reduction order fixed from run to run.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every test that takes ``device`` runs on the CPU, and on CUDA when a GPU is present."""
    return request.param


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script(name)``: the script ``benchmarks/<name>.py`` imported as a module
    (a new module object per call, so a test may patch it freely)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def pytest_configure(config):
    """Every test sees the built-in ``method='auto'`` plan: a plan ``sigma.tune()`` stored on
    this machine would move auto's choices (tests that need a cache make their own)."""
    import os
    import tempfile

    os.environ["SIGMA_CACHE_DIR"] = tempfile.mkdtemp(prefix="sigma-no-plans-")
