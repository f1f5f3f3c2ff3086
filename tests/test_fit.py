"""Tests for the shared training loop (sigma.fit)."""

import math

import pytest
import torch

import sigma


def test_fit_recovers_sigma_and_records_everything():
    x = torch.randn(1, 1, 80, dtype=torch.float64)
    y = sigma.blur1d(x, 2.5)
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    r = sigma.fit(
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


def test_fit_reports_divergence_instead_of_raising():
    x = torch.randn(1, 1, 50, dtype=torch.float64)
    y = sigma.blur1d(x, 2.0)
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    r = sigma.fit(lambda: sigma.blur1d(x, s.exp()), [s], y, steps=50, lr=1e3)
    assert r.diverged and "too large" in r.reason
    assert r.steps_run == 0 and len(r.losses) == 1


def test_fit_logs(capsys):
    x = torch.randn(1, 1, 30, dtype=torch.float64)
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    sigma.fit(
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
        sigma.fit(lambda: s * 1.0, [s], torch.zeros(()), **kwargs)
