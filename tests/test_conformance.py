"""A σ layer goes wherever a convolution goes: one matrix of every public layer x every path.

Each row of ``LAYERS`` is a layer; each ``test_*`` below is a column (the path a model takes:
compile, export, ONNX, inference mode, meta init and meta forward, memory formats, empty batches,
serialization, mixed precision). A new layer gets every column by being added to ``LAYERS``. A path a layer does
not support is a test that the user gets the documented error, never a silent failure.
"""

from __future__ import annotations

import copy
import io
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import sigma

torch_compile_ok = hasattr(torch, "compile")


@dataclass(frozen=True)
class Layer:
    make: Callable[..., torch.nn.Module]  # (radius=...) -> the layer, float32
    ndim: int = 2  # spatial dims of the input
    channels: int = 3
    fixed_support: bool = False  # the layer always has a fixed support (no radius= needed)
    fixed_channels: bool = False  # its weights fix the number of input channels

    def x(self, batch: int = 2, size: int = 40, dtype=torch.float32, generator=None) -> torch.Tensor:
        shape = (batch, self.channels) + (size,) * self.ndim
        return torch.randn(shape, dtype=dtype, generator=generator)


LAYERS = {
    "Blur1d": Layer(lambda radius=None: sigma.Blur1d(1.5, radius=radius), ndim=1),
    "Blur2d": Layer(lambda radius=None: sigma.Blur2d(1.5, radius=radius)),
    "Blur2d diag": Layer(lambda radius=None: sigma.Blur2d((1.0, 2.0), "diag", radius=radius)),
    "Blur2d full": Layer(
        lambda radius=None: sigma.Blur2d(1.5, "full", padding_mode="reflect", radius=radius)
    ),
    "GaussConv2d": Layer(
        lambda radius=None: sigma.GaussConv2d(3, 4, 3, sigma=1.5, radius=radius), fixed_channels=True
    ),
    "NJetConv2d": Layer(
        lambda radius=None: sigma.NJetConv2d(3, 4, order=2, sigma=1.5, radius=radius), fixed_channels=True
    ),
    "DynamicBlur2d": Layer(
        lambda radius=None: sigma.DynamicBlur2d(3, sigma=1.0, sigma_range=(0.5, 2.0), radius=radius),
        fixed_support=True,
        fixed_channels=True,
    ),
}
RADIUS = 4  # covers σ = 1.5 at std_devs = 2 (and DynamicBlur2d's σ ≤ 2)
names = pytest.mark.parametrize("name", LAYERS)


