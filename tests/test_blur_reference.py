"""Every blur against an independent SciPy/NumPy reference, for every padding mode and method.

Shapes are drawn at random (with a fixed seed) and always include tiny inputs
(L = 1, 2, 3) and kernels much wider than the input. σ is log-uniform in [0.3, 12]
and ``std_devs`` in {1, 2, 3, 4}.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
import torch

import sigma
from sigma._checks import METHODS

MODES = ref.PADDING_MODES
ALL_METHODS = sorted(METHODS)
#: the methods checked here, all but 'fused': its engine compiles once per kernel size, so it is
#: checked against SciPy in every mode and layout (tiny inputs, kernels wider than the input,
#: float32) on a few kernel sizes in test_fused.py, and through the public blurs against 'direct'
#: in every mode in test_auto.py
EAGER_METHODS = [m for m in ALL_METHODS if m != "fused"]
TIGHT = 1e-12  # float64, against SciPy
F32 = 1e-5  # float32, absolute, on unit-variance inputs


def _sigma(rng: np.random.Generator, channels: int | None):
    """σ log-uniform in [0.3, 12]: a float, or a (C,) array when ``channels`` is given."""
    size = None if channels is None else channels
    s = np.exp(rng.uniform(math.log(0.3), math.log(12.0), size=size))
    return float(s) if channels is None else s


def _as_torch_sigma(s, dtype=torch.float64):
    return s if isinstance(s, float) else torch.tensor(s, dtype=dtype)


def _lengths(rng: np.random.Generator, n: int) -> list[int]:
    """Tiny lengths first, then random ones from 4 to 40."""
    return [1, 2, 3] + [int(v) for v in rng.integers(4, 41, size=n)]


def _configs_1d(seed: int, n: int = 5):
    rng = np.random.default_rng(seed)
    for L in _lengths(rng, n):
        C = int(rng.integers(1, 4))
        per_ch = bool(rng.integers(0, 2))
        yield (int(rng.integers(1, 3)), C, L), _sigma(rng, C if per_ch else None), int(rng.integers(1, 5))


def _configs_2d(seed: int, n: int = 4):
    rng = np.random.default_rng(seed)
    tiny = [(1, 1), (1, 3), (2, 2), (3, 1), (3, 2)]
    shapes = tiny + [tuple(int(v) for v in rng.integers(4, 25, size=2)) for _ in range(n)]
    for H, W in shapes:
        C = int(rng.integers(1, 3))
        per_ch = bool(rng.integers(0, 2))
        yield (1, C, H, W), C if per_ch else None, rng, int(rng.integers(1, 5))


def _dev(s, device):
    """A σ on ``device`` (numbers stay numbers)."""
    return s.to(device) if isinstance(s, torch.Tensor) else s


def _x(shape, rng, dtype=np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _check(out: torch.Tensor, expected: np.ndarray, tol: float, what: str) -> None:
    assert out.shape == expected.shape, what
    err = float(np.abs(out.detach().double().cpu().numpy() - expected).max())
    assert err <= tol, f"{what}: max abs error {err:.3e} > {tol:.0e}"


# ----------------------------------------------------------------------------- blur1d


@pytest.mark.parametrize("method", EAGER_METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_blur1d_matches_scipy(padding_mode, method, device):
    rng = np.random.default_rng(1)
    seed = 10 * MODES.index(padding_mode) + ALL_METHODS.index(method)
    for shape, s, sd in _configs_1d(seed, 5):
        x = _x(shape, rng)
        out = sigma.blur1d(
            torch.from_numpy(x).to(device),
            _dev(_as_torch_sigma(s), device),
            sd,
            padding_mode=padding_mode,
            method=method,
        )
        assert out.dtype == torch.float64
        _check(
            out,
            ref.blur1d(x, s, sd, padding_mode=padding_mode),
            TIGHT,
            f"shape={shape} sigma={s} std_devs={sd}",
        )


def test_blur1d_kernel_wider_than_input_in_every_mode():
    # h = ceil(4 * 12) = 48 taps each side on a 3-sample signal
    x = np.random.default_rng(0).standard_normal((1, 1, 3))
    for padding_mode in MODES:
        for method in ALL_METHODS:
            out = sigma.blur1d(torch.from_numpy(x), 12.0, 4, padding_mode=padding_mode, method=method)
            _check(out, ref.blur1d(x, 12.0, 4, padding_mode=padding_mode), TIGHT, f"{padding_mode}/{method}")


# ----------------------------------------------------------------------------- 2D separable


@pytest.mark.parametrize("method", EAGER_METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_blur2d_sphere_matches_scipy(padding_mode, method, device):
    for shape, ch, rng, sd in _configs_2d(2, 4):
        s = _sigma(rng, ch)
        x = _x(shape, rng)
        out = sigma.blur2d_sphere(
            torch.from_numpy(x).to(device),
            _dev(_as_torch_sigma(s), device),
            sd,
            padding_mode=padding_mode,
            method=method,
        )
        _check(
            out,
            ref.blur2d_sphere(x, s, sd, padding_mode=padding_mode),
            TIGHT,
            f"shape={shape} sigma={s} std_devs={sd}",
        )


@pytest.mark.parametrize("method", EAGER_METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_blur2d_diag_matches_scipy(padding_mode, method, device):
    for shape, ch, rng, sd in _configs_2d(3, 4):
        sy, sx = _sigma(rng, ch), _sigma(rng, ch)
        x = _x(shape, rng)
        out = sigma.blur2d_diag(
            torch.from_numpy(x).to(device),
            _dev(_as_torch_sigma(sy), device),
            _dev(_as_torch_sigma(sx), device),
            sd,
            padding_mode=padding_mode,
            method=method,
        )
        expected = ref.blur2d_diag(x, sy, sx, sd, padding_mode=padding_mode)
        _check(out, expected, TIGHT, f"shape={shape} sigma_y={sy} sigma_x={sx} std_devs={sd}")


def test_blur2d_diag_uses_one_radius_per_axis():
    # σ_y small, σ_x large: with a shared radius the row kernel would be longer and
    # (in zeros mode) the result would differ from SciPy's per-axis radius.
    x = np.random.default_rng(5).standard_normal((1, 1, 20, 20))
    out = sigma.blur2d_diag(torch.from_numpy(x), 0.7, 5.0, 2, padding_mode="reflect")
    _check(out, ref.blur2d_diag(x, 0.7, 5.0, 2, padding_mode="reflect"), TIGHT, "per-axis radius")


def test_blur2d_sphere_equals_diag_with_equal_sigmas():
    x = torch.randn(2, 3, 11, 13, dtype=torch.float64)
    for padding_mode in MODES:
        a = sigma.blur2d_sphere(x, 1.7, padding_mode=padding_mode)
        b = sigma.blur2d_diag(x, 1.7, 1.7, padding_mode=padding_mode)
        torch.testing.assert_close(a, b, rtol=0, atol=TIGHT)


# ----------------------------------------------------------------------------- full covariance


@pytest.mark.parametrize("method", EAGER_METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_blur2d_full_matches_dense_reference(padding_mode, method, device):
    for shape, ch, rng, sd in _configs_2d(4, n=3):
        C = shape[1]
        cov = ref.random_cov(rng) if ch is None else np.stack([ref.random_cov(rng) for _ in range(C)])
        x = _x(shape, rng)
        out = sigma.blur2d_full(
            torch.from_numpy(x).to(device),
            torch.from_numpy(cov).to(device),
            sd,
            padding_mode=padding_mode,
            method=method,
        )
        _check(
            out,
            ref.blur2d_full(x, cov, sd, padding_mode=padding_mode),
            TIGHT,
            f"shape={shape} cov={cov.tolist()}",
        )


@pytest.mark.parametrize("padding_mode", MODES)
def test_blur2d_full_with_diagonal_cov_equals_diag_blur_on_the_same_box(padding_mode):
    # A diagonal covariance makes the full kernel separable; the box of cov_radii is the
    # per-axis radius of blur2d_diag, so both blurs must agree.
    x = torch.randn(1, 2, 15, 12, dtype=torch.float64)
    cov = torch.diag(torch.tensor([1.3, 2.4], dtype=torch.float64) ** 2)
    a = sigma.blur2d_full(x, cov, 3, padding_mode=padding_mode)
    b = sigma.blur2d_diag(x, 1.3, 2.4, 3, padding_mode=padding_mode)
    torch.testing.assert_close(a, b, rtol=0, atol=TIGHT)


# ----------------------------------------------------------------------------- float32


@pytest.mark.parametrize("method", EAGER_METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_float32_matches_reference(padding_mode, method):
    rng = np.random.default_rng(7)
    for shape, s, sd in _configs_1d(8, n=3):
        x = _x(shape, rng)
        out = sigma.blur1d(
            torch.from_numpy(x).float(),
            _as_torch_sigma(s, torch.float32),
            sd,
            padding_mode=padding_mode,
            method=method,
        )
        assert out.dtype == torch.float32
        _check(out, ref.blur1d(x, s, sd, padding_mode=padding_mode), F32, f"blur1d shape={shape} sigma={s}")
    for shape, ch, rng2, sd in _configs_2d(9, n=2):
        s, sy, sx = _sigma(rng2, ch), _sigma(rng2, ch), _sigma(rng2, ch)
        x = _x(shape, rng2)
        xt = torch.from_numpy(x).float()
        out = sigma.blur2d_sphere(
            xt, _as_torch_sigma(s, torch.float32), sd, padding_mode=padding_mode, method=method
        )
        assert out.dtype == torch.float32
        _check(
            out,
            ref.blur2d_sphere(x, s, sd, padding_mode=padding_mode),
            F32,
            f"sphere shape={shape} sigma={s}",
        )
        out = sigma.blur2d_diag(
            xt,
            _as_torch_sigma(sy, torch.float32),
            _as_torch_sigma(sx, torch.float32),
            sd,
            padding_mode=padding_mode,
            method=method,
        )
        _check(out, ref.blur2d_diag(x, sy, sx, sd, padding_mode=padding_mode), F32, f"diag shape={shape}")
        cov = ref.random_cov(rng2)
        out = sigma.blur2d_full(
            xt, torch.from_numpy(cov).float(), sd, padding_mode=padding_mode, method=method
        )
        assert out.dtype == torch.float32
        # the covariance itself is rounded to float32, so compare with the kernel it really holds
        cov32 = torch.from_numpy(cov).float().double().numpy()
        _check(out, ref.blur2d_full(x, cov32, sd, padding_mode=padding_mode), F32, f"full shape={shape}")


# ----------------------------------------------------------------------------- erf kernel


@pytest.mark.parametrize("method", EAGER_METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_erf_blurs_match_correlate1d(padding_mode, method):
    rng = np.random.default_rng(11)
    for shape, s, sd in _configs_1d(12, n=3):
        x = _x(shape, rng)
        out = sigma.blur1d(
            torch.from_numpy(x),
            _as_torch_sigma(s),
            sd,
            padding_mode=padding_mode,
            kernel="erf",
            method=method,
        )
        _check(
            out,
            ref.blur1d(x, s, sd, padding_mode=padding_mode, kernel="erf"),
            TIGHT,
            f"shape={shape} sigma={s}",
        )
    for shape, ch, rng2, sd in _configs_2d(13, n=2):
        s, sy, sx = _sigma(rng2, ch), _sigma(rng2, ch), _sigma(rng2, ch)
        x = _x(shape, rng2)
        xt = torch.from_numpy(x)
        out = sigma.blur2d_sphere(
            xt, _as_torch_sigma(s), sd, padding_mode=padding_mode, kernel="erf", method=method
        )
        _check(
            out,
            ref.blur2d_sphere(x, s, sd, padding_mode=padding_mode, kernel="erf"),
            TIGHT,
            f"sphere {shape}",
        )
        out = sigma.blur2d_diag(
            xt,
            _as_torch_sigma(sy),
            _as_torch_sigma(sx),
            sd,
            padding_mode=padding_mode,
            kernel="erf",
            method=method,
        )
        _check(
            out,
            ref.blur2d_diag(x, sy, sx, sd, padding_mode=padding_mode, kernel="erf"),
            TIGHT,
            f"diag {shape}",
        )


# ----------------------------------------------------------------------------- difference of Gaussians


@pytest.mark.parametrize("method", EAGER_METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_dog_equals_difference_of_scipy_blurs_on_shared_support(padding_mode, method):
    rng = np.random.default_rng(17)
    mode = ref.SCIPY_MODE[padding_mode]
    for L in (1, 2, 5, 23):
        sc, ss = sorted(np.exp(rng.uniform(math.log(0.3), math.log(8.0), size=2)))
        sd = int(rng.integers(1, 5))
        h = ref.radius(max(sc, ss), sd)
        x = _x((2, 2, L), rng)
        expected = ndi.gaussian_filter1d(x, sc, mode=mode, radius=h) - ndi.gaussian_filter1d(
            x, ss, mode=mode, radius=h
        )
        out = sigma.dog1d(torch.from_numpy(x), sc, ss, sd, padding_mode=padding_mode, method=method)
        _check(out, expected, TIGHT, f"dog1d L={L} sigmas=({sc}, {ss})")
        x2 = _x((1, 2, L, L + 3), rng)
        expected = ndi.gaussian_filter(x2, sc, mode=mode, radius=h, axes=(2, 3)) - ndi.gaussian_filter(
            x2, ss, mode=mode, radius=h, axes=(2, 3)
        )
        out = sigma.dog2d(torch.from_numpy(x2), sc, ss, sd, padding_mode=padding_mode, method=method)
        _check(out, expected, TIGHT, f"dog2d L={L} sigmas=({sc}, {ss})")


@pytest.mark.parametrize("padding_mode", MODES)
def test_dog_equals_difference_of_sigma_blurs(padding_mode):
    # The pair of each channel shares the larger of its two half-sizes (std_devs = 3:
    # max(3, 6), max(2, 6), max(6, 3) = 6 here), so the DoG is exactly a difference of
    # blurs with radius=6.
    x1 = torch.randn(2, 3, 17, dtype=torch.float64)
    x2 = torch.randn(2, 3, 9, 14, dtype=torch.float64)
    sc = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)  # per channel; max 2 -> h = 6
    ss = torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    d1 = sigma.dog1d(x1, sc, ss, 3, padding_mode=padding_mode)
    b1 = sigma.blur1d(x1, sc, padding_mode=padding_mode, radius=6) - sigma.blur1d(
        x1, ss, padding_mode=padding_mode, radius=6
    )
    torch.testing.assert_close(d1, b1, rtol=0, atol=TIGHT)
    d2 = sigma.dog2d(x2, sc, ss, 3, padding_mode=padding_mode)
    b2 = sigma.blur2d_sphere(x2, sc, padding_mode=padding_mode, radius=6) - sigma.blur2d_sphere(
        x2, ss, padding_mode=padding_mode, radius=6
    )
    torch.testing.assert_close(d2, b2, rtol=0, atol=TIGHT)


def test_dog_of_constant_is_zero_away_from_zero_padding():
    x = torch.full((1, 1, 12, 12), 3.0, dtype=torch.float64)
    for padding_mode in ("reflect", "replicate", "circular"):
        assert sigma.dog2d(x, 1.0, 2.5, padding_mode=padding_mode).abs().max() < 1e-12
        assert sigma.dog1d(x[0], 1.0, 2.5, padding_mode=padding_mode).abs().max() < 1e-12


# ----------------------------------------------------------------------------- memory layout


@pytest.mark.parametrize("method", EAGER_METHODS)
def test_memory_layout_does_not_change_the_result(method):
    x = torch.randn(3, 2, 9, 11, dtype=torch.float64)
    views = {
        "transposed": x.transpose(-1, -2).contiguous().transpose(-1, -2),
        "channels_last": x.to(memory_format=torch.channels_last),
        "sliced": torch.randn(3, 2, 9, 22, dtype=torch.float64).index_copy(-1, torch.arange(0, 22, 2), x)[
            ..., ::2
        ],
    }
    s = torch.tensor([1.3, 2.2], dtype=torch.float64)
    cov = sigma.rotated_cov(2.0, 1.0, 0.3, dtype=torch.float64)
    for padding_mode in MODES:
        blurs = {
            "sphere": lambda t, m=padding_mode: sigma.blur2d_sphere(t, s, 2, padding_mode=m, method=method),
            "full": lambda t, m=padding_mode: sigma.blur2d_full(t, cov, 2, padding_mode=m, method=method),
        }
        for name, blur in blurs.items():
            expected = blur(x)
            for layout, v in views.items():
                assert torch.equal(v, x)
                torch.testing.assert_close(
                    blur(v), expected, rtol=0, atol=1e-14, msg=f"{name} {layout} {padding_mode}"
                )
