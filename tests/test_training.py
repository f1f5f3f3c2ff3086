"""The layers inside real training: torch.compile, DistributedDataParallel, autocast,
channels_last, the meta device, torch.func; and a device fixture (CPU, and CUDA when present)."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest
import torch

import sigma

f64 = torch.float64


def _x(*shape, dtype=f64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g).to(device)


# ----------------------------------------------------------------------------- devices


def test_blurs_on_the_device_match_float64_cpu(device):
    x = _x(2, 3, 17, 15)
    s = torch.tensor([0.6, 1.7, 3.4], dtype=f64)
    for mode in ("zeros", "reflect", "symmetric", "replicate", "circular"):
        for method in ("direct", "matmul", "fft"):
            y = sigma.blur2d_sphere(x.to(device), s.to(device), padding_mode=mode, method=method)
            expected = sigma.blur2d_sphere(x, s, padding_mode=mode, method="direct")
            torch.testing.assert_close(y.cpu(), expected, rtol=0, atol=1e-12)


def test_modules_train_on_the_device(device):
    m = sigma.GaussConv2d(3, 2, sigma=1.5, radius=5, dtype=f64, device=device)
    x = _x(2, 3, 12, 12, device=device)
    m(x).pow(2).mean().backward()
    assert (
        m.blur.log_sigma.grad is not None and m.blur.log_sigma.grad.device.type == torch.device(device).type
    )


# ----------------------------------------------------------------------------- torch.compile


def _compiled(module):
    torch._dynamo.reset()
    return torch.compile(module, fullgraph=True, backend="aot_eager")


def test_compile_with_fixed_radius_equals_eager_and_never_recompiles():
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    m = sigma.Blur2d(1.3, "diag", 2, radius=(5, 6), padding_mode="reflect", dtype=f64)
    x, y = _x(2, 2, 16, 14), _x(2, 2, 16, 14, seed=1)
    counters.clear()
    cm = _compiled(m)
    out = cm(x)
    (g,) = torch.autograd.grad(out.pow(2).sum(), m.log_sigma)
    eager = m(x)
    (ge,) = torch.autograd.grad(eager.pow(2).sum(), m.log_sigma)
    torch.testing.assert_close(out, eager, rtol=0, atol=1e-12)
    torch.testing.assert_close(g, ge, rtol=0, atol=1e-10)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    before = m.log_sigma.detach().clone()
    for _ in range(20):  # σ moves across kernel-size jumps: the support stays the given radius
        opt.zero_grad()
        (cm(x) - y).pow(2).mean().backward()
        opt.step()
    assert not torch.equal(before, m.log_sigma.detach())
    assert counters["stats"]["unique_graphs"] == 1  # compiled once, no recompiles
    assert not counters["graph_break"]


def test_compile_without_radius_equals_eager():
    m = sigma.Blur2d(torch.tensor([0.8, 2.2]), channels=2, dtype=f64)
    x = _x(1, 2, 12, 12)
    cm = torch.compile(m, backend="aot_eager")  # graph breaks allowed: the support follows σ
    torch._dynamo.reset()
    torch.testing.assert_close(cm(x), m(x), rtol=0, atol=1e-12)


def test_compile_gaussconv_and_dynamic_blur_fullgraph():
    for m in (sigma.GaussConv2d(3, 4, radius=4, dtype=f64), sigma.DynamicBlur2d(3, dtype=f64)):
        x = _x(2, 3, 10, 10)
        torch.testing.assert_close(_compiled(m)(x), m(x), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        sigma.GaussConv2d(2, 3, sigma=1.2, per_channel=True, dtype=f64),
        torch.nn.Tanh(),
        sigma.GaussConv2d(3, 1, sigma=0.8, dtype=f64),
    )


def _batch():
    return _x(4, 2, 12, 12, seed=3), _x(4, 1, 12, 12, seed=4)


def _train(model, x, y, steps=4):
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    for _ in range(steps):
        opt.zero_grad()
        (model(x) - y).pow(2).mean().backward()
        opt.step()
    return model


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_model())
        x, y = _batch()
        half = slice(2 * rank, 2 * rank + 2)
        _train(model, x[half], y[half])
        if rank == 0:
            torch.save(model.module.state_dict(), out)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_equal_one_process_on_the_whole_batch():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ddp.pt")
        mp.spawn(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True)
        ddp = torch.load(out)
    single = _train(_model(), *_batch()).state_dict()
    assert ddp.keys() == single.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=0, atol=1e-9)
    assert not torch.equal(single["0.blur.log_sigma"], _model().state_dict()["0.blur.log_sigma"])


# ----------------------------------------------------------------------------- autocast, layouts


@pytest.mark.parametrize("method", ["auto", "direct", "matmul"])
def test_cpu_autocast_bfloat16(method):
    torch.manual_seed(0)
    layers = [
        sigma.Blur2d(1.7, method=method),
        sigma.Blur2d((1.2, 2.5), "diag", method=method),
        sigma.Blur2d(structure="full", cov=[[3.0, 1.0], [1.0, 2.0]], method=method),
        sigma.GaussConv2d(3, 4, sigma=1.5, method=method),
        sigma.DynamicBlur2d(3),
    ]
    x = torch.randn(2, 3, 20, 20)
    for m in layers:
        ref = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        y.float().pow(2).sum().backward()
        for p in m.parameters():
            assert p.dtype == torch.float32
            assert p.grad is not None and torch.isfinite(p.grad).all()
        err = float((y.float() - ref).abs().max() / ref.abs().max())
        assert err < 3e-2, f"{type(m).__name__}: relative error {err:.2e}"  # bfloat16 has 8 bits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_autocast_float16():
    torch.manual_seed(0)
    for m in (
        sigma.Blur2d(1.7),
        sigma.Blur2d(structure="full"),
        sigma.GaussConv2d(3, 4),
        sigma.DynamicBlur2d(3),
    ):
        m = m.cuda()
        x = torch.randn(2, 3, 20, 20, device="cuda")
        ref = m(x)
        with torch.autocast("cuda", dtype=torch.float16):
            y = m(x)
        y.float().pow(2).sum().backward()
        for p in m.parameters():
            assert p.dtype == torch.float32 and p.grad is not None and torch.isfinite(p.grad).all()
        assert float((y.float() - ref).abs().max() / ref.abs().max()) < 5e-3  # float16 has 11 bits


def test_channels_last_inputs_give_the_same_result():
    x = _x(2, 3, 14, 12)
    xc = x.to(memory_format=torch.channels_last)
    s = torch.tensor([0.7, 1.5, 3.2], dtype=f64)
    for method in ("direct", "matmul", "fft"):
        for fn in (
            lambda t, m=method: sigma.blur2d_sphere(t, s, method=m),
            lambda t, m=method: sigma.blur2d_full(
                t, torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=f64), method=m
            ),
            lambda t, m=method: sigma.blur2d_sphere(t, s[None].expand(2, 3), method=m),
        ):
            torch.testing.assert_close(fn(xc), fn(x), rtol=0, atol=1e-12)
    m = sigma.GaussConv2d(3, 2, dtype=f64)
    torch.testing.assert_close(m(xc), m(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        sigma.blur2d_local_sphere(xc, torch.full((2, 1, 14, 12), 1.3, dtype=f64)),
        sigma.blur2d_local_sphere(x, torch.full((2, 1, 14, 12), 1.3, dtype=f64)),
        rtol=0,
        atol=1e-12,
    )


# ----------------------------------------------------------------------------- meta, torch.func


def test_modules_construct_on_the_meta_device():
    builders = [
        lambda **kw: sigma.Blur1d(2.0, channels=3, **kw),
        lambda **kw: sigma.Blur2d(1.5, **kw),
        lambda **kw: sigma.Blur2d((1.0, 2.0), "diag", 3, **kw),
        lambda **kw: sigma.Blur2d(structure="full", cov=torch.eye(2), **kw),
        lambda **kw: sigma.GaussConv2d(3, 8, **kw),
        lambda **kw: sigma.DynamicBlur2d(3, **kw),
    ]
    for build in builders:
        m = build(device="meta")
        assert all(p.device.type == "meta" for p in m.parameters())
        repr(m)
        with torch.device("meta"):
            m = build()
        assert all(p.device.type == "meta" for p in m.parameters())
        m.to_empty(device="cpu")  # then materialized, as with FSDP-style init


def test_blurs_under_vmap_and_grad():
    from torch.func import grad, vmap

    x = _x(5, 2, 3, 12, 12)
    s = torch.rand(5, dtype=f64) + 0.5
    for method in ("direct", "matmul", "fft"):
        y = vmap(lambda xi, si, m=method: sigma.blur2d_sphere(xi, si, radius=4, method=m))(x, s)
        loop = torch.stack([sigma.blur2d_sphere(x[i], s[i], radius=4, method=method) for i in range(5)])
        torch.testing.assert_close(y, loop, rtol=0, atol=1e-12)
        loss = lambda si, xi, m=method: sigma.blur2d_sphere(xi, si, radius=4, method=m).pow(2).sum()  # noqa: E731
        g = vmap(grad(loss))(s, x)
        for i in range(5):
            si = s[i].clone().requires_grad_()
            (ge,) = torch.autograd.grad(loss(si, x[i]), si)
            torch.testing.assert_close(g[i], ge, rtol=1e-10, atol=1e-12)
    smap = torch.rand(5, 2, 1, 12, 12, dtype=f64) + 0.5
    y = vmap(lambda xi, mi: sigma.blur2d_local_sphere(xi, mi, radius=3))(x, smap)
    torch.testing.assert_close(y[1], sigma.blur2d_local_sphere(x[1], smap[1], radius=3), rtol=0, atol=1e-12)
    g = grad(lambda mi: sigma.blur2d_local_sphere(x[0], mi, radius=3).sum())(smap[0])
    assert g.shape == smap[0].shape


def test_vmap_over_sigma_needs_a_radius_and_says_so():
    from torch.func import vmap

    x = _x(1, 2, 10, 10)
    s = torch.tensor([1.0, 2.0], dtype=f64)
    with pytest.raises(ValueError, match="pass radius="):
        vmap(lambda si: sigma.blur2d_sphere(x, si))(s)
    y = vmap(lambda si: sigma.blur2d_sphere(x, si, radius=4))(s)
    torch.testing.assert_close(y[1], sigma.blur2d_sphere(x, 2.0, radius=4), rtol=0, atol=1e-12)
    # over the input only, the support follows a σ that is not batched
    y = vmap(lambda xi: sigma.blur2d_sphere(xi, s[1]))(x[None].expand(3, 1, 2, 10, 10))
    torch.testing.assert_close(y[0], sigma.blur2d_sphere(x, 2.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("method", ["auto", "direct", "matmul"])
def test_cpu_autocast_bfloat16_activation_input(method, per_channel):
    # Inside a model under autocast a blur receives the bfloat16 output of an earlier layer
    # while its kernel is built from float32 parameters.
    torch.manual_seed(0)
    m = sigma.Blur2d(2.0, channels=8 if per_channel else None, radius=5, method=method)
    x = torch.randn(4, 8, 32, 32)
    ref = m(x.bfloat16().float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x.bfloat16())
    y.float().pow(2).sum().backward()
    assert m.log_sigma.dtype == torch.float32 and m.log_sigma.grad.dtype == torch.float32
    assert torch.isfinite(m.log_sigma.grad).all()
    err = float((y.float() - ref).abs().max() / ref.abs().max())
    assert err < 3e-2