def _make(name: str, radius: int | None = RADIUS, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = LAYERS[name].make(radius=radius)
    if isinstance(m, sigma.DynamicBlur2d):  # a predictor that varies, not the zero start
        torch.nn.init.normal_(m.predictor.weight, std=0.3)
    return m


def _fwd_bwd(m: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    y = m(x)
    y.square().mean().backward()
    out = [y.detach(), x.grad] + [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    return out


def _assert_close(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-4) -> None:
    for u, v in zip(a, b, strict=True):
        scale = float(v.abs().max()) or 1.0
        assert float((u - v).abs().max()) <= tol * scale


# ----------------------------------------------------------------------------- eager


@names
def test_eager_forward_backward(name):
    m, layer = _make(name), LAYERS[name]
    out = _fwd_bwd(m, layer.x())
    assert out[0].shape[0] == 2 and out[0].shape[2:] == (40,) * layer.ndim
    assert all(torch.isfinite(t).all() for t in out)


# ----------------------------------------------------------------------------- compile


@names
def test_compile_fullgraph_follows_new_sizes(name):
    """torch.compile's defaults with ``fullgraph=True`` (no graph break with ``radius=``): static
    code at the first shape, one recompile with a symbolic batch and sizes at the second."""
    torch._dynamo.reset()
    m = _make(name)
    compiled = torch.compile(m, fullgraph=True)
    for batch, size in ((2, 32), (3, 40)):  # the second shape recompiles with symbolic sizes
        x = LAYERS[name].x(batch=batch, size=size)
        _assert_close(_fwd_bwd(compiled, x), _fwd_bwd(m, x))


@pytest.mark.parametrize("name", [n for n in LAYERS if not LAYERS[n].fixed_channels])
def test_compile_dynamic(name):
    """``dynamic=True``: every size symbolic from the first call, the channels too. (A layer whose
    weights fix its channels gets nothing more here than the symbolic recompile above.)"""
    torch._dynamo.reset()
    m = _make(name)
    compiled = torch.compile(m, dynamic=True)  # symbolic sizes from the first call
    x = LAYERS[name].x(size=36)
    _assert_close(_fwd_bwd(compiled, x), _fwd_bwd(m, x))


@names
def test_compile_fullgraph_without_radius_names_it(name):
    if LAYERS[name].fixed_support:
        pytest.skip("always a fixed support")
    torch._dynamo.reset()
    compiled = torch.compile(_make(name, radius=None), fullgraph=True)
    with pytest.raises(Exception, match="radius="):
        compiled(LAYERS[name].x())


@names
def test_compile_without_radius_breaks_the_graph_quietly(name):
    """Without ``radius=`` reading the support from σ is a graph break, and nothing else: the
    support checks after it must not make dynamo warn that it cannot trace them."""
    if LAYERS[name].fixed_support:
        pytest.skip("always a fixed support")
    torch._dynamo.reset()
    torch._dynamo.utils.warn_once_cache.clear()  # dynamo warns once per message and process
    m, x = _make(name, radius=None), LAYERS[name].x()
    compiled = torch.compile(m, backend="aot_eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = compiled(x)
    assert not [str(w.message)[:120] for w in caught if "Dynamo" in str(w.message)]
    _assert_close([y], [m(x)], tol=1e-6)


@names
def test_forward_mode_ad(name):
    """``torch.func.jacfwd`` (forward mode) equals ``jacrev`` in the input and every parameter,
    and ``torch.func.hessian`` (forward over reverse) of a loss in the parameters equals
    reverse over reverse, in float64 (as ``nn.Conv2d``'s weight does)."""
    layer = LAYERS[name]
    m = _make(name).double()
    names_ = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach() for p in m.parameters())
    x = layer.x(batch=1, size=9, dtype=torch.float64)

    def out(x, *ps):
        return torch.func.functional_call(m, dict(zip(names_, ps, strict=True)), (x,))

    argnums = tuple(range(1 + len(params)))
    fwd = torch.func.jacfwd(out, argnums)(x, *params)
    rev = torch.func.jacrev(out, argnums)(x, *params)
    for a, b in zip(fwd, rev, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

    def loss(*ps):
        return out(x, *ps).square().mean()

    h_fwd = torch.func.hessian(loss, argnums=tuple(range(len(params))))(*params)
    h_rev = torch.autograd.functional.hessian(loss, params)
    for row_f, row_r in zip(h_fwd, h_rev, strict=True):
        for a, b in zip(row_f, row_r, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- export


def _dims(layer: Layer, x: torch.Tensor) -> tuple[dict, ...]:
    spatial = {d: torch.export.Dim(f"s{d}", min=24, max=1024) for d in range(2, x.dim())}
    return (spatial,)


@names
def test_torch_export_with_dynamic_sizes(name):
    m, layer = _make(name).eval(), LAYERS[name]
    x = layer.x(size=32)
    program = torch.export.export(m, (x,), dynamic_shapes=_dims(layer, x))
    other = layer.x(size=48)
    with torch.no_grad():
        _assert_close([program.module()(other)], [m(other)])


@names
def test_torch_export_without_radius_names_it(name):
    if LAYERS[name].fixed_support:
        pytest.skip("always a fixed support")
    with pytest.raises(ValueError, match="radius="):
        torch.export.export(_make(name, radius=None).eval(), (LAYERS[name].x(),))


def _onnx_session(data: bytes):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


@names
def test_onnx_runs_equal_to_eager(name):
    pytest.importorskip("onnxscript")
    m, layer = _make(name).eval(), LAYERS[name]
    x = layer.x(batch=1, size=224)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(m, (x,), dynamo=True, verbose=False)
        expected = m(x)
    session = _onnx_session(program.model_proto.SerializeToString())
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    _assert_close([torch.from_numpy(y)], [expected], tol=1e-5)


@names
def test_onnx_without_radius_names_it(name):
    pytest.importorskip("onnxscript")
    if LAYERS[name].fixed_support:
        pytest.skip("always a fixed support")
    with warnings.catch_warnings(), pytest.raises(Exception, match="radius=") as info:
        warnings.simplefilter("ignore")
        torch.onnx.export(_make(name, radius=None).eval(), (LAYERS[name].x(),), dynamo=True, verbose=False)
    assert info.value is not None


@names
def test_onnx_legacy_exporter_is_refused(name):
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="dynamo=True"):
        warnings.simplefilter("ignore")
        torch.onnx.export(_make(name).eval(), (LAYERS[name].x(),), io.BytesIO(), dynamo=False)


@names
def test_jit_trace(name):
    m, layer = _make(name).eval(), LAYERS[name]
    x = layer.x()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(m, (x,))
        _assert_close([traced(x)], [m(x)])
    if not layer.fixed_support:  # without radius=, the frozen kernel size is said
        with pytest.warns(UserWarning, match="radius="), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.jit.trace(_make(name, radius=None).eval(), (x,))


@names
def test_torchscript_script_is_refused_clearly(name):
    with pytest.raises(TypeError, match="torch.jit.script"):
        torch.jit.script(_make(name))


def test_jit_trace_of_the_fft_engine():  # traced as padding + convolution, not as an FFT
    m, x = sigma.Blur2d(1.5, method="fft", radius=3).eval(), torch.randn(1, 3, 40, 40)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        _assert_close([torch.jit.trace(m, (x,))(x)], [m(x)])


# ----------------------------------------------------------------------------- training conventions


@names
def test_train_then_inference_mode_then_train(name):
    m, x = _make(name), LAYERS[name].x(size=24)  # a short axis (whole-axis matrices)
    with torch.inference_mode():
        m(x)
    first = _fwd_bwd(m, x)
    _assert_close(_fwd_bwd(m, x), first, tol=0)


@names
def test_meta_init_then_reset_parameters(name):
    with torch.device("meta"):
        m = LAYERS[name].make(radius=RADIUS)
    m.to_empty(device="cpu")
    m.reset_parameters()
    fresh = LAYERS[name].make(radius=RADIUS)
    for (key, a), (_, b) in zip(m.state_dict().items(), fresh.state_dict().items(), strict=True):
        if "log" in key or "predictor" in key:  # the scale; a predictor starts at zero weights
            assert torch.equal(a, b), key
    assert all(torch.isfinite(p).all() for p in m.parameters())


@names
def test_forward_on_meta_tensors(name):
    """A model run on the meta device for its output shapes (no data): with radius= the layer
    gives the shape and dtype it gives on the CPU; without, a ValueError naming radius= (the
    support follows σ's value, which a meta tensor does not have)."""
    layer = LAYERS[name]
    with torch.device("meta"):
        m = layer.make(radius=RADIUS)
        x = layer.x()
    y, expected = m(x), _make(name)(layer.x())
    assert y.device.type == "meta" and (y.shape, y.dtype) == (expected.shape, expected.dtype)
    if layer.fixed_support:
        return
    with torch.device("meta"):
        m = layer.make(radius=None)
    with pytest.raises(ValueError, match="meta device.*radius="):
        m(x)


@names
def test_channels_last_in_channels_last_out(name):
    layer = LAYERS[name]
    if layer.ndim != 2:
        pytest.skip("channels_last is a 4D memory format")
    m, x = _make(name), layer.x()
    y = m(x.to(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    _assert_close([y], [m(x)], tol=1e-6)


@names
def test_empty_batch(name):
    m, layer = _make(name), LAYERS[name]
    x = layer.x(batch=0).requires_grad_()
    y = m(x)
    assert y.shape[0] == 0 and y.shape[2:] == x.shape[2:]
    y.sum().backward()
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in m.parameters())


@names
def test_state_dict_deepcopy_pickle(name):
    m, x = _make(name), LAYERS[name].x()
    twin = LAYERS[name].make(radius=RADIUS)
    twin.load_state_dict(m.state_dict())
    for other in (twin, copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        _assert_close([other(x)], [m(x)], tol=0)


@names
def test_bfloat16_autocast(name):
    m, x = _make(name), LAYERS[name].x()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.bfloat16  # as nn.Conv2d's output under autocast
    y.float().square().mean().backward()
    assert all(p.dtype == p.grad.dtype == torch.float32 for p in m.parameters())
    ref = m(x).detach()
    assert float((y.float() - ref).abs().max()) <= 0.05 * float(ref.abs().max())
