"""Bad input raises ValueError/TypeError naming the argument; invalid scales raise ScaleError."""

from __future__ import annotations

import math
import re
import resource

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import sigma
from sigma import _checks

f64 = torch.float64
X1 = torch.randn(1, 2, 8, dtype=f64)
X2 = torch.randn(1, 2, 8, 8, dtype=f64)
EYE = torch.eye(2, dtype=f64)
SMAP = torch.ones(1, 1, 8, 8, dtype=f64)
CMAP = EYE.expand(1, 8, 8, 2, 2)
NAN, INF = math.nan, math.inf

# Every function that takes σ, as a function of that σ (named ``name`` in its messages).
SCALE_TAKERS = {
    "blur1d": (lambda s: sigma.blur1d(X1, s), "sigma"),
    "blur2d_sphere": (lambda s: sigma.blur2d_sphere(X2, s), "sigma"),
    "blur2d_diag/y": (lambda s: sigma.blur2d_diag(X2, s, 1.0), "sigma_y"),
    "blur2d_diag/x": (lambda s: sigma.blur2d_diag(X2, 1.0, s), "sigma_x"),
    "dog1d/center": (lambda s: sigma.dog1d(X1, s, 2.0), "sigma_center"),
    "dog2d/surround": (lambda s: sigma.dog2d(X2, 1.0, s), "sigma_surround"),
    "gauss1d": (lambda s: sigma.gauss1d(s), "sigma"),
    "gauss2d_sphere": (lambda s: sigma.gauss2d_sphere(s), "sigma"),
    "gauss2d_diag": (lambda s: sigma.gauss2d_diag(1.0, s), "sigma_x"),
    "kernel_radius": (lambda s: sigma.kernel_radius(s), "sigma"),
    "Blur1d": (lambda s: sigma.Blur1d(s), "sigma"),
    "Blur2d": (lambda s: sigma.Blur2d(s), "sigma"),
    "rotated_cov": (lambda s: sigma.rotated_cov(s, 1.0, 0.0), "sigma_major"),
}

BAD_SCALES = {
    "zero": 0.0,
    "negative": -1.5,
    "nan": NAN,
    "inf": INF,
    "-inf": -INF,
    "tensor_nan": torch.tensor(NAN, dtype=f64),
    "tensor_negative": torch.tensor(-0.1, dtype=f64),
    "channel_zero": torch.tensor([1.0, 0.0], dtype=f64),
}


# rotated_cov takes 0-dim scales only, so it gets no per-channel case
INVALID_SCALE_CASES = [
    pytest.param(taker, bad, id=f"{t}-{b}")
    for t, taker in SCALE_TAKERS.items()
    for b, bad in BAD_SCALES.items()
    if not (t == "rotated_cov" and b == "channel_zero")
]


@pytest.mark.parametrize(("taker", "bad"), INVALID_SCALE_CASES)
def test_invalid_scale_raises_scale_error_naming_it(taker, bad):
    fn, name = taker
    with pytest.raises(sigma.ScaleError, match=name) as info:
        fn(bad)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("taker", SCALE_TAKERS.values(), ids=SCALE_TAKERS.keys())
def test_scale_of_the_wrong_type_raises_type_error(taker):
    fn, name = taker
    for bad in (True, "1.0", [1.0], None, torch.tensor([1 + 1j])):
        with pytest.raises(TypeError, match=name):
            fn(bad)


