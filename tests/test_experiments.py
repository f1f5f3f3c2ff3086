"""The original experiments: recover a known σ by gradient descent on log σ.

Setup of the original code: ``torch.manual_seed(1337)``, float64 signals, a target
blurred with the true σ = 3 (``std_devs=2``), the parameter ``s = log σ`` starting at 0
(σ = 1), plain SGD with learning rate 1.0 on ``L = ½ mean((ŷ - y)²)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sigma

f64 = torch.float64
TRUE_SIGMA = 3.0


def _recover(blur, x: torch.Tensor, steps: int) -> float:
    y = blur(x, TRUE_SIGMA)
    s = torch.zeros((), dtype=f64, requires_grad=True)
    opt = torch.optim.SGD([s], lr=1.0)
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * torch.mean((blur(x, s.exp()) - y) ** 2)
        loss.backward()
        opt.step()
    return float(s.detach().exp())


def test_1d_experiment_recovers_sigma():
    torch.manual_seed(1337)
    x = torch.randn(1, 1, 100, dtype=f64)
    found = _recover(lambda x, s: sigma.blur1d(x, s, std_devs=2), x, 100)
    assert abs(found - TRUE_SIGMA) < 0.01 * TRUE_SIGMA, found


def test_2d_experiment_recovers_sigma():
    torch.manual_seed(1337)
    x = torch.randn(1, 1, 32, 32, dtype=f64)
    found = _recover(lambda x, s: sigma.blur2d_sphere(x, s, std_devs=2), x, 500)
    assert abs(found - TRUE_SIGMA) < 0.01 * TRUE_SIGMA, found


def _scales(n: int, seed: int, eps: float, std_devs: float = 2.0) -> list[float]:
    """``n`` random σ in [0.5, 6] whose kernel half-size does not change over [σ, σ + eps]."""
    rng = np.random.default_rng(seed)
    out: list[float] = []
    while len(out) < n:
        s = float(rng.uniform(0.5, 6.0))
        if math.ceil(std_devs * s) == math.ceil(std_devs * (s + eps)):
            out.append(s)
    return out


@pytest.mark.parametrize("dim", [1, 2])
def test_forward_differences_agree_with_autograd(dim):
    eps = 1e-4
    torch.manual_seed(1337)
    if dim == 1:
        x = torch.randn(1, 1, 100, dtype=f64)
        blur = sigma.blur1d
    else:
        x = torch.randn(1, 1, 32, 32, dtype=f64)
        blur = sigma.blur2d_sphere
    y = blur(x, TRUE_SIGMA, 2)

    def loss(s):
        return 0.5 * torch.mean((blur(x, s, 2) - y) ** 2)

    for s0 in _scales(10, seed=dim, eps=eps):
        s = torch.tensor(s0, dtype=f64, requires_grad=True)
        (g,) = torch.autograd.grad(loss(s), s)
        with torch.no_grad():
            fd = (loss(torch.tensor(s0 + eps, dtype=f64)) - loss(torch.tensor(s0, dtype=f64))) / eps
        assert abs(float(fd) - float(g)) < 10 * eps, (s0, float(fd), float(g))
        # the same through the log-scale parameter the experiments learn
        ls = torch.tensor(math.log(s0), dtype=f64, requires_grad=True)
        (gl,) = torch.autograd.grad(loss(ls.exp()), ls)
        assert abs(float(gl) - s0 * float(g)) < 1e-12 * max(1.0, abs(float(gl)))


def test_loss_is_minimal_at_the_true_sigma():
    torch.manual_seed(1337)
    x = torch.randn(1, 1, 100, dtype=f64)
    y = sigma.blur1d(x, TRUE_SIGMA, 2)
    losses = {
        s: float(0.5 * torch.mean((sigma.blur1d(x, s, 2) - y) ** 2)) for s in (1.0, 2.0, 2.9, 3.0, 3.1, 4.0)
    }
    assert losses[3.0] == 0.0
    assert losses[1.0] > losses[2.0] > losses[2.9] > 0
