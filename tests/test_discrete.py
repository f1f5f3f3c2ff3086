"""The discrete Gaussian kernel (``kernel='discrete'``): values, σ-gradient, derivatives, semigroup.

References are ``scipy.special.ive`` (``e^{-t} I_n(t)``) evaluated independently in NumPy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import radius
from scipy.special import ive
from torch.autograd import gradcheck, gradgradcheck

import sigma
from sigma._discrete import discrete_taps

f64 = torch.float64
FEW = settings(max_examples=25, deadline=None, database=None, derandomize=True)
SIGMAS = [1e-3, 0.02, 0.3, 0.7, 1.0, 2.5, 10.0, 60.0, 400.0]


def _reference(s: float, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized T(n; s^2) on -h..h and its σ-derivative, from ive."""
    t = s * s
    n = np.arange(-h - 1, h + 2)
    T = ive(n, t)
    inner = T[1:-1]
    S = inner.sum()
    dT = 0.5 * (T[:-2] + T[2:]) - inner  # heat equation
    k = inner / S
    dk_dt = dT / S - k * dT.sum() / S
    return k, 2 * s * dk_dt


@pytest.mark.parametrize("s", SIGMAS)
def test_kernel_and_sigma_gradient_match_ive(s):
    h = radius(s, 2.0)
    ref, dref = _reference(s, h)
    st_ = torch.tensor(s, dtype=f64, requires_grad=True)
    k = sigma.gauss1d(st_, kernel="discrete")
    np.testing.assert_allclose(k.detach().numpy(), ref, rtol=1e-11, atol=1e-13)
    # the σ-gradient of every tap, through projections on a few random tap weights
    v = torch.randn(3, k.shape[-1], dtype=f64, generator=torch.Generator().manual_seed(0))
    for w in v:
        (g,) = torch.autograd.grad((k * w).sum(), st_, retain_graph=True)
        assert abs(float(g) - float(w.numpy() @ dref)) <= 1e-12 * max(
            1.0, float(np.abs(w.numpy() * dref).sum())
        )
    if h < 10:  # and the whole Jacobian where it is small
        (jac,) = torch.autograd.functional.jacobian(lambda v: sigma.gauss1d(v, kernel="discrete"), (st_,))
        np.testing.assert_allclose(jac.numpy(), dref, rtol=1e-10, atol=1e-12)


