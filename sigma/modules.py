"""``torch.nn.Module`` layers that own scale parameters and call :mod:`sigma.blur`.

Modules store unconstrained parameters, ``log σ`` or log-Cholesky vectors (see
:mod:`sigma.params`), so any optimizer step keeps σ positive and covariances
positive definite, and expose the constrained values as ``.sigma`` / ``.cov``.
``forward`` only calls the functional API.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import blur as _blur
from ._checks import (
    KERNEL_TYPES,
    BlurOptions,
    ScaleError,
    as_scale,
    blur_options,
    check_choice,
    check_input,
    check_int,
    check_positive_real,
    check_support_readable,
    resolve_support,
    values_checkable,
)
from ._export import support_read
from ._padding import with_padding_table
from .local import _local_sphere
from .params import _logchol_to_cov, cov_to_logchol

__all__ = ["Blur1d", "Blur2d", "GaussConv2d", "DynamicBlur2d"]


def _like_conv(x: Tensor, y: Tensor) -> Tensor:
    """``y`` as :class:`torch.nn.Conv2d` would return it: in ``x``'s memory format (channels-last
    in, channels-last out) and, under autocast, in the autocast dtype (whichever engine ran)."""
    dev = y.device.type
    if y.dtype == torch.float32 and dev != "meta" and torch.is_autocast_enabled(dev):
        y = y.to(torch.get_autocast_dtype(dev))
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return y.contiguous(memory_format=torch.channels_last)
    return y


def _check_channels(channels: object) -> int | None:
    return None if channels is None else check_int(channels, "channels")


def _fmt(t: Tensor) -> str:
    if t.device.type == "meta":
        return f"<meta {tuple(t.shape)}>"
    flat = t.detach().flatten().tolist()
    if len(flat) == 1:
        return f"{flat[0]:.4g}"
    return "[" + ", ".join(f"{v:.4g}" for v in flat[:8]) + (", ...]" if len(flat) > 8 else "]")


def _tops(t: Tensor, name: str, per_last: bool = False) -> list[float]:
    """Largest value of ``t`` (``per_last``: per entry of its last dim) in one host read.

    A non-finite value (a diverged parameter) raises :class:`ScaleError` naming ``name``.
    """
    support_read(name)
    check_support_readable(t, name)
    d = t.detach().reshape(-1, t.shape[-1] if per_last else 1)
    tops = d.amax(0).tolist()
    if not all(math.isfinite(v) for v in tops):
        raise ScaleError(f"{name} must be finite, got {name}={_fmt(t)} (has training diverged?)")
    return tops


def _check_scale(scale: object, x: Tensor, read: bool = True) -> Tensor | None:
    """A layer's ``scale=`` argument as a tensor: None, a positive number, a 0-d tensor or one
    factor per sample, shape ``(B,)``. A tensor's values are checked (one host read) only when
    ``read``: a layer with a fixed ``radius=`` reads nothing from the device."""
    if scale is None:
        return None
    if not isinstance(scale, Tensor):
        return torch.tensor(check_positive_real(scale, "scale"), dtype=x.dtype, device=x.device)
    if not scale.is_floating_point():
        raise TypeError(f"scale must be a floating-point tensor, got dtype {scale.dtype}")
    B = x.shape[0]
    if scale.dim() > 1 or (scale.dim() == 1 and scale.shape[0] != B):
        raise ValueError(
            f"scale must be a number, a 0-d tensor or a tensor of shape ({B},) = (B,), one factor per "
            f"sample, got shape {tuple(scale.shape)}"
        )
    if read and values_checkable(scale):
        d = scale.detach()
        if not bool((torch.isfinite(d) & (d > 0)).all()):
            raise ScaleError(f"scale must be positive and finite, got {_fmt(d)}")
    return scale


def _scaled(s: Tensor, scale: Tensor | None, tail: int = 0, power: int = 1) -> Tensor:
    """``s`` (``()``/``(C,)``, then ``tail`` more dims) times ``scale ** power``: the same shape for a
    0-d scale, per sample ``(B, 1 or C, ...)`` for a scale of shape ``(B,)``."""
    if scale is None:
        return s
    f = scale.to(s.dtype) ** power
    if f.dim() == 0:
        return s * f
    base = s if s.dim() > tail else s.unsqueeze(0)
    return base.unsqueeze(0) * f.reshape((-1,) + (1,) * base.dim())


def _cpu_init(make: Callable, device) -> tuple[Tensor, Tensor | None]:
    """``(parameter, copy kept for reset_parameters)``: ``make(device)`` computed on the CPU (so a
    layer built on the meta device still knows its constructor's value), then moved to ``device``.
    No copy when the value itself lives on the meta device."""
    device = torch.get_default_device() if device is None else device  # honours `with torch.device(...)`
    try:
        init = make("cpu")
    except NotImplementedError:  # a meta tensor passed as the scale: nothing to keep
        return make(device), None
    return init.to(device), init.clone()


def _restore(param: Tensor, init: Tensor | None) -> None:
    if init is not None:
        with torch.no_grad():
            param.copy_(init)


def _empty_batch(x: Tensor, shape: tuple[int, ...], *params: Tensor) -> Tensor:
    """The output of an empty batch, ``(0, ...)`` of ``shape``, still a function of the layer's
    parameters (their gradients come out as zeros, as for :class:`torch.nn.Conv2d`)."""
    y = x.new_zeros(shape)
    return y + sum(p.sum() for p in params) * 0 if params else y


class _Layer(nn.Module):
    """What every σ layer shares beyond :class:`torch.nn.Module`."""

    def __prepare_scriptable__(self):
        raise TypeError(
            f"{type(self).__name__} cannot be compiled by torch.jit.script (its kernel construction is "
            "dynamic Python); use torch.export.export or torch.onnx.export(..., dynamo=True) with a "
            "fixed radius=, torch.jit.trace, or torch.compile"
        )

    def _check_in_channels(self, x: Tensor) -> None:
        """``x`` a (B, C, H, W) input of ``self.in_channels`` channels (B may be 0)."""
        check_input(x, 4, empty_batch=True)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built with in_channels={self.in_channels}, but x has "
                f"{x.shape[1]} channels (shape {tuple(x.shape)})"
            )


_FIELDS = tuple(f.name for f in fields(BlurOptions))


def _option(name: str) -> property:
    """``layer.<name>``: the field of ``layer.options`` (assigning it replaces ``options``)."""
    return property(
        lambda m: getattr(m.options, name),
        lambda m, v: setattr(m, "options", replace(m.options, **{name: v})),
    )


class _Optioned(_Layer):
    """A layer whose blur options are one checked :class:`~sigma._checks.BlurOptions`, ``self.options``."""

    std_devs, padding_mode, kernel, method, radius, order, gamma = map(_option, _FIELDS)

    def __setstate__(self, state: dict) -> None:
        # a layer pickled before ``options`` kept each option as its own attribute
        if "options" not in state and "std_devs" in state:
            state["options"] = BlurOptions(**{f: state.pop(f) for f in _FIELDS if f in state})
        super().__setstate__(state)


class _BlurOptions(_Optioned):
    def reset_parameters(self) -> None:
        """Restore the constructor's scale (after meta-device construction and ``to_empty``, as
        :meth:`torch.nn.Conv2d.reset_parameters` initializes a convolution)."""
        _restore(getattr(self, self._param_name), self._init)

    def _check_x(self, x: Tensor, ndim: int) -> None:
        check_input(x, ndim, empty_batch=True)
        if self.channels is not None and x.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__} was built with channels={self.channels} (one scale per channel), "
                f"but x has {x.shape[1]} channels (shape {tuple(x.shape)}); "
                f"build it with channels={x.shape[1]} or channels=None"
            )
        p = getattr(self, self._param_name)  # a scale given one per channel (channels=None)
        trailing = STRUCTURES[self.structure].trailing if hasattr(self, "structure") else 0
        if p.dim() > trailing and x.shape[1] != p.shape[0]:
            raise ValueError(
                f"{type(self).__name__} has one scale per channel for {p.shape[0]} channels ({self._param_name} "
                f"of shape {tuple(p.shape)}), but x has {x.shape[1]} channels (shape {tuple(x.shape)}); "
                f"build it with {x.shape[1]} scales, or one for every channel"
            )

    def _options_repr(self) -> str:
        s = f"std_devs={self.std_devs:g}, padding_mode={self.padding_mode!r}"
        if self.kernel != "sampled":
            s += f", kernel={self.kernel!r}"
        if self.method != "auto":
            s += f", method={self.method!r}"
        if self.radius is not None:
            s += f", radius={self.radius}"
        if self.order not in (0, (0, 0)):
            s += f", order={self.order}"
        if self.gamma:
            s += f", gamma={self.gamma:g}"
        return s


@with_padding_table
class Blur1d(_BlurOptions):
    """Gaussian blur of 1D signals with a learnable σ, stored as ``log σ``.

    Args:
        sigma: initial σ in pixels (positive). Default: 1.0.
        channels: ``None`` for one σ shared by all channels, or C for one σ per channel.
            Default: None.
        std_devs: kernel truncation in standard deviations. Default: 2.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'symmetric'``, ``'replicate'`` or
            ``'circular'`` (the table below). Default: ``'zeros'``.
        kernel: ``'sampled'``, ``'erf'`` or ``'discrete'`` (see :mod:`sigma.kernels`). Default: ``'sampled'``.
        method: ``'auto'``, ``'direct'``, ``'matmul'``, ``'fft'`` or ``'fused'`` (separable
            structures; see :func:`sigma.blur1d`). Default: ``'auto'``.
        radius: fixed kernel half-size (an int); then a forward reads no value from the
            device and ``torch.compile`` traces it as one graph that σ can move within.
            Default: None (the half-size follows σ: one device-to-host read per call).
        order: derivative order 0..3 (see :func:`sigma.blur1d`). Default: 0.
        gamma: scale normalization of a derivative, ``σ ** (gamma * order)``. Default: 0.
        device, dtype: of the parameter. Default: torch's defaults.

    Padding modes, each equal to ``scipy.ndimage``'s (kornia's name where it has one):

    PADDING_TABLE

    Shape:
        - Input: ``(B, C, L)``.
        - Output: ``(B, C, L)``.

    Attributes:
        log_sigma: the learnable ``log σ``, shape ``()`` or ``(C,)``.

    Example:
        >>> m = Blur1d(sigma=2.0)
        >>> m
        Blur1d(sigma=2, std_devs=2, padding_mode='zeros')
        >>> m(torch.randn(4, 1, 50)).shape
        torch.Size([4, 1, 50])
    """

    def __init__(
        self,
        sigma: float | Tensor = 1.0,
        *,
        channels: int | None = None,
        std_devs: float = 2.0,
        padding_mode: str = "zeros",
        kernel: str = "sampled",
        method: str = "auto",
        radius: int | None = None,
        order: int = 0,
        gamma: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.options = blur_options(1, std_devs, padding_mode, kernel, method, radius, order, gamma)
        self.channels = _check_channels(channels)

        def make(dev):
            s = as_scale(sigma, "sigma", channels=self.channels, dtype=dtype, device=dev).detach()
            return (s.expand(self.channels) if self.channels is not None else s).log()

        init, self._init = _cpu_init(make, device)
        self._param_name = "log_sigma"
        self.log_sigma = nn.Parameter(init.clone())

    @property
    def sigma(self) -> Tensor:
        """σ = exp(log_sigma), shape ``()`` or ``(C,)``."""
        return self.log_sigma.exp()

    def forward(self, x: Tensor, scale: float | Tensor | None = None) -> Tensor:
        """Blur ``x`` (B, C, L); ``scale``: a factor for σ in this call (a number, a 0-d tensor or
        ``(B,)``, one per sample; differentiable), e.g. the magnification of the input."""
        self._check_x(x, 3)
        if x.shape[0] == 0:
            return _empty_batch(x, x.shape, self.log_sigma)
        s = _scaled(self.sigma, _check_scale(scale, x, self.radius is None))
        sup = resolve_support(lambda: _tops(s, "sigma"), self.options)
        return _like_conv(x, _blur._blur1d(x, s, sup, self.options))

    def extra_repr(self) -> str:
        ch = f", channels={self.channels}" if self.channels is not None else ""
        return f"sigma={_fmt(self.sigma)}{ch}, {self._options_repr()}"


# ----------------------------------------------------------------------------- Blur2d structures


def _sphere_forward(m: Blur2d, x: Tensor, scale: Tensor | None) -> Tensor:
    s = _scaled(m.log_sigma.exp(), scale)
    sup = resolve_support(lambda: _tops(s, "sigma"), m.options, axes=2)
    return _blur._blur2d_sep(x, s, s, sup, m.options)


def _diag_forward(m: Blur2d, x: Tensor, scale: Tensor | None) -> Tensor:
    s = _scaled(m.log_sigma.exp(), scale, tail=1)
    sup = resolve_support(lambda: _tops(s, "sigma", per_last=True), m.options, ("sigma_y", "sigma_x"))
    return _blur._blur2d_sep(x, s[..., 0], s[..., 1], sup, m.options)


def _full_forward(m: Blur2d, x: Tensor, scale: Tensor | None) -> Tensor:
    cov = _scaled(_logchol_to_cov(m.logchol), scale, tail=2, power=2)
    tops = lambda: _tops(torch.diagonal(cov, dim1=-2, dim2=-1), "cov", per_last=True)  # noqa: E731
    sup = resolve_support(tops, m.options, "cov", variance=True, dense=True)
    return _blur._blur2d_full(x, cov, sup, m.options)


def _sphere_init(sigma, channels, dtype, device) -> Tensor:
    if isinstance(sigma, (tuple, list)):
        raise TypeError(
            f"sigma={sigma!r} is a pair, but structure='sphere' takes one σ (a number, or a tensor of "
            "shape () or (C,)); for a σ per axis (sigma_y, sigma_x) use structure='diag' (axis-aligned) "
            "or structure='full'"
        )
    return as_scale(sigma, "sigma", channels=channels, dtype=dtype, device=device).detach().log()


def _pair_logs(sigma, dtype, device) -> Tensor:
    pair = sigma if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    if len(pair) != 2:
        raise ValueError(f"sigma must be a number or a pair (sigma_y, sigma_x), got {sigma!r}")
    sy = as_scale(pair[0], "sigma", dtype=dtype, device=device).detach()
    sx = as_scale(pair[1], "sigma", dtype=sy.dtype, device=sy.device).detach()
    if sy.dim() or sx.dim():
        raise ValueError("sigma must hold numbers or 0-dim tensors for 'diag' and 'full'")
    return torch.stack([sy, sx]).log()


def _diag_init(sigma, channels, dtype, device) -> Tensor:
    return _pair_logs(sigma, dtype, device)


def _full_init(sigma, channels, dtype, device) -> Tensor:
    logs = _pair_logs(sigma, dtype, device)
    return torch.stack([logs[0], torch.zeros_like(logs[0]), logs[1]])


def _full_from_cov(cov, dtype, device) -> Tensor:
    if isinstance(cov, (list, tuple)):
        cov = torch.tensor(cov, dtype=dtype or torch.get_default_dtype(), device=device)
    if not isinstance(cov, Tensor):
        raise TypeError(
            f"cov must be a torch.Tensor of shape (2, 2) or a nested list, got {type(cov).__name__}"
        )
    init = cov_to_logchol(cov.detach().to(dtype=dtype or cov.dtype, device=device))
    if init.dim() != 1:
        raise ValueError(f"cov must have shape (2, 2), got shape {tuple(cov.shape)}")
    return init


def _sphere_cov(m: Blur2d) -> Tensor:
    s = m.log_sigma.exp()
    return torch.diag_embed(torch.stack([s, s], -1) ** 2)


def _diag_cov(m: Blur2d) -> Tensor:
    return torch.diag_embed(m.log_sigma.exp() ** 2)


def _full_cov(m: Blur2d) -> Tensor:
    return _logchol_to_cov(m.logchol)


def _log_sigma_exp(m: Blur2d) -> Tensor:
    return m.log_sigma.exp()


def _marginal_sigma(m: Blur2d) -> Tensor:
    return torch.diagonal(_full_cov(m), dim1=-2, dim2=-1).sqrt()


@dataclass(frozen=True)
class _Structure:
    """One row of the :class:`Blur2d` structure table: everything a structure defines."""

    param: str  # name of the learnable tensor
    trailing: int  # its dims for one channel (per channel, one more leading dim)
    kernels: frozenset[str]  # the kernel types it supports
    init: Callable  # (sigma, channels, dtype, device) -> the parameter
    forward: Callable  # (module, x, scale) -> output
    sigma: Callable  # module -> the .sigma property
    cov: Callable  # module -> the .cov property
    from_cov: Callable | None = None  # (cov, dtype, device) -> the parameter, if cov= can set it


#: The :class:`Blur2d` structures; adding one is one row here (and its functions above).
STRUCTURES: dict[str, _Structure] = {
    "sphere": _Structure(
        "log_sigma", 0, KERNEL_TYPES, _sphere_init, _sphere_forward, _log_sigma_exp, _sphere_cov
    ),
    "diag": _Structure("log_sigma", 1, KERNEL_TYPES, _diag_init, _diag_forward, _log_sigma_exp, _diag_cov),
    "full": _Structure(
        "logchol",
        1,
        frozenset({"sampled"}),
        _full_init,
        _full_forward,
        _marginal_sigma,
        _full_cov,
        _full_from_cov,
    ),
}


@with_padding_table
class Blur2d(_BlurOptions):
    """Gaussian blur of images with a learnable scale of a chosen structure.

    ``structure`` sets what is learned (one row of :data:`STRUCTURES` each):

    ============  ==============  =======================  ===================  =========
    structure     parameter       shape (shared / per ch)  kernels              ``cov=``
    ============  ==============  =======================  ===================  =========
    ``'sphere'``  ``log_sigma``   ``()`` / ``(C,)``        all three            no
    ``'diag'``    ``log_sigma``   ``(2,)`` / ``(C, 2)``    all three            no
    ``'full'``    ``logchol``     ``(3,)`` / ``(C, 3)``    sampled              yes
    ============  ==============  =======================  ===================  =========

    ``'sphere'`` learns one σ, ``'diag'`` (σ_y, σ_x), ``'full'`` a full covariance
    through log-Cholesky parameters (so it can rotate).

    Args:
        sigma: initial σ: a positive number, or a pair ``(σ_y, σ_x)`` for ``'diag'``
            and ``'full'``. Default: 1.0.
        structure: ``'sphere'``, ``'diag'`` or ``'full'``. Default: ``'sphere'``.
        channels: ``None`` to share the scale across channels, or C for one per channel.
            Default: None.
        cov: initial covariance ``(2, 2)`` (a tensor or nested list) for ``'full'``
            (overrides ``sigma``); refused for the other structures. Default: None.
        radius: fixed kernel half-size, an int or a pair ``(h_y, h_x)`` (see
            :class:`Blur1d`). Default: None.
        order: derivative order, an int or a pair ``(order_y, order_x)`` (see
            :func:`sigma.blur2d_diag`); ``'sphere'`` and ``'diag'`` only. Default: 0.
        gamma: scale normalization ``σ ** (gamma * order)`` per axis. Default: 0.
        std_devs, padding_mode, kernel, method, device, dtype: as in :class:`Blur1d`
            (``kernel='erf'`` is not available for ``'full'``).

    Padding modes, each equal to ``scipy.ndimage``'s (kornia's name where it has one):

    PADDING_TABLE

    Shape:
        - Input: ``(B, C, H, W)``.
        - Output: ``(B, C, H, W)``.

    Attributes:
        log_sigma: learnable log-scales (``'sphere'``, ``'diag'``).
        logchol: learnable log-Cholesky parameters (``'full'``).

    Example:
        >>> m = Blur2d(sigma=(1.0, 3.0), structure='diag')
        >>> m.sigma
        tensor([1., 3.], grad_fn=<ExpBackward0>)
        >>> m(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self,
        sigma: float | tuple[float, float] | Tensor = 1.0,
        structure: str = "sphere",
        channels: int | None = None,
        *,
        cov: Tensor | None = None,
        std_devs: float = 2.0,
        padding_mode: str = "zeros",
        kernel: str = "sampled",
        method: str = "auto",
        radius: int | tuple[int, int] | None = None,
        order: int | tuple[int, int] = 0,
        gamma: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.structure = check_choice(structure, frozenset(STRUCTURES), "structure")
        spec = STRUCTURES[structure]
        self.options = blur_options(2, std_devs, padding_mode, kernel, method, radius, order, gamma)
        if kernel not in spec.kernels:
            raise ValueError(f"kernel must be 'sampled' for structure={structure!r}, got kernel={kernel!r}")
        if structure == "full" and self.order != (0, 0):
            raise ValueError(
                f"order must be 0 for structure='full' (derivatives are separable: use 'sphere' or 'diag'), "
                f"got order={order!r}"
            )
        self.channels = _check_channels(channels)
        if cov is not None and spec.from_cov is None:
            raise ValueError(
                f"cov can only initialize structure='full', got structure={structure!r}; "
                "pass sigma instead (or structure='full')"
            )

        def make(dev):
            if cov is not None:
                init = spec.from_cov(cov, dtype, dev)
            else:
                init = spec.init(sigma, self.channels, dtype, dev)
            if self.channels is not None and init.dim() == spec.trailing:
                init = init.expand(self.channels, *init.shape)
            return init

        init, self._init = _cpu_init(make, device)
        self._param_name = spec.param
        setattr(self, spec.param, nn.Parameter(init.clone()))

    @property
    def sigma(self) -> Tensor:
        """σ (``'sphere'``: shape ``()``/``(C,)``) or (σ_y, σ_x) (``'diag'``: ``(2,)``/``(C, 2)``).

        For ``'full'``, the square roots of the covariance's diagonal (the marginal σ).
        """
        return STRUCTURES[self.structure].sigma(self)

    @property
    def cov(self) -> Tensor:
        """The covariance in (row, col) coordinates, shape ``(2, 2)`` or ``(C, 2, 2)``."""
        return STRUCTURES[self.structure].cov(self)

    def forward(self, x: Tensor, scale: float | Tensor | None = None) -> Tensor:
        """Blur ``x`` (B, C, H, W); ``scale``: a factor for σ in this call (a covariance is
        multiplied by its square): a number, a 0-d tensor or ``(B,)``, one per sample;
        differentiable. With ``radius=`` the support stays that radius, so choose it for the
        largest scaled σ."""
        self._check_x(x, 4)
        if x.shape[0] == 0:
            return _empty_batch(x, x.shape, getattr(self, self._param_name))
        y = STRUCTURES[self.structure].forward(self, x, _check_scale(scale, x, self.radius is None))
        return _like_conv(x, y)

    def extra_repr(self) -> str:
        ch = f", channels={self.channels}" if self.channels is not None else ""
        if self.structure == "full":
            scale = f"cov={_fmt(self.cov)}"
        else:
            scale = f"sigma={_fmt(self.sigma)}"
        return f"{scale}, structure={self.structure!r}{ch}, {self._options_repr()}"


class GaussConv2d(_Layer):
    """Semi-structured convolution: a learned Gaussian blur composed with a free-form filter.

    ``y = conv2d(blur(x), weight) + bias``: the small free-form filter (``kernel_size``)
    learns the local pattern while the Gaussian, with learnable scale, sets how far it
    reaches, so the receptive field grows or shrinks by gradient descent on σ (the
    composition of Shelhamer et al., 2019).

    Args:
        in_channels: number of input channels C_in.
        out_channels: number of output channels C_out.
        kernel_size: size of the free-form filter (odd, 'same' zero padding). Default: 3.
        sigma: initial σ of the Gaussian. Default: 1.0.
        structure: ``'sphere'``, ``'diag'`` or ``'full'`` (see :class:`Blur2d`). Default: ``'sphere'``.
        per_channel: learn one scale per input channel instead of one shared. Default: False.
        bias: add a learnable bias. Default: True.
        std_devs, padding_mode, kernel, method, radius, device, dtype: passed to the
            :class:`Blur2d` (``kernel='erf'`` keeps a σ-gradient below half a pixel).

    Shape:
        - Input: ``(B, C_in, H, W)``.
        - Output: ``(B, C_out, H, W)``.

    Attributes:
        blur: the :class:`Blur2d` holding the scale parameters.
        weight: free-form filter, shape ``(C_out, C_in, kernel_size, kernel_size)``.
        bias: shape ``(C_out,)`` or None.

    Example:
        >>> layer = GaussConv2d(3, 8, kernel_size=3, sigma=2.0)
        >>> layer(torch.randn(1, 3, 32, 32)).shape
        torch.Size([1, 8, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        sigma: float | tuple[float, float] = 1.0,
        *,
        structure: str = "sphere",
        per_channel: bool = False,
        bias: bool = True,
        std_devs: float = 2.0,
        padding_mode: str = "zeros",
        kernel: str = "sampled",
        method: str = "auto",
        radius: int | tuple[int, int] | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.kernel_size = check_int(kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got kernel_size={kernel_size}")
        self.blur = Blur2d(
            sigma,
            structure,
            in_channels if per_channel else None,
            std_devs=std_devs,
            padding_mode=padding_mode,
            kernel=kernel,
            method=method,
            radius=radius,
            device=device,
            dtype=dtype,
        )
        scale = getattr(self.blur, self.blur._param_name)
        if scale.dim() > STRUCTURES[self.blur.structure].trailing and scale.shape[0] != in_channels:
            raise ValueError(
                f"sigma has one value per channel for {scale.shape[0]} channels, but in_channels="
                f"{in_channels}; give {in_channels} values, or one for every channel"
            )
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize the free-form filter like :class:`torch.nn.Conv2d`, and restore the
        constructor's σ."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size**2)
            nn.init.uniform_(self.bias, -bound, bound)
        self.blur.reset_parameters()

    @property
    def sigma(self) -> Tensor:
        """The Gaussian's σ (see :attr:`Blur2d.sigma`)."""
        return self.blur.sigma

    def forward(self, x: Tensor, scale: float | Tensor | None = None) -> Tensor:
        """``conv2d(blur(x, scale), weight) + bias``; ``scale`` multiplies σ for this call (see
        :meth:`Blur2d.forward`)."""
        self._check_in_channels(x)
        return F.conv2d(self.blur(x, scale), self.weight, self.bias, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"bias={self.bias is not None}"
        )


class DynamicBlur2d(_Optioned):
    """Blur whose per-pixel σ is predicted from the input (dynamic Gaussian structure).

    A small convolution maps the input to a map of logits ``z``; the per-pixel scale
    is ``σ = lo + (hi - lo) * sigmoid(z)``, bounded to ``sigma_range`` by construction
    (no clamping), and the image is blurred with :func:`sigma.blur2d_local_sphere` on
    the fixed support ``h = ceil(std_devs * hi)``. The predictor starts at zero
    weights, so every pixel begins at ``sigma`` and the layer learns where to deviate.

    Args:
        in_channels: number of input channels C.
        sigma: initial σ everywhere, strictly inside ``sigma_range``. Default: 1.0.
        sigma_range: ``(lo, hi)`` bounds of the predicted σ, ``0 < lo < hi``. Default: (0.25, 4.0).
        kernel_size: size of the predictor convolution (odd). Default: 3.
        std_devs, padding_mode, kernel: passed to :func:`sigma.blur2d_local_sphere`.
        radius: the fixed half-size of every pixel's kernel. Default: None, meaning
            ``max(1, ceil(std_devs * hi))``.
        device, dtype: of the parameters.

    Shape:
        - Input: ``(B, C, H, W)``.
        - Output: ``(B, C, H, W)``; :meth:`sigma_map` gives ``(B, 1, H, W)``.

    Attributes:
        predictor: the ``nn.Conv2d(C, 1, kernel_size)`` producing the logits.

    Example:
        >>> layer = DynamicBlur2d(3, sigma=2.0)
        >>> x = torch.randn(1, 3, 16, 16)
        >>> layer(x).shape, round(float(layer.sigma_map(x).detach().mean()), 4)
        (torch.Size([1, 3, 16, 16]), 2.0)
    """

    def __init__(
        self,
        in_channels: int,
        sigma: float = 1.0,
        *,
        sigma_range: tuple[float, float] = (0.25, 4.0),
        kernel_size: int = 3,
        std_devs: float = 2.0,
        padding_mode: str = "zeros",
        kernel: str = "sampled",
        radius: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        k = check_int(kernel_size, "kernel_size")
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got kernel_size={kernel_size}")
        if not isinstance(sigma_range, (tuple, list)) or len(sigma_range) != 2:
            raise ValueError(f"sigma_range must be a pair (lo, hi), got {sigma_range!r}")
        lo = check_positive_real(sigma_range[0], "sigma_range[0]")
        hi = check_positive_real(sigma_range[1], "sigma_range[1]")
        if not lo < hi:
            raise ValueError(f"sigma_range must satisfy lo < hi, got {sigma_range!r}")
        s0 = check_positive_real(sigma, "sigma")
        if not lo < s0 < hi:
            raise ValueError(f"sigma must lie strictly inside sigma_range={sigma_range!r}, got sigma={sigma}")
        self.sigma_range = (lo, hi)
        o = blur_options(1, std_devs, padding_mode, kernel, radius=radius)
        self.options = replace(o, radius=resolve_support([hi], o, "sigma_range").h[0])  # for every σ
        self.predictor = nn.Conv2d(in_channels, 1, k, padding=k // 2, device=device, dtype=dtype)
        self._sigma0 = s0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero the predictor's weights and set its bias so that every pixel starts at the
        constructor's ``sigma``."""
        lo, hi = self.sigma_range
        p = (self._sigma0 - lo) / (hi - lo)
        with torch.no_grad():
            self.predictor.weight.zero_()
            self.predictor.bias.fill_(math.log(p / (1 - p)))

    def sigma_map(self, x: Tensor) -> Tensor:
        """Predicted σ per pixel, shape ``(B, 1, H, W)``."""
        lo, hi = self.sigma_range
        return lo + (hi - lo) * torch.sigmoid(self.predictor(x))

    def forward(self, x: Tensor) -> Tensor:
        self._check_in_channels(x)
        smap = self.sigma_map(x)
        if x.shape[0] == 0:
            return _empty_batch(x, x.shape, *self.predictor.parameters())
        # under autocast the predictor's convolution runs in half precision: blur in x's dtype,
        # as the other layers do
        sup = resolve_support(None, self.options)  # fixed in __init__
        y = _local_sphere(x, smap.to(x.dtype), sup, self.options)
        return _like_conv(x, y)

    def extra_repr(self) -> str:
        lo, hi = self.sigma_range
        return (
            f"{self.in_channels}, sigma_range=({lo:g}, {hi:g}), radius={self.radius}, "
            f"padding_mode={self.padding_mode!r}"
        )
