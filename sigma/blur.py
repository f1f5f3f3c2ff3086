r"""Differentiable Gaussian blurs: isotropic, axis-aligned, full covariance, and DoG.

Every blur correlates its input with a normalized Gaussian kernel (see
:mod:`sigma.kernels`) under a boundary rule ``padding_mode``, and is differentiable
in the input and in every scale parameter. Shapes follow PyTorch's convolution
layers: 1D input ``(B, C, L)``, 2D input ``(B, C, H, W)``; the output has the
input's shape, dtype and device.

Conventions:
    * σ is in pixels; a number, a 0-dim tensor, or a ``(C,)`` tensor (one σ per
      channel). All σ of one call share the support of the largest.
    * ``padding_mode`` uses ``torch.nn.Conv2d``'s names; each matches
      ``scipy.ndimage.gaussian_filter`` (``'zeros'``: ``constant``, ``'reflect'``:
      ``mirror``, ``'replicate'``: ``nearest``, ``'circular'``: ``wrap``) with
      ``radius=h``.
    * ``method`` picks the algorithm: ``'direct'`` (shifted sums), ``'matmul'``
      (banded matrix products), ``'fft'`` or ``'auto'`` (chosen from the kernel and
      input sizes); all give the same result to rounding.
"""

from __future__ import annotations

from torch import Tensor

from ._checks import (
    KERNEL_TYPES,
    METHODS,
    PADDING_MODES,
    as_scale,
    check_choice,
    check_cov,
    check_input,
    check_positive_real,
    largest,
    radius_for,
)
from ._conv import correlate2d, correlate_axis, correlate_separable
from .kernels import cov_radii, gauss1d, gauss2d_full

__all__ = ["blur1d", "blur2d_sphere", "blur2d_diag", "blur2d_full", "dog1d", "dog2d"]


def _common(x: Tensor, ndim: int, std_devs, padding_mode, method, kernel="sampled"):
    check_input(x, ndim)
    check_choice(padding_mode, PADDING_MODES, "padding_mode")
    check_choice(method, METHODS, "method")
    check_choice(kernel, KERNEL_TYPES, "kernel")
    return check_positive_real(std_devs, "std_devs")


def _scale(x: Tensor, sigma, name: str) -> Tensor:
    return as_scale(sigma, name, channels=x.shape[1], dtype=x.dtype, device=x.device)


def blur1d(
    x: Tensor,
    sigma: Tensor | float,
    std_devs: float = 2.0,
    padding_mode: str = "zeros",
    *,
    kernel: str = "sampled",
    method: str = "auto",
) -> Tensor:
    r"""Blur 1D signals with a Gaussian of standard deviation ``sigma``.

    .. math:: y[b, c, i] = \sum_{t=-h}^{h} g_{\sigma_c}[t]\, x[b, c, i + t]

    Args:
        x: input signals, shape ``(B, C, L)``, floating point.
        sigma: σ in pixels: a positive number, or a tensor of shape ``()`` or ``(C,)``;
            differentiable.
        std_devs: truncate the kernel at ``h = max(1, ceil(std_devs * σ))``. Default: 2.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
            Default: ``'zeros'``.
        kernel: ``'sampled'`` or ``'erf'`` (see :func:`sigma.gauss1d`). Default: ``'sampled'``.
        method: ``'auto'``, ``'direct'``, ``'matmul'`` or ``'fft'``. Default: ``'auto'``.

    Returns:
        Blurred signals, shape ``(B, C, L)``, same dtype and device as ``x``.

    Shape:
        - x: ``(B, C, L)``; sigma: ``()`` or ``(C,)``; output: ``(B, C, L)``.

    Raises:
        TypeError: if ``x`` is not a floating-point tensor, or ``sigma``/``std_devs``
            is not a real number or tensor; or ``method='fft'`` with a half-precision
            ``x`` (``'auto'`` then uses the banded products instead).
        ValueError: if ``x`` is not 3D; σ is not finite and positive or its length is
            not C; ``std_devs`` is not positive; ``padding_mode``, ``kernel`` or
            ``method`` is unknown; or the kernel would exceed :data:`sigma.MAX_RADIUS`.

    Example:
        >>> x = torch.zeros(1, 1, 9, dtype=torch.float64); x[..., 4] = 1
        >>> blur1d(x, 1.0)[0, 0, 2:7]
        tensor([0.0545, 0.2442, 0.4026, 0.2442, 0.0545], dtype=torch.float64)
    """
    std_devs = _common(x, 3, std_devs, padding_mode, method, kernel)
    s = _scale(x, sigma, "sigma")
    w = gauss1d(s, kernel=kernel, radius=radius_for(largest(sigma, s), std_devs))
    return correlate_axis(x, w, -1, padding_mode, method)


