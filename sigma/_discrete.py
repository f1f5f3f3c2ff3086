r"""Lindeberg's discrete Gaussian :math:`T(n; t) = e^{-t} I_n(t)`, :math:`t = \sigma^2`, with its exact t-derivative.

torch has only :math:`I_0` and :math:`I_1` (``torch.special.i0e``/``i1e``), so the
higher orders come from the *ratios* :math:`\rho_n = I_n(t) / I_{n-1}(t)` by Miller's
backward recurrence :math:`I_{n-1} = (2n/t)\,I_n + I_{n+1}`, run from an index ``N``
well beyond the support down to 1 and then scaled by :math:`T(0) = e^{-t} I_0(t)`
(``i0e``, exact in float32 and float64):

.. math:: T(n; t) = \operatorname{i0e}(t) \prod_{k=1}^{n} \rho_k .

Why this route and not the transform (the DFT of :math:`T` is
:math:`e^{t(\cos\omega - 1)}`): a transform delivers every tap with the same
*absolute* error, about ``eps`` times the peak, so a small tap (:math:`T(1) \approx
t/2 = 5\cdot10^{-7}` at σ = 1e-3) would keep only a few correct digits in float32;
the ratios keep full *relative* precision in every tap at every σ, and the kernel is
renormalized anyway. The recurrence is written as products of the non-negative 2x2
matrices :math:`A_n = \begin{pmatrix} 2n & t \\ t & 0 \end{pmatrix}` (scaled by
``t``, so ``t → 0`` is harmless), and the suffix products :math:`A_n A_{n+1} \cdots A_N`
are formed by a parallel prefix scan in :math:`\log_2 N` batched products,
each rescaled by its largest entry (only ratios matter). Products of non-negative
matrices involve no cancellation, so the scan is as accurate as the sequential
recurrence; it is computed in float64 (float32 on MPS) and cast back.

The truncation error of starting at ``N`` (with :math:`I_{N+1} = 0`) decays like
:math:`\prod_{k=n}^{N} \rho_k^2`, about :math:`e^{-(N^2 - n^2)/t}` for large ``t`` and
super-exponentially for small ``t``; :func:`_depth` takes ``N`` so that this is far
below float64 rounding.

The gradient is exact and analytic: :math:`\partial_t T(n) = \tfrac12 (T(n-1) + T(n+1))
- T(n)` (the discrete heat equation), evaluated from the forward's own outputs, so
second derivatives are exact too (the forward returns taps beyond the ones used).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._autograd import apply, eager_twin
from ._checks import values_checkable

#: Taps computed beyond the outermost one a kernel uses: each derivative in t reads
#: one tap further out, and the kernel's t-derivatives up to the second are exact.
EXTRA = 2


def _depth(n_max: int, t_top: float) -> int:
    """Start index ``N`` of the backward recurrence for taps ``0..n_max`` and ``t <= t_top``."""
    return n_max + 24 + math.ceil(math.sqrt(n_max * n_max + 80.0 * t_top) - n_max)


def _ratios(t: Tensor, n: int, depth: int) -> Tensor:
    r""":math:`\rho_k = I_k(t)/I_{k-1}(t)` for ``k = 1..n``, shape ``t.shape + (n,)``."""
    k = torch.arange(1, depth + 1, dtype=t.dtype, device=t.device)
    tt = t.unsqueeze(-1).expand(*t.shape, depth)
    a = torch.stack(
        [torch.stack([2 * k.expand_as(tt), tt], -1), torch.stack([tt, torch.zeros_like(tt)], -1)], -2
    )
    # suffix products P_k = A_k A_{k+1} ... A_N by a Hillis-Steele scan, rescaled
    d = 1
    while d < depth:
        head = a[..., : depth - d, :, :] @ a[..., d:, :, :]
        head = head / head.amax(dim=(-2, -1), keepdim=True)
        a = torch.cat([head, a[..., depth - d :, :, :]], -3)
        d *= 2
    # (I_{k-1}, I_k) is proportional to the first column of P_k
    return a[..., :n, 1, 0] / a[..., :n, 0, 0]


def _taps(t: Tensor, n_max: int, t_top: float) -> Tensor:
    """``T(n; t)`` for ``n = 0..n_max`` (no autograd), in ``t``'s dtype."""
    work = t.detach()
    if work.device.type != "mps":
        work = work.double()
    rho = _ratios(work, n_max, _depth(n_max, t_top))
    t0 = torch.special.i0e(work).unsqueeze(-1)
    out = torch.cat([t0, t0 * torch.cumprod(rho, -1)], -1)
    return out.to(t.dtype)


class _DiscreteGauss(torch.autograd.Function):
    """``T(n; t)`` for ``n = 0..n_max + 1`` with the heat-equation derivative in ``t``.

    The last tap only serves as the right neighbour of the one before it; its own
    derivative (which would need ``T(n_max + 2)``) takes itself as that neighbour, so callers
    use taps up to ``n_max`` only (see :data:`EXTRA`). New-style (``setup_context``, a
    generated vmap rule) for ``torch.func``; the eager path uses its old-style twin.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(t: Tensor, n_max: int, t_top: float) -> Tensor:
        return _taps(t, n_max + 1, t_top)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g: Tensor):
        (out,) = ctx.saved_tensors
        return (g * _dt(out)).sum(-1), None, None


class _DiscreteGaussJvp(_DiscreteGauss):
    """:class:`_DiscreteGauss` with a forward-mode rule, for forward-mode AD (its forward
    computes without autograd, so plain operations would carry no tangent). A class apart:
    dynamo traces no Function that has a ``jvp``."""

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def jvp(ctx, t_dot: Tensor, *_):
        (out,) = ctx.saved_tensors
        return _dt(out) * t_dot.unsqueeze(-1)


def _dt(out: Tensor) -> Tensor:
    """The heat equation ``dT(n)/dt = (T(n - 1) + T(n + 1)) / 2 - T(n)`` on taps ``out`` (..., n_max + 2)."""
    left = torch.cat([out[..., 1:2], out[..., :-1]], -1)  # T(n - 1), T(-1) = T(1)
    right = torch.cat([out[..., 1:], out[..., -1:]], -1)  # T(n + 1)
    return 0.5 * (left + right) - out


_DiscreteGauss.eager = eager_twin(_DiscreteGauss)
_DiscreteGauss.forward_mode = _DiscreteGaussJvp


def discrete_taps(s: Tensor, n_max: int, sigma_top: float | None = None) -> Tensor:
    r"""Discrete Gaussian :math:`e^{-t} I_n(t)`, :math:`t = \sigma^2`, at ``n = -n_max..n_max``.

    Differentiable in ``s`` (any shape; the result has shape ``s.shape + (2 n_max + 1,)``)
    to second order exactly. ``sigma_top`` bounds σ to size the recurrence; None reads the
    largest σ once (or, where values cannot be read, assumes σ <= ``n_max``).
    """
    if sigma_top is None:
        sigma_top = float(s.detach().max()) if values_checkable(s) and s.numel() else float(n_max)
    t = s * s
    half = apply(_DiscreteGauss, t, n_max + EXTRA, sigma_top * sigma_top)[..., : n_max + 1]
    return torch.cat([half.flip(-1), half[..., 1:]], -1)
