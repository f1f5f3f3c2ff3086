"""The engines added for the training path: whole-axis matrices for short axes, 2D shifted
sums for dense kernels, the one-node sampled Gaussian, and the tap-gradient dot products.

Each is checked against an independent path (scipy through :mod:`reference`, or another
engine that the scipy tests cover) in float64, and its gradients with gradcheck and
gradgradcheck.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import torch
from torch.autograd import gradcheck, gradgradcheck

import sigma
from sigma import _auto, _conv, _dense, _shift
from sigma.kernels import SIGMA_FLOOR, _gauss1d, _profile

f64 = torch.float64
MODES = ref.PADDING_MODES
OPTS = dict(eps=1e-6, atol=1e-7, rtol=1e-5)


# ----------------------------------------------------------------------------- whole-axis matrices


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("length", [1, 2, 7, _dense.DENSE_MAX_LENGTH])
@pytest.mark.parametrize("h", [0, 1, 4, 40])  # 40: a kernel wider than every axis here
def test_dense_axis_matches_shifted_sums(padding_mode, length, h):
    torch.manual_seed(length + h)
    for shape, dim in (((2, 3, length), -1), ((2, 3, length, 5), -2), ((2, 3, 5, length), -1)):
        x = torch.randn(shape, dtype=f64)
        for w in (torch.rand(2 * h + 1, dtype=f64), torch.rand(3, 2 * h + 1, dtype=f64)):
            expected = _conv.correlate_axis(x, w, dim, padding_mode, "direct")
            got = _dense.dense_axis(x, w, dim, padding_mode)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding_mode", MODES)
def test_short_axes_under_matmul_match_scipy(padding_mode):
    """``method='matmul'`` on axes of at most DENSE_MAX_LENGTH samples takes the whole-axis path."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 9, _dense.DENSE_MAX_LENGTH))
    for sy, sx in ((0.6, 1.7), (3.0, 9.0)):
        expected = ref.blur2d_diag(x, sy, sx, 2.0, padding_mode=padding_mode)
        got = sigma.blur2d_diag(torch.from_numpy(x), sy, sx, 2.0, padding_mode=padding_mode, method="matmul")
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    s = torch.tensor([0.8, 2.5, 4.0], dtype=f64)
    x1 = np.ascontiguousarray(x[:, :, 0])  # (2, 3, 32)
    expected = ref.blur1d(x1, s.numpy(), 2.0, padding_mode=padding_mode)
    got = sigma.blur1d(torch.from_numpy(x1), s, 2.0, padding_mode=padding_mode, method="matmul")
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


def test_dense_path_is_taken_for_short_axes_only(monkeypatch):
    calls = []
    real = _dense.axis_matrix
    monkeypatch.setattr(_dense, "axis_matrix", lambda *a: calls.append(a[1]) or real(*a))
    x = torch.randn(1, 1, 8, _dense.DENSE_MAX_LENGTH + 1, dtype=f64)
    sigma.blur2d_sphere(x, 1.0, method="matmul")
    assert calls == [8]  # the short axis by its matrix, the long one by banded blocks
    calls.clear()
    sigma.blur2d_sphere(x[..., :8], 1.0, method="matmul")
    assert calls == [8]  # a square image blurred isotropically: one matrix for both axes


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_dense_path_gradients(padding_mode):
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 9, dtype=f64, requires_grad=True)
    q = torch.tensor([0.2, 0.9], dtype=f64, requires_grad=True)  # log σ per channel

    def f(x, q):
        return sigma.blur2d_diag(x, q.exp(), (q + 0.3).exp(), padding_mode=padding_mode, method="matmul")

    assert gradcheck(f, (x, q), **OPTS)
    assert gradgradcheck(f, (x, q), **OPTS)


