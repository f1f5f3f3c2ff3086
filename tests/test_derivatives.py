"""Gaussian-derivative blurs (``order=``, ``gamma=``): SciPy equality, the erf definition, derivatives.

The sampled derivative kernels are SciPy's (the derivative of the normalized sampled
Gaussian), so ``blur2d_diag(x, sy, sx, order=(oy, ox))`` equals
``scipy.ndimage.gaussian_filter(x, (sy, sx), order=(oy, ox), radius=(hy, hx))`` in every
padding mode and method, kernels wider than the input included. The ``'erf'`` derivative
is checked against quadrature of a numerically differentiated Gaussian (mpmath).
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from reference import PADDING_MODES, SCIPY_MODE, radius
from torch.autograd import gradcheck, gradgradcheck

import sigma

f64 = torch.float64
METHODS = ["direct", "matmul", "fft", "auto"]
ORDER_PAIRS = [(0, 1), (1, 0), (1, 1), (2, 0), (0, 2), (2, 1), (3, 0), (1, 3), (3, 3)]


def _diag_reference(x, sy, sx, order, mode, std_devs=2.0):
    """SciPy, one image and channel at a time, each channel with its own radius."""
    C = x.shape[1]
    sy, sx = np.broadcast_to(sy, (C,)), np.broadcast_to(sx, (C,))
    out = np.empty_like(x)
    for b, c in itertools.product(range(x.shape[0]), range(C)):
        hy, hx = radius(sy[c], std_devs), radius(sx[c], std_devs)
        out[b, c] = ndi.gaussian_filter(
            x[b, c], (sy[c], sx[c]), order=order, radius=(hy, hx), mode=SCIPY_MODE[mode]
        )
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_blur2d_diag_derivatives_match_scipy(padding_mode, method):
    rng = np.random.default_rng(13)
    # (H, W, σy, σx): kernels inside the image, and kernels wider than it on both axes
    for (H, W, sy, sx), order in itertools.product([(9, 12, 1.3, 2.2), (5, 4, 3.1, 4.6)], ORDER_PAIRS):
        x = rng.standard_normal((2, 1, H, W))
        y = sigma.blur2d_diag(torch.tensor(x), sy, sx, order=order, padding_mode=padding_mode, method=method)
        ref = _diag_reference(x, sy, sx, order, padding_mode)
        np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=1e-12, err_msg=f"{H}x{W} order={order}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_blur1d_and_sphere_derivatives_match_scipy(padding_mode, method):
    rng = np.random.default_rng(1)
    mode = SCIPY_MODE[padding_mode]
    for L, s, order in itertools.product([17, 3], [0.7, 2.4], range(4)):
        x = rng.standard_normal((2, 2, L))
        y = sigma.blur1d(torch.tensor(x), s, order=order, padding_mode=padding_mode, method=method)
        ref = ndi.gaussian_filter1d(x, s, order=order, radius=radius(s, 2.0), mode=mode, axis=-1)
        np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=1e-12, err_msg=f"L={L} s={s} order={order}")
    x = rng.standard_normal((1, 1, 8, 11))
    for order in [2, (1, 2)]:
        y = sigma.blur2d_sphere(torch.tensor(x), 1.7, order=order, padding_mode=padding_mode, method=method)
        ref = ndi.gaussian_filter(x[0, 0], 1.7, order=order, radius=radius(1.7, 2.0), mode=mode)
        np.testing.assert_allclose(y[0, 0].numpy(), ref, rtol=0, atol=1e-12)


def test_per_channel_sigmas_each_use_their_own_radius():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 10, 13))
    sy, sx = np.array([0.6, 1.4, 2.6]), np.array([2.1, 0.9, 1.6])
    for order in [(1, 0), (2, 3)]:
        y = sigma.blur2d_diag(
            torch.tensor(x), torch.tensor(sy), torch.tensor(sx), order=order, padding_mode="symmetric"
        )
        np.testing.assert_allclose(
            y.numpy(), _diag_reference(x, sy, sx, order, "symmetric"), rtol=0, atol=1e-12
        )


def test_gauss1d_derivative_kernels_are_scipys_reversed():
    from scipy.ndimage._filters import _gaussian_kernel1d

    for s, order in itertools.product([0.3, 1.0, 2.7], range(4)):
        h = radius(s, 3.0)
        k = sigma.gauss1d(s, 3.0, order=order, dtype=f64)
        np.testing.assert_allclose(k.numpy(), _gaussian_kernel1d(s, order, h)[::-1], rtol=1e-14, atol=1e-15)
        # odd orders are antisymmetric, even orders symmetric
        np.testing.assert_allclose(k.flip(-1).numpy(), (-1) ** order * k.numpy(), rtol=0, atol=1e-15)


def test_derivative_of_a_ramp_and_a_parabola():
    """Correlation sign: order 1 of the ramp x = i is about +1, order 2 of (i - 20)^2 about 2 near i = 20."""
    i = torch.arange(40, dtype=f64)
    for kernel in ["sampled", "erf", "discrete"]:
        d1 = sigma.blur1d(i.view(1, 1, -1), 3.0, 4.0, order=1, kernel=kernel)[0, 0, 15:25]
        assert bool((d1 > 0.99).all() & (d1 < 1.01).all()), kernel
        d2 = sigma.blur1d(((i - 20) ** 2).view(1, 1, -1), 3.0, 4.0, order=2, kernel=kernel)[0, 0, 18:23]
        assert bool(((d2 - 2).abs() < 0.02).all()), kernel


# ----------------------------------------------------------------------------- the erf derivative


def _erf_derivative_reference(s: float, h: int, order: int) -> np.ndarray:
    """``(-1)^m * integral over [j - 1/2, j + 1/2] of the m-th derivative of the N(0, s^2) density``,
    by mpmath quadrature of a numerical derivative, over the order-0 mass of the support."""
    mpmath.mp.dps = 30

    def pdf(u):
        return mpmath.npdf(u, 0, s)

    taps = []
    for j in range(-h, h + 1):
        if order == 0:
            v = mpmath.quad(pdf, [j - 0.5, j + 0.5])
        else:
            v = mpmath.quad(lambda u: mpmath.diff(pdf, u, order), [j - 0.5, j + 0.5])
        taps.append((-1) ** order * v)
    mass = mpmath.ncdf(h + 0.5, 0, s) - mpmath.ncdf(-h - 0.5, 0, s)
    return np.array([float(t / mass) for t in taps])


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("s", [0.35, 1.2, 2.5])
def test_erf_derivative_is_the_pixel_integrated_derivative(s, order):
    h = radius(s, 2.0)
    k = sigma.gauss1d(s, kernel="erf", order=order, dtype=f64)
    np.testing.assert_allclose(k.numpy(), _erf_derivative_reference(s, h, order), rtol=0, atol=1e-13)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_derivative_kernels_agree_across_kernel_types_for_large_sigma(order):
    s = 9.0
    ks = {k: sigma.gauss1d(s, 4.0, kernel=k, order=order, dtype=f64) for k in ["sampled", "erf", "discrete"]}
    scale = float(ks["sampled"].abs().max())
    for k in ["erf", "discrete"]:
        assert float((ks[k] - ks["sampled"]).abs().max()) < 0.02 * scale, k


# ----------------------------------------------------------------------------- gamma


@pytest.mark.parametrize("kernel", ["sampled", "erf", "discrete"])
def test_gamma_multiplies_by_sigma_to_the_gamma_order(kernel):
    x = torch.randn(1, 2, 9, 10, dtype=f64)
    sy, sx = torch.tensor([1.1, 0.6], dtype=f64), torch.tensor([2.3, 1.7], dtype=f64)
    for order, gamma in [((1, 0), 1.0), ((2, 1), 0.75), ((0, 3), 0.5)]:
        plain = sigma.blur2d_diag(x, sy, sx, order=order, kernel=kernel)
        scaled = sigma.blur2d_diag(x, sy, sx, order=order, gamma=gamma, kernel=kernel)
        factor = (sy ** (gamma * order[0]) * sx ** (gamma * order[1])).view(1, 2, 1, 1)
        torch.testing.assert_close(scaled, plain * factor, rtol=1e-13, atol=1e-14)
    # order 0 ignores gamma
    torch.testing.assert_close(sigma.blur2d_diag(x, sy, sx, gamma=1.0), sigma.blur2d_diag(x, sy, sx))


def test_scale_normalized_laplacian_of_a_blob_peaks_near_r_over_sqrt2():
    r = 6.0
    i = torch.arange(64, dtype=f64) - 31.5
    blob = ((i.view(-1, 1) ** 2 + i.view(1, -1) ** 2) <= r * r).to(f64).view(1, 1, 64, 64)
    sig = torch.linspace(2.0, 7.0, 51, dtype=f64)
    resp = []
    for s in sig.tolist():
        lap = sum(
            sigma.blur2d_sphere(blob, s, 3.0, order=o, gamma=1.0, padding_mode="replicate")
            for o in [(2, 0), (0, 2)]
        )
        resp.append(float(-lap[0, 0, 31:33, 31:33].mean()))
    best = float(sig[int(np.argmax(resp))])
    assert abs(best - r / math.sqrt(2)) < 0.3


# ----------------------------------------------------------------------------- derivatives of the blur


def _close_to_jump(s: float) -> bool:
    return abs(2 * s - round(2 * s)) < 0.05


@pytest.mark.parametrize("kernel", ["sampled", "erf", "discrete"])
@pytest.mark.parametrize("method", ["direct", "matmul", "fft"])
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_gradcheck_every_order_method_and_kernel(order, method, kernel):
    x = torch.randn(1, 2, 7, dtype=f64, requires_grad=True)
    log_s = torch.tensor([0.9, 1.6], dtype=f64).log().requires_grad_()

    def f(x, log_s):
        return sigma.blur1d(x, log_s.exp(), order=order, kernel=kernel, method=method, padding_mode="reflect")

    assert gradcheck(f, (x, log_s), fast_mode=True)
    assert gradgradcheck(f, (x, log_s), fast_mode=True)


@pytest.mark.parametrize("kernel", ["sampled", "erf", "discrete"])
@pytest.mark.parametrize("method", ["direct", "matmul", "fft"])
def test_gradcheck_2d_order_pairs(method, kernel):
    x = torch.randn(1, 1, 5, 6, dtype=f64, requires_grad=True)
    ls = torch.tensor([0.8, 1.3], dtype=f64).log().requires_grad_()
    for order in [(1, 2), (3, 0)]:

        def f(x, ls, order=order):
            return sigma.blur2d_diag(
                x,
                ls[0].exp(),
                ls[1].exp(),
                order=order,
                gamma=0.5,
                kernel=kernel,
                method=method,
                padding_mode="replicate",
            )

        assert gradcheck(f, (x, ls), fast_mode=True)
        assert gradgradcheck(f, (x, ls), fast_mode=True)


# ----------------------------------------------------------------------------- modules and errors


def test_modules_equal_the_functions():
    x = torch.randn(2, 3, 9, 11, dtype=f64)
    m = sigma.Blur2d((1.2, 0.7), "diag", order=(1, 2), gamma=1.0, kernel="erf", dtype=f64)
    torch.testing.assert_close(m(x), sigma.blur2d_diag(x, 1.2, 0.7, order=(1, 2), gamma=1.0, kernel="erf"))
    assert "order=(1, 2)" in repr(m) and "gamma=1" in repr(m)
    m = sigma.Blur2d(1.5, "sphere", channels=3, order=2, padding_mode="circular", dtype=f64)
    torch.testing.assert_close(m(x), sigma.blur2d_sphere(x, 1.5, order=2, padding_mode="circular"))
    m1 = sigma.Blur1d(2.0, order=3, radius=5, kernel="discrete", dtype=f64)
    x1 = torch.randn(2, 3, 20, dtype=f64)
    torch.testing.assert_close(m1(x1), sigma.blur1d(x1, 2.0, order=3, radius=5, kernel="discrete"))
    y = m1(x1).sum()
    y.backward()
    assert m1.log_sigma.grad is not None and torch.isfinite(m1.log_sigma.grad)


def test_order_errors():
    x = torch.randn(1, 1, 8, 8)
    for bad in [4, -1]:
        with pytest.raises(ValueError, match="order"):
            sigma.blur2d_sphere(x, 1.0, order=bad)
    for bad in [1.0, True, "1"]:
        with pytest.raises(TypeError, match="order"):
            sigma.blur2d_diag(x, 1.0, 1.0, order=bad)
    with pytest.raises(ValueError, match="order"):
        sigma.blur2d_diag(x, 1.0, 1.0, order=(1, 2, 3))
    with pytest.raises(TypeError, match="order"):
        sigma.blur1d(x[0], 1.0, order=(1, 1))
    with pytest.raises(ValueError, match="gamma"):
        sigma.blur1d(x[0], 1.0, order=1, gamma=float("nan"))
    with pytest.raises(TypeError, match="gamma"):
        sigma.gauss1d(1.0, order=1, gamma="1")
    with pytest.raises(ValueError, match="order must be 0 for structure='full'"):
        sigma.Blur2d(1.0, "full", order=1)