@pytest.mark.parametrize(
    "n", [1, 5, _checks._READ_ALL + 1], ids=["one", "few: read whole", "many: reduced first"]
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, f64])
def test_scale_values_are_checked_the_same_read_whole_or_reduced(n, dtype):
    # small CPU tensors are read whole and checked in Python, larger ones reduced on the device
    good = torch.linspace(0.5, 3.0, n, dtype=dtype)
    assert _checks.check_scale_values(good, "sigma") == good.max().item()
    for bad, words in ((NAN, "finite"), (INF, "finite"), (-INF, "finite"), (0.0, "> 0"), (-1.0, "> 0")):
        t = good.clone()
        t[n // 2] = bad
        with pytest.raises(sigma.ScaleError, match=f"sigma must be {re.escape(words)}"):
            _checks.check_scale_values(t, "sigma")


def test_scale_error_is_a_value_error():
    assert issubclass(sigma.ScaleError, ValueError)


# ----------------------------------------------------------------------------- too large


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


HUGE = {
    "blur1d": lambda: sigma.blur1d(X1, 1e9),
    "blur2d_sphere": lambda: sigma.blur2d_sphere(X2, 1e9),
    "blur2d_diag": lambda: sigma.blur2d_diag(X2, 1.0, 1e9),
    "blur2d_full": lambda: sigma.blur2d_full(X2, EYE * 1e18),
    "dog2d": lambda: sigma.dog2d(X2, 1.0, 1e9),
    "local_sphere": lambda: sigma.blur2d_local_sphere(X2, SMAP * 1e9),
    "local_full": lambda: sigma.blur2d_local_full(X2, CMAP * 1e18),
    "gauss1d": lambda: sigma.gauss1d(1e9),
    "gauss2d_full": lambda: sigma.gauss2d_full(EYE * 1e18),
    "kernel_radius": lambda: sigma.kernel_radius(1e9),
    "Blur2d": lambda: sigma.Blur2d(1e9)(X2.float()),
    "std_devs": lambda: sigma.blur1d(X1, 1.0, std_devs=1e12),
}


class _CountOps(TorchDispatchMode):
    """Counts the tensor operations run under it and the largest tensor they return."""

    def __init__(self):
        super().__init__()
        self.ops, self.largest = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_op_counter_sees_work():  # the counter below can fail: it sees a real blur's work
    with _CountOps() as count:
        sigma.blur2d_sphere(X2, 3.0)
    assert count.ops > 10 and count.largest >= X2.numel()


@pytest.mark.parametrize("fn", HUGE.values(), ids=HUGE.keys())
def test_huge_scale_fails_at_once_without_allocating(fn):
    # "at once": the size is refused before any work, counted in tensor operations and
    # their outputs' size (not wall time, which a loaded machine stretches)
    rss = _peak_rss_mb()
    with _CountOps() as count, pytest.raises(sigma.ScaleError, match="too large"):
        fn()
    assert count.ops <= 64, f"{count.ops} tensor operations before the error"
    assert count.largest <= 4 * X2.numel(), f"a tensor of {count.largest} elements before the error"
    # a kernel for σ = 1e9 would need gigabytes; the peak resident memory must not move
    assert _peak_rss_mb() - rss < 64


def test_largest_allowed_radius_still_works():
    h = sigma.MAX_RADIUS
    assert sigma.kernel_radius(h / 2) == h
    assert sigma.gauss1d(h / 2, dtype=f64).shape == (2 * h + 1,)
    with pytest.raises(sigma.ScaleError, match="too large"):
        sigma.gauss1d(h / 2 + 1)


def test_dense_full_kernel_over_the_tap_limit_is_refused():
    # within MAX_RADIUS on each axis, but (2h+1)^2 taps is too many for a dense kernel
    with pytest.raises(ValueError, match="cov is too large"):
        sigma.blur2d_full(X2, EYE * 2000.0**2)


def test_huge_center_sigma_is_named():
    with pytest.raises(sigma.ScaleError, match="sigma_center"):
        sigma.dog1d(X1, 1e9, 1.0)


# ----------------------------------------------------------------------------- std_devs


BAD_STD_DEVS = {
    "zero": (0, ValueError),
    "negative": (-1, ValueError),
    "nan": (NAN, ValueError),
    "inf": (INF, ValueError),
    "bool": (True, TypeError),
    "str": ("2", TypeError),
}
STD_DEVS_TAKERS = {
    "blur1d": lambda sd: sigma.blur1d(X1, 1.0, sd),
    "blur2d_sphere": lambda sd: sigma.blur2d_sphere(X2, 1.0, sd),
    "blur2d_diag": lambda sd: sigma.blur2d_diag(X2, 1.0, 1.0, sd),
    "blur2d_full": lambda sd: sigma.blur2d_full(X2, EYE, sd),
    "dog2d": lambda sd: sigma.dog2d(X2, 1.0, 2.0, sd),
    "local_sphere": lambda sd: sigma.blur2d_local_sphere(X2, SMAP, sd),
    "local_full": lambda sd: sigma.blur2d_local_full(X2, CMAP, sd),
    "gauss1d": lambda sd: sigma.gauss1d(1.0, sd),
    "gauss2d_full": lambda sd: sigma.gauss2d_full(EYE, sd),
    "kernel_radius": lambda sd: sigma.kernel_radius(1.0, sd),
    "Blur1d": lambda sd: sigma.Blur1d(1.0, std_devs=sd),
    "DynamicBlur2d": lambda sd: sigma.DynamicBlur2d(2, std_devs=sd),
}


@pytest.mark.parametrize("bad", BAD_STD_DEVS.values(), ids=BAD_STD_DEVS.keys())
@pytest.mark.parametrize("fn", STD_DEVS_TAKERS.values(), ids=STD_DEVS_TAKERS.keys())
def test_bad_std_devs(fn, bad):
    value, error = bad
    with pytest.raises(error, match="std_devs"):
        fn(value)


# ----------------------------------------------------------------------------- the input x


INPUT_TAKERS = {
    "blur1d": (lambda x: sigma.blur1d(x, 1.0), 3),
    "dog1d": (lambda x: sigma.dog1d(x, 1.0, 2.0), 3),
    "blur2d_sphere": (lambda x: sigma.blur2d_sphere(x, 1.0), 4),
    "blur2d_diag": (lambda x: sigma.blur2d_diag(x, 1.0, 2.0), 4),
    "blur2d_full": (lambda x: sigma.blur2d_full(x, EYE), 4),
    "dog2d": (lambda x: sigma.dog2d(x, 1.0, 2.0), 4),
    "local_sphere": (lambda x: sigma.blur2d_local_sphere(x, SMAP), 4),
    "local_full": (lambda x: sigma.blur2d_local_full(x, CMAP), 4),
}


@pytest.mark.parametrize("taker", INPUT_TAKERS.values(), ids=INPUT_TAKERS.keys())
def test_bad_input(taker):
    fn, ndim = taker
    good = X1 if ndim == 3 else X2
    for wrong in (good[0], good.unsqueeze(0), good.sum()):
        with pytest.raises(ValueError, match=r"x must have shape \(B, C, "):
            fn(wrong)
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        fn(good.long())
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        fn(good.bool())
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        fn(good.tolist())
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        fn(good.numpy())
    empty = torch.zeros((1, 0) + good.shape[2:], dtype=f64)
    with pytest.raises(ValueError, match="x must not be empty"):
        fn(empty)


# ----------------------------------------------------------------------------- σ shape


@pytest.mark.parametrize(
    "taker",
    [v for k, v in SCALE_TAKERS.items() if k.startswith(("blur", "dog"))],
    ids=[k for k in SCALE_TAKERS if k.startswith(("blur", "dog"))],
)
def test_sigma_of_wrong_shape(taker):
    fn, name = taker
    with pytest.raises(ValueError, match=rf"{name} must have one value per channel.*got shape \(3,\)"):
        fn(torch.ones(3, dtype=f64))  # x has C = 2
    # x has B = 1: (2, 1) is neither per sample nor per channel; the message lists what each shape means
    with pytest.raises(
        ValueError, match=rf"{name} must be a number or a tensor of shape \(\).*\(B, 1\).*got shape \(2, 1\)"
    ):
        fn(torch.ones(2, 1, dtype=f64))
    with pytest.raises(ValueError, match=name):
        fn(torch.ones(1, 2, 1, dtype=f64))
    with pytest.raises(ValueError, match=name):
        fn(torch.ones(0, dtype=f64))


# ----------------------------------------------------------------------------- covariances


COV_TAKERS = {
    "blur2d_full": (lambda c: sigma.blur2d_full(X2, c), "cov"),
    "gauss2d_full": (lambda c: sigma.gauss2d_full(c), "cov"),
    "cov_to_logchol": (lambda c: sigma.cov_to_logchol(c), "cov"),
    "cov_axes": (lambda c: sigma.cov_axes(c), "cov"),
    "Blur2d": (lambda c: sigma.Blur2d(structure="full", cov=c), "cov"),
    "local_full": (lambda c: sigma.blur2d_local_full(X2, c.expand(1, 8, 8, *c.shape[-2:])), "cov_map"),
}


@pytest.mark.parametrize("taker", COV_TAKERS.values(), ids=COV_TAKERS.keys())
def test_bad_covariance(taker):
    fn, name = taker
    t = lambda rows: torch.tensor(rows, dtype=f64)  # noqa: E731
    with pytest.raises(ValueError, match=rf"{name} must be symmetric"):
        fn(t([[2.0, 0.5], [0.1, 1.0]]))
    for not_pd in ([[1.0, 2.0], [2.0, 1.0]], [[-1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]):
        with pytest.raises(sigma.ScaleError, match=rf"{name} must be positive definite"):
            fn(t(not_pd))
    for nonfinite in (NAN, INF):
        with pytest.raises(sigma.ScaleError, match=rf"{name} must be finite"):
            fn(t([[1.0, 0.0], [0.0, nonfinite]]))
    with pytest.raises(ValueError, match=rf"{name} must have shape"):
        fn(torch.eye(3, dtype=f64))
    with pytest.raises(TypeError, match=name):
        fn(torch.eye(2, dtype=torch.long))


def test_cov_radii_rejects_an_invalid_covariance_naming_it():
    with pytest.raises(ValueError, match="cov must be positive definite"):
        sigma.cov_radii(-EYE)
    with pytest.raises(ValueError, match="cov must be finite"):
        sigma.cov_radii(EYE * NAN)


def test_cov_of_wrong_leading_shape():
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\) or \(C, 2, 2\) with C=2"):
        sigma.blur2d_full(X2, EYE.expand(3, 2, 2))
    with pytest.raises(ValueError, match=r"cov must have shape.*\(B, 1, 2, 2\).*got shape \(2, 2, 2, 2\)"):
        sigma.blur2d_full(X2, EYE.expand(2, 2, 2, 2))  # X2 has B = 1
    with pytest.raises(ValueError, match="cov must have shape"):
        sigma.blur2d_full(X2, EYE.expand(1, 1, 2, 2, 2))
    with pytest.raises(ValueError, match="cov must have shape"):
        sigma.gauss2d_full(EYE.expand(1, 2, 2, 2))
    with pytest.raises(TypeError, match="cov must be a torch.Tensor"):
        sigma.blur2d_full(X2, [[1.0, 0.0], [0.0, 1.0]])


def test_bad_logchol_params():
    with pytest.raises(ValueError, match=r"params must have shape \(\.\.\., 3\)"):
        sigma.logchol_to_cov(torch.zeros(2))
    with pytest.raises(ValueError, match="params must have shape"):
        sigma.logchol_to_cov(torch.tensor(0.0))
    with pytest.raises(ValueError, match="params must be finite"):
        sigma.logchol_to_cov(torch.tensor([0.0, NAN, 0.0]))
    with pytest.raises(TypeError, match="params must have a floating-point dtype"):
        sigma.logchol_to_cov(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="params must be a torch.Tensor"):
        sigma.logchol_to_cov([0.0, 0.0, 0.0])


# ----------------------------------------------------------------------------- maps


def test_bad_sigma_map():
    for shape in [(1, 8, 8), (1, 1, 8, 7), (2, 1, 8, 8), (1, 3, 8, 8), (1, 1, 1, 8, 8)]:
        with pytest.raises(ValueError, match=r"sigma_map must have shape \(B, 1, H, W\) or \(B, C, H, W\)"):
            sigma.blur2d_local_sphere(X2, torch.ones(shape, dtype=f64))
    for bad in (0.0, -1.0, NAN, INF):
        m = SMAP.clone()
        m[0, 0, 3, 4] = bad
        with pytest.raises(sigma.ScaleError, match="sigma_map must be finite and > 0"):
            sigma.blur2d_local_sphere(X2, m)
    with pytest.raises(TypeError, match="sigma_map must have a floating-point dtype"):
        sigma.blur2d_local_sphere(X2, SMAP.long())
    with pytest.raises(TypeError, match="sigma_map must be a torch.Tensor"):
        sigma.blur2d_local_sphere(X2, 1.0)


def test_bad_cov_map():
    for shape in [(1, 8, 8, 2), (1, 8, 7, 2, 2), (2, 8, 8, 2, 2), (8, 8, 2, 2), (1, 8, 8, 3, 3)]:
        with pytest.raises(ValueError, match=r"cov_map must have shape \(B, H, W, 2, 2\)"):
            sigma.blur2d_local_full(X2, torch.ones(shape, dtype=f64))
    m = CMAP.clone()
    m[0, 2, 2] = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    with pytest.raises(sigma.ScaleError, match="cov_map must be positive definite"):
        sigma.blur2d_local_full(X2, m)


def test_bad_radius_options():
    with pytest.raises(ValueError, match="radius"):
        sigma.blur2d_local_sphere(X2, SMAP, radius=0)
    with pytest.raises(TypeError, match="radius"):
        sigma.blur2d_local_sphere(X2, SMAP, radius=1.5)
    with pytest.raises(ValueError, match="radii"):
        sigma.blur2d_local_full(X2, CMAP, radii=(1, sigma.MAX_RADIUS + 1))
    with pytest.raises(ValueError, match="radius"):
        sigma.gauss1d(1.0, radius=0)
    with pytest.raises(ValueError, match="radii"):
        sigma.gauss2d_full(EYE, radii=(0, 2))


# ----------------------------------------------------------------------------- choices


CHOICE_TAKERS = {
    "blur1d": lambda **kw: sigma.blur1d(X1, 1.0, **kw),
    "blur2d_sphere": lambda **kw: sigma.blur2d_sphere(X2, 1.0, **kw),
    "blur2d_diag": lambda **kw: sigma.blur2d_diag(X2, 1.0, 2.0, **kw),
    "dog1d": lambda **kw: sigma.dog1d(X1, 1.0, 2.0, **kw),
    "dog2d": lambda **kw: sigma.dog2d(X2, 1.0, 2.0, **kw),
    "Blur1d": lambda **kw: sigma.Blur1d(1.0, **kw),
    "Blur2d": lambda **kw: sigma.Blur2d(1.0, **kw),
}


@pytest.mark.parametrize("fn", CHOICE_TAKERS.values(), ids=CHOICE_TAKERS.keys())
@pytest.mark.parametrize("option", ["padding_mode", "method", "kernel"])
def test_unknown_choice(fn, option):
    with pytest.raises(ValueError, match=rf"{option} must be one of .*got {option}='nope'"):
        fn(**{option: "nope"})
    with pytest.raises(TypeError, match=option):
        fn(**{option: 3})


@pytest.mark.parametrize(
    "fn",
    [
        lambda m: sigma.blur2d_full(X2, EYE, padding_mode=m),
        lambda m: sigma.blur2d_local_sphere(X2, SMAP, padding_mode=m),
        lambda m: sigma.blur2d_local_full(X2, CMAP, padding_mode=m),
        lambda m: sigma.DynamicBlur2d(2, padding_mode=m),
        lambda m: sigma.GaussConv2d(2, 2, padding_mode=m),
    ],
    ids=["blur2d_full", "local_sphere", "local_full", "DynamicBlur2d", "GaussConv2d"],
)
def test_unknown_padding_mode_elsewhere(fn):
    for bad in ("mirror", "same", "constant", "ZEROS"):
        with pytest.raises(
            ValueError,
            match=r"padding_mode must be one of \{'circular', 'reflect', 'replicate', 'symmetric', 'zeros'\}",
        ):
            fn(bad)


def test_unknown_kernel_and_method_in_other_functions():
    with pytest.raises(ValueError, match="method must be one of"):
        sigma.blur2d_full(X2, EYE, method="nope")
    with pytest.raises(ValueError, match="kernel must be one of"):
        sigma.gauss1d(1.0, kernel="box")
    with pytest.raises(ValueError, match="kernel must be one of"):
        sigma.gauss2d_diag(1.0, 1.0, kernel="box")


# ----------------------------------------------------------------------------- modules


def test_module_constructor_errors():
    with pytest.raises(ValueError, match="structure must be one of"):
        sigma.Blur2d(1.0, structure="ellipse")
    with pytest.raises(TypeError, match="structure"):
        sigma.Blur2d(1.0, structure=None)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="channels"):
            sigma.Blur2d(1.0, channels=bad)
        with pytest.raises(ValueError, match="channels"):
            sigma.Blur1d(1.0, channels=bad)
    for bad in (1.5, True, "3", 2.0):  # one integer check: non-integers are a TypeError
        with pytest.raises(TypeError, match="channels must be an int"):
            sigma.Blur2d(1.0, channels=bad)
        with pytest.raises(TypeError, match="channels must be an int"):
            sigma.Blur1d(1.0, channels=bad)
    with pytest.raises(ValueError, match="sigma must have one value per channel"):
        sigma.Blur1d(torch.ones(3), channels=2)
    with pytest.raises(ValueError, match="sigma must be a number or a pair"):
        sigma.Blur2d((1.0, 2.0, 3.0), structure="diag")
    with pytest.raises(ValueError, match="cov can only initialize structure='full'"):
        sigma.Blur2d(structure="diag", cov=torch.eye(2))
    with pytest.raises(ValueError, match="kernel must be 'sampled' for structure='full'"):
        sigma.Blur2d(structure="full", kernel="erf")