def blur2d_sphere(
    x: Tensor,
    sigma: Tensor | float,
    std_devs: float = 2.0,
    padding_mode: str = "zeros",
    *,
    kernel: str = "sampled",
    method: str = "auto",
) -> Tensor:
    r"""Blur images with an isotropic Gaussian of standard deviation ``sigma``.

    The kernel :math:`g_\sigma[t_y]\, g_\sigma[t_x]` is separable, so the blur is a
    1D blur along the columns followed by one along the rows.

    Args:
        x: images, shape ``(B, C, H, W)``, floating point.
        sigma: σ in pixels, a positive number or a tensor of shape ``()`` or ``(C,)``.
        std_devs, padding_mode, kernel, method: as in :func:`blur1d`.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError, ValueError: as :func:`blur1d` (``x`` must be 4D).

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> blur2d_sphere(x, 2.0, padding_mode='reflect').shape
        torch.Size([2, 3, 16, 16])
    """
    std_devs = _common(x, 4, std_devs, padding_mode, method, kernel)
    s = _scale(x, sigma, "sigma")
    w = gauss1d(s, kernel=kernel, radius=radius_for(largest(sigma, s), std_devs))
    return correlate_separable(x, w, w, padding_mode, method)


def blur2d_diag(
    x: Tensor,
    sigma_y: Tensor | float,
    sigma_x: Tensor | float,
    std_devs: float = 2.0,
    padding_mode: str = "zeros",
    *,
    kernel: str = "sampled",
    method: str = "auto",
) -> Tensor:
    r"""Blur images with an axis-aligned Gaussian: ``sigma_y`` down the rows, ``sigma_x`` along the columns.

    Equivalent to :func:`blur2d_full` with ``cov = diag(sigma_y**2, sigma_x**2)``, but
    separable. Each axis has its own half-size.

    Args:
        x: images, shape ``(B, C, H, W)``.
        sigma_y: σ along the height axis, a number or a tensor ``()`` / ``(C,)``.
        sigma_x: σ along the width axis, a number or a tensor ``()`` / ``(C,)``.
        std_devs, padding_mode, kernel, method: as in :func:`blur1d`.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError, ValueError: as :func:`blur1d`, naming ``sigma_y`` or ``sigma_x``.

    Example:
        >>> x = torch.rand(1, 1, 8, 32)
        >>> blur2d_diag(x, 0.5, 4.0).shape
        torch.Size([1, 1, 8, 32])
    """
    std_devs = _common(x, 4, std_devs, padding_mode, method, kernel)
    sy = _scale(x, sigma_y, "sigma_y")
    sx = _scale(x, sigma_x, "sigma_x")
    wy = gauss1d(sy, kernel=kernel, radius=radius_for(largest(sigma_y, sy), std_devs, "sigma_y"))
    wx = gauss1d(sx, kernel=kernel, radius=radius_for(largest(sigma_x, sx), std_devs, "sigma_x"))
    return correlate_separable(x, wy, wx, padding_mode, method)


def blur2d_full(
    x: Tensor,
    cov: Tensor,
    std_devs: float = 2.0,
    padding_mode: str = "zeros",
    *,
    method: str = "auto",
) -> Tensor:
    r"""Blur images with a Gaussian of full 2x2 covariance ``cov`` (any orientation).

    .. math:: g[d] \propto \exp\left(-\tfrac12\, d^T \Sigma^{-1} d\right), \quad d = (t_y, t_x)

    on the box ``|t_y| <= h_y``, ``|t_x| <= h_x`` that holds the ``std_devs`` ellipse
    (:func:`sigma.cov_radii`). Parameterize ``cov`` with :func:`sigma.logchol_to_cov`
    to learn it.

    Args:
        x: images, shape ``(B, C, H, W)``.
        cov: symmetric positive-definite covariance in (row, col) array coordinates,
            shape ``(2, 2)`` or ``(C, 2, 2)``; differentiable.
        std_devs, padding_mode, method: as in :func:`blur1d`.

    Returns:
        Blurred images, shape ``(B, C, H, W)``.

    Raises:
        TypeError: if ``x`` or ``cov`` is not a floating-point tensor.
        ValueError: if ``cov`` is not ``(2, 2)``/``(C, 2, 2)``, not symmetric positive
            definite, or too large; or as :func:`blur1d`.

    Example:
        >>> x = torch.rand(1, 2, 16, 16)
        >>> cov = torch.tensor([[4.0, 1.5], [1.5, 2.0]])
        >>> blur2d_full(x, cov).shape
        torch.Size([1, 2, 16, 16])
    """
    std_devs = _common(x, 4, std_devs, padding_mode, method)
    cov = check_cov(cov, dtype=x.dtype, device=x.device)
    if cov.dim() == 3 and cov.shape[0] != x.shape[1]:
        raise ValueError(
            f"cov must have shape (2, 2) or (C, 2, 2) with C={x.shape[1]}, got shape {tuple(cov.shape)}"
        )
    if cov.dim() > 3:
        raise ValueError(f"cov must have shape (2, 2) or (C, 2, 2), got shape {tuple(cov.shape)}")
    w = gauss2d_full(cov, std_devs, radii=cov_radii(cov, std_devs))
    return correlate2d(x, w, padding_mode, method)


