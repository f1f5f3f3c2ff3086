"""Argument validation shared by the public functions.

Every check raises :class:`TypeError` (wrong kind of object) or :class:`ValueError`
(right kind, wrong value or shape) with a message of the form
``"<name> must be <rule>, got <value>"`` so the caller knows what to change.
Nothing is clamped or coerced silently.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

PADDING_MODES = frozenset({"zeros", "reflect", "replicate", "circular"})
METHODS = frozenset({"auto", "direct", "matmul", "fft"})
KERNEL_TYPES = frozenset({"sampled", "erf"})

#: Largest kernel half-size (in pixels) any function will build. A kernel of
#: ``2 * MAX_RADIUS + 1`` taps covers σ up to 2048 at the default ``std_devs=2``;
#: anything larger is almost certainly a mistake (a diverged σ, say) and is
#: refused before any memory is allocated.
MAX_RADIUS = 4096

#: Relative tolerance of the kernel-radius rule: ``h = max(1, ceil(std_devs * sigma * (1 - RADIUS_RTOL)))``,
#: so a σ that is an integer multiple of 1/std_devs up to rounding noise keeps its kernel size.
RADIUS_RTOL = 1e-9

#: Largest number of taps a dense 2D kernel may have (``ky * kx``).
MAX_KERNEL_NUMEL_2D = 1 << 24


class ScaleError(ValueError):
    """A scale (σ, covariance) that is not finite, not positive, or too large to build.

    A subclass of :class:`ValueError`, so ``except ValueError`` catches it too; training
    loops catch it specifically to report a diverged run.
    """


def _sorted(choices: frozenset[str]) -> str:
    return "{" + ", ".join(repr(c) for c in sorted(choices)) + "}"


def check_choice(value: object, choices: frozenset[str], name: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError/TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {_sorted(choices)}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {_sorted(choices)}, got {name}={value!r}")
    return value


def check_input(x: object, ndim: int, name: str = "x") -> Tensor:
    """Check that ``x`` is a floating-point tensor with ``ndim`` dimensions."""
    layout = {3: "(B, C, L)", 4: "(B, C, H, W)"}.get(ndim, f"{ndim} dimensions")
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must have a floating-point dtype (e.g. torch.float32 or torch.float64), "
            f"got {x.dtype}; convert it with {name}.float() or {name}.double()"
        )
    if x.dim() != ndim:
        raise ValueError(
            f"{name} must have shape {layout}, got shape {tuple(x.shape)} ({x.dim()} dimensions)"
        )
    if any(s == 0 for s in x.shape):
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    return x


def check_positive_real(value: object, name: str) -> float:
    """Check a positive, finite Python/NumPy real number (not a bool) and return it as float."""
    if isinstance(value, Tensor) and value.dim() == 0 and not value.requires_grad:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {name}={value}")
    return value


def check_radius(radius: object, name: str = "radius") -> int:
    """Check an explicit kernel half-size: an int in ``[1, MAX_RADIUS]``."""
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(radius).__name__}")
    radius = int(radius)
    if not 1 <= radius <= MAX_RADIUS:
        raise ValueError(f"{name} must be in [1, {MAX_RADIUS}], got {name}={radius}")
    return radius


def _value_text(t: Tensor) -> str:
    flat = t.detach().flatten().tolist()
    if len(flat) == 1:
        return repr(flat[0])
    return "[" + ", ".join(f"{v:g}" for v in flat[:6]) + (", ...]" if len(flat) > 6 else "]")


def as_scale(
    value: object,
    name: str,
    *,
    channels: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Convert a scale (σ) argument to a tensor and check it.

    ``value`` may be a real number or a tensor that is 0-dim or of shape ``(C,)``
    (one σ per channel; ``channels`` gives C when it is known). Every entry must be
    finite and strictly positive. Tensors keep their autograd history; they are
    moved to ``dtype``/``device`` with the differentiable :meth:`Tensor.to`.
    """
    if isinstance(value, Tensor):
        t = value
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a real tensor, got dtype {t.dtype}")
        if t.dim() > 1:
            raise ValueError(
                f"{name} must be a 0-dim tensor or of shape (C,) with one value per channel, "
                f"got shape {tuple(t.shape)}"
            )
        if t.dim() == 1 and channels is not None and t.shape[0] != channels:
            raise ValueError(
                f"{name} must have one value per channel: shape ({channels},) or 0-dim, "
                f"got shape {tuple(t.shape)}"
            )
        if t.dim() == 1 and t.shape[0] == 0:
            raise ValueError(f"{name} must not be empty")
        if not t.is_floating_point():
            t = t.to(dtype or torch.get_default_dtype())
        t = t.to(dtype=dtype or t.dtype, device=device if device is not None else t.device)
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number or a tensor, got {type(value).__name__}")
    else:
        t = torch.tensor(float(value), dtype=dtype or torch.get_default_dtype(), device=device)
    d = t.detach()
    if not bool(torch.isfinite(d).all()):
        raise ScaleError(f"{name} must be finite, got {name}={_value_text(d)}")
    if not bool((d > 0).all()):
        raise ScaleError(f"{name} must be > 0, got {name}={_value_text(d)}")
    return t


