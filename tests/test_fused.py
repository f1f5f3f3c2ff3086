"""The ``'fused'`` engine (:mod:`sigma._fused`, :mod:`sigma._fused2d`): compiled loops over reused
bordered buffers.

Its correlations are checked against ``scipy.ndimage.correlate1d`` (through the independent mode
table of :mod:`reference`) in float64, kernels wider than the axis against the eager shifted
sums, and its gradients with gradcheck and gradgradcheck. Every new kernel size, dtype or
layout costs a compile of a few seconds, so the tests share a few: k = 3 and 7 in float64
(plus the sizes that folding a wide kernel produces), and a small float32 set.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
import torch
from torch.autograd import gradcheck, gradgradcheck

from sigma import _auto, _conv, _fused, _fused2d

f64 = torch.float64
MODES = ref.PADDING_MODES
OPTS = dict(eps=1e-6, atol=1e-7, rtol=1e-5)

#: (shape, dim) of the correlations checked: a 1D signal along its axis, images both ways
CASES = [((2, 3, 11), -1), ((2, 3, 9, 10), -2), ((2, 3, 9, 10), -1)]


@pytest.fixture
def compiled():
    """Skip a test of the compiled loops where ``torch.compile`` cannot run (no C++ compiler)."""
    if not _fused.available():
        pytest.skip("torch.compile cannot run here: the fused engine falls back to eager")


@pytest.fixture
def unavailable():
    """The compiled loops forced off (as without a C++ compiler); restored afterwards."""
    _fused._set_available(False)
    yield
    _fused._set_available(None)


def scipy_corr(x: torch.Tensor, w: torch.Tensor, dim: int, mode: str) -> np.ndarray:
    """``scipy.ndimage.correlate1d`` of ``x`` (B, C, ...) with ``w`` (k,), or (C, k) channel by channel."""
    xn, wn, m = x.detach().numpy(), w.detach().numpy(), ref.SCIPY_MODE[mode]
    if wn.ndim == 1:
        return ndi.correlate1d(xn, wn, axis=dim, mode=m, cval=0.0)
    return np.stack(
        [ndi.correlate1d(xn[:, c], wn[c], axis=dim, mode=m, cval=0.0) for c in range(wn.shape[0])], 1
    )


def kernels(k: int, channels: int, seed: int) -> list[torch.Tensor]:
    """A shared (k,) and a per-channel (C, k) kernel, float64, not symmetric."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(k, dtype=f64, generator=g), torch.randn(channels, k, dtype=f64, generator=g)]


