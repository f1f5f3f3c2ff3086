"""nn.Module layers: functional equivalence, learning σ back, state_dict, dtype/device, repr."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import sigma

f64 = torch.float64
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _x1(dtype=f64):
    return torch.randn(2, 3, 20, dtype=dtype)


def _x2(dtype=f64):
    return torch.randn(2, 3, 12, 14, dtype=dtype)


# ----------------------------------------------------------------------------- construction


def test_blur1d_parameters_and_sigma():
    m = sigma.Blur1d(2.0)
    assert [n for n, _ in m.named_parameters()] == ["log_sigma"]
    assert m.log_sigma.shape == () and abs(float(m.log_sigma.detach()) - math.log(2.0)) < 1e-7
    torch.testing.assert_close(m.sigma, torch.tensor(2.0))
    mc = sigma.Blur1d(torch.tensor([1.0, 2.0, 3.0]), channels=3)
    assert mc.log_sigma.shape == (3,)
    torch.testing.assert_close(mc.sigma, torch.tensor([1.0, 2.0, 3.0]))
    assert sigma.Blur1d(1.5, channels=4).sigma.shape == (4,)


@pytest.mark.parametrize(
    ("structure", "channels", "name", "shape"),
    [
        ("sphere", None, "log_sigma", ()),
        ("sphere", 3, "log_sigma", (3,)),
        ("diag", None, "log_sigma", (2,)),
        ("diag", 3, "log_sigma", (3, 2)),
        ("full", None, "logchol", (3,)),
        ("full", 3, "logchol", (3, 3)),
    ],
)
def test_blur2d_parameter_shapes(structure, channels, name, shape):
    m = sigma.Blur2d(1.5 if structure == "sphere" else (1.5, 2.5), structure, channels)
    params = dict(m.named_parameters())
    assert list(params) == [name]
    assert params[name].shape == shape
    lead = () if channels is None else (channels,)
    assert m.cov.shape == lead + (2, 2)


def test_blur2d_sigma_and_cov_properties():
    sph = sigma.Blur2d(1.5, "sphere", dtype=f64)
    torch.testing.assert_close(sph.cov, torch.diag(torch.tensor([2.25, 2.25], dtype=f64)))
    diag = sigma.Blur2d((1.5, 2.5), "diag", dtype=f64)
    torch.testing.assert_close(diag.sigma, torch.tensor([1.5, 2.5], dtype=f64))
    torch.testing.assert_close(diag.cov, torch.diag(torch.tensor([2.25, 6.25], dtype=f64)))
    full = sigma.Blur2d((1.5, 2.5), "full", dtype=f64)
    torch.testing.assert_close(full.cov, diag.cov)
    torch.testing.assert_close(full.sigma, diag.sigma)
    cov = sigma.rotated_cov(3.0, 1.0, 0.4, dtype=f64)
    init = sigma.Blur2d(structure="full", cov=cov)
    torch.testing.assert_close(init.cov, cov)
    torch.testing.assert_close(init.sigma, torch.diagonal(cov).sqrt())
    per_ch = sigma.Blur2d(structure="full", channels=2, cov=cov)
    torch.testing.assert_close(per_ch.cov, cov.expand(2, 2, 2))


def test_gaussconv2d_and_dynamic_parameters():
    g = sigma.GaussConv2d(3, 5, kernel_size=3, sigma=2.0)
    names = {n for n, _ in g.named_parameters()}
    assert names == {"blur.log_sigma", "weight", "bias"}
    assert g.weight.shape == (5, 3, 3, 3) and g.bias.shape == (5,)
    torch.testing.assert_close(g.sigma, torch.tensor(2.0))
    assert sigma.GaussConv2d(3, 5, bias=False).bias is None
    assert sigma.GaussConv2d(3, 5, per_channel=True).blur.log_sigma.shape == (3,)
    d = sigma.DynamicBlur2d(3, sigma=2.0)
    assert {n for n, _ in d.named_parameters()} == {"predictor.weight", "predictor.bias"}
    assert d.radius == 8  # ceil(2 * 4.0), from the top of the default range


# ----------------------------------------------------------------------------- module == functional


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "symmetric", "replicate", "circular"])
def test_modules_equal_functional_api(padding_mode):
    x1, x2 = _x1(), _x2()
    opts = dict(padding_mode=padding_mode, std_devs=3, dtype=f64)
    m = sigma.Blur1d(1.7, **opts)
    torch.testing.assert_close(m(x1), sigma.blur1d(x1, 1.7, 3, padding_mode=padding_mode), rtol=0, atol=0)
    m = sigma.Blur1d(torch.tensor([0.5, 1.0, 2.0]), channels=3, kernel="erf", method="fft", **opts)
    expected = sigma.blur1d(
        x1, torch.tensor([0.5, 1.0, 2.0], dtype=f64), 3, padding_mode=padding_mode, kernel="erf", method="fft"
    )
    torch.testing.assert_close(m(x1), expected, rtol=0, atol=1e-15)
    m = sigma.Blur2d(1.7, "sphere", **opts)
    torch.testing.assert_close(
        m(x2), sigma.blur2d_sphere(x2, 1.7, 3, padding_mode=padding_mode), rtol=0, atol=1e-15
    )
    m = sigma.Blur2d((0.8, 2.2), "diag", 3, **opts)
    torch.testing.assert_close(
        m(x2), sigma.blur2d_diag(x2, 0.8, 2.2, 3, padding_mode=padding_mode), rtol=0, atol=1e-15
    )
    cov = sigma.rotated_cov(2.0, 0.9, 0.7, dtype=f64)
    m = sigma.Blur2d(structure="full", cov=cov, **opts)
    torch.testing.assert_close(
        m(x2), sigma.blur2d_full(x2, cov, 3, padding_mode=padding_mode), rtol=0, atol=1e-12
    )


def test_module_at_a_nominal_sigma_equals_the_functional_at_that_sigma():
    x = torch.randn(1, 1, 40, dtype=f64)
    for s in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0):
        torch.testing.assert_close(
            sigma.Blur1d(s, dtype=f64)(x), sigma.blur1d(x, s), rtol=0, atol=1e-12, msg=f"sigma={s}"
        )


def test_gaussconv2d_is_conv_after_blur():
    torch.manual_seed(0)
    x = _x2()
    g = sigma.GaussConv2d(
        3, 4, kernel_size=5, sigma=(1.2, 2.0), structure="diag", padding_mode="reflect", dtype=f64
    )
    expected = F.conv2d(sigma.blur2d_diag(x, 1.2, 2.0, padding_mode="reflect"), g.weight, g.bias, padding=2)
    torch.testing.assert_close(g(x), expected, rtol=0, atol=1e-12)
    assert g(x).shape == (2, 4, 12, 14)


def test_dynamic_blur2d_is_a_local_blur_of_its_predicted_map():
    torch.manual_seed(0)
    x = _x2()
    d = sigma.DynamicBlur2d(3, sigma=1.5, sigma_range=(0.5, 3.0), padding_mode="reflect", dtype=f64)
    # at initialization the map is the constant σ and the layer is a global blur on the support of hi
    smap = d.sigma_map(x)
    assert smap.shape == (2, 1, 12, 14)
    torch.testing.assert_close(smap, torch.full_like(smap, 1.5))
    torch.testing.assert_close(d(x), sigma.blur2d_sphere(x, 1.5, std_devs=4, padding_mode="reflect"))
    with torch.no_grad():
        d.predictor.weight.normal_(0, 0.5)
    smap = d.sigma_map(x).detach()
    assert float(smap.min()) > 0.5 and float(smap.max()) < 3.0 and float(smap.std()) > 0.01
    expected = sigma.blur2d_local_sphere(x, smap, padding_mode="reflect", radius=6)
    torch.testing.assert_close(d(x), expected, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- learning


def _adam(module, target_fn, x, steps, lr):
    y = target_fn(x)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (module(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
    return module


def test_blur1d_learns_sigma_with_adam():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 64, dtype=f64)
    m = _adam(sigma.Blur1d(1.0, dtype=f64), lambda x: sigma.blur1d(x, 2.3), x, 150, 0.05)
    assert abs(float(m.sigma.detach()) - 2.3) < 0.01 * 2.3


def test_blur1d_learns_one_sigma_per_channel():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 64, dtype=f64)
    s = torch.tensor([0.8, 1.7, 3.3], dtype=f64)
    m = _adam(
        sigma.Blur1d(1.0, channels=3, padding_mode="circular", dtype=f64),
        lambda x: sigma.blur1d(x, s, padding_mode="circular"),
        x,
        200,
        0.05,
    )
    torch.testing.assert_close(m.sigma, s, rtol=0.01, atol=0)


def test_blur2d_sphere_learns_sigma_with_adam():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 24, 24, dtype=f64)
    m = _adam(sigma.Blur2d(1.0, "sphere", dtype=f64), lambda x: sigma.blur2d_sphere(x, 2.3), x, 150, 0.05)
    assert abs(float(m.sigma.detach()) - 2.3) < 0.01 * 2.3


def test_blur2d_diag_learns_both_sigmas_with_adam():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 24, 24, dtype=f64)
    m = _adam(sigma.Blur2d(1.0, "diag", dtype=f64), lambda x: sigma.blur2d_diag(x, 1.3, 2.8), x, 200, 0.05)
    torch.testing.assert_close(m.sigma, torch.tensor([1.3, 2.8], dtype=f64), rtol=0.01, atol=0)


def test_blur2d_full_learns_a_rotated_covariance_with_adam():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 24, 24, dtype=f64)
    cov = sigma.rotated_cov(2.2, 1.1, 0.6, dtype=f64)
    m = _adam(sigma.Blur2d(1.0, "full", dtype=f64), lambda x: sigma.blur2d_full(x, cov), x, 300, 0.05)
    major, minor, angle = sigma.cov_axes(m.cov.detach())
    assert abs(float(major) - 2.2) < 0.01 * 2.2
    assert abs(float(minor) - 1.1) < 0.01 * 1.1
    assert abs(float(angle) - 0.6) < 0.01
    torch.testing.assert_close(m.cov.detach(), cov, rtol=0.02, atol=0.02)


# ----------------------------------------------------------------------------- state_dict


def _all_modules(dtype=None):
    """Name -> (module, fresh module of the same kind, input maker).

    The scales keep ``std_devs * σ`` away from integers, so rounding σ to float32 never
    moves the kernel half-size ``ceil(std_devs * σ)``.
    """
    torch.manual_seed(1)
    return {
        "Blur1d": (
            sigma.Blur1d(2.3, channels=3, dtype=dtype),
            lambda: sigma.Blur1d(1.2, channels=3, dtype=dtype),
            _x1,
        ),
        "sphere": (
            sigma.Blur2d(2.3, "sphere", dtype=dtype),
            lambda: sigma.Blur2d(1.2, "sphere", dtype=dtype),
            _x2,
        ),
        "diag": (
            sigma.Blur2d((1.1, 2.6), "diag", 3, dtype=dtype),
            lambda: sigma.Blur2d(1.2, "diag", 3, dtype=dtype),
            _x2,
        ),
        "full": (
            sigma.Blur2d(structure="full", cov=sigma.rotated_cov(2.3, 1.1, 0.3), dtype=dtype),
            lambda: sigma.Blur2d(1.2, "full", dtype=dtype),
            _x2,
        ),
        "GaussConv2d": (
            sigma.GaussConv2d(3, 2, sigma=1.7, dtype=dtype),
            lambda: sigma.GaussConv2d(3, 2, sigma=1.2, dtype=dtype),
            _x2,
        ),
        "DynamicBlur2d": (
            sigma.DynamicBlur2d(3, sigma=2.3, dtype=dtype),
            lambda: sigma.DynamicBlur2d(3, sigma=1.2, dtype=dtype),
            _x2,
        ),
    }


@pytest.mark.parametrize("name", list(_all_modules()))
def test_state_dict_round_trip(name):
    trained, fresh, make_x = _all_modules(f64)[name]
    with torch.no_grad():  # move away from the initial values so the copy is not trivial
        for p in trained.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = make_x(f64)
    other = fresh()
    assert not torch.allclose(other(x), trained(x))
    other.load_state_dict(trained.state_dict())
    torch.testing.assert_close(other(x), trained(x), rtol=0, atol=0)
    for k, v in trained.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)


# ----------------------------------------------------------------------------- dtype and device


@pytest.mark.parametrize("dtype", [torch.float32, f64])
@pytest.mark.parametrize("name", list(_all_modules()))
def test_dtype_argument_and_to(name, dtype):
    m, _, make_x = _all_modules(dtype)[name]
    assert all(p.dtype == dtype for p in m.parameters())
    x = make_x(dtype)
    y = m(x)
    assert y.dtype == dtype
    other = torch.float64 if dtype == torch.float32 else torch.float32
    assert m.to(other) is m  # in place, like every nn.Module
    assert all(p.dtype == other for p in m.parameters())
    y2 = m(x.to(other))
    assert y2.dtype == other
    # the two precisions agree to float32 rounding
    assert float((y2.double() - y.double()).detach().abs().max()) < 1e-5


@pytest.mark.parametrize("name", list(_all_modules()))
def test_to_cpu_device_and_outputs_follow_the_input(name):
    m, _, make_x = _all_modules()[name]
    m = m.to("cpu")
    x = make_x(torch.float32)
    y = m(x)
    assert y.device.type == "cpu" and y.dtype == torch.float32
    y.sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "cpu" for p in m.parameters())


@cuda
@pytest.mark.parametrize("name", list(_all_modules()))
def test_to_cuda_matches_cpu(name):
    m, _, make_x = _all_modules(f64)[name]
    x = make_x(f64)
    expected = m(x)
    mc = m.to("cuda")
    assert all(p.device.type == "cuda" for p in mc.parameters())
    y = mc(x.cuda())
    assert y.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), expected, rtol=0, atol=1e-10)
    y.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in mc.parameters())


@cuda
@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_functional_blurs_on_cuda_match_cpu(method):
    x = _x2()
    cov = sigma.rotated_cov(2.0, 1.0, 0.5, dtype=f64)
    smap = 0.5 + torch.rand(2, 1, 12, 14, dtype=f64)
    cases = [
        lambda x, d: sigma.blur2d_sphere(
            x, torch.tensor([0.7, 1.5, 3.0], dtype=f64, device=d), 2, padding_mode="reflect", method=method
        ),
        lambda x, d: sigma.blur2d_diag(x, 1.0, 2.5, 3, padding_mode="circular", method=method),
        lambda x, d: sigma.blur2d_full(x, cov.to(d), 2, padding_mode="replicate", method=method),
        lambda x, d: sigma.dog2d(x, 1.0, 2.0, 2, padding_mode="zeros", method=method),
        lambda x, d: sigma.blur2d_local_sphere(x, smap.to(d), 2, padding_mode="reflect"),
        lambda x, d: sigma.blur2d_local_full(
            x, cov.to(d).expand(2, 12, 14, 2, 2), 2, padding_mode="circular"
        ),
    ]
    for f in cases:
        y = f(x.cuda(), "cuda")
        assert y.device.type == "cuda"
        torch.testing.assert_close(y.cpu(), f(x, "cpu"), rtol=0, atol=1e-10)
    x1 = _x1()
    torch.testing.assert_close(
        sigma.blur1d(x1.cuda(), 2.0, method=method).cpu(), sigma.blur1d(x1, 2.0, method=method)
    )


# ----------------------------------------------------------------------------- repr


def test_reprs_show_scale_and_options():
    assert repr(sigma.Blur1d(2.0)) == "Blur1d(sigma=2, std_devs=2, padding_mode='zeros')"
    r = repr(sigma.Blur1d(1.5, channels=2, padding_mode="reflect", kernel="erf", method="fft"))
    assert (
        r
        == "Blur1d(sigma=[1.5, 1.5], channels=2, std_devs=2, padding_mode='reflect', kernel='erf', method='fft')"
    )
    r = repr(sigma.Blur2d((1.0, 3.0), "diag", std_devs=3))
    assert r == "Blur2d(sigma=[1, 3], structure='diag', std_devs=3, padding_mode='zeros')"
    r = repr(sigma.Blur2d(structure="full", cov=torch.tensor([[4.0, 1.0], [1.0, 2.0]])))
    assert r.startswith("Blur2d(cov=[4, 1, 1, 2], structure='full'")
    r = repr(sigma.GaussConv2d(3, 8, kernel_size=5))
    assert "GaussConv2d(" in r and "3, 8, kernel_size=5, bias=True" in r
    assert "(blur): Blur2d(sigma=1, structure='sphere'" in r
    r = repr(sigma.DynamicBlur2d(3, sigma=1.0, sigma_range=(0.5, 2.0)))
    assert "3, sigma_range=(0.5, 2), radius=4, padding_mode='zeros'" in r
    assert "(predictor): Conv2d(3, 1" in r


def test_repr_tracks_the_learned_value():
    m = sigma.Blur1d(1.0)
    with torch.no_grad():
        m.log_sigma.fill_(math.log(2.5))
    assert "sigma=2.5" in repr(m)


def test_gaussconv2d_passes_its_kernel_to_the_blur():
    torch.manual_seed(0)
    layer = sigma.GaussConv2d(2, 3, 3, sigma=0.4, kernel="erf", dtype=torch.float64)
    x = torch.randn(1, 2, 12, 12, dtype=torch.float64)
    blurred = sigma.blur2d_sphere(x, 0.4, kernel="erf")
    expected = torch.nn.functional.conv2d(blurred, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="kernel"):
        sigma.GaussConv2d(2, 3, kernel="box")
