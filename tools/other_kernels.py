#!/usr/bin/env python3
"""Run a command with other CPU kernels selected, after checking that the selection took effect.

Another CPU model makes PyTorch, oneDNN and MKL pick other kernels (other vector widths, other
blockings, so other rounding). This script simulates that on one machine: it runs a command with

    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2

``make test-notebooks-other-kernels`` runs strict nbval on every chapter this way: a chapter whose
printed values move under these kernels would move on another CPU, and fails the build.

That pass proves something only if the settings took effect, which is checked first, in fresh
processes, against the same probe run without them:

* PyTorch's CPU capability (``torch.backends.cpu.get_cpu_capability()``) is ``DEFAULT``;
* oneDNN reports SSE4.1 when it creates a convolution (``ONEDNN_VERBOSE``);
* MKL reports SSE4.2 where it names an instruction set at all (``MKL_VERBOSE``; on some CPUs,
  AMD's among them, it names none, and only the setting is passed on).

Usage: ``python tools/other_kernels.py [--check] COMMAND [ARG ...]``. Exit status 1 if a setting
did not take effect; otherwise the command's own exit status (``--check``: 0, nothing run).
"""

from __future__ import annotations

import os
import subprocess
import sys

SETTINGS = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
}
EXPECT = {"aten": "DEFAULT", "onednn": "SSE4.1", "mkl": "SSE4.2"}  # how each library reports SETTINGS

PROBE = """
import torch
print("capability", torch.backends.cpu.get_cpu_capability())
a = torch.randn(64, 64, dtype=torch.float64)
a @ a
x, w = torch.randn(2, 16, 32, 32), torch.randn(16, 16, 3, 3)
torch.nn.functional.conv2d(x, w)  # large enough for oneDNN
"""


def probe(env: dict[str, str]) -> str:
    """Output (stdout and stderr) of the probe run in ``env``, with both libraries verbose."""
    env = {**env, "ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def kernels(text: str) -> dict[str, str]:
    """What a probe's output says each library runs: ``{'aten', 'onednn', 'mkl'}`` ('' if silent)."""

    def line(marker: str) -> str:
        return next((s for s in text.splitlines() if marker in s), "")

    mkl = line("MKL_VERBOSE oneMKL") or line("MKL_VERBOSE Intel(R) MKL")
    return {
        "aten": line("capability ").removeprefix("capability ").strip(),
        "onednn": line("info,cpu,isa:").split("isa:")[-1].strip(),
        "mkl": mkl if any(isa in mkl for isa in ("SSE", "AVX")) else "",
    }


def problems(other: dict[str, str]) -> list[str]:
    """The settings that did not take effect, given :func:`kernels` of a probe run with them."""
    out = []
    if other["aten"] != EXPECT["aten"]:
        out.append(f"PyTorch's CPU capability is {other['aten'] or 'unknown'}, expected {EXPECT['aten']}")
    if EXPECT["onednn"] not in other["onednn"]:
        out.append(f"oneDNN reports {other['onednn'] or 'no instruction set'}, expected {EXPECT['onednn']}")
    if other["mkl"] and EXPECT["mkl"] not in other["mkl"]:
        out.append(f"MKL reports {other['mkl']!r}, expected {EXPECT['mkl']}")
    return out


def main(argv: list[str]) -> int:
    check_only = argv[:1] == ["--check"]
    command = argv[1:] if check_only else argv
    if not command and not check_only:
        print(__doc__.split("\n\n")[-2], file=sys.stderr)
        return 2
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env = {**base, **SETTINGS}
    native, other = kernels(probe(base)), kernels(probe(env))
    found = problems(other)
    if found:
        print("other kernels not selected:\n  " + "\n  ".join(found), file=sys.stderr)
        return 1
    print(
        f"other kernels: PyTorch {native['aten']} -> {other['aten']}; oneDNN {native['onednn']} -> "
        f"{other['onednn']}; MKL {'-> ' + other['mkl'] if other['mkl'] else 'names no instruction set here'}",
        flush=True,
    )
    return 0 if check_only else subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