def _dog_kernels(x, sigma_center, sigma_surround, std_devs, kernel):
    sc = _scale(x, sigma_center, "sigma_center")
    ss = _scale(x, sigma_surround, "sigma_surround")
    h = max(
        radius_for(largest(sigma_center, sc), std_devs, "sigma_center"),
        radius_for(largest(sigma_surround, ss), std_devs, "sigma_surround"),
    )
    return gauss1d(sc, kernel=kernel, radius=h), gauss1d(ss, kernel=kernel, radius=h)


def dog1d(
    x: Tensor,
    sigma_center: Tensor | float,
    sigma_surround: Tensor | float,
    std_devs: float = 2.0,
    padding_mode: str = "zeros",
    *,
    kernel: str = "sampled",
    method: str = "auto",
) -> Tensor:
    r"""Difference of Gaussians: ``blur1d(x, sigma_center) - blur1d(x, sigma_surround)`` on one support.

    Both kernels share the half-size of the larger σ, so the result is one
    correlation with the kernel :math:`g_{\sigma_c} - g_{\sigma_s}`, which sums to zero.

    Args:
        x: signals, shape ``(B, C, L)``.
        sigma_center: σ of the positive (centre) Gaussian, number or ``()``/``(C,)`` tensor.
        sigma_surround: σ of the subtracted (surround) Gaussian, same forms.
        std_devs, padding_mode, kernel, method: as in :func:`blur1d`.

    Returns:
        Band-passed signals, shape ``(B, C, L)``.

    Raises:
        TypeError, ValueError: as :func:`blur1d`, naming ``sigma_center`` or ``sigma_surround``.

    Example:
        >>> x = torch.ones(1, 1, 32, dtype=torch.float64)
        >>> float(dog1d(x, 1.0, 3.0, padding_mode='circular').abs().max()) < 1e-12
        True
    """
    std_devs = _common(x, 3, std_devs, padding_mode, method, kernel)
    gc, gs = _dog_kernels(x, sigma_center, sigma_surround, std_devs, kernel)
    return correlate_axis(x, gc - gs, -1, padding_mode, method)


def dog2d(
    x: Tensor,
    sigma_center: Tensor | float,
    sigma_surround: Tensor | float,
    std_devs: float = 2.0,
    padding_mode: str = "zeros",
    *,
    kernel: str = "sampled",
    method: str = "auto",
) -> Tensor:
    r"""Isotropic difference of Gaussians on images, both Gaussians on one support.

    Equal to ``blur2d_sphere(x, sigma_center) - blur2d_sphere(x, sigma_surround)``
    when both use the half-size of the larger σ.

    Args:
        x: images, shape ``(B, C, H, W)``.
        sigma_center, sigma_surround: as in :func:`dog1d`.
        std_devs, padding_mode, kernel, method: as in :func:`blur1d`.

    Returns:
        Band-passed images, shape ``(B, C, H, W)``.

    Raises:
        TypeError, ValueError: as :func:`dog1d`.

    Example:
        >>> dog2d(torch.rand(1, 1, 16, 16), 1.0, 2.0).shape
        torch.Size([1, 1, 16, 16])
    """
    std_devs = _common(x, 4, std_devs, padding_mode, method, kernel)
    gc, gs = _dog_kernels(x, sigma_center, sigma_surround, std_devs, kernel)

    return correlate_separable(x, gc, gc, padding_mode, method) - correlate_separable(
        x, gs, gs, padding_mode, method
    )
