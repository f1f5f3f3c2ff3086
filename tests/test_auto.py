"""``method='auto'``'s rule (:mod:`sigma._auto`), its stored per-machine plan, ``sigma.tune``, and
``method='fused'`` through the public functions."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import sigma
from sigma import _auto, _conv, _fused
from sigma._padding import MODES

f64 = torch.float64


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty plan cache of its own; the plan in force restored afterwards."""
    monkeypatch.setenv(_auto.CACHE_ENV, str(tmp_path))
    _auto.reload()
    _auto.use_plan(None)
    yield tmp_path
    _auto.use_plan(None)
    _auto.reload()


def spy(monkeypatch) -> list[str]:
    """Record which engines the dispatcher runs (by function name)."""
    seen: list[str] = []
    for mod, name in (
        (_conv, "_spatial_axis"),
        (_conv, "_dense_axis"),
        (_conv, "_dense_separable"),
        (_conv, "fft_axis"),
        (_conv, "fft_2d"),
        (_fused, "fused_axis"),
    ):
        real = getattr(mod, name)

        def wrapped(*a, _n=name, _r=real, **k):
            seen.append(_n if _n != "_spatial_axis" else a[-1])
            return _r(*a, **k)

        monkeypatch.setattr(mod, name, wrapped)
    return seen


def test_builtin_plan_without_a_stored_one(cache):
    assert _auto.plan() is _auto.BUILTIN
    assert _auto.plan().fused_max_taps == 0  # the built-in rule never compiles


def test_stored_plan_is_read_back_for_this_machine_only(cache):
    mine = dataclasses.replace(_auto.BUILTIN, direct_max_taps_1d=3, source="test")
    path = _auto.store(mine)
    assert path.parent == cache
    assert _auto.plan() == mine
    data = json.loads(path.read_text())
    other = dict(data[_auto.machine_key()], direct_max_taps_1d=99)
    data["another CPU | torch 0"] = other
    path.write_text(json.dumps(data))
    _auto.reload()
    assert _auto.plan().direct_max_taps_1d == 3  # the other machine's plan is not ours


def test_a_corrupt_cache_file_falls_back_to_builtin(cache):
    (cache / "plans.json").write_text("{not json")
    _auto.reload()
    assert _auto.plan() is _auto.BUILTIN
    (cache / "plans.json").write_text(json.dumps({_auto.machine_key(): {"direct_max_taps_1d": 5, "junk": 1}}))
    _auto.reload()
    assert _auto.plan().direct_max_taps_1d == 5 and _auto.plan().matmul_max_window == 256


def test_the_plan_moves_the_crossovers(cache, monkeypatch):
    zeros = MODES["zeros"]
    assert _auto.spatial_engine(2, 256, zeros, False, _auto.BUILTIN) == "direct"
    fewer = dataclasses.replace(_auto.BUILTIN, direct_max_taps_1d=3)
    assert _auto.spatial_engine(2, 256, zeros, False, fewer) == "matmul"
    assert _auto.spatial_engine(2, 256, zeros, True, fewer) == "direct"  # the grad case has its own
    # and a real call follows the plan in force
    x = torch.randn(2, 3, 300)
    seen = spy(monkeypatch)
    sigma.blur1d(x, 1.0, radius=2)  # 5 taps
    _auto.use_plan(fewer)
    sigma.blur1d(x, 1.0, radius=2)
    assert seen == ["direct", "matmul"]


def test_use_plan_rejects_other_objects(cache):
    with pytest.raises(TypeError, match="plan"):
        _auto.use_plan({"direct_max_taps_1d": 3})


def test_speed_helper_names_what_the_dispatcher_runs(cache, monkeypatch):
    """sigma.book.speed.auto_choice calls the same rule: under a changed plan both move together."""
    from sigma.book.speed import auto_choice

    fewer = dataclasses.replace(_auto.BUILTIN, direct_max_taps_1d=3, direct_max_taps_1d_grad=3)
    x = torch.randn(8, 3, 256, 256)
    for p in (_auto.BUILTIN, fewer):
        _auto.use_plan(p)
        seen = spy(monkeypatch)
        with torch.no_grad():
            sigma.blur2d_sphere(x, 1.0)
        assert auto_choice("blur2d_sphere", 1.0, "forward") == f"sigma[{seen[0]}]"
        monkeypatch.undo()
        monkeypatch.setenv(_auto.CACHE_ENV, str(cache))


