"""The one kernel-size rule (``resolve_support``) and the one options check (``blur_options``)."""

import copy
import math
import pickle

import pytest
import torch

import sigma
from sigma._checks import BlurOptions, Support, blur_options, own_radii, resolve_support

f64 = torch.float64


def _never():
    raise AssertionError("read although radius= fixes the support")


def test_radius_given_reads_nothing_and_cuts_nothing():
    assert resolve_support([_never], blur_options(1, radius=3)) == Support((3,), None)
    assert resolve_support(_never, blur_options(2, radius=4), axes=2) == Support(
        (4, 4), None
    )  # int: both axes
    assert resolve_support([_never, _never], blur_options(2, radius=(2, 5)), ("sigma_y", "sigma_x")).h == (
        2,
        5,
    )
    assert resolve_support([_never], blur_options(1, radius=2), axes=1).own is None


def test_computed_from_sigma_keeps_own_support():
    o = blur_options(1, 2.0)
    assert resolve_support([3.0], o) == Support((6,), 2.0)
    assert resolve_support([math.exp(math.log(3.0))], o).h == (6,)  # rounding noise adds no tap
    assert resolve_support([0.1], o).h == (1,)  # never below one tap
    assert resolve_support([lambda: 1.5], blur_options(2, 3.0), axes=2).h == (5, 5)
    assert resolve_support(lambda: [1.0, 3.0], o, ("sigma_y", "sigma_x")).h == (2, 6)  # one read for both
    assert resolve_support([3.0], o).h[0] == sigma.kernel_radius(3.0)


def test_reads_in_turn_each_checked_before_the_next():
    reads = []

    def read(v):
        return lambda: reads.append(v) or v

    with pytest.raises(sigma.ScaleError, match="sigma_y is too large"):
        resolve_support([read(1e9), read(1.0)], blur_options(2), ("sigma_y", "sigma_x"))
    assert reads == [1e9]


def test_per_channel_sigma_each_cut_at_its_own_support():
    s = torch.tensor([0.5, 1.0, 3.0], dtype=f64)
    assert own_radii(2.0, s).tolist() == [1, 2, 6]
    assert own_radii(None, s) is None  # a fixed radius: every kernel uses h
    assert own_radii(2.0, torch.tensor(3.0)) is None  # one σ: its own support is h
    x = torch.randn(2, 3, 31, dtype=f64, generator=torch.Generator().manual_seed(0))
    together = sigma.blur1d(x, s, padding_mode="reflect")
    for c in range(3):
        alone = sigma.blur1d(x[:, c : c + 1], float(s[c]), padding_mode="reflect")
        torch.testing.assert_close(together[:, c : c + 1], alone, rtol=0, atol=1e-14)


def test_dog_pair_shares_the_larger_support():
    names = ("sigma_center", "sigma_surround")
    o = blur_options(2)
    assert resolve_support([1.0, 3.0], o, names, axes=2, shared=True) == Support((6, 6), 2.0)
    assert resolve_support([1.0, 3.0], blur_options(1), names, shared=True).h == (6,)
    assert resolve_support(
        [_never, _never], blur_options(2, radius=(2, 3)), names, axes=2, shared=True
    ).h == (2, 3)
    sc, ss = torch.tensor([1.0, 2.0], dtype=f64), torch.tensor(0.5, dtype=f64)
    assert own_radii(2.0, sc, ss).tolist() == [2, 4]  # per channel, the larger of the pair
    with pytest.raises(sigma.ScaleError, match="sigma_surround is too large"):
        resolve_support([1.0, 1e9], o, names, axes=2, shared=True)


def test_covariance_variances_and_dense_limit():
    o = blur_options(2)
    assert resolve_support([4.0, 1.0], o, "cov", variance=True).h == (4, 2)
    assert sigma.cov_radii(torch.tensor([[4.0, 1.0], [1.0, 1.0]])) == (4, 2)
    with pytest.raises(ValueError, match="cov is too large: the dense kernel"):
        resolve_support([1500.0**2, 1500.0**2], o, "cov", variance=True, dense=True)
    assert resolve_support(None, blur_options(2, radius=(3000, 3000)), dense=True).h == (3000, 3000)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(std_devs=-1.0), ValueError, "std_devs must be a positive finite number"),
        (dict(std_devs="2"), TypeError, "std_devs must be a positive real number"),
        (dict(padding_mode="mirror"), ValueError, "padding_mode must be one of"),
        (dict(kernel="box"), ValueError, "kernel must be one of"),
        (dict(method="fast"), ValueError, "method must be one of"),
        (dict(radius=0), ValueError, "radius must be in"),
        (dict(radius=(1, 2)), TypeError, "radius must be an int"),
        (dict(order=4), ValueError, "order must be in"),
        (dict(gamma=float("nan")), ValueError, "gamma must be finite"),
    ],
)
def test_options_errors_name_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        blur_options(1, **kwargs)
    x = torch.zeros(1, 1, 8)
    with pytest.raises(exc, match=match):  # the functions and the layers raise the same
        sigma.blur1d(x, 1.0, **kwargs)
    with pytest.raises(exc, match=match):
        sigma.Blur1d(**kwargs)


def test_options_axes_and_jet_order():
    o = blur_options(2, 3.0, "reflect", "erf", "direct", 4, 1, 0.5)
    assert o == BlurOptions(3.0, "reflect", "erf", "direct", (4, 4), (1, 1), 0.5)
    assert blur_options(2, radius=[2, 3], order=(0, 2)).radius == (2, 3)
    assert blur_options(2, order=2, jet=True).order == 2
    with pytest.raises(TypeError, match="order must be an int"):
        blur_options(2, order=(1, 1), jet=True)
    with pytest.raises(ValueError, match="radius must be an int or a pair"):
        blur_options(2, radius=(1, 2, 3))


def test_layers_keep_one_options_object():
    m = sigma.Blur2d(2.0, "diag", padding_mode="reflect", order=(1, 0), dtype=f64)
    assert m.options == BlurOptions(2.0, "reflect", "sampled", "auto", None, (1, 0), 0.0)
    with pytest.raises(AttributeError):
        m.options.radius = 3  # frozen: change it through the layer
    m.radius = (6, 6)
    assert m.options.radius == (6, 6) and "radius=(6, 6)" in repr(m)
    x = torch.randn(1, 2, 16, 16, dtype=f64)
    expected = sigma.blur2d_diag(x, 2.0, 2.0, padding_mode="reflect", radius=6, order=(1, 0))
    torch.testing.assert_close(m(x), expected)
    for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert other.options == m.options
    assert sigma.DynamicBlur2d(3, std_devs=3.0, sigma_range=(0.5, 2.0)).options.radius == 6
    assert sigma.NJetConv2d(2, 3, order=3, radius=4).options.radius == (4, 4)


def test_layer_pickled_with_loose_options_still_loads():
    m = sigma.Blur1d(1.5, padding_mode="circular", radius=4)
    state = dict(m.__dict__)
    old = state.pop("options")
    state.update({k: getattr(old, k) for k in ("std_devs", "padding_mode", "kernel", "method", "radius")})
    state.update(order=old.order, gamma=old.gamma)
    restored = sigma.Blur1d.__new__(sigma.Blur1d)
    restored.__setstate__(state)
    assert restored.options == old and restored.padding_mode == "circular"
    x = torch.randn(2, 1, 20)
    torch.testing.assert_close(restored(x), m(x))