def test_gaussconv2d_constructor_errors():
    for k in (2, 4):
        with pytest.raises(ValueError, match="kernel_size must be odd"):
            sigma.GaussConv2d(3, 4, kernel_size=k)
    for bad, error in ((0, ValueError), (-1, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="kernel_size"):
            sigma.GaussConv2d(3, 4, kernel_size=bad)
        with pytest.raises(error, match="in_channels"):
            sigma.GaussConv2d(bad, 4)
        with pytest.raises(error, match="out_channels"):
            sigma.GaussConv2d(3, bad)
    with pytest.raises(ValueError, match="structure"):
        sigma.GaussConv2d(3, 4, structure="box")
    with pytest.raises(sigma.ScaleError, match="sigma"):
        sigma.GaussConv2d(3, 4, sigma=-1.0)


def test_dynamic_blur2d_constructor_errors():
    for s in (0.25, 4.0, 5.0, 0.1):  # the default range is (0.25, 4): bounds are excluded
        with pytest.raises(ValueError, match="sigma must lie strictly inside sigma_range"):
            sigma.DynamicBlur2d(3, sigma=s)
    with pytest.raises(ValueError, match="sigma_range must satisfy lo < hi"):
        sigma.DynamicBlur2d(3, sigma=1.0, sigma_range=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"sigma_range\[0\]"):
        sigma.DynamicBlur2d(3, sigma=1.0, sigma_range=(0.0, 2.0))
    with pytest.raises(ValueError, match="sigma_range must be a pair"):
        sigma.DynamicBlur2d(3, sigma=1.0, sigma_range=(0.5, 1.0, 2.0))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        sigma.DynamicBlur2d(3, kernel_size=2)
    with pytest.raises(ValueError, match="in_channels"):
        sigma.DynamicBlur2d(0)


def test_dynamic_blur2d_refuses_a_huge_range_at_construction():
    with pytest.raises(ValueError, match="sigma_range"):
        sigma.DynamicBlur2d(3, sigma=1.0, sigma_range=(0.25, 1e9))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fft_in_half_precision_is_refused_and_auto_avoids_it(dtype):
    from sigma._auto import BUILTIN, spatial_engine
    from sigma._padding import MODES

    def _auto_axis(h, length, mode):
        return spatial_engine(h, length, MODES[mode], False, BUILTIN)

    x = torch.randn(1, 2, 40, 40).to(dtype)
    with pytest.raises(TypeError, match=r"method='fft'.*x of dtype"):
        sigma.blur2d_sphere(x, 9.0, method="fft")
    with pytest.raises(TypeError, match=r"method='fft'.*x of dtype"):
        sigma.blur2d_full(x, 16 * torch.eye(2), method="fft")
    # where float32 would take the FFT, half precision takes the banded products instead
    x1 = torch.randn(1, 2, 600).to(dtype)
    assert _auto_axis(80, 600, "zeros") == "fft"
    out = sigma.blur1d(x1, 40.0)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), sigma.blur1d(x1.float(), 40.0), rtol=0, atol=2e-2)
    full = sigma.blur2d_full(x, 16 * torch.eye(2))  # 17 x 17 taps: the FFT in float32
    assert full.dtype == dtype
    torch.testing.assert_close(
        full.float(), sigma.blur2d_full(x.float(), 16 * torch.eye(2)), rtol=0, atol=2e-2
    )


