"""One σ per sample, shared by its channels (σ of shape ``(B, 1)``, or a layer's ``scale`` of shape
``(B,)``): for the separable 2D blurs, the DoG and the N-jet on short axes, the kernels stay one
per sample, run as per-sample whole-axis matrices (:func:`sigma._dense.dense_pairs_per_sample`);
elsewhere they are folded to one per sample and channel for the other engines. Both are checked
against SciPy, sample by sample, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import sigma
from sigma import _conv

f64 = torch.float64
S = torch.tensor([[0.7], [1.3], [2.1]], dtype=f64)  # (B, 1): one σ per sample


@pytest.fixture
def calls(monkeypatch):
    """The number of calls of the per-sample matrices, counted."""
    n = []
    original = _conv.dense_pairs_per_sample
    monkeypatch.setattr(_conv, "dense_pairs_per_sample", lambda *a: n.append(1) or original(*a))
    return n


def scipy_per_sample(x: torch.Tensor, s: torch.Tensor, std_devs: float, mode: str, order=(0, 0), gamma=0.0):
    """``scipy.ndimage.gaussian_filter`` of every (sample, channel) image at its sample's σ, cut at
    that σ's own radius, times ``σ ** (gamma * (order_y + order_x))``."""
    xn, out = x.numpy(), np.empty(tuple(x.shape))
    for b in range(x.shape[0]):
        sb = float(s[b])
        h = ref.radius(sb, std_devs)
        for c in range(x.shape[1]):
            out[b, c] = ndi.gaussian_filter(xn[b, c], sb, order=order, mode=ref.SCIPY_MODE[mode], radius=h)
        out[b] *= sb ** (gamma * sum(order))
    return out


@pytest.mark.parametrize("mode", ref.PADDING_MODES)
def test_sphere_and_diag_match_scipy_sample_by_sample(mode, calls):
    torch.manual_seed(0)
    x = torch.randn(3, 2, 11, 9, dtype=f64)
    got = sigma.blur2d_sphere(x, S, padding_mode=mode)
    np.testing.assert_allclose(got.numpy(), scipy_per_sample(x, S, 2.0, mode), rtol=0, atol=1e-12)
    sx = 1.5 * S
    got = sigma.blur2d_diag(x, S, sx, padding_mode=mode)
    want = np.concatenate(
        [ref.blur2d_diag(x[b : b + 1].numpy(), float(S[b]), float(sx[b]), 2.0, mode) for b in range(3)]
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    assert len(calls) == 2  # both ran on per-sample matrices


@pytest.mark.parametrize("method", ["auto", "direct"])
def test_dog2d_matches_scipy_sample_by_sample(method, calls):
    """Both Gaussians of each sample's pair cut at the larger of their own radii, in every mode;
    ``'auto'`` on per-sample matrices, ``'direct'`` on the folded kernels."""
    torch.manual_seed(5)
    x = torch.randn(3, 2, 11, 9, dtype=f64)
    ss = 1.6 * S
    for mode in ref.PADDING_MODES:
        got = sigma.dog2d(x, S, ss, padding_mode=mode, method=method).numpy()
        for b in range(3):
            h = ref.radius(float(ss[b]), 2.0)
            for c in range(2):
                img, m = x[b, c].numpy(), ref.SCIPY_MODE[mode]
                want = ndi.gaussian_filter(img, float(S[b]), mode=m, radius=h)
                want -= ndi.gaussian_filter(img, float(ss[b]), mode=m, radius=h)
                np.testing.assert_allclose(got[b, c], want, rtol=0, atol=1e-12)
    assert len(calls) == (5 if method == "auto" else 0)


@pytest.mark.parametrize("mode", ref.PADDING_MODES)
def test_njet_matches_scipy_derivatives_sample_by_sample(mode, calls):
    torch.manual_seed(1)
    x = torch.randn(3, 2, 10, 12, dtype=f64)
    got = sigma.njet2d(x, S, order=2, std_devs=3.0, padding_mode=mode).unflatten(1, (2, 6))
    for j, order in enumerate(sigma.jet_orders(2)):
        want = scipy_per_sample(x, S, 3.0, mode, order, gamma=1.0)
        np.testing.assert_allclose(got[:, :, j].numpy(), want, rtol=0, atol=1e-12)
    assert len(calls) == 1


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_other_engines_fold_the_kernels_to_the_channels(method, calls):
    """An engine named other than the matrices: the per-sample kernels are folded to one per sample
    and channel, with the same results."""
    torch.manual_seed(2)
    x = torch.randn(3, 2, 11, 9, dtype=f64)
    got = sigma.blur2d_sphere(x, S, padding_mode="reflect", method=method)
    np.testing.assert_allclose(got.numpy(), scipy_per_sample(x, S, 2.0, "reflect"), rtol=0, atol=1e-12)
    jet = sigma.njet2d(x, S, order=1, padding_mode="reflect", method=method).unflatten(1, (2, 3))
    want = scipy_per_sample(x, S, 2.0, "reflect", (0, 1), gamma=1.0)
    np.testing.assert_allclose(jet[:, :, 2].numpy(), want, rtol=0, atol=1e-12)
    assert not calls


def test_layer_scale_per_sample_takes_the_matrices(calls):
    """``NJetConv2d(x, scale)`` with one factor per sample: the jet at σ times each factor, then the
    1x1 combination."""
    torch.manual_seed(3)
    m = sigma.NJetConv2d(2, 3, order=2, sigma=1.2, std_devs=4.0, dtype=f64)
    x = torch.randn(3, 2, 16, 16, dtype=f64)
    scale = torch.tensor([0.8, 1.0, 1.5], dtype=f64)
    jet = torch.cat([sigma.njet2d(x[b : b + 1], m.sigma * scale[b], 2, 4.0) for b in range(3)])
    torch.testing.assert_close(m(x, scale), F.conv2d(jet, m.weight, m.bias), rtol=1e-12, atol=1e-12)
    assert len(calls) == 1


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_gradcheck_and_gradgradcheck_in_x_and_sigma(mode, calls):
    torch.manual_seed(4)
    x = torch.randn(2, 2, 6, 5, dtype=f64, requires_grad=True)
    s = torch.tensor([[0.8], [1.3]], dtype=f64, requires_grad=True)
    fast = dict(fast_mode=True)
    assert gradcheck(lambda x, s: sigma.njet2d(x, s, order=2, padding_mode=mode, radius=3), (x, s), **fast)
    assert gradgradcheck(
        lambda x, s: sigma.njet2d(x, s, order=1, padding_mode=mode, radius=2), (x, s), **fast
    )
    assert gradcheck(lambda x, s: sigma.blur2d_diag(x, s, 1.4 * s, padding_mode=mode), (x, s), **fast)
    assert gradcheck(lambda x, s: sigma.dog2d(x, s, 1.6 * s, padding_mode=mode, radius=3), (x, s), **fast)
    assert len(calls) >= 4
