"""A call under torch.inference_mode() or torch.no_grad() leaves nothing behind that breaks a later
backward pass: a validation loop between training steps must not poison the training."""

from __future__ import annotations

import sys

import pytest
import torch

import sigma

f64 = torch.float64

LAYERS = {
    "Blur1d": lambda m: (sigma.Blur1d(1.5, method=m, dtype=f64), 1),
    "Blur2d sphere": lambda m: (sigma.Blur2d(1.5, method=m, dtype=f64), 2),
    "Blur2d diag": lambda m: (sigma.Blur2d((1.0, 2.0), "diag", method=m, dtype=f64), 2),
    "Blur2d full": lambda m: (sigma.Blur2d(1.5, "full", method=m, dtype=f64), 2),
    "GaussConv2d": lambda m: (sigma.GaussConv2d(2, 3, 3, sigma=1.5, method=m, dtype=f64), 2),
    "DynamicBlur2d": lambda m: (sigma.DynamicBlur2d(2, sigma=1.0, dtype=f64), 2),
    "NJetConv2d": lambda m: (sigma.NJetConv2d(2, 3, order=2, sigma=1.5, method=m, dtype=f64), 2),
}


def _clear_caches() -> int:
    """Empty every functools cache in the package, so the next call is the one that fills it."""
    n = 0
    for name, module in list(sys.modules.items()):
        if name == "sigma" or name.startswith("sigma."):
            for obj in list(vars(module).values()):
                if callable(getattr(obj, "cache_clear", None)):
                    obj.cache_clear()
                    n += 1
    return n


def _grads(layer: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    layer.zero_grad()
    x = x.detach().requires_grad_()
    layer(x).square().sum().backward()
    return [x.grad] + [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("length", [12, 40], ids=["short axis", "long axis"])
@pytest.mark.parametrize("method", ["auto", "direct", "matmul", "fft"])
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad], ids=["inference_mode", "no_grad"])
def test_train_then_eval_then_train(name, method, length, mode):
    layer, dims = LAYERS[name](method)
    x = torch.randn((2, 2) + (length,) * dims, dtype=f64)
    assert _clear_caches() >= 1  # the evaluation below is the first call: it fills the caches
    with mode():
        evaluated = layer(x)
    after = _grads(layer, x)  # raised "Inference tensors cannot be saved for backward" before
    _clear_caches()
    before = _grads(layer, x)  # the same step with caches filled by a training call
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(evaluated, layer(x), rtol=0, atol=0)


def test_fresh_layer_first_used_in_inference_mode_then_trained():
    # the very first call (which fills any cache) is the inference one
    x = torch.randn(1, 1, 20, 20, dtype=f64)
    layer = sigma.Blur2d(2.0, radius=5, dtype=f64, padding_mode="reflect")
    with torch.inference_mode():
        layer(x)
    layer(x).sum().backward()
    assert layer.log_sigma.grad is not None and torch.isfinite(layer.log_sigma.grad).all()


CALLS = {
    "blur1d direct": lambda x, s: sigma.blur1d(x[..., 0, :], s, method="direct"),
    "blur1d matmul": lambda x, s: sigma.blur1d(x[..., 0, :], s, method="matmul"),
    "blur2d_sphere direct": lambda x, s: sigma.blur2d_sphere(x, s, method="direct"),
    "blur2d_sphere fft": lambda x, s: sigma.blur2d_sphere(x, s, method="fft"),
    "blur2d_full direct": lambda x, s: sigma.blur2d_full(x, s * s * torch.eye(2, dtype=f64), method="direct"),
    "discrete kernel": lambda x, s: sigma.blur2d_sphere(x, s, kernel="discrete", method="direct"),
    "local": lambda x, s: sigma.blur2d_local_sphere(x, s.expand(x.shape[0], 1, *x.shape[2:]), radius=4),
}


@pytest.mark.parametrize("name", CALLS)
def test_a_call_that_records_nothing_runs_the_forward_alone(name, monkeypatch):
    # where autograd records nothing, the engines' Functions run their forward alone (no node):
    # the same result to the bit as with a node (the engine pinned: 'auto' may choose another
    # for a call that records nothing)
    x = torch.randn(2, 2, 40, 40, dtype=f64)
    s = torch.tensor(1.5, dtype=f64)
    call = CALLS[name]
    recorded = call(x, s.clone().requires_grad_())
    assert recorded.grad_fn is not None

    def no_node(*args):
        raise AssertionError("an autograd Function was applied")

    monkeypatch.setattr(torch.autograd.Function, "apply", classmethod(lambda cls, *a: no_node()))
    for context in (torch.no_grad, torch.enable_grad, torch.inference_mode):
        with context():
            y = call(x, s)
        assert y.grad_fn is None
        torch.testing.assert_close(y, recorded.detach(), rtol=0, atol=0)
    with pytest.raises(AssertionError, match="Function was applied"):
        call(x, s.clone().requires_grad_())
    import torch.autograd.forward_ad as fwAD

    # under an open forward-AD level, plain operations (which forward mode differentiates): no
    # Function but the discrete kernel's, which has a jvp rule
    with fwAD.dual_level():
        if name == "discrete kernel":
            with pytest.raises(AssertionError, match="Function was applied"):
                call(x, s)
        else:
            torch.testing.assert_close(call(x, s), recorded.detach())