# ----------------------------------------------------------------------------- against SciPy


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [3, 7])
def test_matches_scipy(compiled, mode, k):
    """Every mode, both kernel layouts, 1D along its axis and images along both axes: the compiled
    correlation equals SciPy's ``correlate1d`` to 1e-12 in float64."""
    torch.manual_seed(k)
    for shape, dim in CASES:
        x = torch.randn(shape, dtype=f64)
        for w in kernels(k, shape[1], seed=k):
            got = _fused.fused_axis(x, w, dim, mode)
            np.testing.assert_allclose(got.numpy(), scipy_corr(x, w, dim, mode), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_kernel_wider_than_axis_matches_shifted_sums(compiled, mode):
    """A 7-tap kernel on axes of 2 and 1 samples (folded, or padded by more than the axis through
    the index map) equals the eager shifted sums of :mod:`sigma._conv` and SciPy."""
    torch.manual_seed(5)
    for shape, dim in (((2, 3, 2), -1), ((2, 3, 1, 4), -2)):
        x = torch.randn(shape, dtype=f64)
        for w in kernels(7, 3, seed=5):
            got = _fused.fused_axis(x, w, dim, mode)
            expected = _conv.correlate_axis(x, w, dim, mode, "direct")
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got.numpy(), scipy_corr(x, w, dim, mode), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_separable_matches_scipy(compiled, mode):
    """``fused_separable`` (both axes in one compiled graph over a buffer bordered in both axes)
    equals SciPy's row pass with ``wx`` then column pass with ``wy``, shared and per-channel
    kernels of different sizes, and kernels wider than the image (folded)."""
    torch.manual_seed(2)
    for shape in ((2, 3, 9, 10), (1, 3, 2, 3)):
        x = torch.randn(shape, dtype=f64)
        for wy, wx in zip(kernels(7, 3, seed=2), kernels(3, 3, seed=3), strict=True):
            expected = scipy_corr(torch.from_numpy(scipy_corr(x, wx, -1, mode)), wy, -2, mode)
            got = _fused2d.fused_separable(x, wy, wx, mode)
            np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_separable_gradients_match_shifted_sums(compiled, mode):
    """The one-graph backward (input gradient over the bordered extent folded back, both tap
    gradients) against the eager engine's, for each subset of inputs that needs a gradient."""
    torch.manual_seed(5)
    x0 = torch.randn(2, 3, 9, 10, dtype=f64)
    wy0, wx0 = kernels(7, 3, seed=5)[1], kernels(5, 3, seed=6)[0]
    g = torch.randn(2, 3, 9, 10, dtype=f64)
    for need in ((True, True, True), (True, False, False), (False, True, True)):
        args = [t.clone().requires_grad_(n) for t, n in zip((x0, wy0, wx0), need, strict=True)]
        wanted = [a for a in args if a.requires_grad]
        got = torch.autograd.grad(_fused2d.fused_separable(*args, mode), wanted, g)
        expected = torch.autograd.grad(_conv.correlate_separable(*args, mode, "direct"), wanted, g)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_separable_gradcheck(compiled, mode):
    """gradcheck (the compiled backward; forward mode: the plain expression) and gradgradcheck
    (the plain one) in x, wy and wx."""
    torch.manual_seed(13)
    x = torch.randn(1, 2, 5, 4, dtype=f64, requires_grad=True)
    wy = torch.randn(2, 3, dtype=f64, requires_grad=True)
    wx = torch.randn(3, dtype=f64, requires_grad=True)

    def f(x, wy, wx):
        return _fused2d.fused_separable(x, wy, wx, mode)

    assert gradcheck(f, (x, wy, wx), check_forward_ad=True, **OPTS)
    assert gradgradcheck(f, (x, wy, wx), **OPTS)


def test_float32_agrees_with_float64(compiled):
    """In float32 the output and both gradients agree with float64 to about 1e-5, relative."""
    torch.manual_seed(3)
    shape, dim = (2, 3, 9, 10), -2
    x64 = torch.randn(shape, dtype=f64, requires_grad=True)
    w64 = torch.rand(7, dtype=f64, requires_grad=True)
    x32 = x64.detach().float().requires_grad_()
    w32 = w64.detach().float().requires_grad_()
    g = torch.randn(shape, dtype=f64)
    y64, y32 = _fused.fused_axis(x64, w64, dim, "reflect"), _fused.fused_axis(x32, w32, dim, "reflect")
    torch.testing.assert_close(y32.double(), y64.detach(), rtol=1e-5, atol=1e-5)
    y64.backward(g)
    y32.backward(g.float())
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w32.grad.double(), w64.grad, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    ("mode", "shape", "dim", "per_channel"),
    [("zeros", (2, 2, 6), -1, False), ("reflect", (1, 2, 5, 4), -2, True)],
)
def test_gradients(compiled, mode, shape, dim, per_channel):
    """gradcheck and gradgradcheck in x and w: the compiled backward (adjoint, border
    contributions, per-line tap sums) and the differentiable one used for double backward, for
    a zero and a mirrored boundary, a shared and a per-channel kernel, along both kinds of axis;
    forward mode (the plain expression) too."""
    torch.manual_seed(4)
    x = torch.randn(shape, dtype=f64, requires_grad=True)
    w = torch.randn(*((2,) if per_channel else ()), 3, dtype=f64, requires_grad=True)

    def f(x, w):
        return _fused.fused_axis(x, w, dim, mode)

    assert gradcheck(f, (x, w), check_forward_ad=True, **OPTS)
    assert gradgradcheck(f, (x, w), **OPTS)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_shifted_sums(compiled, mode):
    """Against the eager engine's gradients in x and w, a kernel wider than the axis included
    (its border contributions then land on positions read several times)."""
    torch.manual_seed(6)
    for shape in ((2, 3, 9, 10), (2, 3, 2)):
        x = torch.randn(shape, dtype=f64, requires_grad=True)
        w = kernels(7, 3, seed=6)[0].requires_grad_()
        g = torch.randn(shape, dtype=f64)
        got = torch.autograd.grad(_fused.fused_axis(x, w, -1, mode), (x, w), g)
        expected = torch.autograd.grad(_conv.correlate_axis(x, w, -1, mode, "direct"), (x, w), g)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


