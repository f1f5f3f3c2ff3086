"""Independent NumPy/SciPy references for the blurs, shared by the test modules.

Nothing here calls into ``sigma``: kernels, radii and boundary rules are rebuilt from
their documented definitions, so agreement with these functions is a real check.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi
from scipy.stats import norm

#: ``sigma``'s padding_mode -> the matching ``scipy.ndimage`` mode.
SCIPY_MODE = {
    "zeros": "constant",
    "reflect": "mirror",
    "symmetric": "reflect",
    "replicate": "nearest",
    "circular": "wrap",
}

#: ``sigma``'s padding_mode -> the matching ``numpy.pad`` mode.
NUMPY_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}

PADDING_MODES = sorted(SCIPY_MODE)


def radius(max_sigma: float, std_devs: float) -> int:
    """The documented half-size rule ``h = max(1, ceil(std_devs * max σ))``."""
    return max(1, math.ceil(std_devs * max_sigma))


def per_channel(value, channels: int) -> np.ndarray:
    """A scalar or ``(C,)`` scale as a float64 array of length ``channels``."""
    a = np.asarray(value, dtype=np.float64)
    return np.broadcast_to(a, (channels,)) if a.ndim == 0 else a


def sampled_kernel(s: float, h: int) -> np.ndarray:
    """Sampled Gaussian at offsets -h..h, normalized to sum 1."""
    t = np.arange(-h, h + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / s) ** 2)
    return g / g.sum()


def erf_kernel(s: float, h: int) -> np.ndarray:
    """Pixel-integrated Gaussian at offsets -h..h (differences of the normal CDF), normalized.

    The tail mass is taken on the positive side with the survival function,
    ``sf((|t| - 1/2) / s) - sf((|t| + 1/2) / s)``, so far-out taps keep full relative precision.
    """
    a = np.abs(np.arange(-h, h + 1, dtype=np.float64))
    g = norm.sf((a - 0.5) / s) - norm.sf((a + 0.5) / s)
    return g / g.sum()


def full_kernel(cov: np.ndarray, hy: int, hx: int) -> np.ndarray:
    """Dense ``exp(-d^T cov^-1 d / 2)`` on ``[-hy, hy] x [-hx, hx]``, normalized."""
    prec = np.linalg.inv(np.asarray(cov, dtype=np.float64))
    dy, dx = np.meshgrid(np.arange(-hy, hy + 1.0), np.arange(-hx, hx + 1.0), indexing="ij")
    d = np.stack([dy, dx], -1)
    q = np.einsum("...i,ij,...j->...", d, prec, d)
    g = np.exp(-0.5 * q)
    return g / g.sum()


def full_radii(cov: np.ndarray, std_devs: float) -> tuple[int, int]:
    """Half-sizes of the box holding the ``std_devs`` ellipse of every covariance in ``cov``."""
    cov = np.asarray(cov, dtype=np.float64).reshape(-1, 2, 2)
    return radius(math.sqrt(cov[:, 0, 0].max()), std_devs), radius(math.sqrt(cov[:, 1, 1].max()), std_devs)


def blur1d(x: np.ndarray, sigma, std_devs: float, padding_mode: str, kernel: str = "sampled") -> np.ndarray:
    """Reference for ``sigma.blur1d`` on ``(B, C, L)``: one SciPy filter per channel, each
    truncated at its own radius."""
    s = per_channel(sigma, x.shape[1])
    mode = SCIPY_MODE[padding_mode]
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        h = radius(s[c], std_devs)
        if kernel == "sampled":
            out[:, c] = ndi.gaussian_filter1d(x[:, c], s[c], axis=-1, mode=mode, radius=h)
        else:
            out[:, c] = ndi.correlate1d(x[:, c], erf_kernel(s[c], h), axis=-1, mode=mode)
    return out


def blur2d_diag(
    x: np.ndarray, sigma_y, sigma_x, std_devs: float, padding_mode: str, kernel: str = "sampled"
) -> np.ndarray:
    """Reference for ``sigma.blur2d_diag`` on ``(B, C, H, W)``; each axis and channel has its own radius."""
    C = x.shape[1]
    sy, sx = per_channel(sigma_y, C), per_channel(sigma_x, C)
    mode = SCIPY_MODE[padding_mode]
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(C):
            hy, hx = radius(sy[c], std_devs), radius(sx[c], std_devs)
            if kernel == "sampled":
                out[b, c] = ndi.gaussian_filter(x[b, c], (sy[c], sx[c]), mode=mode, radius=(hy, hx))
            else:
                y = ndi.correlate1d(x[b, c], erf_kernel(sx[c], hx), axis=-1, mode=mode)
                out[b, c] = ndi.correlate1d(y, erf_kernel(sy[c], hy), axis=-2, mode=mode)
    return out


def blur2d_sphere(x: np.ndarray, sigma, std_devs: float, padding_mode: str, kernel: str = "sampled"):
    """Reference for ``sigma.blur2d_sphere``: each channel's radius from its own σ, both axes."""
    s = per_channel(sigma, x.shape[1])
    mode = SCIPY_MODE[padding_mode]
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            h = radius(s[c], std_devs)
            if kernel == "sampled":
                out[b, c] = ndi.gaussian_filter(x[b, c], s[c], mode=mode, radius=h)
            else:
                k = erf_kernel(s[c], h)
                out[b, c] = ndi.correlate1d(ndi.correlate1d(x[b, c], k, axis=-1, mode=mode), k, 0, mode=mode)
    return out


