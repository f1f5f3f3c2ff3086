"""N-jets (``njet2d``) and the ``NJetConv2d`` layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import sigma

f64 = torch.float64


def _jet_by_blurs(x, s, order, **opts):
    """The N-jet composed from blur2d_sphere calls, one per member."""
    members = [sigma.blur2d_sphere(x, s, order=o, **opts) for o in sigma.jet_orders(order)]
    B, C, H, W = x.shape
    return torch.stack(members, 2).reshape(B, C * len(members), H, W)


def test_jet_orders():
    assert sigma.jet_orders(0) == [(0, 0)]
    assert sigma.jet_orders(1) == [(0, 0), (1, 0), (0, 1)]
    assert len(sigma.jet_orders(3)) == 10
    with pytest.raises(ValueError, match="order"):
        sigma.jet_orders(4)


@pytest.mark.parametrize("kernel", ["sampled", "erf", "discrete"])
@pytest.mark.parametrize("method", ["direct", "matmul", "fft", "auto"])
def test_njet2d_equals_the_blurs_it_stacks(method, kernel):
    x = torch.randn(2, 3, 11, 9, dtype=f64)
    s = torch.tensor([0.8, 1.4, 2.2], dtype=f64)
    opts = dict(kernel=kernel, method=method, padding_mode="symmetric", gamma=0.5)
    got = sigma.njet2d(x, s, 3, **opts)
    torch.testing.assert_close(got, _jet_by_blurs(x, s, 3, **opts), rtol=1e-12, atol=1e-12)
    # per-sample σ too
    sb = torch.tensor([[1.1], [0.6]], dtype=f64)
    torch.testing.assert_close(
        sigma.njet2d(x, sb, 2, radius=3), _jet_by_blurs(x, sb, 2, radius=3, gamma=1.0), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("per_channel", [False, True])
def test_module_equals_functional_composition(per_channel):
    torch.manual_seed(0)
    m = sigma.NJetConv2d(3, 5, order=2, sigma=1.7, per_channel=per_channel, padding_mode="reflect", dtype=f64)
    x = torch.randn(2, 3, 12, 10, dtype=f64)
    y = m(x)
    assert y.shape == (2, 5, 12, 10)
    assert m.weight.shape == (5, 3 * 6, 1, 1)
    assert m.log_sigma.shape == ((3,) if per_channel else ())
    jet = _jet_by_blurs(x, m.sigma, 2, gamma=1.0, padding_mode="reflect")
    torch.testing.assert_close(y, F.conv2d(jet, m.weight, m.bias), rtol=1e-12, atol=1e-12)
    assert "order=2" in repr(m)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "symmetric", "replicate", "circular"])
@pytest.mark.parametrize("kernel", ["sampled", "erf", "discrete"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_folded_kernel_path_equals_jet_then_combination(padding_mode, kernel, per_channel):
    """One σ per batch and a support of at most 5 x 5 taps: forward runs one dense conv2d of the
    folded kernel; it equals the separable jet followed by the 1x1 combination."""
    torch.manual_seed(0)
    m = sigma.NJetConv2d(
        3,
        4,
        sigma=torch.tensor([0.6, 0.9, 1.0]) if per_channel else 0.8,
        per_channel=per_channel,
        padding_mode=padding_mode,
        kernel=kernel,
        dtype=f64,
    )
    x = torch.randn(2, 3, 4, 7, dtype=f64)  # an axis shorter than the kernel's reach (pads fold)
    torch.testing.assert_close(m(x), F.conv2d(m.jet(x), m.weight, m.bias), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        m(x, scale=0.9), F.conv2d(m.jet(x, 0.9), m.weight, m.bias), rtol=1e-12, atol=1e-12
    )


def test_folded_kernel_path_is_taken_only_where_it_is_fast(monkeypatch):
    calls = []
    original = sigma.NJetConv2d._folded
    monkeypatch.setattr(sigma.NJetConv2d, "_folded", lambda self, *a: calls.append(1) or original(self, *a))
    x = torch.randn(2, 2, 12, 12, dtype=f64)
    sigma.NJetConv2d(2, 3, sigma=1.0, dtype=f64)(x)  # 5 x 5 taps: folded
    assert len(calls) == 1
    sigma.NJetConv2d(2, 3, sigma=1.5, dtype=f64)(x)  # 7 x 7: separable
    sigma.NJetConv2d(2, 3, sigma=1.0, method="direct", dtype=f64)(x)  # an engine named: separable
    sigma.NJetConv2d(2, 3, sigma=1.0, dtype=f64)(x, scale=torch.tensor([1.0, 0.8], dtype=f64))  # per sample
    assert len(calls) == 1


def test_gradcheck_folded_kernel_path():
    m = sigma.NJetConv2d(2, 3, sigma=0.8, per_channel=True, padding_mode="replicate", dtype=f64)
    x = torch.randn(1, 2, 6, 5, dtype=f64, requires_grad=True)
    assert gradcheck(lambda x, w, ls: m(x), (x, m.weight, m.log_sigma), fast_mode=True)


def test_gradients_reach_sigma_and_the_weights():
    m = sigma.NJetConv2d(2, 4, order=3, sigma=1.2, kernel="discrete", radius=4, dtype=f64)
    x = torch.randn(1, 2, 9, 9, dtype=f64)
    m(x).pow(2).mean().backward()
    for p in [m.log_sigma, m.weight, m.bias]:
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()) and float(p.grad.abs().sum()) > 0


@pytest.mark.parametrize("kernel", ["sampled", "erf", "discrete"])
def test_gradcheck_njet_in_x_and_sigma(kernel):
    x = torch.randn(1, 1, 6, 5, dtype=f64, requires_grad=True)
    ls = torch.tensor(0.9, dtype=f64).log().requires_grad_()
    assert gradcheck(lambda x, ls: sigma.njet2d(x, ls.exp(), 2, kernel=kernel), (x, ls), fast_mode=True)


def test_learning_sigma_moves_it_toward_the_target_scale():
    """A target made by a fixed N-jet combination at σ = 2 pulls a layer started at σ = 1 toward 2."""
    torch.manual_seed(1)
    x = torch.randn(4, 1, 24, 24, dtype=f64)
    teacher = sigma.NJetConv2d(1, 2, order=1, sigma=2.0, padding_mode="circular", dtype=f64)
    with torch.no_grad():
        target = teacher(x)
    student = sigma.NJetConv2d(1, 2, order=1, sigma=1.0, padding_mode="circular", dtype=f64)
    student.load_state_dict({**teacher.state_dict(), "log_sigma": torch.tensor(0.0, dtype=f64)})
    opt = torch.optim.Adam([student.log_sigma], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        (student(x) - target).pow(2).mean().backward()
        opt.step()
    assert abs(float(student.sigma.detach()) - 2.0) < 0.1


def test_errors():
    with pytest.raises(ValueError, match="order"):
        sigma.NJetConv2d(1, 1, order=4)
    with pytest.raises(ValueError, match="in_channels"):
        sigma.NJetConv2d(2, 1)(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="kernel"):
        sigma.NJetConv2d(1, 1, kernel="box")
    with pytest.raises(ValueError, match="sigma"):
        sigma.njet2d(torch.randn(1, 1, 8, 8), -1.0)
