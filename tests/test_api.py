"""The argument path: validation once at the boundary, keyword-only options, radius=,
own support per σ, per-sample σ, the boundary-mode table, σ → 0 and integer inputs."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import torch

import sigma
from sigma import _checks, _padding

f64 = torch.float64


def _x1(B=2, C=3, L=23):
    return torch.randn(B, C, L, dtype=f64, generator=torch.Generator().manual_seed(1))


def _x2(B=2, C=3, H=13, W=11):
    return torch.randn(B, C, H, W, dtype=f64, generator=torch.Generator().manual_seed(2))


# ----------------------------------------------------------------------------- validate once


def test_blur2d_full_checks_its_covariance_once(monkeypatch):
    calls = []
    real = _checks.check_cov

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_checks, "check_cov", counting)
    cov = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=f64, requires_grad=True)
    sigma.blur2d_full(_x2(), cov).sum().backward()
    assert len(calls) == 1
    calls.clear()
    sigma.Blur2d(structure="full", cov=cov.detach(), dtype=f64)  # construction validates once ...
    m = sigma.Blur2d(structure="full", dtype=f64)
    calls.clear()
    m(_x2())  # ... and a module's forward not at all
    assert len(calls) == 0


def test_blur1d_does_not_recheck_sigma_through_the_public_kernel(monkeypatch):
    import sigma.kernels as k

    def boom(*a, **kw):
        raise AssertionError("public gauss1d called")

    monkeypatch.setattr(k, "gauss1d", boom)
    monkeypatch.setattr(sigma, "gauss1d", boom)
    checks = []
    real = _checks.check_scale_values
    monkeypatch.setattr(_checks, "check_scale_values", lambda *a: checks.append(1) or real(*a))
    sigma.blur1d(_x1(), torch.tensor(1.5, dtype=f64))
    sigma.blur2d_sphere(_x2(), torch.tensor([1.0, 2.0, 3.0], dtype=f64))
    sigma.dog2d(_x2(), 1.0, torch.tensor(2.0, dtype=f64))
    assert len(checks) == 3  # one σ tensor each, checked once


# ----------------------------------------------------------------------------- signatures


def test_options_are_keyword_only_and_std_devs_stays_positional():
    x1, x2 = _x1(), _x2()
    with pytest.raises(TypeError):
        sigma.blur2d_sphere(x2, 5, 1.5, "zeros")  # a kornia-style call fails loudly
    with pytest.raises(TypeError):
        sigma.blur1d(x1, 1.0, 2, "reflect")
    with pytest.raises(TypeError):
        sigma.blur2d_local_sphere(x2, torch.ones(2, 1, 13, 11, dtype=f64), 2, "reflect")
    # the seed notebook's calls keep working
    from sigma.blur import blur1d, blur2d_sphere

    torch.testing.assert_close(blur1d(x1, 2.0, std_devs=2), blur1d(x1, 2.0, 2))
    assert blur2d_sphere(x2, 1.5).shape == x2.shape


def test_one_integer_check():
    for bad in (1.5, 2.0, True, "3", None):
        with pytest.raises(TypeError, match="radius must be an int"):
            sigma.blur1d(_x1(), 1.0, radius=bad) if bad is not None else _checks.check_int(bad, "radius")
    with pytest.raises(ValueError, match="radius must be in"):
        sigma.blur1d(_x1(), 1.0, radius=0)
    with pytest.raises(TypeError, match="in_channels must be an int"):
        sigma.GaussConv2d(3.0, 4)
    with pytest.raises(ValueError, match="radius must be an int or a pair"):
        sigma.blur2d_sphere(_x2(), 1.0, radius=(1, 2, 3))


def test_blur2d_cov_argument():
    with pytest.raises(ValueError, match="cov can only initialize structure='full'"):
        sigma.Blur2d(structure="sphere", cov=torch.eye(2))
    m = sigma.Blur2d(structure="full", cov=[[4.0, 1.0], [1.0, 2.0]], dtype=f64)
    torch.testing.assert_close(m.cov, torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=f64))
    with pytest.raises(TypeError, match="cov must be"):
        sigma.Blur2d(structure="full", cov="eye")


def test_structure_table_lists_every_structure():
    from sigma.modules import STRUCTURES

    for name, spec in STRUCTURES.items():
        m = sigma.Blur2d(1.5, structure=name, channels=3, dtype=f64)
        assert getattr(m, spec.param).shape[0] == 3
        assert m(_x2()).shape == (2, 3, 13, 11)
        assert name in sigma.Blur2d.__doc__


def test_module_fed_the_wrong_channel_count_names_channels():
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"channels=8.*x has 3 channels"):
        sigma.Blur2d(channels=8)(x)
    with pytest.raises(ValueError, match=r"channels=8.*x has 3 channels"):
        sigma.Blur1d(channels=8)(x[..., 0])
    with pytest.raises(ValueError, match=r"in_channels=4.*x has 3 channels"):
        sigma.GaussConv2d(4, 2)(x)
    with pytest.raises(ValueError, match=r"in_channels=4.*x has 3 channels"):
        sigma.DynamicBlur2d(4)(x)


# ----------------------------------------------------------------------------- own support


CH = torch.tensor([0.7, 1.9, 4.3], dtype=f64)


@pytest.mark.parametrize("padding_mode", ref.PADDING_MODES)
@pytest.mark.parametrize("kernel", ["sampled", "erf"])
def test_each_channel_equals_its_single_sigma_call(padding_mode, kernel):
    x1, x2 = _x1(), _x2()
    opt = dict(padding_mode=padding_mode, kernel=kernel)
    y1 = sigma.blur1d(x1, CH, **opt)
    y2 = sigma.blur2d_sphere(x2, CH, **opt)
    yd = sigma.blur2d_diag(x2, CH, CH.flip(0), **opt)
    for c in range(3):
        s = float(CH[c])
        torch.testing.assert_close(
            y1[:, c], sigma.blur1d(x1[:, c : c + 1], s, **opt)[:, 0], rtol=0, atol=1e-12
        )
        torch.testing.assert_close(
            y2[:, c], sigma.blur2d_sphere(x2[:, c : c + 1], s, **opt)[:, 0], rtol=0, atol=1e-12
        )
        single = sigma.blur2d_diag(x2[:, c : c + 1], s, float(CH[2 - c]), **opt)[:, 0]
        torch.testing.assert_close(yd[:, c], single, rtol=0, atol=1e-12)


def test_full_cov_and_local_maps_have_their_own_support():
    x2 = _x2()
    rng = np.random.default_rng(5)
    covs = torch.from_numpy(np.stack([ref.random_cov(rng, 0.4, 4.0) for _ in range(3)]))
    y = sigma.blur2d_full(x2, covs, padding_mode="symmetric")
    for c in range(3):
        single = sigma.blur2d_full(x2[:, c : c + 1], covs[c], padding_mode="symmetric")[:, 0]
        torch.testing.assert_close(y[:, c], single, rtol=0, atol=1e-12)
    # a per-pixel map: the left half at σ = 0.8 equals the global blur at 0.8 where its
    # kernels do not reach the right half (σ = 5)
    smap = torch.full((2, 1, 13, 11), 0.8, dtype=f64)
    smap[..., 6:] = 5.0
    y = sigma.blur2d_local_sphere(x2, smap, padding_mode="reflect")
    g = sigma.blur2d_sphere(x2, 0.8, padding_mode="reflect")
    torch.testing.assert_close(y[..., :4], g[..., :4], rtol=0, atol=1e-12)


def test_channel_output_does_not_depend_on_other_sigmas():
    x = _x1()
    a = sigma.blur1d(x, torch.tensor([1.0, 1.0, 1.0], dtype=f64))
    b = sigma.blur1d(x, torch.tensor([1.0, 8.0, 1.0], dtype=f64))
    torch.testing.assert_close(a[:, 0], b[:, 0], rtol=0, atol=1e-12)


def test_modules_per_channel_have_their_own_support():
    x = _x2()
    m = sigma.Blur2d(CH, channels=3, dtype=f64)
    torch.testing.assert_close(m(x), sigma.blur2d_sphere(x, CH), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- radius=


def _no_host_reads(monkeypatch):
    def boom(*a, **kw):
        raise AssertionError("read a tensor value on the host")

    for name in ("item", "__bool__", "tolist", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, boom)


def test_radius_makes_no_host_read(monkeypatch):
    x1 = _x1().requires_grad_()
    x2 = _x2().requires_grad_()
    s = torch.tensor([0.7, 1.9, 4.3], dtype=f64, requires_grad=True)
    cov = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=f64, requires_grad=True)
    smap = torch.full((2, 1, 13, 11), 1.3, dtype=f64, requires_grad=True)
    modules = [
        sigma.Blur1d(1.5, channels=3, radius=5, dtype=f64),
        sigma.Blur2d(1.5, radius=5, dtype=f64),
        sigma.Blur2d((1.0, 2.0), "diag", 3, radius=(3, 5), dtype=f64),
        sigma.Blur2d(structure="full", radius=4, dtype=f64),
        sigma.GaussConv2d(3, 2, radius=4, dtype=f64),
        sigma.DynamicBlur2d(3, dtype=f64),
    ]
    _no_host_reads(monkeypatch)
    outs = [
        sigma.blur1d(x1, s, radius=6),
        sigma.blur1d(x1, s, radius=6, method="fft"),
        sigma.blur2d_sphere(x2, s, radius=(6, 4), padding_mode="symmetric"),
        sigma.blur2d_diag(x2, s, 1.0, radius=6, method="matmul"),
        sigma.blur2d_full(x2, cov, radius=(5, 4)),
        sigma.dog1d(x1, s, 2.0, radius=6),
        sigma.dog2d(x2, s, 2.0, radius=6),
        sigma.blur2d_local_sphere(x2, smap, radius=3),
        sigma.blur2d_local_full(x2, cov.expand(2, 13, 11, 2, 2), radius=3),
        sigma.blur1d(x1, s[:, None].expand(3, 3)[:2], radius=6),  # per sample
    ]
    outs += [m(x2 if "1d" not in type(m).__name__ else x1) for m in modules]
    sum(o.sum() for o in outs).backward()


def test_radius_fixes_the_support():
    x = _x1()
    torch.testing.assert_close(
        sigma.blur1d(x, 1.0, radius=5), sigma.blur1d(x, 1.0, std_devs=5), rtol=0, atol=1e-12
    )
    x2 = _x2()
    wide = sigma.blur2d_diag(x2, 1.0, 1.0, std_devs=4)
    torch.testing.assert_close(sigma.blur2d_sphere(x2, 1.0, radius=(4, 4)), wide, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- per sample


def test_per_sample_sigma_equals_one_call_per_sample():
    x1, x2 = _x1(B=4, C=3), _x2(B=4, C=3)
    s_bc = torch.exp(torch.randn(4, 3, dtype=f64, generator=torch.Generator().manual_seed(3)))
    s_b1 = s_bc[:, :1]
    rng = np.random.default_rng(4)
    covs = torch.from_numpy(np.stack([ref.random_cov(rng, 0.4, 3.0) for _ in range(4)]))[:, None]
    for s in (s_bc, s_b1):
        y1 = sigma.blur1d(x1, s, padding_mode="symmetric")
        y2 = sigma.blur2d_sphere(x2, s, padding_mode="circular", method="fft")
        yd = sigma.blur2d_diag(x2, s, 1.5)
        yg = sigma.dog2d(x2, s, 3.0)
        for b in range(4):
            sb = s[b] if s.shape[1] == 3 else s[b, 0]
            torch.testing.assert_close(y1[b], sigma.blur1d(x1[b : b + 1], sb, padding_mode="symmetric")[0])
            one = sigma.blur2d_sphere(x2[b : b + 1], sb, padding_mode="circular", method="fft")[0]
            torch.testing.assert_close(y2[b], one, rtol=0, atol=1e-12)
            torch.testing.assert_close(yd[b], sigma.blur2d_diag(x2[b : b + 1], sb, 1.5)[0])
            torch.testing.assert_close(yg[b], sigma.dog2d(x2[b : b + 1], sb, 3.0)[0])
    yf = sigma.blur2d_full(x2, covs)
    for b in range(4):
        torch.testing.assert_close(yf[b], sigma.blur2d_full(x2[b : b + 1], covs[b, 0])[0], rtol=0, atol=1e-12)


def test_per_sample_sigma_gets_a_gradient_per_sample():
    x = _x2(B=3, C=2)
    s = torch.tensor([[0.8], [1.3], [2.7]], dtype=f64, requires_grad=True)  # away from support jumps
    sigma.blur2d_sphere(x, s).pow(2).sum().backward()
    assert s.grad.shape == (3, 1) and torch.isfinite(s.grad).all()
    assert torch.autograd.gradcheck(
        lambda t: sigma.blur1d(_x1(B=3, C=2), t), (s.detach().clone().requires_grad_(),)
    )


def test_ambiguous_sigma_shape_is_refused_with_the_rules():
    x = _x1(B=4, C=3)
    with pytest.raises(ValueError, match=r"\(B, 1\).*per sample.*sigma\[:, None\]"):
        sigma.blur1d(x, torch.ones(4, dtype=f64))  # B = 4 values, C = 3: per sample needs (B, 1)
    with pytest.raises(ValueError, match=r"got shape \(4, 2\)"):
        sigma.blur1d(x, torch.ones(4, 2, dtype=f64))


# ----------------------------------------------------------------------------- modes, σ → 0, dtypes


def test_every_boundary_mode_has_a_scipy_reference():
    assert set(_padding.MODES) == set(ref.SCIPY_MODE) == set(ref.NUMPY_PAD_MODE)
    assert _checks.PADDING_MODES == frozenset(_padding.MODES)
    for name, mode in _padding.MODES.items():
        assert mode.scipy == ref.SCIPY_MODE[name]


@pytest.mark.parametrize("padding_mode", ref.PADDING_MODES)
def test_symmetric_and_every_mode_pad_like_numpy_for_any_width(padding_mode):
    if padding_mode == "zeros":
        return
    for L in (1, 2, 3, 7):
        v = torch.arange(L, dtype=f64).view(1, 1, L)
        for pad in (1, L, 3 * L + 2):
            out = _padding.pad_axis(v, pad, pad, padding_mode, -1)[0, 0].numpy()
            expected = np.pad(np.arange(L, dtype=float), pad, mode=ref.NUMPY_PAD_MODE[padding_mode])
            np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("kernel", ["sampled", "erf"])
@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_sigma_to_zero_returns_the_input_with_finite_gradients(kernel, dtype):
    x = torch.randn(2, 3, 9, 8, dtype=dtype, requires_grad=True)
    for v in (1e-3, 1e-12, 1e-30):
        s = torch.tensor(v, dtype=dtype, requires_grad=True)
        y = sigma.blur2d_sphere(x, s, kernel=kernel)
        torch.testing.assert_close(y, x, rtol=0, atol=0)
        gx, gs = torch.autograd.grad(y.pow(2).sum(), (x, s))
        assert torch.isfinite(gx).all() and torch.isfinite(gs).all()
        y1 = sigma.blur1d(x[..., 0], s.expand(3), kernel=kernel)
        assert torch.equal(y1, x[..., 0])
        smap = torch.full((2, 1, 9, 8), v, dtype=dtype, requires_grad=True)
        yl = sigma.blur2d_local_sphere(x, smap, kernel=kernel)
        torch.testing.assert_close(yl, x, rtol=0, atol=0)
        (gm,) = torch.autograd.grad(yl.pow(2).sum(), smap)
        assert torch.isfinite(gm).all()


def test_integer_images_are_refused_naming_the_dtype():
    x = torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"torch.uint8.*x.float\(\)"):
        sigma.blur2d_sphere(x, 1.0)
    with pytest.raises(TypeError, match="torch.uint8"):
        sigma.Blur2d()(x)


def test_numbers_are_checked_even_with_radius():
    with pytest.raises(sigma.ScaleError, match="sigma must be > 0"):
        sigma.blur1d(_x1(), -1.0, radius=3)
    with pytest.raises(sigma.ScaleError, match="sigma must be > 0"):
        sigma.gauss1d(0.0, radius=3)
