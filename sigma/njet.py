r"""N-jets: every Gaussian derivative of an image up to an order, at a learnable σ.

The *N-jet* of an image at scale σ is the set of its blurred derivatives
:math:`\sigma^{\gamma(m_y + m_x)}\, \partial_y^{m_y} \partial_x^{m_x} (g_\sigma * x)` for
:math:`m_y + m_x \le N`. A learned 1x1 combination of them is a filter from a
structured basis whose size follows σ (Pintea et al., 2021, "Resolution learning in
deep convolutional networks using scale-space theory"): :class:`NJetConv2d` learns σ
and the combination together.

The derivatives are separable, so one call runs ``N + 1`` passes along the columns
(one per x-order) and one pass down the rows per jet member.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import blur as _blur
from ._checks import (
    MAX_ORDER,
    BlurOptions,
    Support,
    as_scale,
    blur_options,
    check_int,
    resolve_support,
)
from ._conv import correlate_axis, correlate_pairs_per_sample
from ._padding import pad_axis
from .kernels import _gauss1d
from .modules import _check_scale, _cpu_init, _empty_batch, _like_conv, _Optioned, _restore, _scaled, _tops

__all__ = ["jet_orders", "njet2d", "NJetConv2d"]

# NJetConv2d folds the jet and its 1x1 combination into one dense kernel up to this many taps (5 x 5):
# measured on a 2-core AMD EPYC, the dense F.conv2d is 1.1-4x faster than the separable jet at 5 x 5
# (four layer shapes, benchmarks/bench_blur.py's njet row) and 1.6-12x slower at 9 x 9 and above.
_FOLD_MAX_TAPS = 25


def jet_orders(order: int) -> list[tuple[int, int]]:
    """The ``(order_y, order_x)`` pairs of an N-jet, by total order, ``order_y`` first.

    Example:
        >>> jet_orders(2)
        [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    """
    order = check_int(order, "order", 0, MAX_ORDER)
    return [(m - k, k) for m in range(order + 1) for k in range(m + 1)]


def _jet_taps(s: Tensor, sup: Support, o: BlurOptions) -> tuple[list[Tensor], list[Tensor]]:
    """The derivative kernels of orders ``0..o.order``, ``(wy, wx)``, on ``sup.h = (h_y, h_x)``."""
    return tuple(
        [_gauss1d(s, h, o.kernel, sup.own, order=m, gamma=o.gamma) for m in range(o.order + 1)] for h in sup.h
    )


def _njet(x: Tensor, s: Tensor, sup: Support, o: BlurOptions, jet_major: bool = False) -> Tensor:
    """Unchecked N-jet of ``x`` (B, C, H, W) up to ``o.order``: ``(B, C * J, H, W)`` in :func:`jet_orders`
    order (channel ``c * J + j``; ``jet_major``: ``j * C + c``, a concatenation instead of a view)."""
    B, C, H, W = x.shape
    orders = jet_orders(o.order)
    per_sample = _blur._sample_scales(x, [s])
    if per_sample is not None:  # one σ per sample: its kernels shared by its channels
        wy, wx = _jet_taps(per_sample[0], sup, o)
        y = correlate_pairs_per_sample(x, wy, wx, orders, o.padding_mode, o.method)  # (B, C, J, H, W)
        if y is not None:
            return y.transpose(1, 2).reshape(B, len(orders) * C, H, W) if jet_major else y.view(B, -1, H, W)
        x, folded, unfold = _blur._fold_kernels(x, wy + wx)
        wy, wx = folded[: len(wy)], folded[len(wy) :]
    else:
        x, (s,), unfold = _blur._per_sample(x, [s])
        wy, wx = _jet_taps(s, sup, o)
    along_x = [correlate_axis(x, w, -1, o.padding_mode, o.method) for w in wx]
    out = [unfold(correlate_axis(along_x[ox], wy[oy], -2, o.padding_mode, o.method)) for oy, ox in orders]
    if jet_major:
        return torch.cat(out, 1)
    return torch.stack(out, 2).reshape(B, C * len(orders), H, W)


def njet2d(
    x: Tensor,
    sigma: Tensor | float,
    order: int = 2,
    std_devs: float = 2.0,
    *,
    gamma: float = 1.0,
    padding_mode: str = "zeros",
    kernel: str = "sampled",
    method: str = "auto",
    radius: int | tuple[int, int] | None = None,
) -> Tensor:
    r"""The N-jet of images: every derivative ``blur2d_sphere(x, σ, order=(m_y, m_x), gamma=gamma)``
    with ``m_y + m_x <= order``, stacked along the channels.

    Args:
        x: images, shape ``(B, C, H, W)``.
        sigma: σ in pixels, as in :func:`sigma.blur2d_sphere`; differentiable.
        order: highest total derivative order N, 0..3. Default: 2 (J = 6 members).
        std_devs, padding_mode, kernel, method, radius: as in :func:`sigma.blur2d_sphere`.
        gamma: scale normalization ``σ ** (gamma * (m_y + m_x))``. Default: 1 (responses
            of the same pattern at its own scale are comparable across σ and orders).

    Returns:
        ``(B, C * J, H, W)``, J = ``(N + 1)(N + 2) / 2``: channel ``c * J + j`` is member
        ``jet_orders(order)[j]`` of input channel ``c``.

    Raises:
        TypeError, ValueError: as :func:`sigma.blur2d_sphere`, or if ``order`` is not in 0..3.

    Example:
        >>> njet2d(torch.rand(2, 3, 16, 16), 1.5, order=2).shape
        torch.Size([2, 18, 16, 16])
    """
    o = _blur._options(x, 2, std_devs, padding_mode, kernel, method, radius, order, gamma, jet=True)
    s, top = _blur._scale(x, sigma, "sigma", o)
    return _njet(x, s, resolve_support([top], o, axes=2), o)


class NJetConv2d(_Optioned):
    """Structured convolution: the N-jet of every input channel at a learned σ, combined by a learned 1x1 convolution.

    ``y = conv2d(njet2d(x, σ, order, gamma=gamma), weight) + bias`` with a 1x1 ``weight``
    of shape ``(C_out, C_in * J, 1, 1)``: each output is a learned combination of
    Gaussian derivatives, a filter whose receptive field grows or shrinks with σ, with
    ``C_out * C_in * J`` weights whatever its size. σ is stored as ``log σ``.

    Args:
        in_channels: number of input channels C_in.
        out_channels: number of output channels C_out.
        order: highest derivative order N (0..3). Default: 2.
        sigma: initial σ in pixels. Default: 1.0.
        per_channel: one σ per input channel instead of one shared. Default: False.
        bias: add a learnable bias. Default: True.
        gamma: scale normalization of the derivatives (see :func:`njet2d`). Default: 1.
        std_devs, padding_mode, kernel, method, radius: as in :class:`sigma.Blur2d`. For a jet
            that follows the scale of the input (``forward(x, scale)`` on a magnified image),
            use ``std_devs=4`` with the sampled kernel: at the default 2 the second-derivative
            kernels are cut short and the responses at two samplings differ by about 10 %, at 4
            by under 0.2 % (``tests/test_scale.py``).
        device, dtype: of the parameters.

    Shape:
        - Input: ``(B, C_in, H, W)``.
        - Output: ``(B, C_out, H, W)``.

    Attributes:
        log_sigma: learnable ``log σ``, shape ``()`` or ``(C_in,)``.
        weight: the 1x1 combination, ``(C_out, C_in * J, 1, 1)``.
        bias: ``(C_out,)`` or None.
        orders: the jet members ``(order_y, order_x)``, see :func:`jet_orders`.

    Example:
        >>> layer = NJetConv2d(3, 8, order=2, sigma=2.0)
        >>> layer(torch.randn(1, 3, 32, 32)).shape, layer.weight.shape
        (torch.Size([1, 8, 32, 32]), torch.Size([8, 18, 1, 1]))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        order: int = 2,
        sigma: float | Tensor = 1.0,
        *,
        per_channel: bool = False,
        bias: bool = True,
        gamma: float = 1.0,
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
        self.options = blur_options(2, std_devs, padding_mode, kernel, method, radius, order, gamma, jet=True)
        self.orders = jet_orders(self.order)
        channels = self.in_channels if per_channel else None

        def make(dev):
            s = as_scale(sigma, "sigma", channels=channels, dtype=dtype, device=dev).detach()
            return (s.expand(self.in_channels) if per_channel else s).log()

        init, self._init = _cpu_init(make, device)
        self.log_sigma = nn.Parameter(init.clone())
        factory = dict(device=device, dtype=dtype)
        fan_in = self.in_channels * len(self.orders)
        self.weight = nn.Parameter(torch.empty(out_channels, fan_in, 1, 1, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize the 1x1 combination like :class:`torch.nn.Conv2d`, and restore the
        constructor's σ."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1])
            nn.init.uniform_(self.bias, -bound, bound)
        _restore(self.log_sigma, self._init)

    @property
    def sigma(self) -> Tensor:
        """σ = exp(log_sigma), shape ``()`` or ``(C_in,)``."""
        return self.log_sigma.exp()

    def jet(self, x: Tensor, scale: float | Tensor | None = None) -> Tensor:
        """The N-jet responses ``(B, C_in * J, H, W)`` before the 1x1 combination, at σ times
        ``scale`` (see :meth:`forward`)."""
        return self._jet(x, False, scale)

    def _support(self, x: Tensor, scale: float | Tensor | None) -> tuple[Tensor, Support] | None:
        """Checks ``x``; ``None`` for an empty batch, else ``(s, support)``: σ times ``scale``
        and the kernels' support."""
        self._check_in_channels(x)
        if x.shape[0] == 0:
            return None
        s = _scaled(self.sigma, _check_scale(scale, x, self.radius is None))
        return s, resolve_support(lambda: _tops(s, "sigma"), self.options, axes=2)

    def _jet(self, x: Tensor, jet_major: bool, scale: float | Tensor | None = None) -> Tensor:
        support = self._support(x, scale)
        if support is None:
            return _empty_batch(x, (0, x.shape[1] * len(self.orders), *x.shape[2:]), self.log_sigma)
        return _njet(x, *support, self.options, jet_major=jet_major)

    def forward(self, x: Tensor, scale: float | Tensor | None = None) -> Tensor:
        """The layer's output ``(B, C_out, H, W)``. ``scale`` multiplies σ for this call: a number,
        a 0-d tensor or ``(B,)``, one per sample (differentiable, so a predictor can learn it).
        With ``gamma=1`` the jet is scale-normalized, so an image magnified by ``f`` at
        ``scale=f`` gives the response of the original at ``scale=1`` at corresponding pixels
        (up to sampling; see the tests). With ``radius=`` the support stays that radius.

        With one σ for the whole batch, ``method='auto'`` and kernels of at most 5 x 5 taps, the
        derivative kernels and the 1x1 combination are folded into one ``(C_out, C_in, ky, kx)``
        kernel and run as one ``F.conv2d`` (the same sum, in another order): the fast path a
        3 x 3 ``nn.Conv2d`` takes. Otherwise the jet is computed separably, then combined."""
        support = self._support(x, scale)
        if support is None:
            return _empty_batch(x, (0, self.out_channels, *x.shape[2:]), self.log_sigma, self.weight)
        s, sup = support
        hy, hx = sup.h
        if self.method == "auto" and s.dim() <= 1 and (2 * hy + 1) * (2 * hx + 1) <= _FOLD_MAX_TAPS:
            return _like_conv(x, self._folded(x, s, sup))
        if not torch.compiler.is_compiling():
            return _like_conv(x, F.conv2d(_njet(x, s, sup, self.options), self.weight, self.bias))
        # compiled: the jet concatenated jet-major and the weight's inputs permuted to match (the
        # same result); inductor 2.13 fails on the reshaped stack with symbolic sizes
        C = self.in_channels
        w = self.weight.unflatten(1, (C, -1)).transpose(1, 2).flatten(1, 2)
        return F.conv2d(_njet(x, s, sup, self.options, jet_major=True), w, self.bias)

    def _folded(self, x: Tensor, s: Tensor, sup: Support) -> Tensor:
        """One dense convolution: kernel ``K[o, c] = sum_j weight[o, c, j] * (wy_j outer wx_j)``."""
        (hy, hx), (wy, wx) = sup.h, _jet_taps(s, sup, self.options)
        # (J, ky, kx) for one σ, (C_in, J, ky, kx) for one σ per input channel
        basis = torch.stack([wy[oy].unsqueeze(-1) * wx[ox].unsqueeze(-2) for oy, ox in self.orders], -3)
        w = self.weight.view(self.out_channels, self.in_channels, len(self.orders))
        if basis.dim() == 3:
            kernel = torch.einsum("ocj,jyx->ocyx", w, basis.to(w.dtype))
        else:
            kernel = torch.einsum("ocj,cjyx->ocyx", w, basis.to(w.dtype))
        if self.padding_mode == "zeros":
            return F.conv2d(x, kernel.to(x.dtype), self.bias, padding=(hy, hx))
        xp = pad_axis(pad_axis(x, hy, hy, self.padding_mode, -2), hx, hx, self.padding_mode, -1)
        return F.conv2d(xp, kernel.to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        s = self.sigma.detach().flatten().tolist()
        sig = f"{s[0]:.4g}" if len(s) == 1 else "[" + ", ".join(f"{v:.4g}" for v in s[:8]) + "]"
        out = f"{self.in_channels}, {self.out_channels}, order={self.order}, sigma={sig}"
        if self.gamma != 1.0:
            out += f", gamma={self.gamma:g}"
        if self.kernel != "sampled":
            out += f", kernel={self.kernel!r}"
        if self.padding_mode != "zeros":
            out += f", padding_mode={self.padding_mode!r}"
        return out + f", bias={self.bias is not None}"