# ----------------------------------------------------------------------------- buffers


def test_interleaved_forwards_and_backwards(compiled):
    """The bordered buffers are scratch only: two forwards through the same buffers, then their
    backwards in reverse order, give each call its own gradients."""
    torch.manual_seed(7)
    shape, dim, mode = (2, 3, 9, 10), -1, "reflect"
    xs = [torch.randn(shape, dtype=f64, requires_grad=True) for _ in range(2)]
    ws = [w.requires_grad_() for w in kernels(7, 3, seed=7)[:1] + kernels(7, 3, seed=8)[:1]]
    gs = [torch.randn(shape, dtype=f64) for _ in range(2)]
    ys = [_fused.fused_axis(x, w, dim, mode) for x, w in zip(xs, ws, strict=True)]
    for i in (1, 0):
        ys[i].backward(gs[i])
    for x, w, g in zip(xs, ws, gs, strict=True):
        xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
        expected = torch.autograd.grad(_conv.correlate_axis(xr, wr, dim, mode, "direct"), (xr, wr), g)
        torch.testing.assert_close(x.grad, expected[0], rtol=0, atol=1e-11)
        torch.testing.assert_close(w.grad, expected[1], rtol=0, atol=1e-11)


def test_no_grad_and_inference_mode(compiled):
    """Forwards under ``torch.no_grad()`` and ``torch.inference_mode()`` are right, and a buffer
    first made in inference mode still serves a normal call afterwards."""
    _fused._clear_buffers()
    torch.manual_seed(8)
    shape, dim, mode = (2, 3, 9, 10), -1, "symmetric"
    x = torch.randn(shape, dtype=f64)
    w = kernels(7, 3, seed=9)[0]
    expected = scipy_corr(x, w, dim, mode)
    with torch.inference_mode():
        np.testing.assert_allclose(_fused.fused_axis(x, w, dim, mode).numpy(), expected, rtol=0, atol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(_fused.fused_axis(x, w, dim, mode).numpy(), expected, rtol=0, atol=1e-12)
    xg = x.clone().requires_grad_()
    y = _fused.fused_axis(xg, w, dim, mode)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=0, atol=1e-12)
    y.sum().backward()
    assert xg.grad is not None and xg.grad.shape == shape


def test_new_shapes_compile_once(compiled):
    """After the first shape (static code) and a second (symbolic sizes), further shapes compile
    nothing new, so varying batch or image sizes cost one recompile per loop, not one each."""
    torch.manual_seed(9)
    w = kernels(7, 3, seed=10)[0]
    for shape in ((2, 3, 9, 10), (3, 3, 7, 12)):
        _fused.fused_axis(torch.randn(shape, dtype=f64), w, -1, "circular")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for shape in ((4, 3, 6, 11), (2, 3, 13, 8)):
        x = torch.randn(shape, dtype=f64)
        np.testing.assert_allclose(
            _fused.fused_axis(x, w, -1, "circular").numpy(),
            scipy_corr(x, w, -1, "circular"),
            rtol=0,
            atol=1e-12,
        )
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


# ----------------------------------------------------------------------------- without compiled loops


