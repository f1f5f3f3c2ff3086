"""sigma.book.ddp: the chapter's two-process DistributedDataParallel run."""

from __future__ import annotations

import pytest
import torch

from sigma.book import ddp


def test_two_processes_end_with_the_parameters_of_one_process():
    trained, single, start = ddp.ddp_versus_one_process(world_size=2, steps=3)
    assert trained.keys() == single.keys() == start.keys()
    for k in single:
        assert trained[k].dtype == torch.float64
        torch.testing.assert_close(trained[k], single[k], rtol=0, atol=1e-12)
    assert not torch.equal(single["0.blur.log_sigma"], start["0.blur.log_sigma"])


@pytest.mark.parametrize("kwargs", [{"world_size": 0}, {"steps": 1.5}, {"world_size": True}])
def test_arguments_are_checked(kwargs):
    with pytest.raises(ValueError, match="must be a positive int"):
        ddp.ddp_versus_one_process(**kwargs)
