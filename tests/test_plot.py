"""Smoke tests for the book's plotting helpers: each draws, titles and labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import sigma.plot as splot  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _labelled(ax):
    return ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_plot_signals_labels_and_legend():
    ax = splot.plot_signals({"a": torch.randn(10), "b": torch.randn(1, 1, 10)}, title="t")
    assert _labelled(ax) and ax.get_legend() is not None and len(ax.lines) == 2


def test_recovery_and_history_figures():
    y = torch.randn(1, 1, 20)
    fig = splot.plot_recovery_1d(y, {0: y, 5: y}, {0: 1.0, 5: 2.0}, sigma_true=3.0, source=y)
    assert len(fig.axes) == 2 and all(ax.get_title() for ax in fig.axes)
    fig = splot.plot_fit_history([1.0, 0.5, 0.1], torch.tensor([1.0, 2.0, 3.0]), truth=3.0)
    assert all(_labelled(ax) for ax in fig.axes)
    img = torch.randn(8, 8)
    fig = splot.plot_recovery_2d(img, {0: img, 3: img}, {0: 1.0, 3: 2.0}, sigma_true=2.0)
    assert all(ax.get_title() for ax in fig.axes[:3])


def test_draw_cov_ellipse_extent():
    fig, ax = plt.subplots()
    cov = torch.tensor([[4.0, 0.0], [0.0, 1.0]])  # sigma_y = 2, sigma_x = 1
    line = splot.draw_cov_ellipse(ax, cov, center=(10.0, 20.0), n_std=2.0)
    xs, ys = line.get_data()
    assert abs(xs.max() - 12.0) < 1e-3 and abs(ys.max() - 24.0) < 1e-3
