"""Properties that hold for any σ, shape and boundary rule, checked with hypothesis."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sigma
from sigma._checks import METHODS

f64 = torch.float64
MODES = ["circular", "reflect", "replicate", "zeros"]
# 'fused' compiles once per kernel size, which random sizes would pay at every example: its
# values, gradients and gradgradcheck are checked in test_fused.py on a few sizes, and through
# the public blurs in test_auto.py and test_blur_reference.py
ALL_METHODS = sorted(METHODS - {"fused"})

# derandomize: the same examples on every run, so the suite is reproducible
FEW = settings(max_examples=20, deadline=None, database=None, derandomize=True)

sigmas = st.floats(0.3, 12.0)
any_sigma = st.floats(1e-3, 200.0)
std_devs = st.sampled_from([0.5, 1, 1.5, 2, 3, 4])
kernels = st.sampled_from(["sampled", "erf"])
modes = st.sampled_from(MODES)
methods = st.sampled_from(ALL_METHODS)
seeds = st.integers(0, 2**31 - 1)


def _randn(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=f64, generator=g)


def _blurs(kernel: str = "sampled", method: str = "auto"):
    """Name -> function of (x, padding_mode) for every 2D blur, with fixed scales."""
    cov = torch.tensor([[2.0, 0.7], [0.7, 1.2]], dtype=f64)
    return {
        "blur2d_sphere": lambda x, m: sigma.blur2d_sphere(
            x, 1.3, 2, padding_mode=m, kernel=kernel, method=method
        ),
        "blur2d_diag": lambda x, m: sigma.blur2d_diag(
            x, 0.6, 2.1, 3, padding_mode=m, kernel=kernel, method=method
        ),
        "blur2d_full": lambda x, m: sigma.blur2d_full(x, cov, 2, padding_mode=m, method=method),
        "blur2d_local_sphere": lambda x, m: sigma.blur2d_local_sphere(
            x,
            0.5
            + torch.rand(x.shape[0], 1, *x.shape[-2:], dtype=f64, generator=torch.Generator().manual_seed(0)),
            2,
            padding_mode=m,
        ),
        "blur2d_local_full": lambda x, m: sigma.blur2d_local_full(
            x, cov.expand(x.shape[0], *x.shape[-2:], 2, 2), 2, padding_mode=m
        ),
    }


# ----------------------------------------------------------------------------- kernels


@FEW
@given(s=any_sigma, sd=std_devs, kernel=kernels)
def test_kernel_sums_to_one_is_symmetric_and_peaks_at_centre(s, sd, kernel):
    k = sigma.gauss1d(s, sd, kernel=kernel, dtype=f64)
    h = (k.shape[-1] - 1) // 2
    assert k.shape[-1] == 2 * sigma.kernel_radius(s, sd) + 1
    assert abs(float(k.sum()) - 1) < 1e-12
    assert torch.equal(k, k.flip(-1))
    assert bool((k >= 0).all())
    # non-increasing away from the centre
    assert bool((k[h:].diff() <= 0).all())


@FEW
@given(s=st.lists(st.floats(1e-3, 30.0), min_size=1, max_size=4), sd=std_devs, kernel=kernels)
def test_per_channel_kernels_sum_to_one_and_are_symmetric(s, sd, kernel):
    k = sigma.gauss2d_sphere(torch.tensor(s, dtype=f64), sd, kernel=kernel)
    assert k.shape[0] == len(s)
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(len(s), dtype=f64), rtol=0, atol=1e-12)
    assert torch.equal(k, k.flip(-1)) and torch.equal(k, k.flip(-2))


@FEW
@given(s1=st.floats(0.3, 20.0), s2=st.floats(0.3, 20.0), angle=st.floats(-3.2, 3.2), sd=std_devs)
def test_full_kernel_sums_to_one_and_is_point_symmetric(s1, s2, angle, sd):
    cov = sigma.rotated_cov(s1, s2, angle, dtype=f64)
    k = sigma.gauss2d_full(cov, sd)
    assert abs(float(k.sum()) - 1) < 1e-12
    assert torch.equal(k, k.flip(-2, -1))


# ----------------------------------------------------------------------------- linearity


@FEW
@given(
    seed=seeds, s=sigmas, a=st.floats(-3, 3), b=st.floats(-3, 3), mode=modes, method=methods, kernel=kernels
)
def test_blurs_are_linear_in_x(seed, s, a, b, mode, method, kernel):
    x, y = _randn(seed, 2, 2, 7, 9), _randn(seed + 1, 2, 2, 7, 9)
    for name, f in _blurs(kernel, method).items():
        torch.testing.assert_close(
            f(a * x + b * y, mode), a * f(x, mode) + b * f(y, mode), rtol=0, atol=1e-11, msg=name
        )
    x1, y1 = x[:, :, 0], y[:, :, 0]
    torch.testing.assert_close(
        sigma.blur1d(a * x1 + b * y1, s, 2, padding_mode=mode, kernel=kernel, method=method),
        a * sigma.blur1d(x1, s, 2, padding_mode=mode, kernel=kernel, method=method)
        + b * sigma.blur1d(y1, s, 2, padding_mode=mode, kernel=kernel, method=method),
        rtol=0,
        atol=1e-11,
    )


# ----------------------------------------------------------------------------- circular mode


@FEW
@given(
    seed=seeds,
    s=sigmas,
    H=st.integers(1, 12),
    W=st.integers(1, 12),
    dy=st.integers(-15, 15),
    dx=st.integers(-15, 15),
    method=methods,
)
def test_circular_blurs_commute_with_roll(seed, s, H, W, dy, dx, method):
    x = _randn(seed, 1, 2, H, W)
    cov = sigma.rotated_cov(s, 0.5 * s + 0.3, 0.4, dtype=f64)
    fs = {
        "sphere": lambda t: sigma.blur2d_sphere(t, s, 2, padding_mode="circular", method=method),
        "diag": lambda t: sigma.blur2d_diag(t, s, 0.7, 2, padding_mode="circular", method=method),
        "full": lambda t: sigma.blur2d_full(t, cov, 2, padding_mode="circular", method=method),
        "dog": lambda t: sigma.dog2d(t, 0.5 * s, s, 2, padding_mode="circular", method=method),
    }

    def roll(t):
        return torch.roll(t, (dy, dx), (-2, -1))

    for name, f in fs.items():
        torch.testing.assert_close(f(roll(x)), roll(f(x)), rtol=0, atol=1e-11, msg=name)
    x1 = x[:, :, 0]
    torch.testing.assert_close(
        sigma.blur1d(torch.roll(x1, dx, -1), s, 2, padding_mode="circular", method=method),
        torch.roll(sigma.blur1d(x1, s, 2, padding_mode="circular", method=method), dx, -1),
        rtol=0,
        atol=1e-11,
    )


@FEW
@given(seed=seeds, H=st.integers(1, 9), W=st.integers(1, 9), dy=st.integers(-9, 9), dx=st.integers(-9, 9))
def test_circular_local_blurs_commute_with_rolling_input_and_map(seed, H, W, dy, dx):
    x = _randn(seed, 1, 2, H, W)
    smap = 0.4 + _randn(seed + 1, 1, 1, H, W).abs()
    cmap = sigma.logchol_to_cov(0.3 * _randn(seed + 2, 1, H, W, 3))

    def roll(t, dims=(-2, -1)):
        return torch.roll(t, (dy, dx), dims)

    torch.testing.assert_close(
        sigma.blur2d_local_sphere(roll(x), roll(smap), 2, padding_mode="circular"),
        roll(sigma.blur2d_local_sphere(x, smap, 2, padding_mode="circular")),
        rtol=0,
        atol=1e-11,
    )
    torch.testing.assert_close(
        sigma.blur2d_local_full(roll(x), roll(cmap, (1, 2)), 2, padding_mode="circular"),
        roll(sigma.blur2d_local_full(x, cmap, 2, padding_mode="circular")),
        rtol=0,
        atol=1e-11,
    )


@FEW
@given(seed=seeds, s=sigmas, sd=std_devs, L=st.integers(1, 30), method=methods, kernel=kernels)
def test_circular_blurs_preserve_the_mean(seed, s, sd, L, method, kernel):
    x = _randn(seed, 2, 3, L)
    y = sigma.blur1d(x, s, sd, padding_mode="circular", kernel=kernel, method=method)
    torch.testing.assert_close(y.mean(-1), x.mean(-1), rtol=0, atol=1e-12)
    x2 = _randn(seed, 1, 2, L, 5)
    cov = sigma.rotated_cov(s, 1.0, 1.0, dtype=f64)
    for y2 in (
        sigma.blur2d_sphere(x2, s, sd, padding_mode="circular", kernel=kernel, method=method),
        sigma.blur2d_diag(x2, s, 1.0, sd, padding_mode="circular", kernel=kernel, method=method),
        sigma.blur2d_full(x2, cov, sd, padding_mode="circular", method=method),
    ):
        torch.testing.assert_close(y2.mean((-2, -1)), x2.mean((-2, -1)), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- limits


@FEW
@given(seed=seeds, L=st.integers(1, 20), s=st.floats(1e-3, 0.05), mode=modes, method=methods)
def test_tiny_sigma_is_the_identity(seed, L, s, mode, method):
    x = _randn(seed, 2, 2, L)
    torch.testing.assert_close(sigma.blur1d(x, s, 2, padding_mode=mode, method=method), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        sigma.blur1d(x, s, 2, padding_mode=mode, kernel="erf", method=method), x, rtol=0, atol=1e-12
    )
    x2 = _randn(seed, 1, 2, L, 3)
    torch.testing.assert_close(
        sigma.blur2d_sphere(x2, s, 2, padding_mode=mode, method=method), x2, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        sigma.blur2d_diag(x2, s, s, 2, padding_mode=mode, method=method), x2, rtol=0, atol=1e-12
    )
    cov = torch.eye(2, dtype=f64) * s**2
    torch.testing.assert_close(
        sigma.blur2d_full(x2, cov, 2, padding_mode=mode, method=method), x2, rtol=0, atol=1e-12
    )
    smap = torch.full((1, 1, L, 3), s, dtype=f64)
    torch.testing.assert_close(
        sigma.blur2d_local_sphere(x2, smap, 2, padding_mode=mode), x2, rtol=0, atol=1e-12
    )


@FEW
@given(
    c=st.floats(-100, 100),
    s=sigmas,
    sd=std_devs,
    L=st.integers(1, 15),
    mode=st.sampled_from(MODES[:3]),
    method=methods,
)
def test_blur_of_a_constant_is_the_constant(c, s, sd, L, mode, method):
    x = torch.full((1, 2, L), c, dtype=f64)
    tol = 1e-12 * max(1.0, abs(c))
    torch.testing.assert_close(sigma.blur1d(x, s, sd, padding_mode=mode, method=method), x, rtol=0, atol=tol)
    torch.testing.assert_close(
        sigma.blur1d(x, s, sd, padding_mode=mode, kernel="erf", method=method), x, rtol=0, atol=tol
    )
    x2 = torch.full((1, 2, L, 4), c, dtype=f64)
    for name, f in _blurs(method=method).items():
        torch.testing.assert_close(f(x2, mode), x2, rtol=0, atol=tol, msg=name)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_zeros_mode_loses_mass_at_the_border(method):
    # the contrast case: zero padding does *not* preserve a constant near the edge
    x = torch.ones(1, 1, 10, dtype=f64)
    y = sigma.blur1d(x, 2.0, 2, padding_mode="zeros", method=method)
    assert float(y[0, 0, 0]) < 0.8 and abs(float(y[0, 0, 5]) - 1) < 0.2
