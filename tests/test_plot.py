"""Smoke tests for the book's plotting helpers: each draws, titles and labels."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import sigma  # noqa: E402
import sigma.book.plot as splot  # noqa: E402
from sigma.book import half_mse  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _labelled(ax):
    return ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_plot_signals_labels_and_legend():
    ax = splot.plot_signals({"a": torch.randn(10), "b": torch.randn(1, 1, 10)}, title="t")
    assert _labelled(ax) and ax.get_legend() is not None and len(ax.lines) == 2


def test_plot_kernels_centres_each_kernel_on_zero():
    small, large = torch.tensor([0.25, 0.5, 0.25]), torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1])
    ax = splot.plot_kernels({"h = 1": small, "h = 2": large}, title="kernels")
    assert _labelled(ax) and ax.get_legend() is not None
    stems = ax.containers  # one stem plot per kernel, side by side around each offset
    xs = [[round(float(v)) for v in c.markerline.get_xdata()] for c in stems]
    assert xs == [[-1, 0, 1], [-2, -1, 0, 1, 2]]
    assert list(stems[1].markerline.get_ydata()) == pytest.approx(large.tolist())


@pytest.mark.parametrize("bad", [{}, {"even": torch.ones(4)}, {"2d": torch.ones(3, 3)}])
def test_plot_kernels_rejects_bad_kernels(bad):
    with pytest.raises(ValueError, match="kernels"):
        splot.plot_kernels(bad, title="t")


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


def test_plot_explorer_marks_the_loss_and_log_sigma_gradient():
    torch.manual_seed(1337)
    x = torch.randn(1, 1, 50, dtype=torch.float64)
    opts = {"std_devs": 2.0, "padding_mode": "reflect", "kernel": "erf"}
    fig = splot.plot_explorer(x, 1.3, sigma_true=3.0, num=9, **opts)
    assert len(fig.axes) == 4 and all(_labelled(ax) for ax in fig.axes)
    assert all(ax.get_legend() is not None for ax in fig.axes[1:])
    # The marked loss and gradient match an independent evaluation (central differences in s = log σ).
    target = sigma.blur1d(x, 3.0, **opts)

    def loss(s):
        return float(half_mse(sigma.blur1d(x, math.exp(s), **opts), target))

    s, eps = math.log(1.3), 1e-6  # h = ceil(2σ) = 3 on both sides: no kernel-size jump
    marked_loss = fig.axes[2].lines[1].get_ydata()[0]
    marked_grad = fig.axes[3].lines[1].get_ydata()[0]
    assert marked_loss == pytest.approx(loss(s), rel=1e-12)
    assert marked_grad == pytest.approx((loss(s + eps) - loss(s - eps)) / (2 * eps), rel=1e-6)
    assert marked_grad < 0  # below the true σ, growing σ lowers the loss
    # The kernel panel shows the 2h + 1 taps of gauss1d.
    assert len(fig.axes[0].containers[0].markerline.get_xdata()) == 2 * sigma.kernel_radius(1.3) + 1


def test_plot_explorer_zero_loss_at_the_true_sigma_and_rejects_bad_input():
    x = torch.randn(40, dtype=torch.float64)
    fig = splot.plot_explorer(x, 3.0, sigma_true=3.0, num=3)  # 2σ = 6 sits on a kernel-size jump
    assert fig.axes[2].lines[1].get_ydata()[0] == 0.0
    with pytest.raises(ValueError, match="x must be one signal"):
        splot.plot_explorer(torch.randn(2, 1, 40), 1.0)
    with pytest.raises(ValueError, match="sigma_range must satisfy"):
        splot.plot_explorer(x, 1.0, sigma_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        splot.plot_explorer(x, 1.0, padding_mode="edge")


def test_plot_sweep_errors_marks_diverged_runs_and_thresholds():
    lrs = [0.1, 1.0, 10.0]
    errors = torch.tensor([[0.5, 0.0, math.nan], [0.3, 1e-3, 2e-2]], dtype=torch.float64)
    _, ax = plt.subplots()
    splot.plot_sweep_errors(
        ax, lrs, errors, labels=["sgd", "adam"], title="sweep", floor=1e-12, vlines={"2/λ": 5.0}
    )
    assert _labelled(ax) and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    sgd, sgd_div = ax.lines[0], ax.lines[1]
    assert list(sgd.get_xdata()) == [0.1, 1.0] and list(sgd.get_ydata()) == [0.5, 1e-12]  # 0 drawn at floor
    assert list(sgd_div.get_xdata()) == [10.0] and sgd_div.get_marker() == "x"
    assert list(ax.lines[2].get_ydata()) == pytest.approx([0.3, 1e-3, 2e-2])  # adam: nothing diverged
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["sgd", "adam", "diverged (×)", "2/λ"]
    with pytest.raises(ValueError, match="errors must have shape"):
        splot.plot_sweep_errors(ax, lrs, errors[:, :2], labels=["a", "b"], title="t")


def test_plot_sweep_heatmap_shows_log_errors_with_colorbar():
    lrs = [0.1, 1.0, 10.0]
    errors = torch.tensor([[1e-2, 1e-20, math.nan]], dtype=torch.float64)
    fig, ax = plt.subplots()
    im = splot.plot_sweep_heatmap(ax, lrs, errors, row_labels=["sgd, log σ"], title="heat", floor=1e-16)
    assert _labelled(ax)
    data = im.get_array()
    assert data[0, 0] == pytest.approx(-2.0) and data[0, 1] == pytest.approx(-16.0)
    assert bool(data.mask[0, 2])  # the diverged run is a masked (grey) cell ...
    assert [t.get_text() for t in ax.texts] == ["×"]  # ... marked with a cross
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "log10 final relative error"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "1", "10"]
    with pytest.raises(ValueError, match="errors must have shape"):
        splot.plot_sweep_heatmap(ax, lrs, errors, row_labels=["a", "b"], title="t")


def test_show_images_grid_colormaps_limits_and_colorbars():
    img = torch.arange(12.0).reshape(1, 1, 3, 4)
    panels = {"a": img, "b": img[0, 0] * 2, "c": img + 1}
    fig = splot.show_images(
        panels, title="grid", ncols=2, cmap={"b": "viridis"}, clim={"c": (0.0, 5.0)}, size=2.0
    )
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title() in panels]
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"] and all(_labelled(ax) for ax in axes)
    ims = [ax.images[0] for ax in axes]
    assert [im.get_cmap().name for im in ims] == ["gray", "viridis", "gray"]
    assert ims[1].get_clim() == (0.0, 22.0) and ims[2].get_clim() == (0.0, 5.0)
    assert sum(ax.get_visible() for ax in fig.axes) == 6  # 3 images + 3 colorbars; the 4th cell hidden
    assert fig.get_suptitle() == "grid"
    one = splot.show_images({"x": img, "y": img}, clim=(1.0, 2.0))
    assert all(ax.images[0].get_clim() == (1.0, 2.0) for ax in one.axes if ax.images)
    with pytest.raises(ValueError, match="panels must hold at least one image"):
        splot.show_images({})
    with pytest.raises(ValueError, match="ncols must be a positive int"):
        splot.show_images(panels, ncols=0)


def test_explorer_animation_is_an_offline_slider_over_the_frames():
    torch.manual_seed(1337)
    x = torch.randn(1, 1, 30, dtype=torch.float64)
    html = splot.explorer_animation(x, [1.0, 3.0, 5.0], num=5, figsize=(4.0, 3.0), dpi=30, alt='a "b"')
    assert '<img alt="a &quot;b&quot;" id=' in html
    assert 'class="animation"' in html and 'type="range"' in html
    assert html.count("data:image/png;base64,") == 3  # one embedded frame per σ, nothing fetched
    assert "http://" not in html and "https://" not in html
    assert not plt.get_fignums()  # the figure is closed: the notebook shows only the slider
    with pytest.raises(ValueError, match="sigmas must hold at least one"):
        splot.explorer_animation(x, [])
    with pytest.raises(ValueError, match="x must be one signal"):
        splot.explorer_animation(torch.randn(2, 1, 30), [1.0])


@pytest.mark.parametrize("grid", [(1, 1), (1, 2), (2, 2)])
def test_player_draws_each_frame_once_on_cleared_axes(grid):
    drawn = []

    def draw(fig, axes, i):
        first = axes if grid == (1, 1) else axes.flat[0]
        assert not first.lines  # cleared before every frame
        first.plot([0, 1], [i, i])
        first.set(title=f"frame {i}", xlabel="x", ylabel="y")
        drawn.append(i)

    html = splot.player(draw, 4, nrows=grid[0], ncols=grid[1], figsize=(3.0, 2.0), dpi=20, alt="a <b>")
    assert sorted(set(drawn)) == [0, 1, 2, 3]
    assert html.count("data:image/png;base64,") == 4 and 'type="range"' in html
    assert '<img alt="a &lt;b&gt;" id=' in html and "https://" not in html
    assert not plt.get_fignums()


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_player_rejects_a_bad_frame_count(bad):
    with pytest.raises(ValueError, match="n_frames"):
        splot.player(lambda fig, ax, i: None, bad)