META_TAKERS = {  # (call without radius, name in the message)
    "blur1d": (lambda x, s, **k: sigma.blur1d(x[..., 0], s, **k), "sigma"),
    "blur2d_sphere": (lambda x, s, **k: sigma.blur2d_sphere(x, s, **k), "sigma"),
    "blur2d_diag": (lambda x, s, **k: sigma.blur2d_diag(x, s, 2 * s, **k), "sigma_y"),
    "blur2d_full": (lambda x, s, **k: sigma.blur2d_full(x, s * torch.eye(2, device=s.device), **k), "cov"),
    "dog2d": (lambda x, s, **k: sigma.dog2d(x, s, 2 * s, **k), "sigma_center"),
    "njet2d": (lambda x, s, **k: sigma.njet2d(x, s, **k), "sigma"),
    "blur2d_local_sphere": (
        lambda x, s, **k: sigma.blur2d_local_sphere(x, s * x.new_ones(1, 1, 8, 8), **k),
        "sigma_map",
    ),
}


@pytest.mark.parametrize("taker", META_TAKERS.values(), ids=META_TAKERS.keys())
def test_meta_scale_needs_a_radius_and_says_so(taker):
    # a meta tensor has no values, so the support cannot follow σ: a ValueError naming the
    # argument and radius= (not PyTorch's "cannot call item() on meta tensors"); with radius=
    # the blur gives the output shape it gives on the CPU
    fn, name = taker
    x, s = torch.randn(1, 3, 8, 8), torch.tensor(1.5)
    with pytest.raises(ValueError, match=f"{name} is on the meta device.*radius="):
        fn(x.to("meta"), s.to("meta"))
    y = fn(x.to("meta"), s.to("meta"), radius=2)
    assert y.device.type == "meta" and y.shape == fn(x, s, radius=2).shape


