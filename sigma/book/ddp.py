"""A two-process DistributedDataParallel run that a chapter can start from a notebook.

Processes started with the ``spawn`` method import the function they run, so it cannot
live in a notebook cell; :func:`ddp_versus_one_process` is that function's home. It
trains a small model of two :class:`sigma.GaussConv2d` layers (σ per channel in the
first) with DDP on the CPU's ``gloo`` backend, each process on its share of a batch, and
the same model in this process on the whole batch, and returns both trained states.
Because DDP averages the gradients of equal shares of a mean loss, the two must agree
to rounding (float64).
"""

from __future__ import annotations

import os
import socket
import tempfile

import torch
from torch import nn

__all__ = ["ddp_versus_one_process"]


def _model() -> nn.Module:
    from .. import GaussConv2d

    torch.manual_seed(0)
    return nn.Sequential(
        GaussConv2d(2, 3, sigma=1.2, per_channel=True, dtype=torch.float64),
        nn.Tanh(),
        GaussConv2d(3, 1, sigma=0.8, dtype=torch.float64),
    )


def _batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(size, 2, 12, 12, dtype=torch.float64, generator=g)
    return x, torch.randn(size, 1, 12, 12, dtype=torch.float64, generator=g)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    for _ in range(steps):
        opt.zero_grad()
        (model(x) - y).pow(2).mean().backward()
        opt.step()


def _worker(rank: int, world: int, port: int, steps: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = nn.parallel.DistributedDataParallel(_model())
        x, y = _batch(2 * world)
        share = slice(2 * rank, 2 * rank + 2)  # each process sees two of the images
        _train(model, x[share], y[share], steps)
        if rank == 0:
            torch.save(model.module.state_dict(), out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_versus_one_process(world_size: int = 2, steps: int = 4) -> tuple[dict, dict, dict]:
    """Train the demo model with DDP on ``world_size`` processes and in one process.

    Each of the ``world_size`` processes (``gloo`` backend on 127.0.0.1) trains on two
    images of a batch of ``2 * world_size``; the single process trains on the whole
    batch. Both use SGD (learning rate 0.3) for ``steps`` steps from the same start.

    Args:
        world_size: number of processes. Default: 2.
        steps: SGD steps. Default: 4.

    Returns:
        ``(ddp, single, start)``: the state dicts after DDP training, after one-process
        training, and before training (float64 tensors).

    Raises:
        ValueError: if ``world_size`` or ``steps`` is not a positive int.
    """
    import torch.multiprocessing as mp

    for name, value in (("world_size", world_size), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ddp.pt")
        mp.spawn(_worker, args=(world_size, _free_port(), steps, out), nprocs=world_size, join=True)
        ddp = torch.load(out)
    start = {k: v.clone() for k, v in _model().state_dict().items()}
    single = _model()
    _train(single, *_batch(2 * world_size), steps)
    return ddp, single.state_dict(), start
