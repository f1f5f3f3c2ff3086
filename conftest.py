import pytest
import torch

import sigma


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["sigma"] = sigma


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
