"""tools/other_kernels.py: it reads what each library reports and refuses a setting that did not take."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import other_kernels  # noqa: E402

TOOL = REPO / "tools" / "other_kernels.py"

NATIVE = """capability AVX512
MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture Intel(R) Architecture processors
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support
"""
OTHER = """capability DEFAULT
MKL_VERBOSE oneMKL 2024.0 Update 2 Product build for Intel(R) 64 architecture Intel(R) SSE4.2 enabled processors
onednn_verbose,v1,info,cpu,isa:Intel SSE4.1
"""


def test_kernels_reads_each_library():
    assert other_kernels.kernels(OTHER) == {
        "aten": "DEFAULT",
        "onednn": "Intel SSE4.1",
        "mkl": OTHER.splitlines()[1],
    }
    native = other_kernels.kernels(NATIVE)
    assert native["aten"] == "AVX512" and "AVX-512" in native["onednn"]
    assert native["mkl"] == ""  # MKL names no instruction set: nothing to compare


def test_problems_name_each_setting_that_did_not_take():
    assert other_kernels.problems(other_kernels.kernels(OTHER)) == []
    found = other_kernels.problems(other_kernels.kernels(NATIVE))
    assert len(found) == 2 and "PyTorch" in found[0] and "oneDNN" in found[1]
    wrong_mkl = OTHER.replace("SSE4.2", "AVX2")
    assert ["MKL" in p for p in other_kernels.problems(other_kernels.kernels(wrong_mkl))] == [True]
    assert other_kernels.problems({"aten": "", "onednn": "", "mkl": ""})  # silent: not proven


def test_runs_the_command_with_other_kernels():
    code = (
        "import torch, os; print(torch.backends.cpu.get_cpu_capability(), os.environ['ONEDNN_MAX_CPU_ISA'])"
    )
    done = subprocess.run(
        [sys.executable, str(TOOL), sys.executable, "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "DEFAULT SSE41"
    failing = subprocess.run([sys.executable, str(TOOL), sys.executable, "-c", "raise SystemExit(3)"])
    assert failing.returncode == 3  # the command's own status comes back