@pytest.mark.parametrize("bad", [dict(repeats=2), dict(repeats=3.0), dict(store="yes"), dict(fused=1)])
def test_tune_rejects_bad_arguments(bad):
    with pytest.raises((TypeError, ValueError), match=next(iter(bad))):
        sigma.tune(**bad)


def test_tune_measures_stores_and_uses_a_plan(cache, monkeypatch):
    from sigma import _tune

    # a small race, so the test stays short: the fitting is what is checked here
    monkeypatch.setattr(_tune, "IMAGE", (1, 2, 64, 64))
    monkeypatch.setattr(_tune, "TAPS_1D", (3, 5, 9))
    monkeypatch.setattr(_tune, "HALF_SIZES_WINDOW", (16, 32))
    monkeypatch.setattr(_tune, "SIDES_2D", (3, 5))
    p = sigma.tune(repeats=3)
    assert p.source.startswith(_auto.machine_key()) and "threads" in p.source
    assert p.direct_max_taps_1d in (1, 3, 5, 9) and p.direct_max_taps_1d_grad in (1, 3, 5, 9)
    assert p.matmul_max_window in (64,) and p.direct_max_taps_2d in (1, 9, 25)  # windows capped by the side
    assert p.fused_max_taps == 0  # not raced unless asked
    assert p.op_us > 0 and p.pass_ns > 0 and p.matmul_gflops > 0 and p.grad_factor_direct > 0
    assert _auto.plan() == p  # in force in this process
    _auto.use_plan(None)
    _auto.reload()
    assert _auto.plan() == p  # and read back from the cache by the next one


@pytest.mark.parametrize(
    "grad_limit, expected",
    # forward: the fused loops win by far up to 17 taps and by 5 % up to 33; forward + backward:
    # by far up to 33 taps, or up to 17 only (and lose 5x beyond): one constant holds in both
    [(40, 33), (20, 17)],
)
def test_tune_fits_the_fused_crossover_over_both_grad_cases(cache, monkeypatch, grad_limit, expected):
    """With fused=True the loops race beyond the shifted sums' sizes (TAPS_FUSED), and the one
    crossover must hold forward and forward + backward: fitted on synthetic race times, since
    real ones would compile every kernel size."""
    from sigma import _tune

    monkeypatch.setattr(_fused, "available", lambda device="cpu": True)
    monkeypatch.setattr(_tune, "IMAGE", (1, 1, 8, 8))
    monkeypatch.setattr(_tune, "_separable", lambda x, method: method)
    monkeypatch.setattr(_tune, "_run", lambda call, x, w, grad: (call, w.shape[-1], grad))

    def fake_ms(fns, repeats, budget=0.1):
        out = {}
        for name, spec in fns.items():
            m, k, grad = spec if isinstance(spec, tuple) and isinstance(spec[0], str) else ("", 0, False)
            fused = (
                (0.1 if k <= grad_limit else 20.0) if grad else (0.1 if k <= 17 else 3.8 if k <= 40 else 20.0)
            )
            out[name] = {"direct": 0.2 * k, "matmul": 4.0, "fused": fused}.get(m, 1.0)
        return out

    monkeypatch.setattr(_tune, "_median_ms", fake_ms)
    p = sigma.tune(store=False, fused=True)
    assert p.fused_max_taps == expected
    assert p.direct_max_taps_1d == 17  # 0.2 k against 4: the shifted sums' races are unchanged
    assert set(_tune.TAPS_FUSED) > {33}  # raced past the shifted sums' sizes
    _auto.use_plan(None)


