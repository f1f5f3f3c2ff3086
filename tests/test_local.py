"""Spatially varying blurs: constant maps give the global blurs; varying maps match a brute-force gather."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
import torch

import sigma

f64 = torch.float64
MODES = ref.PADDING_MODES


@pytest.mark.parametrize("padding_mode", MODES)
def test_constant_sigma_map_equals_global_blur(padding_mode):
    rng = np.random.default_rng(0)
    for H, W, s, sd in [(1, 1, 0.7, 2), (2, 3, 1.6, 2), (9, 7, 0.4, 3), (12, 10, 2.3, 1), (6, 11, 3.1, 4)]:
        x = torch.from_numpy(rng.standard_normal((2, 3, H, W)))
        smap = torch.full((2, 1, H, W), s, dtype=f64)
        out = sigma.blur2d_local_sphere(x, smap, sd, padding_mode=padding_mode)
        torch.testing.assert_close(
            out, sigma.blur2d_sphere(x, s, sd, padding_mode=padding_mode), rtol=0, atol=1e-12
        )
        # and directly against SciPy
        expected = ref.blur2d_sphere(x.numpy(), s, sd, padding_mode=padding_mode)
        np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding_mode", MODES)
def test_per_channel_constant_sigma_map_equals_per_channel_blur(padding_mode):
    x = torch.randn(2, 3, 7, 9, dtype=f64)
    s = torch.tensor([0.6, 1.4, 2.2], dtype=f64)
    smap = s.view(1, 3, 1, 1).expand(2, 3, 7, 9)
    out = sigma.blur2d_local_sphere(x, smap, 2, padding_mode=padding_mode)
    torch.testing.assert_close(
        out, sigma.blur2d_sphere(x, s, 2, padding_mode=padding_mode), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("padding_mode", MODES)
def test_constant_cov_map_equals_blur2d_full(padding_mode):
    rng = np.random.default_rng(1)
    for H, W, sd in [(1, 1, 2), (2, 3, 2), (8, 6, 3), (10, 13, 1)]:
        cov = torch.from_numpy(ref.random_cov(rng, 0.4, 3.0))
        x = torch.from_numpy(rng.standard_normal((2, 2, H, W)))
        cmap = cov.expand(2, H, W, 2, 2)
        out = sigma.blur2d_local_full(x, cmap, sd, padding_mode=padding_mode)
        torch.testing.assert_close(
            out, sigma.blur2d_full(x, cov, sd, padding_mode=padding_mode), rtol=0, atol=1e-12
        )


def test_constant_diagonal_cov_map_equals_local_sphere():
    x = torch.randn(1, 2, 9, 9, dtype=f64)
    smap = torch.full((1, 1, 9, 9), 1.3, dtype=f64)
    cmap = (torch.eye(2, dtype=f64) * 1.3**2).expand(1, 9, 9, 2, 2)
    torch.testing.assert_close(
        sigma.blur2d_local_full(x, cmap, 2, padding_mode="reflect"),
        sigma.blur2d_local_sphere(x, smap, 2, padding_mode="reflect"),
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("padding_mode", MODES)
def test_varying_sigma_map_matches_brute_force_gather(padding_mode):
    rng = np.random.default_rng(2)
    for H, W, C_map in [(1, 2, 1), (5, 4, 1), (9, 11, 2)]:
        x = rng.standard_normal((2, 2, H, W))
        smap = np.exp(rng.uniform(math.log(0.3), math.log(3.0), size=(2, C_map, H, W)))
        h = ref.radius(smap.max(), 2)

        own = np.maximum(1, np.ceil(2 * smap))  # each pixel's own half-size

        def weights(dy, dx, smap=smap, own=own):
            return np.exp(-0.5 * (dy**2 + dx**2) / smap**2) * ((abs(dy) <= own) & (abs(dx) <= own))

        expected = ref.local_gather(x, weights, h, h, padding_mode)
        out = sigma.blur2d_local_sphere(
            torch.from_numpy(x), torch.from_numpy(smap), 2, padding_mode=padding_mode
        )
        np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding_mode", MODES)
def test_varying_cov_map_matches_brute_force_gather(padding_mode):
    rng = np.random.default_rng(3)
    for H, W in [(1, 3), (6, 5), (8, 9)]:
        x = rng.standard_normal((2, 2, H, W))
        covs = np.stack([ref.random_cov(rng, 0.3, 2.5) for _ in range(2 * H * W)]).reshape(2, H, W, 2, 2)
        prec = np.linalg.inv(covs)
        hy, hx = ref.full_radii(covs, 2)

        ry = np.maximum(1, np.ceil(2 * np.sqrt(covs[..., 0, 0])))  # each pixel's own box
        rx = np.maximum(1, np.ceil(2 * np.sqrt(covs[..., 1, 1])))

        def weights(dy, dx, prec=prec, ry=ry, rx=rx):
            q = prec[..., 0, 0] * dy * dy + 2 * prec[..., 0, 1] * dy * dx + prec[..., 1, 1] * dx * dx
            inside = (abs(dy) <= ry) & (abs(dx) <= rx)
            return (np.exp(-0.5 * q) * inside)[:, None]  # (B, 1, H, W): shared by the channels

        expected = ref.local_gather(x, weights, hy, hx, padding_mode)
        out = sigma.blur2d_local_full(
            torch.from_numpy(x), torch.from_numpy(covs), 2, padding_mode=padding_mode
        )
        np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


def test_explicit_radius_widens_the_support_only():
    # a fixed wider support changes nothing but the truncation point
    x = torch.randn(1, 1, 10, 10, dtype=f64)
    smap = torch.full((1, 1, 10, 10), 1.0, dtype=f64)
    wide = sigma.blur2d_local_sphere(x, smap, padding_mode="circular", radius=5)
    torch.testing.assert_close(wide, sigma.blur2d_sphere(x, 1.0, std_devs=5, padding_mode="circular"))
    cmap = torch.eye(2, dtype=f64).expand(1, 10, 10, 2, 2)
    wide_full = sigma.blur2d_local_full(x, cmap, padding_mode="circular", radii=(5, 5))
    torch.testing.assert_close(wide_full, wide, rtol=0, atol=1e-12)


def test_local_blurs_keep_dtype_and_are_differentiable():
    x = torch.randn(1, 2, 6, 6)
    smap = torch.full((1, 1, 6, 6), 1.2, requires_grad=True)
    y = sigma.blur2d_local_sphere(x, smap)
    assert y.dtype == torch.float32 and y.shape == x.shape
    y.sum().backward()
    assert smap.grad is not None and torch.isfinite(smap.grad).all()
    p = torch.zeros(1, 6, 6, 3, requires_grad=True)
    y = sigma.blur2d_local_full(x, sigma.logchol_to_cov(p))
    assert y.dtype == torch.float32
    y.pow(2).sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


def test_local_blur_of_float32_matches_float64():
    x = torch.randn(1, 2, 9, 8, dtype=f64)
    smap = 0.5 + torch.rand(1, 1, 9, 8, dtype=f64)
    y64 = sigma.blur2d_local_sphere(x, smap, 2, padding_mode="reflect")
    y32 = sigma.blur2d_local_sphere(x.float(), smap.float(), 2, padding_mode="reflect")
    assert float((y32.double() - y64).abs().max()) < 1e-5


def test_local_weights_are_tap_major_and_contiguous():
    # each of the k^2 accumulations reads one tap's weights over the whole image: they must
    # be unit-stride (a (B, C, H, W, k) tensor seen through movedim made the blur 4-5x slower)
    from sigma.local import _local_weights

    smap = torch.rand(2, 3, 9, 7, dtype=torch.float64) + 0.5
    a, t = _local_weights(smap, 2, 2.0)
    assert a.shape == (5, 2, 3, 9, 7) and t.tolist() == [-2, -1, 0, 1, 2]
    assert a.is_contiguous()
    assert torch.allclose(a.sum(0), torch.ones_like(smap))
