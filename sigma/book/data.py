r"""Sample images, σ maps and synthetic tasks shared by the book's chapters.

Everything here is deterministic given a :class:`torch.Generator` and needs no network:
the photograph comes from the sample data that ships inside matplotlib.

* :func:`sample_image`: a real photograph as a grayscale ``(1, 1, H, W)`` tensor in [0, 1].
* :func:`ramp_map`, :func:`disc_map`: spatially varying σ maps for
  :func:`sigma.blur2d_local_sphere`.
* :func:`gradient_task`, :func:`two_scale_task`: input/target pairs whose right
  receptive-field size is known, for learning σ inside a network.
* :func:`digits`, :func:`digits_at_scale`: scikit-learn's bundled handwritten digits
  (real images, read from a file inside that package) drawn on a larger canvas at a
  chosen size, for testing how a network copes with scales it was not trained on.
* :func:`benchmark_results`: the committed ``make bench`` measurements, shipped as
  package data so the performance chapter runs without the repository.
"""

from __future__ import annotations

import csv
import math
import numbers
from importlib import resources

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_positive_real, check_radius
from ..blur import blur2d_sphere
from ..local import blur2d_local_sphere

__all__ = [
    "SAMPLE_IMAGES",
    "sample_image",
    "ramp_map",
    "disc_map",
    "x_derivative_filter",
    "gradient_task",
    "two_scale_task",
    "digits",
    "digits_at_scale",
    "benchmark_results",
]

#: Names accepted by :func:`sample_image`, mapped to files of matplotlib's sample data.
SAMPLE_IMAGES = frozenset({"grace_hopper"})
_FILES = {"grace_hopper": "grace_hopper.jpg"}

# ITU-R BT.601 luma weights for RGB -> gray.
_LUMA = (0.299, 0.587, 0.114)


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
    return int(value)


