"""Kernel builders: shapes, the radius rule, normalization, and the 'erf' kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
import torch
from scipy.special import erf
from scipy.stats import norm

import sigma

f64 = torch.float64


# ----------------------------------------------------------------------------- radius rule


@pytest.mark.parametrize(
    ("s", "std_devs", "h"),
    [
        (3.0, 2, 6),
        (3.0, 3, 9),
        (2.5, 2, 5),
        (2.51, 2, 6),
        (0.2, 2, 1),
        (0.01, 1, 1),
        (0.5, 2, 1),
        (12.0, 4, 48),
    ],
)
def test_kernel_radius_rule(s, std_devs, h):
    assert sigma.kernel_radius(s, std_devs) == h == ref.radius(s, std_devs)
    assert sigma.gauss1d(s, std_devs).shape == (2 * h + 1,)


def test_kernel_radius_minimum_is_one():
    for s in (1e-6, 0.05, 0.3, 0.49):
        assert sigma.kernel_radius(s) == 1
        assert sigma.gauss1d(s).shape == (3,)


def test_largest_sigma_sets_the_radius():
    s = torch.tensor([0.5, 4.0, 1.0], dtype=f64)
    assert sigma.kernel_radius(s) == 8
    k = sigma.gauss1d(s)
    assert k.shape == (3, 17)
    # each row is its own σ's Gaussian, truncated at its own half-size, zero beyond
    for c in range(3):
        h = ref.radius(float(s[c]), 2)
        own = np.zeros(17)
        own[8 - h : 9 + h] = ref.sampled_kernel(float(s[c]), h)
        np.testing.assert_allclose(k[c].numpy(), own, rtol=0, atol=1e-15)
    # radius= puts every σ on the given support instead
    k = sigma.gauss1d(s, radius=8)
    for c in range(3):
        np.testing.assert_allclose(k[c].numpy(), ref.sampled_kernel(float(s[c]), 8), rtol=0, atol=1e-15)


def test_kernel_radius_accepts_tensors():
    assert sigma.kernel_radius(torch.tensor(2.0)) == 4
    assert sigma.kernel_radius(torch.tensor([1.0, 2.0]), std_devs=1.5) == 3


# ----------------------------------------------------------------------------- shapes and values


def test_gauss1d_matches_the_formula():
    for s in (0.3, 1.0, 2.7, 12.0):
        for sd in (1, 2, 3, 4):
            k = sigma.gauss1d(s, sd, dtype=f64)
            np.testing.assert_allclose(
                k.numpy(), ref.sampled_kernel(s, ref.radius(s, sd)), rtol=0, atol=1e-15
            )


def test_gauss1d_dtype_and_device_follow_arguments():
    assert sigma.gauss1d(1.0).dtype == torch.get_default_dtype()
    assert sigma.gauss1d(1.0, dtype=f64).dtype == f64
    assert sigma.gauss1d(torch.tensor(1.0, dtype=f64)).dtype == f64
    assert sigma.gauss1d(1.0, dtype=f64, device="cpu").device.type == "cpu"


def test_gauss1d_explicit_radius():
    k = sigma.gauss1d(1.0, radius=7, dtype=f64)
    assert k.shape == (15,)
    np.testing.assert_allclose(k.numpy(), ref.sampled_kernel(1.0, 7), rtol=0, atol=1e-15)


def test_gauss2d_sphere_is_outer_product():
    k = sigma.gauss2d_sphere(1.5, dtype=f64)
    g = ref.sampled_kernel(1.5, 3)
    assert k.shape == (7, 7)
    np.testing.assert_allclose(k.numpy(), np.outer(g, g), rtol=0, atol=1e-15)
    kc = sigma.gauss2d_sphere(torch.tensor([0.5, 1.5], dtype=f64))
    assert kc.shape == (2, 7, 7)
    np.testing.assert_allclose(kc[1].numpy(), np.outer(g, g), rtol=0, atol=1e-15)


def test_gauss2d_diag_shapes_and_values():
    k = sigma.gauss2d_diag(1.0, 3.0, dtype=f64)
    assert k.shape == (5, 13)
    np.testing.assert_allclose(
        k.numpy(), np.outer(ref.sampled_kernel(1.0, 2), ref.sampled_kernel(3.0, 6)), rtol=0, atol=1e-15
    )
    kc = sigma.gauss2d_diag(torch.tensor([1.0, 2.0], dtype=f64), 3.0)
    assert kc.shape == (2, 9, 13)
    kc = sigma.gauss2d_diag(1.0, torch.tensor([1.0, 2.0], dtype=f64))
    assert kc.shape == (2, 5, 9)


def test_gauss2d_full_matches_dense_reference():
    rng = np.random.default_rng(3)
    for sd in (1, 2, 3):
        cov = ref.random_cov(rng)
        k = sigma.gauss2d_full(torch.from_numpy(cov), sd)
        hy, hx = ref.full_radii(cov, sd)
        assert k.shape == (2 * hy + 1, 2 * hx + 1)
        np.testing.assert_allclose(k.numpy(), ref.full_kernel(cov, hy, hx), rtol=0, atol=1e-15)
    covs = np.stack([ref.random_cov(rng) for _ in range(3)])
    k = sigma.gauss2d_full(torch.from_numpy(covs))
    hy, hx = ref.full_radii(covs, 2)
    assert k.shape == (3, 2 * hy + 1, 2 * hx + 1)
    for c in range(3):  # each kernel on its own box, zero beyond
        oy, ox = ref.full_radii(covs[c], 2)
        own = np.zeros((2 * hy + 1, 2 * hx + 1))
        own[hy - oy : hy + oy + 1, hx - ox : hx + ox + 1] = ref.full_kernel(covs[c], oy, ox)
        np.testing.assert_allclose(k[c].numpy(), own, rtol=0, atol=1e-15)


def test_gauss2d_full_explicit_radii():
    cov = torch.eye(2, dtype=f64)
    k = sigma.gauss2d_full(cov, radii=(2, 5))
    assert k.shape == (5, 11)
    np.testing.assert_allclose(k.numpy(), ref.full_kernel(np.eye(2), 2, 5), rtol=0, atol=1e-15)


def test_gauss2d_full_with_diagonal_cov_equals_diag_kernel():
    cov = torch.diag(torch.tensor([1.2**2, 2.5**2], dtype=f64))
    torch.testing.assert_close(sigma.gauss2d_full(cov), sigma.gauss2d_diag(1.2, 2.5, dtype=f64))


def test_cov_radii():
    assert sigma.cov_radii(torch.tensor([[4.0, 1.0], [1.0, 1.0]])) == (4, 2)
    assert sigma.cov_radii(torch.tensor([[4.0, 1.0], [1.0, 1.0]]), 3) == (6, 3)
    assert sigma.cov_radii(torch.diag(torch.tensor([0.01, 0.04]))) == (1, 1)
    covs = torch.stack([torch.diag(torch.tensor([9.0, 1.0])), torch.diag(torch.tensor([1.0, 16.0]))])
    assert sigma.cov_radii(covs) == (6, 8)
    rng = np.random.default_rng(0)
    for _ in range(5):
        cov = ref.random_cov(rng)
        assert sigma.cov_radii(torch.from_numpy(cov), 2.5) == ref.full_radii(cov, 2.5)


def test_cov_radii_box_holds_the_ellipse():
    # every offset with d^T Σ^-1 d <= s^2 lies inside the box
    rng = np.random.default_rng(1)
    for _ in range(5):
        cov = ref.random_cov(rng)
        hy, hx = sigma.cov_radii(torch.from_numpy(cov), 2)
        big = 3 * max(hy, hx)
        dy, dx = np.meshgrid(np.arange(-big, big + 1), np.arange(-big, big + 1), indexing="ij")
        d = np.stack([dy, dx], -1).astype(float)
        q = np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d)
        inside = q <= 4
        assert np.all(np.abs(dy[inside]) <= hy) and np.all(np.abs(dx[inside]) <= hx)


# ----------------------------------------------------------------------------- erf kernel


@pytest.mark.parametrize("s", [0.05, 0.3, 0.7, 1.0, 2.3, 12.0])
@pytest.mark.parametrize("std_devs", [1, 2, 4])
def test_erf_kernel_matches_normal_cdf_differences(s, std_devs):
    h = ref.radius(s, std_devs)
    k = sigma.gauss1d(s, std_devs, kernel="erf", dtype=f64).numpy()
    np.testing.assert_allclose(k, ref.erf_kernel(s, h), rtol=1e-12, atol=1e-16)
    # and with scipy.special.erf and the CDF directly (these lose relative precision in
    # the tails, where the difference of two numbers near 1 is taken, hence atol)
    t = np.arange(-h, h + 1.0)
    g = 0.5 * (erf((t + 0.5) / (s * math.sqrt(2))) - erf((t - 0.5) / (s * math.sqrt(2))))
    np.testing.assert_allclose(k, g / g.sum(), rtol=1e-12, atol=1e-15)
    g = norm.cdf((t + 0.5) / s) - norm.cdf((t - 0.5) / s)
    np.testing.assert_allclose(k, g / g.sum(), rtol=1e-12, atol=1e-15)


def test_erf_kernel_per_channel_and_2d():
    s = torch.tensor([0.4, 1.1], dtype=f64)
    k = sigma.gauss1d(s, kernel="erf")
    assert k.shape == (2, 7)
    for c in range(2):
        h = ref.radius(float(s[c]), 2)
        own = np.zeros(7)
        own[3 - h : 4 + h] = ref.erf_kernel(float(s[c]), h)
        np.testing.assert_allclose(k[c].numpy(), own, rtol=1e-12)
    k2 = sigma.gauss2d_sphere(0.8, kernel="erf", dtype=f64)
    g = ref.erf_kernel(0.8, 2)
    np.testing.assert_allclose(k2.numpy(), np.outer(g, g), rtol=1e-12)
    kd = sigma.gauss2d_diag(0.8, 2.0, kernel="erf", dtype=f64)
    np.testing.assert_allclose(kd.numpy(), np.outer(g, ref.erf_kernel(2.0, 4)), rtol=1e-12)


def test_erf_kernel_stays_smooth_below_one_pixel():
    # The sampled kernel's centre tap jumps to ~1 for small σ; the erf kernel's varies
    # smoothly and its derivative in σ stays finite and moderate.
    s = torch.tensor(0.35, dtype=f64, requires_grad=True)
    k = sigma.gauss1d(s, kernel="erf")
    (g,) = torch.autograd.grad(k[1], s)
    assert torch.isfinite(g) and abs(float(g)) < 5
    assert 0.8 < float(k[1].detach()) < 0.9


def test_erf_and_sampled_kernels_agree_for_large_sigma():
    a = sigma.gauss1d(10.0, 3, dtype=f64)
    b = sigma.gauss1d(10.0, 3, kernel="erf", dtype=f64)
    assert float((a - b).abs().max()) < 1e-4