def test_placement_is_cached_and_exact():
    p = _dense.placement(5, 2, "reflect", torch.zeros((), dtype=f64))
    assert p is _dense.placement(5, 2, "reflect", torch.zeros((), dtype=f64))
    assert p.shape == (5, 25) and set(p.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(
        p.sum(0).view(5, 5).sum(1), torch.full((5,), 5.0, dtype=f64)
    )  # every tap reads one sample


# ----------------------------------------------------------------------------- 2D shifted sums


@pytest.mark.parametrize("padding_mode", MODES)
def test_dense_2d_shifted_sums_match_the_fft(padding_mode):
    torch.manual_seed(1)
    for hw, hs in (((5, 7), (1, 2)), ((2, 3), (3, 1)), ((9, 9), (5, 5))):
        x = torch.randn(2, 3, *hw, dtype=f64)
        for w in (
            torch.rand(2 * hs[0] + 1, 2 * hs[1] + 1, dtype=f64),
            torch.rand(3, 2 * hs[0] + 1, 2 * hs[1] + 1, dtype=f64),
        ):
            expected = _conv.correlate2d(x, w, padding_mode, "fft")
            torch.testing.assert_close(
                _conv.correlate2d(x, w, padding_mode, "direct"), expected, rtol=0, atol=1e-10
            )


def test_dense_2d_shifted_sums_gradients_and_no_conv2d_on_cpu(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("depthwise conv2d used on CPU")

    monkeypatch.setattr(_conv.F, "conv2d", refuse)
    torch.manual_seed(2)
    x = torch.randn(2, 3, 6, 5, dtype=f64, requires_grad=True)
    for w in (
        torch.rand(3, 5, dtype=f64, requires_grad=True),
        torch.rand(3, 3, 5, dtype=f64, requires_grad=True),
    ):
        for mode in ("zeros", "reflect"):
            assert gradcheck(lambda x, w, mode=mode: _conv.correlate2d(x, w, mode, "direct"), (x, w))
            assert gradgradcheck(lambda x, w, mode=mode: _conv.correlate2d(x, w, mode, "direct"), (x, w))
    cov = sigma.rotated_cov(1.2, 0.6, 0.5, dtype=f64).requires_grad_()
    sigma.blur2d_full(x, cov, method="direct").sum().backward()
    assert cov.grad is not None and torch.isfinite(cov.grad).all()


# ----------------------------------------------------------------------------- one-node Gaussian


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_sampled_gaussian_node_equals_the_formula(shape):
    torch.manual_seed(3)
    s = (torch.rand(shape, dtype=f64) * 3 + 0.3).requires_grad_()
    for h in (1, 4, 9):
        e = _profile(s, h, "sampled")
        torch.testing.assert_close(_gauss1d(s, h), e / e.sum(-1, keepdim=True), rtol=0, atol=1e-15)
        assert gradcheck(lambda s, h=h: _gauss1d(s, h), (s,))
        assert gradgradcheck(lambda s, h=h: _gauss1d(s, h), (s,))
    assert _gauss1d(s, 3).grad_fn.name().startswith("_SampledGauss")  # one node


def test_sampled_gaussian_below_the_floor_has_zero_gradient():
    s = torch.tensor([SIGMA_FLOOR / 10, 0.5], dtype=f64, requires_grad=True)
    w = _gauss1d(s, 2)
    (g,) = torch.autograd.grad((w * torch.arange(5.0, dtype=f64) ** 2).sum(), s)  # the variance
    assert g[0] == 0 and g[1] != 0
    torch.testing.assert_close(w[0], torch.tensor([0, 0, 1, 0, 0], dtype=f64))


def test_sampled_gaussian_node_under_vmap():
    s = torch.tensor([0.7, 1.5, 3.0], dtype=f64)
    got = torch.func.vmap(lambda v: _gauss1d(v, 4))(s)
    torch.testing.assert_close(got, _gauss1d(s, 4), rtol=0, atol=1e-15)
    grads = torch.func.vmap(torch.func.grad(lambda v: _gauss1d(v, 4)[0]))(s)
    for v, g in zip(s, grads, strict=True):
        expected = torch.autograd.functional.jacobian(lambda u: _gauss1d(u, 4)[0], v)
        torch.testing.assert_close(g, expected)


# ----------------------------------------------------------------------------- tap-gradient dot products


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_dot_off_alignment_equals_torch_dot(dtype):
    torch.manual_seed(4)
    a, b = torch.randn(10_001, dtype=dtype), torch.randn(10_001, dtype=dtype)
    for o in (0, 1, 3, 16):
        got = _shift._dot(a[o:], b[: a.numel() - o])
        expected = torch.dot(a[o:].double(), b[: a.numel() - o].double())
        tol = 1e-3 if dtype == torch.float32 else 1e-10
        assert abs(float(got) - float(expected)) <= tol * float(a.abs().sum())
        assert got.shape == () and got.dtype == dtype


@pytest.mark.parametrize("k", [3, _shift.FLAT_TAPS_MAX_LAST_AXIS, _shift.FLAT_TAPS_MAX_LAST_AXIS + 2])
def test_last_axis_tap_gradients_by_either_path(k):
    """Dot products (short kernels) and banded products (long ones) give the same kernel gradient."""
    from sigma._band import band_tap_grads

    torch.manual_seed(5)
    g, x = torch.randn(2, 3, 7, 40, dtype=f64), torch.randn(2, 3, 7, 40, dtype=f64)
    flat = _shift._tap_grads_flat(g, x, k, -1)
    torch.testing.assert_close(flat, band_tap_grads(g, x, k, -1, False), rtol=0, atol=1e-11)


# ----------------------------------------------------------------------------- the auto rule


def _chosen(monkeypatch, call) -> list[str]:
    """The engines one call of ``call()`` runs, by name."""
    seen = []
    for name in (
        "dense_axis",
        "dense_separable",
        "_spatial_axis",
        "fft_axis",
        "fft_2d",
        "_direct_2d",
        "_band_2d",
    ):
        real = getattr(_conv, name)
        monkeypatch.setattr(_conv, name, lambda *a, _n=name, _r=real, **k: seen.append(_n) or _r(*a, **k))
    call()
    return seen


def test_auto_takes_whole_axis_matrices_for_small_images(monkeypatch):
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    assert _chosen(monkeypatch, lambda: sigma.blur2d_sphere(x, 1.0)) == ["dense_separable"]
    x = torch.randn(1, 3, 8, 300)  # one short axis: its matrix, shifted sums along the long one
    assert _chosen(monkeypatch, lambda: sigma.blur2d_sphere(x, 1.0)) == ["_spatial_axis", "dense_axis"]


def test_auto_cost_model_weighs_batch_kernel_and_grad_case():
    def dense(numel, lengths, taps, grad, device):
        return _auto.dense_pays(numel, lengths, taps, grad, device, _auto.BUILTIN)

    assert dense(1 * 3 * 64 * 64, (64, 64), (5, 5), False, "cpu")  # few elements: few operations win
    assert not dense(8 * 3 * 256 * 256, (256, 256), (5, 5), True, "cpu")  # too long an axis
    assert not dense(64 * 64 * 128 * 128, (128, 128), (5, 5), False, "cpu")  # a large batch, a short kernel
    assert dense(64 * 64 * 128 * 128, (128, 128), (129, 129), False, "cpu")  # the same batch, a long kernel
    assert not dense(1 * 3 * 64 * 64, (64, 64), (5, 5), False, "cuda")  # CPU constants only
    assert dense(1 * 3 * 16 * 16, (16, 16), (5, 5), False, "cuda")  # short axes on every device
    # the backward pass weighs more for the shifted sums: a case the forward leaves to them
    numel = 8 * 3 * 64 * 64
    assert not dense(numel, (64, 64), (5, 5), False, "cpu") and dense(numel, (64, 64), (5, 5), True, "cpu")


def test_auto_routes_small_dense_kernels_to_shifted_sums(monkeypatch):
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    small = sigma.rotated_cov(0.5, 0.25, 0.5).requires_grad_()  # a 3 x 3 kernel
    assert _chosen(monkeypatch, lambda: sigma.blur2d_full(x, small)) == ["_direct_2d"]
    big = sigma.rotated_cov(4.0, 2.0, 0.5)
    assert _chosen(monkeypatch, lambda: sigma.blur2d_full(x, big)) == ["fft_2d"]
    mid = sigma.rotated_cov(2.0, 1.0, 0.5)  # 7 x 9 = 63 taps: shifted sums forward only
    with torch.no_grad():
        assert _chosen(monkeypatch, lambda: sigma.blur2d_full(x, mid)) == ["_direct_2d"]
    assert _chosen(monkeypatch, lambda: sigma.blur2d_full(x, mid.requires_grad_())) == ["fft_2d"]


# ----------------------------------------------------------------------------- banded products when traced


@pytest.mark.parametrize("per_channel", [False, True])
def test_unfolded_banded_products_equal_the_blocks(per_channel):
    from sigma._band import band_correlate, band_correlate_unfolded

    torch.manual_seed(6)
    for shape, dim in (((2, 3, 100), -1), ((2, 3, 70, 9), -2), ((2, 3, 9, 70), -1)):
        x = torch.randn(shape, dtype=f64)
        for k in (3, 21, 65, 141):  # within a block, across blocks, longer than a block and than the axis
            w = torch.rand((3, k) if per_channel else (k,), dtype=f64)
            torch.testing.assert_close(
                band_correlate_unfolded(x, w, dim), band_correlate(x, w, dim), rtol=0, atol=1e-12
            )


def test_matmul_under_vmap_keeps_the_banded_products(monkeypatch):
    """Under vmap, ``'matmul'`` multiplies unfolded windows (no shifted sums with one operation per tap)."""
    from sigma import _band

    torch.manual_seed(7)
    x = torch.randn(2, 3, 70, 40, dtype=f64)
    s = torch.tensor([5.0, 9.0], dtype=f64)
    expected = torch.stack([sigma.blur2d_sphere(x, v, method="matmul", radius=20) for v in s])
    calls = []
    real = _band.band_correlate_unfolded
    monkeypatch.setattr(_conv, "band_correlate_unfolded", lambda *a: calls.append(1) or real(*a))
    got = torch.func.vmap(lambda v: sigma.blur2d_sphere(x, v, method="matmul", radius=20))(s)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert len(calls) == 2  # one per axis
    grads = torch.func.vmap(
        torch.func.grad(lambda v: sigma.blur2d_sphere(x, v, method="matmul", radius=20).sum())
    )(s)
    for v, g in zip(s, grads, strict=True):
        v = v.clone().requires_grad_()
        (e,) = torch.autograd.grad(sigma.blur2d_sphere(x, v, method="matmul", radius=20).sum(), v)
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["direct", "matmul"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_compiled_blur_calls_the_eager_engines_as_operators(method, per_channel):
    """Under torch.compile the spatial engines are single opaque operators with exact gradients
    (torch.compile itself offers no double backward; the operators' own second derivatives are
    checked by the opcheck below)."""
    torch.manual_seed(8)
    x = torch.randn(2, 3, 40, 45, dtype=f64, requires_grad=True)
    s = torch.tensor([3.0, 5.0, 7.0] if per_channel else 4.0, dtype=f64, requires_grad=True)

    def f(x, s):
        return sigma.blur2d_sphere(x, s, method=method, radius=14)

    torch._dynamo.reset()
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    y = compiled(x, s)
    torch.testing.assert_close(y, f(x, s), rtol=0, atol=1e-12)
    loss = lambda fn: fn(x, s).square().sum()  # noqa: E731
    g1 = torch.autograd.grad(loss(compiled), (x, s))
    e1 = torch.autograd.grad(loss(f), (x, s))
    torch.testing.assert_close(g1, e1, rtol=1e-10, atol=1e-12)
    gm = torch._dynamo.explain(f)(x, s)
    assert gm.graph_break_count == 0


def test_custom_operators_pass_the_opcheck():
    from sigma import _ops

    torch.manual_seed(9)
    x, w = torch.randn(2, 3, 11, 13, dtype=f64), torch.rand(5, dtype=f64)
    for engine in ("direct", "matmul"):
        torch.library.opcheck(_ops.correlate_axis, (x, w, -1, engine))
        torch.library.opcheck(_ops.correlate_axis, (x, torch.rand(3, 5, dtype=f64), -2, engine))
        torch.library.opcheck(_ops.tap_grads, (torch.randn_like(x), x, 5, -1, False, engine))
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
        assert gradgradcheck(lambda a, b, e=engine: _ops.correlate_axis(a, b, -1, e), (xg, wg))


def test_compiled_full_covariance_blur_uses_the_2d_operator():
    from sigma import _ops

    torch.manual_seed(10)
    x = torch.randn(2, 3, 20, 22, dtype=f64, requires_grad=True)
    cov = sigma.rotated_cov(1.0, 0.5, 0.4, dtype=f64).requires_grad_()

    def f(x, cov):
        return sigma.blur2d_full(x, cov, method="direct", radius=(3, 2))

    torch._dynamo.reset()
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, cov), f(x, cov), rtol=0, atol=1e-12)
    g = torch.autograd.grad(compiled(x, cov).square().sum(), (x, cov))
    e = torch.autograd.grad(f(x, cov).square().sum(), (x, cov))
    torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    w = torch.rand(3, 7, 5, dtype=f64)
    torch.library.opcheck(_ops.correlate_2d, (x.detach(), w))
    torch.library.opcheck(_ops.tap_grads_2d, (torch.randn_like(x), x.detach(), 7, 5, True))
    # gradgradcheck perturbs every input element: a small image, the same 7 x 5 kernel
    xg, wg = x.detach()[:1, :, :9, :8].clone().requires_grad_(), w[0].clone().requires_grad_()
    assert gradgradcheck(_ops.correlate_2d, (xg, wg))


def test_whole_axis_matrix_operators_pass_the_opcheck_and_gradcheck():
    # while compiling, the short-axis matrices run as opaque operators (inductor fails on their
    # 4D views with symbolic sizes ahead of a convolution); their gradients are hand-written
    from sigma import _ops

    torch.manual_seed(11)
    x = torch.randn(2, 3, 7, 6, dtype=f64)
    ay, ax = torch.randn(3, 7, 7, dtype=f64), torch.randn(6, 6, dtype=f64)
    torch.library.opcheck(_ops.matrices_2d, (x, ay, ax))
    torch.library.opcheck(_ops.axis_matrix_product, (x, ax, -1))
    torch.library.opcheck(_ops.axis_matrix_product, (x, ay, 2))
    torch.library.opcheck(_ops.axis_matrix_product, (x[..., 0], ay, -1))
    args = [t.clone().requires_grad_() for t in (x, ay, ax)]
    assert gradcheck(_ops.matrices_2d, args)
    assert gradcheck(lambda a, m: _ops.axis_matrix_product(a, m, -2), args[:2])
    assert gradcheck(lambda a, m: _ops.axis_matrix_product(a, m, -1), (args[0], args[2]))


@pytest.mark.parametrize("size", [24, 40])  # whole-axis matrices / the spatial engines
def test_compiled_blur_then_convolution_follows_a_new_size(size):
    # a blur feeding a convolution, compiled, then called at a new size (a symbolic recompile):
    # inductor 2.13 failed here on the matrices' views ("cannot determine truth value")
    torch.manual_seed(12)
    model = torch.nn.Sequential(sigma.Blur2d(1.5, radius=3), torch.nn.Conv2d(3, 4, 3))
    torch._dynamo.reset()
    compiled = torch.compile(model)
    for n in (size, size + 8):
        x = torch.randn(2, 3, n, n)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
