"""Argument validation shared by the public functions.

Every check raises :class:`TypeError` (wrong kind of object) or :class:`ValueError`
(right kind, wrong value or shape) with a message of the form
``"<name> must be <rule>, got <value>"`` so the caller knows what to change.
Nothing is clamped or coerced silently. The options of a blur are checked by one function,
:func:`blur_options`, and its kernel size follows one rule, :func:`resolve_support`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import reduce

import torch
from torch import Tensor

from ._export import support_read
from ._padding import PADDING_MODES  # noqa: F401  (re-exported: the one table of modes)

METHODS = frozenset({"auto", "direct", "matmul", "fft", "fused"})
KERNEL_TYPES = frozenset({"sampled", "erf", "discrete"})

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


def check_input(x: object, ndim: int, name: str = "x", empty_batch: bool = False) -> Tensor:
    """Check that ``x`` is a floating-point tensor with ``ndim`` dimensions, none of them empty
    (``empty_batch``: except the batch, as for :class:`torch.nn.Conv2d`)."""
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
    if any(s == 0 for s in (x.shape[1:] if empty_batch else x.shape)):
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


def check_int(value: object, name: str, lo: int = 1, hi: int | None = None) -> int:
    """The one integer check: an int (not a bool, not a float) in ``[lo, hi]``.

    Raises:
        TypeError: if ``value`` is not an integer.
        ValueError: if it is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rule = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rule}, got {name}={value}")
    return value


def check_radius(radius: object, name: str = "radius") -> int:
    """Check an explicit kernel half-size: an int in ``[1, MAX_RADIUS]``."""
    return check_int(radius, name, 1, MAX_RADIUS)


def check_radius_arg(radius: object, axes: int, name: str = "radius"):
    """``radius=`` of a blur: None, an int, or (``axes == 2``) a pair ``(h_y, h_x)``.

    Returns None, an int (1D) or a pair of ints (2D).
    """
    if radius is None:
        return None
    if axes == 2:
        if isinstance(radius, (tuple, list)):
            if len(radius) != 2:
                raise ValueError(f"{name} must be an int or a pair (h_y, h_x), got {name}={radius!r}")
            return tuple(check_radius(r, name) for r in radius)
        r = check_radius(radius, name)
        return (r, r)
    return check_radius(radius, name)


def is_vmapped(t: Tensor) -> bool:
    """Whether ``t`` is batched by ``torch.func.vmap`` (at any level of functorch wrapping)."""
    f = torch._C._functorch
    while f.is_functorch_wrapped_tensor(t):
        if f.is_batchedtensor(t):
            return True
        t = f.get_unwrapped(t)
    return False


def values_checkable(t: Tensor) -> bool:
    """Whether value checks (which read tensor data, a device sync) may run on ``t``.

    Not on meta tensors (they hold no data), not while ``torch.compile`` traces (a
    data-dependent branch would break the graph), and not on a tensor batched by
    ``torch.func.vmap`` (its values cannot be read).
    """
    return t.device.type != "meta" and not torch.compiler.is_compiling() and not is_vmapped(t)


def read_largest(t: Tensor, name: str) -> float:
    """The largest entry of ``t`` as a float (a device-to-host read): the kernel support.

    A tensor batched by ``torch.func.vmap`` or on the meta device cannot be read; the caller
    must fix the support (:func:`check_support_readable`).
    """
    support_read(name)
    check_support_readable(t, name)
    return float(t.detach().max())


def check_support_readable(t: Tensor, name: str) -> None:
    """Raise a ``ValueError`` naming ``radius=`` where the kernel support cannot be read from
    ``t``'s values: ``t`` batched by ``torch.func.vmap``, or on the meta device (no data; a model
    run there for its output shapes). Called after :func:`sigma._export.support_read`, which
    handles compiling and exporting: while compiling (after its graph break) nothing is checked
    here, since dynamo cannot trace the functorch query and would warn."""
    if torch.compiler.is_compiling():
        return
    if is_vmapped(t):
        why = "is batched by torch.func.vmap"
    elif t.device.type == "meta":
        why = "is on the meta device (it has no values)"
    else:
        return
    raise ValueError(
        f"{name} {why}, so the kernel support cannot follow its value: pass radius= to fix the "
        "support, e.g. radius=sigma.kernel_radius(largest_sigma)"
    )


def _value_text(t: Tensor) -> str:
    flat = t.detach().flatten().tolist()
    if len(flat) == 1:
        return repr(flat[0])
    return "[" + ", ".join(f"{v:g}" for v in flat[:6]) + (", ...]" if len(flat) > 6 else "]")


