"""First and second derivatives (gradcheck, gradgradcheck) of every blur and every module.

All in float64 on tiny shapes, with respect to the input and every scale parameter:
σ through log σ (so finite differences never leave σ > 0) and covariances through
log-Cholesky parameters. Scales are chosen away from the points where the kernel
half-size ``ceil(std_devs * σ)`` jumps, so the function is smooth around them.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

import sigma
from sigma._checks import METHODS

f64 = torch.float64
# 'fused' compiles once per kernel size, which random sizes would pay at every example: its
# values, gradients and gradgradcheck are checked in test_fused.py on a few sizes, and through
# the public blurs in test_auto.py and test_blur_reference.py
ALL_METHODS = sorted(METHODS - {"fused"})
GRAD_MODES = ["zeros", "circular"]  # for the local blurs
# two padding modes per method, one with a shared σ and one with a σ per channel
# (test_full_jacobians below adds 'replicate' and 'circular')
MODE_CASES = [("zeros", False), ("reflect", True), ("symmetric", True)]
MODE_IDS = ["zeros-shared", "reflect-per_channel", "symmetric-per_channel"]


def _p(*values):
    return torch.tensor(values, dtype=f64).requires_grad_()


def _log_sigma(per_channel: bool, scalar: float, pair: tuple[float, float]):
    return (_p(*pair) if per_channel else torch.tensor(scalar, dtype=f64)).log().detach().requires_grad_()


def _check(fn, inputs, *, fast: bool = True):
    """First and second derivatives against central finite differences, in reverse mode and in
    forward mode (``torch.func.jvp``, ``jacfwd``; forward over reverse for the second).

    ``fast=True`` compares random Jacobian-vector projections (torch's fast mode),
    ``fast=False`` every entry of the Jacobians (second derivatives in reverse mode only there).
    """
    opts = dict(eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=fast)
    assert gradcheck(fn, inputs, check_forward_ad=True, **opts)
    assert gradgradcheck(fn, inputs, **opts)


def _x1():
    torch.manual_seed(0)
    return torch.randn(1, 2, 6, dtype=f64, requires_grad=True)


def _x2():
    torch.manual_seed(0)
    return torch.randn(1, 2, 5, 4, dtype=f64, requires_grad=True)


# σ = 0.8 -> h = 2; per channel (0.8, 1.3) -> h = 3: the kernel is wider than the 5x4 input
S1, S2 = 0.8, (0.8, 1.3)


@pytest.mark.parametrize(("padding_mode", "per_channel"), MODE_CASES, ids=MODE_IDS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_blur1d_grads(method, padding_mode, per_channel):
    ls = _log_sigma(per_channel, S1, S2)
    _check(lambda x, s: sigma.blur1d(x, s.exp(), 2, padding_mode=padding_mode, method=method), (_x1(), ls))


@pytest.mark.parametrize(("padding_mode", "per_channel"), MODE_CASES, ids=MODE_IDS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_blur2d_sphere_grads(method, padding_mode, per_channel):
    ls = _log_sigma(per_channel, S1, S2)
    _check(
        lambda x, s: sigma.blur2d_sphere(x, s.exp(), 2, padding_mode=padding_mode, method=method), (_x2(), ls)
    )


@pytest.mark.parametrize(("padding_mode", "per_channel"), MODE_CASES, ids=MODE_IDS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_blur2d_diag_grads(method, padding_mode, per_channel):
    ly = _log_sigma(per_channel, S1, S2)
    lx = _log_sigma(per_channel, 1.3, (0.6, 1.1))

    def fn(x, sy, sx):
        return sigma.blur2d_diag(x, sy.exp(), sx.exp(), 2, padding_mode=padding_mode, method=method)

    _check(fn, (_x2(), ly, lx))


@pytest.mark.parametrize(("padding_mode", "per_channel"), MODE_CASES, ids=MODE_IDS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_blur2d_full_grads(method, padding_mode, per_channel):
    # a = log 0.9, b = 0.3, c = log 0.7: cov = [[0.81, 0.27], [0.27, 0.58]], radii (2, 2)
    one = [-0.10536, 0.3, -0.35667]
    p = torch.tensor([one, [0.2, -0.4, -0.5]] if per_channel else one, dtype=f64, requires_grad=True)
    _check(
        lambda x, q: sigma.blur2d_full(
            x, sigma.logchol_to_cov(q), 2, padding_mode=padding_mode, method=method
        ),
        (_x2(), p),
    )


@pytest.mark.parametrize(("padding_mode", "per_channel"), MODE_CASES, ids=MODE_IDS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_dog_grads(method, padding_mode, per_channel):
    lc = _log_sigma(per_channel, 0.6, (0.6, 0.45))
    ls = _log_sigma(per_channel, 1.3, S2)

    def f1(x, c, s):
        return sigma.dog1d(x, c.exp(), s.exp(), 2, padding_mode=padding_mode, method=method)

    def f2(x, c, s):
        return sigma.dog2d(x, c.exp(), s.exp(), 2, padding_mode=padding_mode, method=method)

    _check(f1, (_x1(), lc, ls))
    _check(f2, (_x2(), lc, ls))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_erf_kernel_grads(method):
    # the erf kernel's derivative in σ is smooth also below one pixel
    ls = _log_sigma(True, 0.0, (0.35, 1.3))
    _check(
        lambda x, s: sigma.blur1d(x, s.exp(), 2, padding_mode="reflect", kernel="erf", method=method),
        (_x1(), ls),
    )
    _check(
        lambda x, s: sigma.blur2d_sphere(x, s.exp(), 2, padding_mode="zeros", kernel="erf", method=method),
        (_x2(), ls),
    )


@pytest.mark.parametrize("padding_mode", GRAD_MODES)
def test_blur2d_local_sphere_grads(padding_mode):
    torch.manual_seed(1)
    smap = (0.55 + 0.6 * torch.rand(1, 1, 5, 4, dtype=f64)).requires_grad_()  # h = 3
    _check(lambda x, s: sigma.blur2d_local_sphere(x, s, 2, padding_mode=padding_mode), (_x2(), smap))
    # a per-channel map, and a fixed radius
    smap_c = (0.55 + 0.6 * torch.rand(1, 2, 5, 4, dtype=f64)).requires_grad_()
    _check(lambda x, s: sigma.blur2d_local_sphere(x, s, padding_mode=padding_mode, radius=2), (_x2(), smap_c))


@pytest.mark.parametrize("padding_mode", GRAD_MODES)
def test_blur2d_local_full_grads(padding_mode):
    torch.manual_seed(2)
    base = torch.tensor([-0.10536, 0.3, -0.35667], dtype=f64)
    p = (base + 0.1 * torch.randn(1, 4, 3, 3, dtype=f64)).requires_grad_()
    x = torch.randn(1, 2, 4, 3, dtype=f64, requires_grad=True)
    _check(
        lambda x, q: sigma.blur2d_local_full(x, sigma.logchol_to_cov(q), 2, padding_mode=padding_mode), (x, p)
    )


@pytest.mark.parametrize("method", ALL_METHODS)
def test_per_sample_and_symmetric_grads(method):
    # σ per sample and channel (B = 2, C = 2), each kernel on its own support, 'symmetric' boundary
    torch.manual_seed(3)
    x1 = torch.randn(2, 2, 6, dtype=f64, requires_grad=True)
    x2 = torch.randn(2, 2, 5, 4, dtype=f64, requires_grad=True)
    ls = torch.tensor([[0.8, 1.3], [0.45, 2.2]], dtype=f64).log().requires_grad_()
    opts = dict(padding_mode="symmetric", method=method)
    _check(lambda x, s: sigma.blur1d(x, s.exp(), **opts), (x1, ls))
    _check(lambda x, s: sigma.blur2d_sphere(x, s.exp()[:, :1], **opts), (x2, ls))
    _check(lambda x, s: sigma.dog2d(x, s.exp(), 2.7, **opts), (x2, ls))
    lc = (
        torch.tensor([[-0.10536, 0.3, -0.35667], [0.2, -0.4, -0.5]], dtype=f64).view(2, 1, 3).requires_grad_()
    )
    _check(lambda x, q: sigma.blur2d_full(x, sigma.logchol_to_cov(q), **opts), (x2, lc))


def test_local_blurs_erf_and_symmetric_grads():
    torch.manual_seed(4)
    smap = (0.3 + 0.6 * torch.rand(1, 1, 5, 4, dtype=f64)).requires_grad_()
    _check(
        lambda x, s: sigma.blur2d_local_sphere(x, s, kernel="erf", padding_mode="symmetric"), (_x2(), smap)
    )
    _check(lambda x, s: sigma.blur2d_local_sphere(x, s, padding_mode="symmetric"), (_x2(), smap))


def _tiny_cases():
    """One (function, inputs) per engine on a tiny input, with per-channel scales."""
    torch.manual_seed(5)
    x1 = torch.randn(1, 2, 4, dtype=f64, requires_grad=True)
    x2 = torch.randn(1, 2, 4, 3, dtype=f64, requires_grad=True)
    ls = torch.tensor([0.7, 1.1], dtype=f64).log().requires_grad_()
    lc = torch.tensor([[-0.10536, 0.3, -0.35667], [0.2, -0.4, -0.5]], dtype=f64, requires_grad=True)
    # the local blurs are the slowest to differentiate twice: smallest inputs
    x3 = torch.randn(1, 1, 3, 2, dtype=f64, requires_grad=True)
    smap = (0.55 + 0.6 * torch.rand(1, 1, 3, 2, dtype=f64)).requires_grad_()
    cmap = (lc[0].detach() + 0.1 * torch.randn(1, 3, 2, 3, dtype=f64)).requires_grad_()
    return {
        # separable blurs (blur2d_sphere/diag, dog*) share blur1d's per-axis FFT engine
        "blur1d/fft/replicate": (
            lambda x, s: sigma.blur1d(x, s.exp(), 2, padding_mode="replicate", method="fft"),
            (x1, ls),
        ),
        "blur2d_full/fft/circular": (
            lambda x, q: sigma.blur2d_full(
                x, sigma.logchol_to_cov(q), 2, padding_mode="circular", method="fft"
            ),
            (x2, lc),
        ),
        "blur2d_local_sphere/reflect": (
            lambda x, s: sigma.blur2d_local_sphere(x, s, 2, padding_mode="reflect"),
            (x3, smap),
        ),
        "blur2d_local_full/replicate": (
            lambda x, q: sigma.blur2d_local_full(x, sigma.logchol_to_cov(q), 2, padding_mode="replicate"),
            (x3, cmap),
        ),
    }


@pytest.mark.parametrize("name", sorted(_tiny_cases()))
def test_full_jacobians(name):
    # Every entry of the first and second derivatives, not only random projections, for
    # the engines whose backward pass is written by hand (FFT, local blurs).
    fn, inputs = _tiny_cases()[name]
    _check(fn, inputs, fast=False)


# ----------------------------------------------------------------------------- modules


def _param_check(module: torch.nn.Module, x: torch.Tensor) -> None:
    """gradcheck/gradgradcheck of the module's output w.r.t. the input and every parameter."""
    names = [n for n, _ in module.named_parameters()]
    assert names, "module has no parameters"
    params = tuple(p.detach().clone().requires_grad_() for _, p in module.named_parameters())

    def fn(x, *ps):
        return functional_call(module, dict(zip(names, ps, strict=True)), (x,))

    _check(fn, (x, *params))


@pytest.mark.parametrize("channels", [None, 2])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_blur1d_module_grads(method, channels):
    _param_check(
        sigma.Blur1d(0.8, channels=channels, padding_mode="reflect", method=method, dtype=f64), _x1()
    )


@pytest.mark.parametrize("channels", [None, 2])
@pytest.mark.parametrize("structure", ["sphere", "diag", "full"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_blur2d_module_grads(method, structure, channels):
    s = 0.8 if structure == "sphere" else (0.8, 0.7)
    m = sigma.Blur2d(s, structure, channels, padding_mode="circular", method=method, dtype=f64)
    _param_check(m, _x2())


@pytest.mark.parametrize("structure", ["sphere", "full"])
def test_gaussconv2d_grads(structure):
    torch.manual_seed(3)
    m = sigma.GaussConv2d(2, 2, kernel_size=3, sigma=0.8, structure=structure, dtype=f64)
    _param_check(m, _x2())


def test_dynamic_blur2d_grads():
    torch.manual_seed(4)
    m = sigma.DynamicBlur2d(2, sigma=1.0, sigma_range=(0.5, 1.4), dtype=f64)
    with torch.no_grad():  # leave the zero start so the σ map actually varies
        m.predictor.weight.normal_(0, 0.3)
    _param_check(m, _x2())


def test_gradient_flows_to_sigma_through_every_method_equally():
    # the σ-gradient of one loss is the same whichever method computes the blur
    x = torch.randn(1, 2, 9, 12, dtype=f64)
    grads = []
    for method in ALL_METHODS:
        s = torch.tensor([1.4, 2.2], dtype=f64, requires_grad=True)
        loss = sigma.blur2d_sphere(x, s, 3, padding_mode="reflect", method=method).pow(2).sum()
        grads.append(torch.autograd.grad(loss, s)[0])
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_forward_over_reverse_hessians(method):
    """``torch.func.hessian`` (forward mode over reverse) of a loss in log σ per channel and in the
    log-Cholesky parameters equals reverse over reverse (``torch.autograd.functional.hessian``),
    and ``torch.func.jvp`` in σ equals the ``vjp``-based directional derivative, per method."""
    torch.manual_seed(3)
    x = torch.randn(1, 2, 7, 6, dtype=f64)
    ls = torch.tensor([0.6, 1.1], dtype=f64).log()
    lc = torch.tensor([0.1, 0.3, -0.2], dtype=f64)

    def sphere(ls):
        return sigma.blur2d_sphere(x, ls.exp(), radius=3, method=method, padding_mode="reflect")

    def full(q):
        return sigma.blur2d_full(x, sigma.logchol_to_cov(q), radius=3, method=method)

    for fn, p in ((sphere, ls), (full, lc)):

        def loss(p, fn=fn):
            return (fn(p) * torch.linspace(-1, 1, 84, dtype=f64).view(1, 2, 7, 6)).square().sum()

        torch.testing.assert_close(
            torch.func.hessian(loss)(p), torch.autograd.functional.hessian(loss, p), rtol=1e-10, atol=1e-12
        )
        v = torch.linspace(0.5, 1.5, p.numel(), dtype=f64)
        _, jv = torch.func.jvp(fn, (p,), (v,))
        out, pullback = torch.func.vjp(fn, p)
        u = torch.randn_like(out)
        torch.testing.assert_close((jv * u).sum(), pullback(u)[0] @ v, rtol=1e-12, atol=1e-12)