def test_fallback_is_exact_and_warns_once(unavailable, caplog):
    """Without ``torch.compile`` the plain shifted sums run instead, equal to SciPy, and one
    warning is logged however many calls follow."""
    torch.manual_seed(10)
    x = torch.randn(2, 3, 9, 10, dtype=f64)
    w = kernels(7, 3, seed=11)[1]
    with caplog.at_level(logging.WARNING, logger="sigma"):
        for dim in (-1, -2):
            got = _fused.fused_axis(x, w, dim, "reflect")
            np.testing.assert_allclose(got.numpy(), scipy_corr(x, w, dim, "reflect"), rtol=0, atol=1e-12)
    warnings = [r for r in caplog.records if r.name == "sigma" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "method='fused' needs a C++ compiler" in warnings[0].getMessage()
    assert "using eager shifted sums instead" in warnings[0].getMessage()


def test_fallback_gradients(unavailable):
    """The fallback is differentiable like the compiled path (gradcheck and gradgradcheck)."""
    torch.manual_seed(11)
    x = torch.randn(1, 2, 5, 4, dtype=f64, requires_grad=True)
    w = torch.randn(2, 3, dtype=f64, requires_grad=True)
    assert gradcheck(lambda x, w: _fused.fused_axis(x, w, -2, "replicate"), (x, w), **OPTS)
    assert gradgradcheck(lambda x, w: _fused.fused_axis(x, w, -2, "replicate"), (x, w), **OPTS)


def test_environment_variable_disables(monkeypatch):
    """``SIGMA_FUSED_DISABLE=1``, read at every call, turns the compiled loops off."""
    monkeypatch.setenv(_fused.DISABLE_ENV, "1")
    assert not _fused.available()
    monkeypatch.setenv(_fused.DISABLE_ENV, "0")
    assert _fused.available() == _fused.available("cpu")


def test_inside_a_users_torch_compile(compiled):
    """Traced by a user's ``torch.compile`` the engine emits its plain expression (no nested
    compiled call, no opaque autograd node): the result and its gradients are the eager ones."""
    torch.manual_seed(12)
    x = torch.randn(2, 3, 11, dtype=f64, requires_grad=True)
    w = kernels(7, 3, seed=12)[0].requires_grad_()
    g = torch.randn(2, 3, 11, dtype=f64)
    fn = torch.compile(lambda x, w: _fused.fused_axis(x, w, -1, "reflect"))
    got = fn(x, w)
    np.testing.assert_allclose(got.detach().numpy(), scipy_corr(x, w, -1, "reflect"), rtol=0, atol=1e-12)
    got_grads = torch.autograd.grad(got, (x, w), g)
    expected = torch.autograd.grad(_conv.correlate_axis(x, w, -1, "reflect", "direct"), (x, w), g)
    for a, b in zip(got_grads, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


VECTORIZED_CHECK = """
import numpy as np, scipy.ndimage as ndi, torch
from torch._inductor import cpu_vec_isa, metrics
import sigma
from sigma import _conv, _fused, _fused2d

if not _fused.available() or not cpu_vec_isa.pick_vec_isa():
    print("no compiler or no SIMD"); raise SystemExit(0)
g = torch.Generator().manual_seed(16)
for dtype, tol in ((torch.float32, 2e-5),):  # float32: the fast path (float64 costs a compile more)
    x = torch.randn(2, 3, 20, 24, generator=g, dtype=dtype, requires_grad=True)
    wy = torch.randn(3, 5, generator=g, dtype=dtype, requires_grad=True)
    wx = torch.randn(3, generator=g, dtype=dtype, requires_grad=True)
    gy = torch.randn(2, 3, 20, 24, generator=g, dtype=dtype)
    rows = ndi.correlate1d(x.detach().numpy(), wx.detach().numpy(), axis=-1, mode="mirror")
    cols = np.stack([ndi.correlate1d(rows[:, c], wy[c].detach().numpy(), axis=-2, mode="mirror")
                     for c in range(3)], 1)
    for got, eager, inputs, scipy in (
        (_fused.fused_axis(x, wx, -1, "reflect"), _conv.correlate_axis(x, wx, -1, "reflect", "direct"),
         (x, wx), rows),
        (_fused2d.fused_separable(x, wy, wx, "reflect"),
         _conv.correlate_separable(x, wy, wx, "reflect", "direct"), (x, wy, wx), cols),
    ):
        np.testing.assert_allclose(got.detach().numpy(), scipy, rtol=0, atol=tol)
        for a, b in zip(torch.autograd.grad(got, inputs, gy), torch.autograd.grad(eager, inputs, gy)):
            torch.testing.assert_close(a, b, rtol=10 * tol, atol=10 * tol)
layer = sigma.Blur2d(1.3, channels=3, radius=4)
x = torch.randn(2, 3, 20, 24, generator=g, requires_grad=True)
compiled = torch.compile(layer, fullgraph=True)
for m in (compiled, layer):
    layer.zero_grad()
    y = m(x)
    grads = torch.autograd.grad(y.square().sum(), (x, layer.log_sigma))
    if m is compiled:
        y0, grads0 = y, grads
torch.testing.assert_close(y0, y)
for a, b in zip(grads0, grads):
    torch.testing.assert_close(a, b)
assert metrics.generated_cpp_vec_kernel_count > 0, "no vectorized loop was generated"
print("vectorized loops:", metrics.generated_cpp_vec_kernel_count)
"""


def test_vectorized_code_in_a_fresh_process(compiled, tmp_path):
    """The other compile tests run inductor's C++ loops without explicit SIMD (``conftest.py``: a
    faster first compile). Here, in a fresh process with inductor's defaults and no graph cache,
    the vectorized loops of the fused engine (one axis, one separable blur, float32: forward
    against SciPy, gradients against the eager engine) and of a compiled ``Blur2d``
    (forward and gradients against eager) are generated and checked."""
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_VEC_ISA_OK"}
    env.update(TORCHINDUCTOR_FX_GRAPH_CACHE="0", TORCHINDUCTOR_CACHE_DIR=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "-c", VECTORIZED_CHECK], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    if "no compiler or no SIMD" in run.stdout:
        pytest.skip("no C++ compiler or no SIMD instruction set that inductor uses on this CPU")
    assert "vectorized loops:" in run.stdout


def test_small_kernels_inline_the_row_pass_bit_for_bit(compiled):
    """Without a gradient, kernels of at most the plan's ``fused_inline_max_taps`` taps recompute
    each output's row sums instead of storing the row pass: the same operations in the same order,
    so the output equals the stored-row-pass paths (taken when the tap gradients need the row pass,
    or when the plan says so) bit for bit (a plan that inlines up to 3 x 5 kernels)."""
    torch.manual_seed(14)
    x = torch.randn(2, 3, 9, 10, dtype=f64)
    _auto.use_plan(dataclasses.replace(_auto.BUILTIN, fused_inline_max_taps=15))
    try:
        for wy, wx in zip(kernels(3, 3, seed=14), kernels(5, 3, seed=15), strict=True):
            assert wy.shape[-1] * wx.shape[-1] <= _auto.plan().fused_inline_max_taps
            (inline,) = _fused2d._sep_forward(x, wy, wx, "reflect")
            (two_pass,) = _fused2d._sep_forward(x, wy, wx, "reflect", inline=False)
            xp = _fused2d._bordered2(x, 1, 2, "reflect", _fused._fresh_buffer)
            _, stored = _fused2d._sep_forward(x, wy, wx, "reflect", xp, keep=True)
            assert torch.equal(inline, stored) and torch.equal(two_pass, stored)
            expected = scipy_corr(torch.from_numpy(scipy_corr(x, wx, -1, "reflect")), wy, -2, "reflect")
            np.testing.assert_allclose(inline.numpy(), expected, rtol=0, atol=1e-12)
    finally:
        _auto.use_plan(None)


def test_the_plan_decides_which_forwards_recompute_row_sums(compiled, monkeypatch):
    """``fused_inline_max_taps`` (measured by ``sigma.tune(fused=True)``) picks the compiled loop:
    a 5 x 5 kernel recomputes its row sums under a limit of 25, stores the row pass under the built-in 9."""
    seen = []
    run = _fused2d._run
    monkeypatch.setattr(
        _fused2d, "_run", lambda kind, k, flag, *a: seen.append((kind, k, flag)) or run(kind, k, flag, *a)
    )
    torch.manual_seed(16)
    x = torch.randn(1, 2, 12, 12, dtype=f64)
    (w,) = kernels(5, 1, seed=16)[:1]
    try:
        outputs = []
        for limit, inline in ((25, True), (9, False)):
            _auto.use_plan(dataclasses.replace(_auto.BUILTIN, fused_inline_max_taps=limit))
            with torch.no_grad():
                outputs.append(_fused2d.fused_separable(x, w, w, "zeros"))
            assert seen[-1] == ("sep", (5, 5), (False, inline))
        assert torch.equal(*outputs)
    finally:
        _auto.use_plan(None)