def test_per_channel_scale_and_input_of_other_channels():
    # a σ given one per channel (no channels=) fixes the channel count: a ValueError naming it,
    # not a broadcasting RuntimeError from inside the blur; GaussConv2d refuses it at construction
    two = torch.tensor([1.0, 2.0])
    x = torch.randn(2, 3, 12, 12)
    with pytest.raises(ValueError, match=r"one scale per channel for 2 channels.*x has 3 channels"):
        sigma.Blur2d(two)(x)
    with pytest.raises(ValueError, match=r"one scale per channel for 2 channels.*x has 3 channels"):
        sigma.Blur1d(two)(x[..., 0])
    with pytest.raises(ValueError, match=r"for 2 channels, but in_channels=3"):
        sigma.GaussConv2d(3, 4, 3, sigma=two)
    assert sigma.Blur2d(two)(x[:, :2]).shape == (2, 2, 12, 12)
    assert sigma.GaussConv2d(2, 4, 3, sigma=two)(x[:, :2]).shape == (2, 4, 12, 12)


def test_a_run_under_fake_tensor_mode_leaves_no_fake_tensor_behind():
    # shape propagation under FakeTensorMode builds the whole-axis matrices' 0/1 placement from
    # fake tensors: it must not be cached, or every later real call fails on a fake constant
    from torch._subclasses import FakeTensorMode

    m, x = sigma.GaussConv2d(3, 4, 3, sigma=1.5, radius=3), torch.randn(2, 3, 20, 20)
    expected = m(x)
    sigma._dense._placement_cached.cache_clear()
    with FakeTensorMode(allow_non_fake_inputs=True):
        assert m(torch.randn(2, 3, 20, 20)).shape == (2, 4, 20, 20)
    torch.testing.assert_close(m(x), expected, rtol=0, atol=0)