def test_unnormalized_taps_match_ive_up_to_the_largest_radius():
    for s in [1e-3, 0.5, 3.0, 40.0, 700.0, sigma.MAX_RADIUS / 2]:
        h = radius(s, 2.0)
        k = discrete_taps(torch.tensor(s, dtype=f64), h).numpy()
        ref = ive(np.arange(-h, h + 1), s * s)
        np.testing.assert_allclose(k, ref, rtol=1e-10, atol=1e-14, err_msg=f"s={s}")
    # the largest σ as a kernel of the blurs
    s = sigma.MAX_RADIUS / 2
    k = sigma.gauss1d(s, kernel="discrete", dtype=f64).numpy()
    assert k.shape == (2 * sigma.MAX_RADIUS + 1,)
    np.testing.assert_allclose(k, _reference(s, sigma.MAX_RADIUS)[0], rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("s", SIGMAS + [2000.0])
def test_float32_keeps_every_tap_relatively_exact(s):
    h = radius(s, 2.0)
    st_ = torch.tensor(s, dtype=torch.float32, requires_grad=True)
    k = sigma.gauss1d(st_, kernel="discrete")
    assert k.dtype == torch.float32
    ref = _reference(float(np.float32(s)), h)[0]
    np.testing.assert_allclose(k.detach().numpy(), ref, rtol=2e-5, atol=0)
    k.pow(2).sum().backward()
    assert torch.isfinite(st_.grad)


def test_per_channel_sigmas_each_cut_at_their_own_radius():
    s = torch.tensor([0.4, 1.6, 3.3], dtype=f64)
    k = sigma.gauss1d(s, 2.0, kernel="discrete")
    h = radius(3.3, 2.0)
    for c, v in enumerate(s.tolist()):
        hc = radius(v, 2.0)
        row = np.zeros(2 * h + 1)
        row[h - hc : h + hc + 1] = _reference(v, hc)[0]
        np.testing.assert_allclose(k[c].numpy(), row, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("s", [0.05, 0.6, 2.2])
def test_derivatives_are_central_differences_of_the_discrete_gaussian(s, order):
    h = radius(s, 3.0)
    n = np.arange(-h - 2, h + 3)
    T = ive(n, s * s)
    S = T[2:-2].sum()
    d1 = lambda w: 0.5 * (w[:-2] - w[2:])  # noqa: E731  correlation form: (y[i+1] - y[i-1]) / 2
    d2 = lambda w: w[:-2] - 2 * w[1:-1] + w[2:]  # noqa: E731
    ref = {1: d1(T)[1:-1], 2: d2(T)[1:-1], 3: d1(d2(T))}[order] / S
    k = sigma.gauss1d(s, 3.0, kernel="discrete", order=order, dtype=f64)
    np.testing.assert_allclose(k.numpy(), ref, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("s", [1e-3, 0.1, 0.8, 3.0])
def test_gradcheck_of_the_kernel_in_sigma(s):
    ls = torch.tensor(math.log(s), dtype=f64, requires_grad=True)
    for order in range(4):

        def f(ls, order=order):
            return sigma.gauss1d(ls.exp(), 3.0, kernel="discrete", order=order, radius=radius(s, 3.0) + 1)

        assert gradcheck(f, (ls,))
        assert gradgradcheck(f, (ls,))


def test_variance_is_sigma_squared_at_every_scale():
    for s in [0.05, 0.2, 0.5, 1.0, 3.0]:
        k = sigma.gauss1d(s, kernel="discrete", radius=30, dtype=f64)
        n = torch.arange(-30, 31, dtype=f64)
        assert abs(float((n * n * k).sum()) - s * s) < 1e-12
    # the sampled kernel collapses below half a pixel: its variance is far from σ²
    k = sigma.gauss1d(0.3, kernel="sampled", radius=30, dtype=f64)
    assert float((n * n * k).sum()) < 0.5 * 0.3**2


@FEW
@given(st.floats(1e-3, 2.0), st.floats(1e-3, 2.0), st.integers(0, 2**16))
def test_semigroup_blur_t1_then_t2_is_blur_t1_plus_t2(s1, s2, seed):
    x = torch.randn(2, 1, 64, dtype=f64, generator=torch.Generator().manual_seed(seed))
    opts = dict(kernel="discrete", padding_mode="circular", radius=24)
    twice = sigma.blur1d(sigma.blur1d(x, s1, **opts), s2, **opts)
    once = sigma.blur1d(x, math.hypot(s1, s2), **opts)
    torch.testing.assert_close(twice, once, rtol=0, atol=1e-11)


def test_semigroup_fails_for_the_sampled_kernel_at_small_sigma():
    x = torch.randn(1, 1, 64, dtype=f64, generator=torch.Generator().manual_seed(0))
    opts = dict(padding_mode="circular", radius=24)
    twice = sigma.blur1d(sigma.blur1d(x, 0.4, **opts), 0.4, **opts)
    once = sigma.blur1d(x, math.hypot(0.4, 0.4), **opts)
    assert float((twice - once).abs().max()) > 1e-2


def test_discrete_wherever_kernel_is_accepted():
    x = torch.randn(2, 3, 12, 13, dtype=f64)
    ref = sigma.blur2d_sphere(x, 1.3, kernel="discrete", padding_mode="reflect")
    m = sigma.Blur2d(1.3, kernel="discrete", padding_mode="reflect", dtype=f64)
    torch.testing.assert_close(m(x), ref)
    smap = torch.full((2, 1, 12, 13), 1.3, dtype=f64)
    local = sigma.blur2d_local_sphere(x, smap, kernel="discrete", padding_mode="reflect")
    torch.testing.assert_close(local, ref)
    dog = sigma.dog2d(x, 0.8, 1.3, kernel="discrete")
    h = radius(1.3, 2.0)
    expect = sigma.blur2d_sphere(x, 0.8, kernel="discrete", radius=h) - sigma.blur2d_sphere(
        x, 1.3, kernel="discrete", radius=h
    )
    torch.testing.assert_close(dog, expect)
    diag = sigma.Blur2d((0.9, 2.1), "diag", kernel="discrete", dtype=f64)
    torch.testing.assert_close(diag(x), sigma.blur2d_diag(x, 0.9, 2.1, kernel="discrete"))
    with pytest.raises(ValueError, match="kernel"):
        sigma.Blur2d(1.0, "full", kernel="discrete")


def test_sigma_to_zero_returns_the_input_with_finite_gradients():
    x = torch.randn(1, 2, 9, dtype=f64)
    s = torch.tensor(1e-4, dtype=f64, requires_grad=True)
    y = sigma.blur1d(x, s, kernel="discrete")
    torch.testing.assert_close(y, x, rtol=0, atol=1e-7)
    y.sum().backward()
    assert torch.isfinite(s.grad)


def test_discrete_kernel_in_forward_mode():
    """Its taps are computed without autograd, so forward mode needs the kernel's own jvp rule
    (the heat equation, as in its backward): ``jacfwd`` equals ``jacrev`` for σ per channel,
    derivative kernels included, and the Hessian of a loss is the same forward over reverse as
    reverse over reverse."""
    sv = torch.tensor([0.6, 1.4], dtype=f64)
    for order in (0, 2):

        def taps(s, order=order):
            return sigma.gauss1d(s, kernel="discrete", order=order, radius=5)

        torch.testing.assert_close(
            torch.func.jacfwd(taps)(sv), torch.func.jacrev(taps)(sv), rtol=1e-12, atol=1e-14
        )
    x = torch.randn(1, 2, 12, dtype=f64)

    def loss(s):
        return sigma.blur1d(x, s, kernel="discrete", radius=4).square().sum()

    torch.testing.assert_close(
        torch.func.hessian(loss)(sv), torch.autograd.functional.hessian(loss, sv), rtol=1e-10, atol=1e-12
    )


def test_discrete_kernel_under_torch_func_and_compile():
    x = torch.randn(2, 3, 16, dtype=f64)

    def loss(s):
        return sigma.blur1d(x, s, kernel="discrete", order=1, radius=3).pow(2).sum()

    s = torch.tensor(1.2, dtype=f64, requires_grad=True)
    loss(s).backward()
    torch.testing.assert_close(torch.func.grad(loss)(torch.tensor(1.2, dtype=f64)), s.grad)
    sv = torch.tensor([0.5, 1.0, 2.0], dtype=f64)
    batched = torch.func.vmap(lambda v: sigma.gauss1d(v, kernel="discrete", order=2, radius=4))(sv)
    torch.testing.assert_close(batched, sigma.gauss1d(sv, kernel="discrete", order=2, radius=4))
    m = sigma.Blur1d(1.0, kernel="discrete", radius=3, order=1, dtype=f64)
    torch.testing.assert_close(torch.compile(m, fullgraph=True)(x), m(x))
