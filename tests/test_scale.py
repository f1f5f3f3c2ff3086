"""``forward(x, scale=...)``: the layers' σ times a per-call factor, and the scale covariance it buys."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import sigma

f64 = torch.float64

LAYERS = {
    "Blur1d": lambda: sigma.Blur1d(1.5, channels=3, dtype=f64),
    "Blur2d": lambda: sigma.Blur2d(1.5, dtype=f64),
    "Blur2d per channel": lambda: sigma.Blur2d(1.5, channels=3, dtype=f64),
    "Blur2d diag": lambda: sigma.Blur2d((1.0, 2.0), "diag", dtype=f64),
    "Blur2d full": lambda: sigma.Blur2d(1.5, "full", dtype=f64),
    "GaussConv2d": lambda: sigma.GaussConv2d(3, 4, sigma=1.5, dtype=f64),
    "NJetConv2d": lambda: sigma.NJetConv2d(3, 4, order=2, sigma=1.5, dtype=f64),
}


def _x(name: str, batch: int = 2) -> torch.Tensor:
    shape = (batch, 3, 20) if name == "Blur1d" else (batch, 3, 20, 20)
    return torch.randn(shape, dtype=f64)


@pytest.mark.parametrize("name", LAYERS)
def test_scale_multiplies_sigma(name):
    torch.manual_seed(0)
    m, x = LAYERS[name](), _x(name)
    scaled = m(x, 2.0)
    with torch.no_grad():  # the same layer with σ doubled (a covariance times 4)
        for p_name, p in m.named_parameters():
            if p_name.endswith("log_sigma"):
                p += torch.log(torch.tensor(2.0, dtype=f64))
            elif p_name.endswith("logchol"):
                p[..., 0] += torch.log(torch.tensor(2.0, dtype=f64))
                p[..., 1] *= 2.0
                p[..., 2] += torch.log(torch.tensor(2.0, dtype=f64))
    torch.testing.assert_close(scaled, m(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", LAYERS)
def test_per_sample_scale_equals_one_call_per_sample(name):
    torch.manual_seed(1)
    m, x = LAYERS[name](), _x(name, batch=3)
    factors = torch.tensor([0.5, 1.0, 2.5], dtype=f64)
    y = m(x, factors)
    for b, f in enumerate(factors.tolist()):
        torch.testing.assert_close(y[b], m(x[b : b + 1], f)[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(m(x, torch.tensor(1.0, dtype=f64)), m(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["Blur2d", "Blur2d full", "NJetConv2d"])
def test_scale_is_differentiable(name):
    torch.manual_seed(2)
    m, x = LAYERS[name](), _x(name, batch=2)[..., :10, :10]
    # a fixed support, so that the function of the scale is smooth (the default support jumps)
    m.radius = (6, 6)
    scale = torch.tensor([0.9, 1.3], dtype=f64, requires_grad=True)
    assert gradcheck(lambda s: m(x, s), (scale,))


def test_fixed_radius_keeps_its_support_under_scale():
    x = torch.randn(1, 1, 30, 30, dtype=f64)
    fixed = sigma.Blur2d(1.0, radius=2, dtype=f64)
    wide = sigma.Blur2d(1.0, dtype=f64)
    # the default support follows the scaled σ; radius=2 truncates σ = 3 (the docstring says so)
    torch.testing.assert_close(wide(x, 3.0), sigma.blur2d_sphere(x, 3.0), rtol=0, atol=1e-12)
    torch.testing.assert_close(fixed(x, 3.0), sigma.blur2d_sphere(x, 3.0, radius=2), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("scale", "error", "match"),
    [
        (0.0, ValueError, "scale"),
        (-1.0, ValueError, "scale"),
        (torch.tensor([1.0, 2.0, 3.0], dtype=f64), ValueError, r"\(2,\) = \(B,\)"),
        (torch.ones(2, 1, dtype=f64), ValueError, "shape"),
        (torch.tensor([1.0, -2.0], dtype=f64), sigma.ScaleError, "positive"),
        (torch.tensor([1, 2]), TypeError, "floating-point"),
        ("2", TypeError, "scale"),
    ],
)
def test_bad_scales_are_refused(scale, error, match):
    with pytest.raises(error, match=match):
        sigma.Blur2d(1.0, dtype=f64)(torch.randn(2, 1, 8, 8, dtype=f64), scale)


def _blobs(n: int, spacing: float) -> torch.Tensor:
    """A sum of Gaussian blobs on [0, 48)^2 (in coarse pixels), sampled every ``spacing``."""
    t = torch.arange(n, dtype=f64) * spacing
    y, x = t[:, None], t[None, :]
    img = torch.zeros(n, n, dtype=f64)
    for cy, cx, s, a in [(20, 22, 3.0, 1.0), (30, 14, 2.0, -0.7), (14, 32, 4.0, 0.5), (26, 30, 2.5, 0.8)]:
        img = img + a * torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    return img[None, None]


def _covariance_error(std_devs: float) -> torch.Tensor:
    """Per jet component: the γ-normalized jet of the image sampled twice as densely, at scale 2,
    against the jet of the original at scale 1, at corresponding pixels (interior), relative."""
    jet = sigma.NJetConv2d(
        1, 1, order=2, sigma=1.5, gamma=1.0, std_devs=std_devs, padding_mode="replicate", dtype=f64
    )
    with torch.no_grad():
        coarse = jet.jet(_blobs(48, 1.0))
        fine = jet.jet(_blobs(96, 0.5), 2.0)[..., ::2, ::2]  # fine pixel 2i sits on coarse pixel i
    inner = (slice(None), slice(None), slice(10, 38), slice(10, 38))
    return (coarse - fine)[inner].abs().amax((0, 2, 3)) / coarse[inner].abs().amax((0, 2, 3))


def test_njet_is_scale_covariant_with_a_wide_enough_support():
    # with a support of 4σ the sampled derivative kernels are cut where they are negligible:
    # every jet component agrees across the two samplings to 2e-3 of its range
    err = _covariance_error(4.0)
    assert float(err.max()) < 2e-3, err
    # at the default 2σ the second derivatives are cut short: errors of order 10 %
    assert float(_covariance_error(2.0).max()) > 0.05


@pytest.mark.parametrize("name", ["Blur2d", "Blur2d full", "GaussConv2d", "NJetConv2d"])
def test_scale_compiles_in_one_graph_with_radius(name):
    torch.manual_seed(3)
    m, x = LAYERS[name](), _x(name, batch=2)
    (m.blur if name == "GaussConv2d" else m).radius = (5, 5)
    scale = torch.tensor([0.8, 1.6], dtype=f64)
    torch._dynamo.reset()
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, scale), m(x, scale), rtol=0, atol=1e-12)
