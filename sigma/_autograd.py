"""The ground floor of the engines: how their autograd Functions are called.

Every engine (:mod:`sigma._shift`, :mod:`sigma._band`, :mod:`sigma._fft`, and the
Functions of :mod:`sigma.kernels`, :mod:`sigma._discrete` and :mod:`sigma.local`) is an
autograd Function written in the new style (``forward`` without ``ctx``, ``setup_context``,
a vmap rule), which ``torch.func`` and ``torch.compile`` need. This module decides, per
call, whether that Function runs as itself, as its cheaper eager twin, or as its forward
alone (while a model is exported, or when autograd records nothing), or, under forward-mode
AD, as plain operations unless it has a twin with a ``jvp`` rule (``cls.forward_mode``). It
imports nothing from the package but :mod:`sigma._export`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import forward_ad

from . import _export


def eager_twin(cls: type) -> type:
    """An old-style copy of the new-style autograd Function ``cls``, for the eager path.

    ``torch.func`` (vmap, grad) needs Functions whose ``forward`` takes no ``ctx``, with
    ``setup_context`` and a vmap rule; but their ``apply`` binds its arguments with
    :func:`inspect.signature` on every call, tens of microseconds per correlation. The twin
    runs the same ``forward``, ``setup_context`` and ``backward`` without that, and
    :func:`apply` picks it unless a transform or ``torch.compile`` is active.
    """

    def forward(ctx, *args):
        out = cls.forward(*args)
        cls.setup_context(ctx, args, out)
        return out

    return type(
        cls.__name__ + "Eager",
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(cls.backward), "__doc__": cls.__doc__},
    )


def apply(cls: type, *args):
    """``cls.apply(*args)``, through its eager twin outside ``torch.func`` and ``torch.compile``;
    while a model is exported, ``cls``'s forward as plain operations (no opaque autograd node
    in the graph; autograd differentiates them if asked). When autograd records nothing (no
    input requires grad, or grad mode is off, and no forward-mode AD level is open), ``cls``'s
    forward alone: the same result without a node's overhead (tens of microseconds a call).
    While a forward-mode AD level is open (``torch.func.jvp``, ``jacfwd``, ``hessian``,
    ``torch.autograd.forward_ad``), ``cls.forward_mode`` (a twin with a ``jvp`` rule) where
    ``cls`` has one, else its forward as plain operations (:func:`traced` is then true, so no
    forward writes into a preallocated output), which forward and reverse mode both
    differentiate."""
    if _export.exporting():
        return cls.forward(*args)
    if forward_ad._current_level >= 0:  # forward-mode AD (torch.func.jvp, jacfwd, forward_ad)
        rule = getattr(cls, "forward_mode", None)  # a twin with a jvp rule (dynamo traces none)
        return rule.apply(*args) if rule is not None else cls.forward(*args)
    tensors = [a for a in args if isinstance(a, Tensor)]
    if traced(*tensors):
        return cls.apply(*args)
    if not will_backward(*tensors) and forward_ad._current_level < 0:
        return cls.forward(*args)  # nothing to record: the node would only cost its overhead
    return cls.eager.apply(*args)


def fake_mode_active() -> bool:
    """Whether a ``FakeTensorMode`` is active (shape propagation, a tracer): tensors made now are
    fake, so nothing made now may be cached for later calls."""
    return torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is not None


def traced(*tensors: Tensor) -> bool:
    """Whether ``torch.compile`` is tracing, a ``torch.func`` transform (vmap, grad) or a
    forward-mode AD level is active, or a ``FakeTensorMode`` (:func:`fake_mode_active`).

    The banded products and the analytic backward passes write into preallocated
    outputs (``out=`` and in-place slices), which vmap cannot batch and dynamo cannot
    trace; then ``'matmul'`` multiplies unfolded windows instead
    (:func:`sigma._band.band_correlate_unfolded`, the same result to rounding) and the
    backward passes use their plain differentiable forms.
    """
    if torch.compiler.is_compiling() or torch._C._functorch.peek_interpreter_stack() is not None:
        return True
    if forward_ad._current_level >= 0:  # forward-mode AD: plain operations, which it differentiates
        return True
    # torch.jit.trace records plain operations only; under a fake mode nothing may be kept
    if _export.exporting() or fake_mode_active():
        return True
    is_batched = torch._C._functorch.is_batchedtensor
    return any(is_batched(t) for t in tensors)


def will_backward(*tensors: Tensor) -> bool:
    """The grad case ``'auto'`` chooses for: whether autograd records a call on ``tensors``
    (so a backward pass through it may follow)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
