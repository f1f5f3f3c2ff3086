"""Tests for the book's sample images, σ maps and synthetic tasks (sigma.book.data)."""

import math

import pytest
import torch
import torch.nn.functional as F

import sigma
from sigma.book import data


def test_sample_image_full_and_downsampled():
    full = data.sample_image()
    assert full.shape == (1, 1, 600, 512) and full.dtype == torch.float64
    assert 0.0 <= float(full.min()) and float(full.max()) <= 1.0 and float(full.std()) > 0.1
    small = data.sample_image(size=256, dtype=torch.float32)
    assert small.shape == (1, 1, 256, 256) and small.dtype == torch.float32
    # area downsampling by 2 of the centered 512 x 512 crop = mean of each 2 x 2 block
    crop = full[..., 44:556, :]
    blocks = crop.reshape(256, 2, 256, 2).mean((1, 3))
    assert torch.allclose(small[0, 0].double(), blocks, atol=1e-6)


def test_sample_image_rejects_bad_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        data.sample_image("lena")
    with pytest.raises(ValueError, match="size must be at most 512"):
        data.sample_image(size=513)
    with pytest.raises(ValueError, match="size must be a positive int"):
        data.sample_image(size=0)
    with pytest.raises(TypeError, match="dtype"):
        data.sample_image(dtype=torch.int64)


