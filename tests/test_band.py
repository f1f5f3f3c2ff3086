"""The blocked algorithms on inputs long enough to have several blocks.

The shared tests use tiny shapes, where ``method='matmul'`` is a single block
covering the whole axis. Here axes of 70 and 100 samples give several blocks of 32,
a partial last block, windows clipped at both ends, kernels longer than a block and
kernels longer than the axis; the kernel gradient of ``'direct'`` takes its flat
dot-product path (shared kernel, contiguous tensors) with corrections at every row
and image boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import torch
from torch.autograd import gradcheck, gradgradcheck

import sigma
from sigma._band import BLOCK

f64 = torch.float64
# (σ_y, σ_x) with std_devs = 2: half-sizes from 1 to 80 on a 70 x 100 image
SCALES = [(0.4, 0.5), (2.2, 3.1), (9.0, 17.5), (30.0, 40.0), (0.7, (1.0, 2.6, 5.2))]


@pytest.mark.parametrize("padding_mode", ref.PADDING_MODES)
@pytest.mark.parametrize("scales", SCALES, ids=[str(s) for s in SCALES])
def test_matmul_matches_scipy_across_blocks(padding_mode, scales):
    sy, sx = scales
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 70, 100))
    expected = ref.blur2d_diag(x, sy, sx, 2.0, padding_mode=padding_mode)
    sx_t = torch.tensor(sx, dtype=f64) if isinstance(sx, tuple) else sx
    out = sigma.blur2d_diag(torch.from_numpy(x), sy, sx_t, 2.0, padding_mode=padding_mode, method="matmul")
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


def _grads(method: str, per_channel: bool):
    torch.manual_seed(3)
    x = torch.randn(3, 2, 37, 75, dtype=f64, requires_grad=True)
    s = torch.tensor([2.3, 6.1] if per_channel else 4.2, dtype=f64, requires_grad=True)
    g = torch.randn(3, 2, 37, 75, dtype=f64)
    y = sigma.blur2d_sphere(x, s, 2.0, method=method)
    gx, gs = torch.autograd.grad(y, (x, s), g)
    return y.detach(), gx, gs


@pytest.mark.parametrize("per_channel", [False, True], ids=["shared", "per_channel"])
def test_methods_agree_on_values_and_gradients(per_channel):
    """Three independent algorithms give the same blur, input gradient and σ-gradient."""
    y0, gx0, gs0 = _grads("fft", per_channel)
    for method in ("direct", "matmul"):
        y, gx, gs = _grads(method, per_channel)
        torch.testing.assert_close(y, y0, rtol=0, atol=1e-12, msg=method)
        torch.testing.assert_close(gx, gx0, rtol=0, atol=1e-12, msg=method)
        torch.testing.assert_close(gs, gs0, rtol=1e-10, atol=1e-12, msg=method)


@pytest.mark.parametrize("method", ["direct", "matmul"])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_gradcheck_across_blocks(method, padding_mode):
    torch.manual_seed(0)
    n = BLOCK + BLOCK // 2 + 3  # two blocks, the second partial
    x1 = torch.randn(1, 2, n, dtype=f64, requires_grad=True)
    x2 = torch.randn(1, 1, n, 9, dtype=f64, requires_grad=True)
    log_s = torch.tensor(1.1, dtype=f64).log().requires_grad_()  # h = 3

    def f1(x, q):
        return sigma.blur1d(x, q.exp(), 2.0, padding_mode=padding_mode, method=method)

    def f2(x, q):
        return sigma.blur2d_diag(x, q.exp(), 0.6, 2.0, padding_mode=padding_mode, method=method)

    for f, x in ((f1, x1), (f2, x2)):
        opts = dict(eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)
        assert gradcheck(f, (x, log_s), **opts)
        assert gradgradcheck(f, (x, log_s), **opts)


def test_auto_picks_each_method():
    from sigma._auto import BUILTIN, spatial_engine
    from sigma._padding import MODES

    def _auto_axis(h, length, mode):
        return spatial_engine(h, length, MODES[mode], False, BUILTIN)

    assert _auto_axis(2, 256, "zeros") == "direct"
    assert _auto_axis(16, 256, "zeros") == "matmul"
    assert _auto_axis(128, 256, "zeros") == "matmul"  # one block: the whole axis
    assert _auto_axis(300, 2048, "zeros") == "fft"
    assert _auto_axis(500, 100, "zeros") == "matmul"  # folded to 99 taps a side
    assert _auto_axis(500, 100, "circular") == "fft"  # periodic: nothing to fold