def sample_image(
    name: str = "grace_hopper",
    *,
    size: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Load a photograph from matplotlib's sample data as a grayscale image in [0, 1].

    The RGB photograph is converted to luma (ITU-R BT.601 weights). With ``size``
    it is center-cropped to a square and downsampled by area averaging (each output
    pixel is the mean of the input pixels it covers), so no aliasing is added.
    Nothing is downloaded: the file ships inside the installed matplotlib.

    Args:
        name: which image, one of :data:`SAMPLE_IMAGES`. Default: ``'grace_hopper'``
            (a 600 x 512 portrait of Grace Hopper).
        size: side of the square output in pixels, at most the shorter side of the
            photograph; None keeps the full rectangular image. Default: None.
        dtype: floating-point dtype of the result. Default: ``torch.float64``.
        device: device of the result. Default: None (CPU).

    Returns:
        The image, shape ``(1, 1, H, W)`` (``(1, 1, size, size)`` with ``size``),
        values in [0, 1].

    Raises:
        ValueError: if ``name`` is unknown or ``size`` is not a positive int no larger
            than the photograph.
        TypeError: if ``dtype`` is not a floating-point dtype.

    Example:
        >>> img = sample_image(size=64)
        >>> img.shape, img.dtype, bool(0 <= img.min() and img.max() <= 1)
        (torch.Size([1, 1, 64, 64]), torch.float64, True)
    """
    check_choice(name, SAMPLE_IMAGES, "name")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    rgb = mpimg.imread(cbook.get_sample_data(_FILES[name], asfileobj=False))
    rgb = torch.from_numpy(rgb.copy()).to(torch.float64)
    if rgb.max() > 1:
        rgb = rgb / 255.0
    gray = sum(w * rgb[..., i] for i, w in enumerate(_LUMA))
    img = gray[None, None]
    if size is not None:
        size = _check_size(size, "size")
        H, W = img.shape[-2:]
        side = min(H, W)
        if size > side:
            raise ValueError(f"size must be at most {side} for {name!r}, got size={size}")
        top, left = (H - side) // 2, (W - side) // 2
        img = F.interpolate(img[..., top : top + side, left : left + side], size=(size, size), mode="area")
    return img.clamp(0.0, 1.0).to(dtype=dtype, device=device)


def ramp_map(
    height: int,
    width: int,
    lo: float,
    hi: float,
    *,
    axis: str = "x",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """A σ map that grows linearly from ``lo`` to ``hi`` across the image.

    Args:
        height, width: size of the map in pixels.
        lo: σ at the first column (``axis='x'``) or row (``axis='y'``), positive.
        hi: σ at the last column or row, positive.
        axis: ``'x'`` (left to right) or ``'y'`` (top to bottom). Default: ``'x'``.
        dtype, device: of the result. Default: ``torch.float64``, CPU.

    Returns:
        The map, shape ``(1, 1, height, width)``.

    Raises:
        ValueError: if a size is not a positive int, ``lo``/``hi`` is not positive
            and finite, or ``axis`` is unknown.

    Example:
        >>> ramp_map(2, 5, 1.0, 3.0)[0, 0, 0]
        tensor([1.0000, 1.5000, 2.0000, 2.5000, 3.0000], dtype=torch.float64)
    """
    height, width = _check_size(height, "height"), _check_size(width, "width")
    lo, hi = check_positive_real(lo, "lo"), check_positive_real(hi, "hi")
    check_choice(axis, frozenset({"x", "y"}), "axis")
    n = width if axis == "x" else height
    t = torch.linspace(lo, hi, n, dtype=dtype, device=device)
    m = t.expand(height, width) if axis == "x" else t[:, None].expand(height, width)
    return m.reshape(1, 1, height, width).clone()


def disc_map(
    height: int,
    width: int,
    inside: float,
    outside: float,
    *,
    radius: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """A two-region σ map: ``inside`` on a centered disc, ``outside`` elsewhere.

    A pixel ``(i, j)`` is inside when its distance to the image center
    ``((height - 1) / 2, (width - 1) / 2)`` is at most ``radius``.

    Args:
        height, width: size of the map in pixels.
        inside: σ on the disc, positive.
        outside: σ off the disc, positive.
        radius: disc radius in pixels. Default: None (a quarter of the shorter side).
        dtype, device: of the result. Default: ``torch.float64``, CPU.

    Returns:
        The map, shape ``(1, 1, height, width)``.

    Raises:
        ValueError: if a size is not a positive int or a σ/``radius`` is not positive
            and finite.

    Example:
        >>> disc_map(5, 5, 1.0, 3.0, radius=1.0)[0, 0]
        tensor([[3., 3., 3., 3., 3.],
                [3., 3., 1., 3., 3.],
                [3., 1., 1., 1., 3.],
                [3., 3., 1., 3., 3.],
                [3., 3., 3., 3., 3.]], dtype=torch.float64)
    """
    height, width = _check_size(height, "height"), _check_size(width, "width")
    inside, outside = check_positive_real(inside, "inside"), check_positive_real(outside, "outside")
    r = min(height, width) / 4 if radius is None else check_positive_real(radius, "radius")
    i = torch.arange(height, dtype=dtype, device=device)[:, None] - (height - 1) / 2
    j = torch.arange(width, dtype=dtype, device=device)[None, :] - (width - 1) / 2
    on = i**2 + j**2 <= r**2
    m = torch.full((height, width), outside, dtype=dtype, device=device).masked_fill(on, inside)
    return m.reshape(1, 1, height, width)


def x_derivative_filter(
    *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> Tensor:
    r"""The 3 x 3 central difference along x, as a ``conv2d`` weight.

    ``F.conv2d(x, w, padding=1)`` gives :math:`\tfrac12 (x[i, j+1] - x[i, j-1])`, the
    derivative along the columns (``conv2d`` correlates, it does not flip).

    Returns:
        The filter, shape ``(1, 1, 3, 3)``.

    Example:
        >>> x_derivative_filter()[0, 0, 1]
        tensor([-0.5000,  0.0000,  0.5000], dtype=torch.float64)
    """
    w = torch.zeros(1, 1, 3, 3, dtype=dtype, device=device)
    w[0, 0, 1, 0], w[0, 0, 1, 2] = -0.5, 0.5
    return w


def gradient_task(
    batch: int,
    size: int,
    sigma: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    r"""White-noise images and their x-derivative at scale σ: a task of known scale.

    The target is :math:`y = D_x * (g_\sigma * x)`, the central difference
    (:func:`x_derivative_filter`) of the isotropic blur :func:`sigma.blur2d_sphere`
    with zero padding, i.e. a smoothed gradient. Each output pixel depends on a
    ``(2h + 3) x (2h + 3)`` neighbourhood with ``h = ceil(2 σ)``, so a 3 x 3
    convolution alone cannot compute it, while :class:`sigma.GaussConv2d` with
    ``kernel_size=3`` represents it exactly (σ equal to the task's, weight equal to
    the difference filter, zero bias).

    Args:
        batch: number of images B.
        size: side S of the square images in pixels.
        sigma: the task's scale σ in pixels, positive.
        generator: random generator for the noise. Default: None (torch's global one).
        dtype: floating-point dtype. Default: ``torch.float64``.

    Returns:
        ``(x, y)``: inputs of shape ``(B, 1, S, S)`` with independent standard normal
        pixels, and targets of the same shape.

    Raises:
        ValueError: if ``batch``/``size`` is not a positive int or ``sigma`` is not
            positive and finite.

    Example:
        >>> x, y = gradient_task(4, 16, 2.0, generator=torch.Generator().manual_seed(0))
        >>> x.shape, y.shape
        (torch.Size([4, 1, 16, 16]), torch.Size([4, 1, 16, 16]))
    """
    batch, size = _check_size(batch, "batch"), _check_size(size, "size")
    sigma = check_positive_real(sigma, "sigma")
    x = torch.randn(batch, 1, size, size, generator=generator, dtype=dtype)
    y = F.conv2d(blur2d_sphere(x, sigma), x_derivative_filter(dtype=dtype), padding=1)
    return x, y


def two_scale_task(
    batch: int,
    size: int,
    sigmas: tuple[float, float] = (1.0, 3.0),
    *,
    radius: int = 8,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Noise to be blurred at one of two scales, with a cue channel saying which where.

    Each image is split by a random straight line through a point near its center
    (random orientation). Channel 0 of the input is white noise; channel 1 is the
    cue, 1 on one side of the line and 0 on the other. The target is the noise
    blurred per pixel (:func:`sigma.blur2d_local_sphere`, zero padding, half-size
    ``radius``) with σ = ``sigmas[0]`` where the cue is 0 and ``sigmas[1]`` where it
    is 1. The right receptive field therefore changes from pixel to pixel, and the
    input tells where: a task for :class:`sigma.DynamicBlur2d`.

    Args:
        batch: number of images B.
        size: side S of the square images in pixels.
        sigmas: σ where the cue is 0 and where it is 1, both positive.
            Default: (1.0, 3.0).
        radius: shared half-size of the per-pixel kernels. Default: 8.
        generator: random generator. Default: None (torch's global one).
        dtype: floating-point dtype. Default: ``torch.float64``.

    Returns:
        ``(x, y, sigma_map)``: inputs ``(B, 2, S, S)`` (noise, cue), targets
        ``(B, 1, S, S)`` and the true σ per pixel ``(B, 1, S, S)``.

    Raises:
        ValueError: if ``batch``/``size`` is not a positive int, ``radius`` is out of
            range, or ``sigmas`` is not a pair of positive finite numbers.
        TypeError: if ``radius`` is not an int.

    Example:
        >>> x, y, smap = two_scale_task(2, 16, generator=torch.Generator().manual_seed(0))
        >>> x.shape, y.shape, sorted(smap.unique().tolist())
        (torch.Size([2, 2, 16, 16]), torch.Size([2, 1, 16, 16]), [1.0, 3.0])
    """
    batch, size = _check_size(batch, "batch"), _check_size(size, "size")
    radius = check_radius(radius)
    if not isinstance(sigmas, (tuple, list)) or len(sigmas) != 2:
        raise ValueError(f"sigmas must be a pair (sigma_0, sigma_1), got sigmas={sigmas!r}")
    s0 = check_positive_real(sigmas[0], "sigmas[0]")
    s1 = check_positive_real(sigmas[1], "sigmas[1]")
    noise = torch.randn(batch, 1, size, size, generator=generator, dtype=dtype)
    angle = torch.rand(batch, 1, 1, generator=generator, dtype=dtype) * (2 * math.pi)
    shift = (torch.rand(batch, 2, 1, 1, generator=generator, dtype=dtype) - 0.5) * (size / 4)
    c = (size - 1) / 2
    i = torch.arange(size, dtype=dtype)[:, None] - c - shift[:, 0]
    j = torch.arange(size, dtype=dtype)[None, :] - c - shift[:, 1]
    cue = (j * torch.cos(angle) + i * torch.sin(angle) > 0).to(dtype).unsqueeze(1)
    sigma_map = torch.full_like(cue, s0).masked_fill(cue > 0, s1)
    y = blur2d_local_sphere(noise, sigma_map, radius=radius)
    return torch.cat([noise, cue], 1), y, sigma_map


def digits(*, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The 1,797 handwritten digits bundled with scikit-learn, as ``(1, 8, 8)`` images.

    :func:`sklearn.datasets.load_digits` reads a file that ships inside scikit-learn, so
    nothing is downloaded. Its 8 x 8 images hold counts 0..16 (each pixel counts the ink
    in a 4 x 4 block of a 32 x 32 bitmap); they are scaled here to [0, 1].

    Args:
        dtype: floating-point dtype of the images. Default: ``torch.float32``.

    Returns:
        ``(images, labels)``: shape ``(1797, 1, 8, 8)`` in [0, 1] and ``(1797,)`` int64
        class labels 0..9.

    Raises:
        ImportError: if scikit-learn is not installed.

    Example:
        >>> images, labels = digits()
        >>> images.shape, labels[:5].tolist()
        (torch.Size([1797, 1, 8, 8]), [0, 1, 2, 3, 4])
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=dtype).unsqueeze(1) / 16.0
    return images, torch.as_tensor(bunch.target, dtype=torch.int64)


def digits_at_scale(images: Tensor, side: float, *, canvas: int = 32, supersample: int = 2) -> Tensor:
    r"""Draw 8 x 8 digits centered on a blank canvas, each ``side`` pixels tall and wide.

    The digit is magnified by ``side / 8`` with bilinear interpolation on a canvas
    ``supersample`` times finer, smoothed there with :func:`sigma.blur2d_sphere` at
    σ = half a source pixel (so the strokes are smooth and scale with the digit), and
    area-averaged down to ``canvas`` pixels (anti-aliasing for small sides). A digit
    drawn at ``2 * side`` is then, up to sampling, the one at ``side`` magnified by 2.

    Args:
        images: digits of shape ``(N, 1, 8, 8)`` (as returned by :func:`digits`).
        side: the digit's size on the canvas in pixels (8 keeps the original size);
            positive, may be fractional; parts beyond the canvas are cut off.
        canvas: side of the square output in pixels. Default: 32.
        supersample: rendering resolution factor. Default: 2.

    Returns:
        Images of shape ``(N, 1, canvas, canvas)``, dtype and device of ``images``.

    Raises:
        ValueError: if ``images`` is not ``(N, 1, 8, 8)``, ``side`` is not positive and
            finite, or ``canvas``/``supersample`` is not a positive int.

    Example:
        >>> images, _ = digits()
        >>> digits_at_scale(images[:3], 12.0, canvas=24).shape
        torch.Size([3, 1, 24, 24])
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (1, 8, 8):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (N, 1, 8, 8), got {shape}")
    side = check_positive_real(side, "side")
    canvas, ss = _check_size(canvas, "canvas"), _check_size(supersample, "supersample")
    n, fine = images.shape[0], canvas * ss
    zoom = canvas / side  # canvas half-widths per digit half-width
    theta = images.new_zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = zoom
    grid = F.affine_grid(theta, [n, 1, fine, fine], align_corners=False)
    big = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    big = blur2d_sphere(big, 0.5 * side / 8 * ss)
    return F.avg_pool2d(big, ss)


def benchmark_results(device: str = "cpu") -> list[dict[str, str]]:
    """The committed benchmark measurements for ``device`` as a list of CSV rows.

    ``make bench`` writes ``sigma/book/results/blur_<device>.csv``; the file ships inside
    the package, so a chapter opened alone reads the same numbers as one in a clone.

    Args:
        device: ``"cpu"`` or ``"cuda"``.

    Returns:
        One dict per row, keyed by the CSV header (all values are strings).

    Raises:
        ValueError: if no results are shipped for ``device``.

    Example:
        >>> rows = benchmark_results("cpu")
        >>> {"op", "impl", "median_ms"} <= set(rows[0])
        True
    """
    name = f"blur_{device}.csv"
    path = resources.files("sigma.book").joinpath("results", name)
    if not isinstance(device, str) or not path.is_file():
        raise ValueError(f"device must name shipped results (blur_<device>.csv), got device={device!r}")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