def correlate2d(img: np.ndarray, k: np.ndarray, padding_mode: str) -> np.ndarray:
    """Dense 2D correlation of one image by ``numpy.pad`` and a sliding window.

    (``scipy.ndimage.correlate`` in its ``'reflect'`` mode reads out of bounds for
    kernels more than twice the image size, so the dense reference pads with NumPy.)
    """
    hy, hx = (k.shape[0] - 1) // 2, (k.shape[1] - 1) // 2
    xp = np.pad(img, ((hy, hy), (hx, hx)), mode=NUMPY_PAD_MODE[padding_mode])
    win = np.lib.stride_tricks.sliding_window_view(xp, k.shape)
    return np.einsum("ijab,ab->ij", win, k)


def blur2d_full(x: np.ndarray, cov: np.ndarray, std_devs: float, padding_mode: str) -> np.ndarray:
    """Reference for ``sigma.blur2d_full``: a dense NumPy kernel per channel (its own box)."""
    cov = np.asarray(cov, dtype=np.float64)
    C = x.shape[1]
    covs = np.broadcast_to(cov, (C, 2, 2)) if cov.ndim == 2 else cov
    out = np.empty_like(x)
    for c in range(C):
        k = full_kernel(covs[c], *full_radii(covs[c], std_devs))
        for b in range(x.shape[0]):
            out[b, c] = correlate2d(x[b, c], k, padding_mode)
    return out


def random_cov(rng: np.random.Generator, lo: float = 0.3, hi: float = 6.0) -> np.ndarray:
    """A random SPD 2x2 covariance with axis σ log-uniform in [lo, hi] and a random angle."""
    s = np.exp(rng.uniform(math.log(lo), math.log(hi), size=2))
    th = rng.uniform(-math.pi, math.pi)
    r = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    return r @ np.diag(s**2) @ r.T


def local_gather(x: np.ndarray, weights, hy: int, hx: int, padding_mode: str) -> np.ndarray:
    """Brute-force gather blur: ``y[p] = sum_d w_p(d) x[p + d] / sum_d w_p(d)``.

    ``weights(dy, dx)`` returns the unnormalized weight of offset ``(dy, dx)`` for every
    pixel, shape broadcastable to ``(B, C, H, W)``. Padding uses ``numpy.pad``.
    """
    B, C, H, W = x.shape
    pad = ((0, 0), (0, 0), (hy, hy), (hx, hx))
    xp = np.pad(x, pad, mode=NUMPY_PAD_MODE[padding_mode])
    num = np.zeros_like(x)
    den = np.zeros_like(x)
    for dy in range(-hy, hy + 1):
        for dx in range(-hx, hx + 1):
            w = np.broadcast_to(weights(dy, dx), x.shape)
            num += w * xp[:, :, hy + dy : hy + dy + H, hx + dx : hx + dx + W]
            den += w
    return num / den
