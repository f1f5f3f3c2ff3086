"""Tests for the shared training loop (sigma.book.train)."""

import math

import pytest
import torch

import sigma
from sigma.book import fit


def test_fit_recovers_sigma_and_records_everything():
    x = torch.randn(1, 1, 80, dtype=torch.float64)
    y = sigma.blur1d(x, 2.5)
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    r = fit(
        lambda: sigma.blur1d(x, s.exp()),
        [s],
        y,
        steps=100,
        lr=1.0,
        track={"sigma": lambda: s.exp()},
        snapshot_steps=(0, 100),
    )
    assert len(r.losses) == 101 and r.steps_run == 100 and not r.diverged
    assert r.tracked["sigma"].shape == (101,)
    assert r.tracked["sigma"][0] == 1.0
    assert abs(float(r.final("sigma")) - 2.5) < 1e-3
    assert set(r.snapshots) == {0, 100}
    assert r.losses[-1] < 1e-3 * r.losses[0]


def test_fit_gives_lbfgs_its_closure():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 80, dtype=torch.float64)
    y = sigma.blur1d(x, 2.5)
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([s], max_iter=10, line_search_fn="strong_wolfe")
    r = fit(lambda: sigma.blur1d(x, s.exp()), [s], y, steps=5, lr=1.0, optimizer=opt)
    assert r.steps_run == 5 and not r.diverged
    assert abs(float(s.exp()) - 2.5) < 1e-5
    assert r.losses[-1] < 1e-10 * r.losses[0]


def test_fit_reports_divergence_instead_of_raising():
    x = torch.randn(1, 1, 50, dtype=torch.float64)
    y = sigma.blur1d(x, 2.0)
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    r = fit(lambda: sigma.blur1d(x, s.exp()), [s], y, steps=50, lr=1e3)
    assert r.diverged and "too large" in r.reason
    assert r.steps_run == 0 and len(r.losses) == 1


def test_fit_logs(capsys):
    x = torch.randn(1, 1, 30, dtype=torch.float64)
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    fit(
        lambda: sigma.blur1d(x, s.exp()),
        [s],
        x,
        steps=4,
        lr=0.1,
        log_every=2,
        track={"sigma": lambda: s.exp()},
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[1] for ln in lines] == ["0", "2", "4"]
    assert "sigma" in lines[0]


@pytest.mark.parametrize("bad", [dict(steps=-1), dict(optimizer="lbfgs"), dict(lr=0.0), dict(lr=math.inf)])
def test_fit_rejects_bad_arguments(bad):
    s = torch.zeros((), requires_grad=True)
    kwargs = dict(steps=1, lr=0.1) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        fit(lambda: s * 1.0, [s], torch.zeros(()), **kwargs)


def _sweep_setup(x):
    def setup():
        s = torch.zeros((), dtype=torch.float64, requires_grad=True)
        return (lambda: sigma.blur1d(x, s.exp())), [s], {"sigma": lambda: s.exp()}

    return setup


def test_sweep_runs_every_pair_from_a_fresh_start():
    from sigma.book import sweep

    x = torch.randn(1, 1, 60, dtype=torch.float64)
    y = sigma.blur1d(x, 2.5)
    res = sweep(_sweep_setup(x), y, lrs=[0.01, 1.0, 1e3], optimizers=["sgd", "adam"], steps=60)
    assert res.optimizers == ("sgd", "adam") and res.lrs == (0.01, 1.0, 1e3)
    assert len(res.runs) == 6
    # every run starts at sigma = 1 (fresh parameters, not the previous run's)
    assert all(float(r.tracked["sigma"][0]) == 1.0 for r in res.runs.values())
    err = res.relative_error("sigma", 2.5)
    assert err.shape == (2, 3) and err.dtype == torch.float64
    # SGD with lr 1 recovers sigma; with lr 0.01 it barely moves (error still near 0.6)
    assert err[0, 1] < 1e-2 and err[0, 0] > 0.5
    # SGD with lr 1e3 blows the kernel past MAX_RADIUS: reported, and nan in the table
    assert bool(res.diverged[0, 2]) and math.isnan(err[0, 2])
    assert not bool(res.diverged[0, 1])
    one = res.runs[("sgd", 1.0)]
    assert err[0, 1] == abs(float(one.final("sigma")) - 2.5) / 2.5


def test_sweep_rejects_bad_arguments():
    from sigma.book import sweep

    setup = _sweep_setup(torch.randn(1, 1, 10, dtype=torch.float64))
    y = torch.zeros(1, 1, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match="must not be empty"):
        sweep(setup, y, lrs=[], steps=1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        sweep(setup, y, lrs=[0.1], optimizers=["rmsprop"], steps=1)
    with pytest.raises(ValueError, match="lr must be"):
        sweep(setup, y, lrs=[-1.0], steps=1)


def test_steps_to_tolerance():
    from sigma.book import steps_to_tolerance

    v = torch.tensor([1.0, 2.5, 1.9, 2.01, 2.0], dtype=torch.float64)
    assert steps_to_tolerance(v, 2.0, 0.01) == 3  # step 2 is off by 5%
    assert steps_to_tolerance(v, 2.0, 0.2) == 2  # step 1 is off by 25%
    assert steps_to_tolerance(v, 2.0, 1.0) == 0
    assert steps_to_tolerance(torch.tensor([2.0, 3.0]), 2.0, 0.1) is None
    # vector-valued trajectories: the worst component counts
    vv = torch.tensor([[1.0, 4.0], [2.0, 3.3], [2.0, 3.0]])
    assert steps_to_tolerance(vv, torch.tensor([2.0, 3.0]), 0.05) == 2
    assert steps_to_tolerance(torch.tensor([2.0, math.nan, 2.0]), 2.0, 0.1) == 2
    with pytest.raises(ValueError, match="tol"):
        steps_to_tolerance(v, 2.0, 0.0)
    with pytest.raises(ValueError, match="empty"):
        steps_to_tolerance(torch.empty(0), 2.0, 0.1)
