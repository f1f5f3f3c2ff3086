import os

import pytest
import torch
import torch._inductor.config as inductor_config

import sigma

# torch.compile in the tests: inductor's C++ loops are generated without explicit SIMD (as with
# TORCHINDUCTOR_VEC_ISA_OK=0). Vectorizing symbolic index expressions and compiling the
# vectorized C++ is most of a first compile here (a layer's fullgraph test took 86 s cold
# vectorized, 50 s scalar; the whole suite 17.5 min against 13); what the tests check (graphs,
# guards, recompiles, results, gradients) is the same.
# tests/test_fused.py::test_vectorized_code_in_a_fresh_process compiles with inductor's defaults.
# Set TORCHINDUCTOR_VEC_ISA_OK=1 to run every test vectorized.
if os.environ.get("TORCHINDUCTOR_VEC_ISA_OK") is None:
    inductor_config.cpp.vec_isa_ok = False


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["sigma"] = sigma


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
