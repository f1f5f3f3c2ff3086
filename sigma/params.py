r"""Unconstrained parameterizations of scales and covariances.

Gradient descent moves parameters anywhere on the real line, but σ must stay
positive and a covariance positive definite. Learning :math:`s = \log\sigma` and the
log-Cholesky vector :math:`(a, b, c)` with

.. math::

    L = \begin{pmatrix} e^{a} & 0 \\ b & e^{c} \end{pmatrix}, \qquad \Sigma = L L^T
      = \begin{pmatrix} e^{2a} & b\,e^{a} \\ b\,e^{a} & b^2 + e^{2c} \end{pmatrix}

keeps every step valid without clamping.

Covariances here are in (row, col) array coordinates: ``cov[0, 0]`` is the variance
down the rows (y) and ``cov[1, 1]`` the variance along the columns (x).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import as_scale, check_cov, values_checkable

__all__ = ["logchol_to_cov", "cov_to_logchol", "rotated_cov", "cov_axes"]


def logchol_to_cov(params: Tensor) -> Tensor:
    """Map log-Cholesky parameters ``(a, b, c)`` to a positive-definite 2x2 covariance.

    Args:
        params: tensor of shape ``(..., 3)`` holding ``(log L00, L10, log L11)``.

    Returns:
        Covariance ``L @ L.T`` of shape ``(..., 2, 2)``, symmetric positive definite
        for every finite input.

    Raises:
        TypeError: if ``params`` is not a floating-point tensor.
        ValueError: if the last dimension of ``params`` is not 3 or it is not finite.

    Example:
        >>> logchol_to_cov(torch.zeros(3))
        tensor([[1., 0.],
                [0., 1.]])
    """
    if not isinstance(params, Tensor):
        raise TypeError(f"params must be a torch.Tensor of shape (..., 3), got {type(params).__name__}")
    if not params.is_floating_point():
        raise TypeError(f"params must have a floating-point dtype, got {params.dtype}")
    if params.dim() == 0 or params.shape[-1] != 3:
        raise ValueError(f"params must have shape (..., 3), got shape {tuple(params.shape)}")
    if values_checkable(params) and not bool(torch.isfinite(params.detach()).all()):
        raise ValueError("params must be finite")
    return _logchol_to_cov(params)


def _logchol_to_cov(params: Tensor) -> Tensor:
    """:func:`logchol_to_cov` without checks (for modules, whose parameters are valid)."""
    a, b, c = params.unbind(-1)
    ea = torch.exp(a)
    row0 = torch.stack([ea * ea, b * ea], -1)
    row1 = torch.stack([b * ea, b * b + torch.exp(2 * c)], -1)
    return torch.stack([row0, row1], -2)


def cov_to_logchol(cov: Tensor) -> Tensor:
    """Inverse of :func:`logchol_to_cov`: covariance ``(..., 2, 2)`` to ``(..., 3)``.

    Args:
        cov: symmetric positive-definite covariance of shape ``(..., 2, 2)``.

    Returns:
        Log-Cholesky parameters of shape ``(..., 3)``.

    Raises:
        TypeError: if ``cov`` is not a floating-point tensor.
        ValueError: if ``cov`` is not of shape ``(..., 2, 2)`` or not symmetric
            positive definite.

    Example:
        >>> cov = torch.tensor([[4.0, 1.0], [1.0, 2.0]])
        >>> torch.allclose(logchol_to_cov(cov_to_logchol(cov)), cov)
        True
    """
    cov = check_cov(cov)
    chol = torch.linalg.cholesky(cov)
    return torch.stack([torch.log(chol[..., 0, 0]), chol[..., 1, 0], torch.log(chol[..., 1, 1])], -1)


def rotated_cov(
    sigma_major: Tensor | float,
    sigma_minor: Tensor | float,
    angle: Tensor | float,
    *,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Covariance of a Gaussian with axis lengths σ_major, σ_minor, rotated by ``angle``.

    The major axis makes ``angle`` radians with the column (x) axis, turning toward
    increasing row index (downward in an image shown with ``imshow``).

    Args:
        sigma_major: σ along the major axis (pixels), positive.
        sigma_minor: σ along the minor axis (pixels), positive.
        angle: rotation in radians.
        dtype: dtype of the result when all inputs are numbers. Default: torch's default.

    Returns:
        Covariance of shape ``(2, 2)`` in (row, col) coordinates.

    Raises:
        TypeError, ValueError: if a σ is not a positive finite number/0-dim tensor.

    Example:
        >>> rotated_cov(2.0, 1.0, 0.0)
        tensor([[1., 0.],
                [0., 4.]])
    """
    s1 = as_scale(sigma_major, "sigma_major", dtype=dtype)
    s2 = as_scale(sigma_minor, "sigma_minor", dtype=s1.dtype, device=s1.device)
    if s1.dim() or s2.dim():
        raise ValueError("sigma_major and sigma_minor must be numbers or 0-dim tensors")
    th = angle if isinstance(angle, Tensor) else torch.tensor(float(angle), dtype=s1.dtype)
    th = th.to(s1.dtype)
    # unit vectors in (row, col) = (y, x) order
    u = torch.stack([torch.sin(th), torch.cos(th)])
    v = torch.stack([torch.cos(th), -torch.sin(th)])
    return s1**2 * torch.outer(u, u) + s2**2 * torch.outer(v, v)


def cov_axes(cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Axis lengths and orientation of a covariance: the inverse of :func:`rotated_cov`.

    Args:
        cov: covariance of shape ``(..., 2, 2)`` in (row, col) coordinates.

    Returns:
        ``(sigma_major, sigma_minor, angle)``, each of shape ``(...)``; ``angle`` in
        radians in ``(-pi/2, pi/2]``, measured from the column axis toward increasing rows.

    Example:
        >>> [round(float(t), 4) for t in cov_axes(rotated_cov(3.0, 1.0, 0.5))]
        [3.0, 1.0, 0.5]
    """
    cov = check_cov(cov)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    major = evecs[..., :, 1]  # (row, col) components
    angle = torch.atan2(major[..., 0], major[..., 1])
    # fold the direction's sign ambiguity into (-pi/2, pi/2]
    angle = torch.where(angle > math.pi / 2, angle - math.pi, angle)
    angle = torch.where(angle <= -math.pi / 2, angle + math.pi, angle)
    return evals[..., 1].sqrt(), evals[..., 0].sqrt(), angle