@pytest.mark.parametrize(
    "stored_ms, expected",
    # recomputing row sums takes 1 ms at every size; the stored row pass 2 ms, or 0.5 ms from 5 x 5
    [((2.0, 2.0, 2.0), 49), ((2.0, 0.5, 0.5), 9)],
)
def test_tune_measures_which_fused_forwards_recompute_row_sums(monkeypatch, stored_ms, expected):
    """The fused forward's two loops raced per kernel size (synthetic times: the real races would
    compile each), fitted to the largest 2D kernel where recomputing holds."""
    from sigma import _fused2d, _tune

    monkeypatch.setattr(_fused2d, "_sep_forward", lambda x, wy, wx, mode, inline=None: (wy.shape[-1], inline))
    stored = dict(zip(_tune.TAPS_INLINE, stored_ms, strict=True))

    def fake_ms(fns, repeats, budget=0.1):
        out = {}
        for name, fn in fns.items():
            k, inline = fn()
            out[name] = 1.0 if inline else stored[k]
        return out

    monkeypatch.setattr(_tune, "_median_ms", fake_ms)
    assert _tune._inline_threshold(torch.zeros(1), 3, lambda *a: None) == expected
    assert _auto.BUILTIN.fused_inline_max_taps == 9


def test_threshold_fits_the_crossover_and_ignores_noise():
    from sigma._tune import _threshold

    assert _threshold([3, 5, 9], [1, 1, 3], [2, 2, 2], 9) == 5  # 3 ms against 2 at 9: move
    assert _threshold([3, 5, 9], [3, 3, 3], [2, 2, 2], 9) == 0  # never faster
    assert _threshold([3, 5, 9], [1, 1, 1], [2, 2, 2], 3) == 9  # always faster
    # within 10 % at 7 and 9: the built-in crossover stays, whichever side it is on
    assert _threshold([3, 5, 7, 9, 11], [1, 1, 1.05, 1, 3], [2, 2, 1, 1.05, 2], 9) == 9
    assert _threshold([3, 5, 7, 9, 11], [1, 1, 1.05, 1, 3], [2, 2, 1, 1.05, 2], 5) == 5


def test_auto_picks_fused_only_when_a_plan_allows_it(cache, monkeypatch):
    x = torch.randn(1, 2, 40, 40, dtype=f64)
    wants = dataclasses.replace(_auto.BUILTIN, fused_max_taps=9)
    _auto.use_plan(wants)
    monkeypatch.setattr(_fused, "available", lambda device="cpu": False)
    seen = spy(monkeypatch)
    sigma.blur2d_sphere(x, 1.0)
    assert "fused_axis" not in seen  # no compiler: the eager engines
    monkeypatch.setattr(_fused, "available", lambda device="cpu": True)
    seen.clear()
    with torch.no_grad():
        sigma.blur1d(x[:, :, 0], 1.0, radius=1)  # 3 taps along a 40-sample axis, float64
    assert seen == ["fused_axis"]


def test_fused_is_refused_where_it_cannot_run():
    x = torch.randn(1, 2, 40, 40)
    with pytest.raises(ValueError, match="method='fused'"):
        sigma.blur2d_full(x, torch.eye(2), method="fused")
    with pytest.raises(TypeError, match="method='fused'.*float16"):
        sigma.blur2d_sphere(x.half(), 1.0, method="fused")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_fused_through_the_public_blurs_equals_direct(mode):
    """method='fused' in the public functions and layers: the same values and σ-gradients as
    'direct' (per-sample and per-channel σ, diagonal, 1D), float64, in every mode ('direct' is
    checked against SciPy in test_blur_reference.py; the border lives in the buffer, so the modes
    share their compiled loops)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 20, 24, dtype=f64)
    s = torch.tensor([[1.0, 1.3, 0.8], [1.1, 0.9, 1.2]], dtype=f64, requires_grad=True)

    def both(f):
        out = []
        for method in ("fused", "direct"):
            y = f(method)
            (g,) = torch.autograd.grad((y * y).sum(), s)
            out.append((y.detach(), g))
        torch.testing.assert_close(out[0][0], out[1][0], rtol=0, atol=1e-12)
        torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-10, atol=1e-10)

    both(lambda m: sigma.blur2d_sphere(x, s, radius=3, padding_mode=mode, method=m))
    both(lambda m: sigma.blur2d_diag(x, s, 0.7 * s, radius=3, padding_mode=mode, method=m))
    both(lambda m: sigma.blur1d(x[:, :, 0], s, radius=3, padding_mode=mode, method=m))
    layer = sigma.Blur2d(1.2, "sphere", channels=3, radius=3, method="fused", padding_mode=mode, dtype=f64)
    ref = sigma.Blur2d(1.2, "sphere", channels=3, radius=3, method="direct", padding_mode=mode, dtype=f64)
    torch.testing.assert_close(layer(x), ref(x), rtol=0, atol=1e-12)
