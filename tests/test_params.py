"""Parameterizations: log-Cholesky <-> covariance, and axis lengths/angle <-> covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sigma

f64 = torch.float64
FEW = settings(max_examples=25, deadline=None, database=None, derandomize=True)


def test_logchol_to_cov_formula():
    a, b, c = 0.3, -0.7, -0.2
    cov = sigma.logchol_to_cov(torch.tensor([a, b, c], dtype=f64))
    L = np.array([[math.exp(a), 0.0], [b, math.exp(c)]])
    np.testing.assert_allclose(cov.numpy(), L @ L.T, rtol=1e-15, atol=1e-15)


def test_logchol_to_cov_shapes():
    assert sigma.logchol_to_cov(torch.zeros(3)).shape == (2, 2)
    assert sigma.logchol_to_cov(torch.zeros(4, 3)).shape == (4, 2, 2)
    assert sigma.logchol_to_cov(torch.zeros(2, 5, 6, 3)).shape == (2, 5, 6, 2, 2)
    assert sigma.logchol_to_cov(torch.zeros(3, dtype=f64)).dtype == f64
    torch.testing.assert_close(sigma.logchol_to_cov(torch.zeros(3)), torch.eye(2))


@FEW
@given(p=st.lists(st.floats(-4, 4), min_size=3, max_size=3))
def test_logchol_round_trip(p):
    params = torch.tensor(p, dtype=f64)
    cov = sigma.logchol_to_cov(params)
    # always symmetric positive definite
    assert torch.equal(cov, cov.transpose(-1, -2))
    assert bool((torch.linalg.eigvalsh(cov) > 0).all())
    torch.testing.assert_close(sigma.cov_to_logchol(cov), params, rtol=1e-9, atol=1e-9)


def test_cov_to_logchol_round_trip_batched():
    rng = np.random.default_rng(0)
    covs = torch.from_numpy(np.stack([ref.random_cov(rng) for _ in range(6)]).reshape(2, 3, 2, 2))
    p = sigma.cov_to_logchol(covs)
    assert p.shape == (2, 3, 3)
    torch.testing.assert_close(sigma.logchol_to_cov(p), covs, rtol=1e-12, atol=1e-12)


def test_logchol_is_differentiable():
    p = torch.tensor([0.1, 0.4, -0.3], dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(sigma.logchol_to_cov, (p,))
    assert torch.autograd.gradgradcheck(sigma.logchol_to_cov, (p,))


# ----------------------------------------------------------------------------- rotated_cov / cov_axes


def test_rotated_cov_conventions():
    # angle 0: major axis along the columns (x); angle pi/2: along the rows (y)
    torch.testing.assert_close(
        sigma.rotated_cov(2.0, 1.0, 0.0, dtype=f64), torch.diag(torch.tensor([1.0, 4.0], dtype=f64))
    )
    torch.testing.assert_close(
        sigma.rotated_cov(2.0, 1.0, math.pi / 2, dtype=f64), torch.diag(torch.tensor([4.0, 1.0], dtype=f64))
    )
    # positive angle turns the major axis toward increasing rows: positive row/col covariance
    assert float(sigma.rotated_cov(2.0, 1.0, 0.5)[0, 1]) > 0


def test_rotated_cov_matches_rotation_matrix():
    s1, s2, th = 3.0, 0.8, 0.9
    # (x, y) frame: major axis (cos, sin); swap to (row, col) = (y, x)
    u = np.array([math.sin(th), math.cos(th)])
    v = np.array([math.cos(th), -math.sin(th)])
    expected = s1**2 * np.outer(u, u) + s2**2 * np.outer(v, v)
    np.testing.assert_allclose(
        sigma.rotated_cov(s1, s2, th, dtype=f64).numpy(), expected, rtol=1e-14, atol=1e-14
    )
    evals = np.linalg.eigvalsh(expected)
    np.testing.assert_allclose(evals, [s2**2, s1**2], rtol=1e-12)


@FEW
@given(s1=st.floats(0.3, 20), ratio=st.floats(0.05, 0.95), angle=st.floats(-math.pi / 2, math.pi / 2))
def test_rotated_cov_and_cov_axes_round_trip(s1, ratio, angle):
    s2 = s1 * ratio  # strictly smaller, so the orientation is defined
    major, minor, th = sigma.cov_axes(sigma.rotated_cov(s1, s2, angle, dtype=f64))
    assert abs(float(major) - s1) < 1e-9 * s1
    assert abs(float(minor) - s2) < 1e-9 * s1
    assert -math.pi / 2 < float(th) <= math.pi / 2
    # an axis has no sign: compare orientations modulo pi (±pi/2 are the same axis)
    diff = (float(th) - angle + math.pi / 2) % math.pi - math.pi / 2
    assert abs(diff) < 1e-8


def test_cov_axes_folds_the_angle_into_range():
    for th in (-3.0, -2.0, 2.0, 3.0, math.pi):
        _, _, a = sigma.cov_axes(sigma.rotated_cov(2.0, 1.0, th, dtype=f64))
        assert -math.pi / 2 < float(a) <= math.pi / 2 + 1e-12
        folded = (th + math.pi / 2) % math.pi - math.pi / 2
        assert min(abs(float(a) - folded), abs(abs(float(a) - folded) - math.pi)) < 1e-9


def test_cov_axes_batched_and_differentiable():
    covs = torch.stack([sigma.rotated_cov(2.0, 1.0, t, dtype=f64) for t in (0.1, 0.7, -1.2)])
    major, minor, angle = sigma.cov_axes(covs)
    assert major.shape == minor.shape == angle.shape == (3,)
    torch.testing.assert_close(angle, torch.tensor([0.1, 0.7, -1.2], dtype=f64))
    s = torch.tensor(2.0, dtype=f64, requires_grad=True)
    major, _, _ = sigma.cov_axes(sigma.rotated_cov(s, 1.0, 0.3))
    (g,) = torch.autograd.grad(major, s)
    assert abs(float(g) - 1) < 1e-9


def test_rotated_cov_is_differentiable_in_every_argument():
    inputs = tuple(torch.tensor(v, dtype=f64, requires_grad=True) for v in (2.0, 0.7, 0.4))
    assert torch.autograd.gradcheck(sigma.rotated_cov, inputs)


@pytest.mark.parametrize("angle", [0.0, 0.4, -1.1])
def test_rotated_kernel_is_the_rotated_gaussian(angle):
    # the kernel of rotated_cov decays slowest along (sin, cos) in (row, col)
    k = sigma.gauss2d_full(sigma.rotated_cov(4.0, 1.0, angle, dtype=f64), 3)
    hy, hx = (k.shape[0] - 1) // 2, (k.shape[1] - 1) // 2
    d = 2.0
    along = (round(d * math.sin(angle)), round(d * math.cos(angle)))
    across = (round(d * math.cos(angle)), round(-d * math.sin(angle)))
    assert float(k[hy + along[0], hx + along[1]]) > float(k[hy + across[0], hx + across[1]])