def test_ramp_map_is_linear_along_its_axis():
    m = data.ramp_map(4, 7, 0.5, 3.5)
    assert m.shape == (1, 1, 4, 7)
    assert torch.allclose(m[0, 0, 2], torch.linspace(0.5, 3.5, 7, dtype=torch.float64))
    assert bool((m == m[:, :, :1]).all())  # constant down the columns
    my = data.ramp_map(5, 3, 1.0, 2.0, axis="y")
    assert torch.allclose(my[0, 0, :, 1], torch.linspace(1.0, 2.0, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="axis must be one of"):
        data.ramp_map(4, 4, 1.0, 2.0, axis="z")
    with pytest.raises(ValueError, match="lo must be a positive finite number"):
        data.ramp_map(4, 4, 0.0, 2.0)


def test_disc_map_area_and_values():
    m = data.disc_map(64, 64, 1.0, 3.0, radius=16.0)
    inside = int((m == 1.0).sum())
    assert abs(inside - math.pi * 16**2) < 0.03 * math.pi * 16**2
    assert set(m.unique().tolist()) == {1.0, 3.0}
    assert float(m[0, 0, 32, 32]) == 1.0 and float(m[0, 0, 0, 0]) == 3.0
    default = data.disc_map(40, 80, 2.0, 0.5)  # radius = 40 / 4
    assert int((default == 2.0).sum()) == int((data.disc_map(40, 80, 2.0, 0.5, radius=10.0) == 2.0).sum())
    with pytest.raises(ValueError, match="radius"):
        data.disc_map(8, 8, 1.0, 2.0, radius=-1.0)


def test_x_derivative_filter_differentiates_a_ramp():
    cols = torch.arange(10, dtype=torch.float64)
    ramp = (3.0 * cols).expand(1, 1, 6, 10)
    d = F.conv2d(ramp, data.x_derivative_filter(), padding=1)
    assert torch.allclose(d[..., 1:-1], torch.full_like(d[..., 1:-1], 3.0))


def test_gradient_task_is_exactly_a_gaussconv2d():
    x, y = data.gradient_task(3, 20, 1.7, generator=torch.Generator().manual_seed(5))
    assert x.shape == y.shape == (3, 1, 20, 20)
    layer = sigma.GaussConv2d(1, 1, kernel_size=3, sigma=1.7, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(data.x_derivative_filter())
        layer.bias.zero_()
    assert torch.allclose(layer(x), y, atol=1e-12)
    x2, y2 = data.gradient_task(3, 20, 1.7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(ValueError, match="sigma must be a positive finite number"):
        data.gradient_task(1, 8, -1.0)


def test_two_scale_task_cue_map_and_target():
    g = torch.Generator().manual_seed(3)
    x, y, smap = data.two_scale_task(4, 24, (0.8, 2.5), generator=g)
    assert x.shape == (4, 2, 24, 24) and y.shape == smap.shape == (4, 1, 24, 24)
    cue = x[:, 1:]
    assert set(cue.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(smap[cue > 0], torch.full_like(smap[cue > 0], 2.5))
    assert torch.equal(smap[cue == 0], torch.full_like(smap[cue == 0], 0.8))
    assert torch.allclose(y, sigma.blur2d_local_sphere(x[:, :1], smap, radius=8), atol=1e-14)
    # both regions are present in every image (the line passes near the center)
    assert bool(((cue.mean((1, 2, 3)) > 0.1) & (cue.mean((1, 2, 3)) < 0.9)).all())


def test_two_scale_task_is_exactly_a_dynamicblur2d():
    lo, hi, sigmas = 0.5, 4.0, (1.0, 3.0)
    x, y, _ = data.two_scale_task(2, 16, sigmas, generator=torch.Generator().manual_seed(0))
    layer = sigma.DynamicBlur2d(2, sigma=2.0, sigma_range=(lo, hi), dtype=torch.float64)
    assert layer.radius == 8

    def logit(s):
        p = (s - lo) / (hi - lo)
        return math.log(p / (1 - p))

    with torch.no_grad():
        layer.predictor.weight.zero_()
        layer.predictor.weight[0, 1, 1, 1] = logit(sigmas[1]) - logit(sigmas[0])
        layer.predictor.bias.fill_(logit(sigmas[0]))
    assert torch.allclose(layer(x)[:, :1], y, atol=1e-12)


def test_two_scale_task_rejects_bad_sigmas():
    with pytest.raises(ValueError, match="sigmas must be a pair"):
        data.two_scale_task(1, 8, (1.0,))
    with pytest.raises(ValueError, match=r"sigmas\[1\] must be a positive finite number"):
        data.two_scale_task(1, 8, (1.0, 0.0))


def test_digits_are_the_bundled_dataset():
    images, labels = data.digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert data.digits(dtype=torch.float64)[0].dtype == torch.float64


def test_digits_at_scale_shape_mass_and_center():
    images, _ = data.digits(dtype=torch.float64)
    few = images[:20]
    for side in (6.0, 8.0, 12.0, 20.0):
        x = data.digits_at_scale(few, side, canvas=32)
        assert x.shape == (20, 1, 32, 32) and x.dtype == torch.float64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 + 1e-12
        # the ink grows with the area: (side / 8)^2 times the 8 x 8 digit's
        ratio = x.sum((1, 2, 3)) / few.sum((1, 2, 3))
        assert torch.allclose(ratio, torch.full_like(ratio, (side / 8) ** 2), rtol=1e-3)
    # a centered, symmetric blob stays centered on the canvas
    blob = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    blob[..., 3:5, 3:5] = 1.0
    x = data.digits_at_scale(blob, 16.0, canvas=32)[0, 0]
    idx = torch.arange(32, dtype=torch.float64)
    assert abs(float((x.sum(1) * idx).sum() / x.sum()) - 15.5) < 1e-9
    assert abs(float((x.sum(0) * idx).sum() / x.sum()) - 15.5) < 1e-9


def test_digits_at_scale_is_a_magnification():
    images, _ = data.digits(dtype=torch.float64)
    small = data.digits_at_scale(images[:10], 8.0, canvas=16)
    big = data.digits_at_scale(images[:10], 16.0, canvas=32)
    # the digit drawn twice as large, area-averaged by 2, is the small one
    err = (F.avg_pool2d(big, 2) - small).abs().max()
    assert float(err) < 0.02


def test_digits_at_scale_rejects_bad_arguments():
    images, _ = data.digits()
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 8, 8\)"):
        data.digits_at_scale(images[:, 0], 12.0)
    with pytest.raises(ValueError, match="side must be a positive finite number"):
        data.digits_at_scale(images[:2], 0.0)
    with pytest.raises(ValueError, match="canvas must be a positive int"):
        data.digits_at_scale(images[:2], 8.0, canvas=0)