def _scale_shape_text(name: str, x_shape: tuple[int, ...] | None) -> str:
    B, C = (x_shape[0], x_shape[1]) if x_shape is not None else ("B", "C")
    return (
        f"{name} must be a number or a tensor of shape () (one σ for everything), ({C},) = (C,) "
        f"(one σ per channel), ({B}, {C}) = (B, C) (one per sample and channel) or ({B}, 1) = (B, 1) "
        f"(one per sample); a 1D {name} is always per channel (write {name}[:, None] for one σ per sample)"
    )


def _check_number(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise ScaleError(f"{name} must be finite, got {name}={value!r}")
    if value <= 0:
        raise ScaleError(f"{name} must be > 0, got {name}={value!r}")
    return value


#: CPU scale tensors of at most this many entries are read whole and checked in Python (a few
#: microseconds), larger ones and those on other devices reduced first (one small read)
_READ_ALL = 4096


def check_scale_values(t: Tensor, name: str) -> float:
    """Check every entry finite and > 0 with one device-to-host read; return the largest."""
    d = t.detach()
    if d.device.type == "cpu" and d.numel() <= _READ_ALL:  # a few values: read them, check here
        values = d.reshape(-1).tolist()
        lo, hi, finite = min(values), max(values), all(map(math.isfinite, values))
    else:
        lo, hi, finite = torch.stack([d.min(), d.max(), torch.isfinite(d).all().to(d.dtype)]).tolist()
    if not finite:
        raise ScaleError(f"{name} must be finite, got {name}={_value_text(d)}")
    if not lo > 0:
        raise ScaleError(f"{name} must be > 0, got {name}={_value_text(d)}")
    return hi


def scale_arg(
    value: object,
    name: str,
    *,
    x_shape: tuple[int, ...] | None = None,
    channels: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
    check_values: bool = True,
) -> tuple[Tensor, float | None]:
    """Convert a scale (σ) argument to a tensor, check it, and return it with its largest value.

    Shapes: a number or a 0-dim tensor (one σ); ``(C,)`` (one per channel; ``channels``
    or ``x_shape[1]`` gives C when known); with ``x_shape`` given (a blur's input), also
    ``(B, C)``, ``(B, 1)``, ``(1, C)``: per sample (and channel). Every entry must be
    finite and strictly positive; a number is checked in Python (always), a tensor with
    one device-to-host read, skipped when ``check_values`` is false, while compiling and
    on meta tensors (then the returned largest value is None). Tensors keep their
    autograd history (moved with the differentiable :meth:`Tensor.to`).
    """
    if isinstance(value, Tensor):
        t = value
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a real tensor, got dtype {t.dtype}")
        if x_shape is not None:
            channels = x_shape[1]
        if t.dim() == 1 and t.shape[0] == 0:
            raise ValueError(f"{name} must not be empty")
        if t.dim() == 1 and channels is not None and t.shape[0] != channels:
            raise ValueError(
                f"{name} must have one value per channel: shape ({channels},) or 0-dim, "
                f"got shape {tuple(t.shape)}; " + _scale_shape_text(name, x_shape)
            )
        if t.dim() == 2 and x_shape is not None:
            B, C = x_shape[0], x_shape[1]
            if t.shape[0] not in (1, B) or t.shape[1] not in (1, C):
                raise ValueError(f"{_scale_shape_text(name, x_shape)}; got shape {tuple(t.shape)}")
        elif t.dim() > 1:
            raise ValueError(
                f"{name} must be a 0-dim tensor or of shape (C,) with one value per channel, "
                f"got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            t = t.to(dtype or torch.get_default_dtype())
        t = t.to(dtype=dtype or t.dtype, device=device if device is not None else t.device)
        top = check_scale_values(t, name) if check_values and values_checkable(t) else None
        return t, top
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number or a tensor, got {type(value).__name__}")
    v = _check_number(float(value), name)  # a number is checked always: no device read
    return torch.tensor(v, dtype=dtype or torch.get_default_dtype(), device=device), v


def as_scale(
    value: object,
    name: str,
    *,
    channels: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """:func:`scale_arg` without per-sample shapes, returning only the tensor."""
    return scale_arg(value, name, channels=channels, dtype=dtype, device=device)[0]


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


def own_radius(scale: Tensor, std_devs: float) -> Tensor:
    """:func:`radius_for` of every entry of ``scale`` at once, as a float64 tensor (no sync).

    The same arithmetic in float64, so the largest entry gives exactly ``radius_for``'s
    half-size; used to truncate each kernel at its own support.
    """
    d = scale.detach()
    if d.device.type != "mps":
        d = d.double()
    return torch.ceil(d * std_devs * (1.0 - RADIUS_RTOL)).clamp_min(1)


def _cov_text(d: Tensor, bad: Tensor) -> str:
    """The first offending 2x2 matrix (and how many there are) for an error message."""
    if d.dim() == 2:
        return str(d.tolist())
    idx = bad.nonzero()[0].tolist()
    return f"{d[tuple(idx)].tolist()} at index {tuple(idx)} ({int(bad.sum())} of {bad.numel()} invalid)"


def check_cov(
    cov: object,
    name: str = "cov",
    *,
    dtype=None,
    device=None,
    return_max: bool = False,
    check_values: bool = True,
):
    """Check a covariance tensor of shape ``(..., 2, 2)``: finite, symmetric, positive definite.

    All value checks read the device once. With ``return_max``, returns
    ``(cov, (max cov[..., 0, 0], max cov[..., 1, 1]))`` from that same read (None when
    the values were not read: ``check_values`` false, while compiling, or on meta tensors).
    """
    if not isinstance(cov, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (2, 2) or (C, 2, 2), got {type(cov).__name__}"
        )
    if not cov.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {cov.dtype}")
    if cov.dim() < 2 or cov.shape[-2:] != (2, 2):
        raise ValueError(f"{name} must have shape (..., 2, 2), got shape {tuple(cov.shape)}")
    cov = cov.to(dtype=dtype or cov.dtype, device=device if device is not None else cov.device)
    if not (check_values and values_checkable(cov)):
        return (cov, None) if return_max else cov
    d = cov.detach()
    scale = d.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(d.dtype).tiny)
    asym = (d[..., 0, 1] - d[..., 1, 0]).abs() / scale
    a, b, c = d[..., 0, 0], d[..., 0, 1], d[..., 1, 1]
    pd = (a > 0) & (a * c - b * b > 0)
    flags = torch.stack(
        [
            torch.isfinite(d).all().to(d.dtype),
            (asym <= 1e-6).all().to(d.dtype),
            pd.all().to(d.dtype),
            a.max(),
            c.max(),
        ]
    )
    finite, sym, pos, amax, cmax = flags.tolist()  # the one device-to-host read
    if not finite:
        raise ScaleError(f"{name} must be finite, got non-finite entries")
    if not sym:
        raise ValueError(
            f"{name} must be symmetric (cov[..., 0, 1] == cov[..., 1, 0]), got {name}={_cov_text(d, asym > 1e-6)}"
        )
    if not pos:
        raise ScaleError(
            f"{name} must be positive definite (cov[0, 0] > 0 and det(cov) > 0), got "
            f"{name}={_cov_text(d, ~pd)}; "
            "parameterize it with sigma.logchol_to_cov to keep it valid during training"
        )
    return (cov, (amax, cmax)) if return_max else cov


#: Highest derivative order the blurs build.
MAX_ORDER = 3


def check_order(order: object, axes: int, name: str = "order"):
    """``order=`` of a blur: an int in ``[0, MAX_ORDER]`` for every axis, or (``axes == 2``)
    a pair ``(order_y, order_x)``. Returns an int (1 axis) or a pair of ints (2 axes)."""
    if axes == 2 and isinstance(order, (tuple, list)):
        if len(order) != 2:
            raise ValueError(f"{name} must be an int or a pair (order_y, order_x), got {name}={order!r}")
        return tuple(check_int(o, name, 0, MAX_ORDER) for o in order)
    o = check_int(order, name, 0, MAX_ORDER)
    return (o, o) if axes == 2 else o


def check_gamma(gamma: object, name: str = "gamma") -> float:
    """``gamma=`` of a derivative blur: a finite real number (``σ ** (gamma * order)`` scaling)."""
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(gamma).__name__}")
    gamma = float(gamma)
    if not math.isfinite(gamma):
        raise ValueError(f"{name} must be finite, got {name}={gamma}")
    return gamma


# ----------------------------------------------------------------------------- options and support


@dataclass(frozen=True)
class BlurOptions:
    """The checked options of a blur (:func:`sigma.blur1d`), from :func:`blur_options`; a layer
    keeps its own as ``self.options``. ``radius``: None, an int or a pair ``(h_y, h_x)``;
    ``order``: an int or a pair ``(order_y, order_x)`` (an N-jet: its highest total order)."""

    std_devs: float = 2.0
    padding_mode: str = "zeros"
    kernel: str = "sampled"
    method: str = "auto"
    radius: int | tuple[int, int] | None = None
    order: int | tuple[int, int] = 0
    gamma: float = 0.0


def blur_options(axes: int, *options, jet: bool = False, **named) -> BlurOptions:
    """The one check of a blur's options (in :class:`BlurOptions`'s order and names), for every
    function and layer: ``radius`` and ``order`` per axis of ``axes`` (``jet``: ``order`` is an
    N-jet's, one int)."""
    o = BlurOptions(*options, **named)
    check_choice(o.padding_mode, PADDING_MODES, "padding_mode")
    check_choice(o.method, METHODS, "method")
    check_choice(o.kernel, KERNEL_TYPES, "kernel")
    std_devs, radius = check_positive_real(o.std_devs, "std_devs"), check_radius_arg(o.radius, axes)
    order, gamma = check_order(o.order, 1 if jet else axes), check_gamma(o.gamma)
    return BlurOptions(std_devs, o.padding_mode, o.kernel, o.method, radius, order, gamma)


@dataclass(frozen=True)
class Support:
    """The kernel support of one call, from :func:`resolve_support`: ``h`` the half-size of the
    kernel arrays per axis; ``own`` the ``std_devs`` with which each σ's kernel is cut at its own
    half-size inside them (:func:`own_radii`), or None (a fixed radius: every kernel uses ``h``)."""

    h: tuple[int, ...]
    own: float | None = None


def resolve_support(
    tops, o: BlurOptions, names="sigma", *, axes=1, shared=False, variance=False, dense=False
) -> Support:
    """The one kernel-size rule: ``o.radius`` if given (nothing is read), else for each scale
    argument ``h = radius_for(top, o.std_devs, name)`` from its largest value, each σ keeping its
    own support (``Support.own = o.std_devs``).

    ``tops``: floats or callables reading one (in turn, each checked before the next read), or
    one callable returning all (a layer's single host read); ``names``: each one's argument (a
    str: all). ``axes``: axes one top spans (isotropic 2D: ``h`` twice). ``shared``: one ``h``,
    the largest (a DoG's two Gaussians). ``variance``: tops are a covariance's diagonal.
    ``dense``: refuse a computed box beyond :data:`MAX_KERNEL_NUMEL_2D` taps (a fixed radius
    never was checked; :func:`sigma.gauss2d_full` checks its ``radii`` itself). Per-pixel blurs
    pass a map's maximum; :class:`sigma.DynamicBlur2d` resolves ``sigma_range``'s upper bound
    once and keeps it as a fixed radius (no per-pixel cut).
    """
    if o.radius is not None:
        return Support(o.radius if isinstance(o.radius, tuple) else (o.radius,) * axes)
    tops = tops() if callable(tops) else tops
    names = [names] * len(tops) if isinstance(names, str) else names
    hs = []
    for top, name in zip(tops, names, strict=True):
        top = top() if callable(top) else top
        hs.append(radius_for(math.sqrt(top) if variance else top, o.std_devs, name))
    hs = [max(hs)] if shared else hs
    h = tuple(hs * axes) if len(hs) == 1 else tuple(hs)
    if dense:
        check_dense(*h)
    return Support(h, o.std_devs)


def check_dense(hy: int, hx: int, name: str = "cov") -> None:
    """Refuse a dense 2D kernel of more than :data:`MAX_KERNEL_NUMEL_2D` taps."""
    if (2 * hy + 1) * (2 * hx + 1) > MAX_KERNEL_NUMEL_2D:
        raise ValueError(
            f"{name} is too large: the dense kernel would have {(2 * hy + 1)} x {(2 * hx + 1)} taps, "
            f"more than {MAX_KERNEL_NUMEL_2D}; use a smaller covariance or std_devs"
        )


def diag_tops(cov: Tensor) -> tuple[float, float]:
    """The largest ``cov[..., 0, 0]`` and ``cov[..., 1, 1]``, read (where ``check_cov`` did not)."""
    support_read("cov")
    check_support_readable(cov, "cov")
    d = cov.detach()
    return float(d[..., 0, 0].max()), float(d[..., 1, 1].max())


def own_radii(own: float | None, *scales: Tensor) -> Tensor | None:
    """Each σ's own half-size (:func:`own_radius`; the larger over ``scales``, broadcast), where
    its kernel is cut; None without ``own`` or for one σ (its own half-size is ``h``). The
    per-pixel sphere blur cuts every map, even of one pixel, with :func:`own_radius` itself."""
    if own is None or all(s.numel() == 1 for s in scales):
        return None
    return reduce(torch.maximum, [own_radius(s, own) for s in scales])


def own_box(cov: Tensor, own: float) -> tuple[Tensor, Tensor]:
    """Each covariance's own box ``(r_y, r_x)``: :func:`own_radius` of its marginal σ."""
    d = cov.detach()
    return own_radius(d[..., 0, 0].double().sqrt(), own), own_radius(d[..., 1, 1].double().sqrt(), own)