def largest(value: object, converted: Tensor) -> float:
    """Largest scale as a Python float, from the caller's number itself when one was given.

    Converting a number to a float32 tensor first could round it across a kernel-size
    jump (``ceil(2 * 3.0000001)`` is 7, but ``float32(3.0000001)`` is exactly 3).
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return float(converted.detach().max())


def radius_for(max_scale: float, std_devs: float, name: str = "sigma") -> int:
    """Kernel half-size ``h = max(1, ceil(std_devs * max_scale * (1 - RADIUS_RTOL)))``.

    Refused (:class:`ScaleError`) beyond :data:`MAX_RADIUS`.
    """
    extent = std_devs * max_scale
    if not math.isfinite(extent) or extent > MAX_RADIUS:
        raise ScaleError(
            f"{name} is too large: the kernel half-size ceil(std_devs * {name}) = "
            f"ceil({std_devs:g} * {max_scale:g}) exceeds the limit of {MAX_RADIUS} pixels; "
            f"use a smaller {name} or std_devs (or downsample the input first)"
        )
    # A relative tolerance keeps rounding noise from adding a tap: exp(log(3.0)) is
    # 3.0000000000000004 in float64, and 2 * that must still give h = 6, not 7.
    return max(1, math.ceil(extent * (1.0 - RADIUS_RTOL)))


def _cov_text(d: Tensor, bad: Tensor) -> str:
    """The first offending 2x2 matrix (and how many there are) for an error message."""
    if d.dim() == 2:
        return str(d.tolist())
    idx = bad.nonzero()[0].tolist()
    return f"{d[tuple(idx)].tolist()} at index {tuple(idx)} ({int(bad.sum())} of {bad.numel()} invalid)"


def check_cov(cov: object, name: str = "cov", *, dtype=None, device=None) -> Tensor:
    """Check a covariance tensor of shape ``(..., 2, 2)``: finite, symmetric, positive definite."""
    if not isinstance(cov, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (2, 2) or (C, 2, 2), got {type(cov).__name__}"
        )
    if not cov.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {cov.dtype}")
    if cov.dim() < 2 or cov.shape[-2:] != (2, 2):
        raise ValueError(f"{name} must have shape (..., 2, 2), got shape {tuple(cov.shape)}")
    cov = cov.to(dtype=dtype or cov.dtype, device=device if device is not None else cov.device)
    d = cov.detach()
    if not bool(torch.isfinite(d).all()):
        raise ScaleError(f"{name} must be finite, got non-finite entries")
    scale = d.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(d.dtype).tiny)
    asym = (d[..., 0, 1] - d[..., 1, 0]).abs() / scale
    if bool((asym > 1e-6).any()):
        raise ValueError(
            f"{name} must be symmetric (cov[..., 0, 1] == cov[..., 1, 0]), got {name}={_cov_text(d, asym > 1e-6)}"
        )
    a, b, c = d[..., 0, 0], d[..., 0, 1], d[..., 1, 1]
    if not bool(((a > 0) & (a * c - b * b > 0)).all()):
        raise ScaleError(
            f"{name} must be positive definite (cov[0, 0] > 0 and det(cov) > 0), got "
            f"{name}={_cov_text(d, ~((a > 0) & (a * c - b * b > 0)))}; "
            "parameterize it with sigma.logchol_to_cov to keep it valid during training"
        )
    return cov
