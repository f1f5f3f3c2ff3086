"""A small, explicit training loop for recovering scales by gradient descent.

The book's experiments all have the same shape: a prediction that depends on a few
parameters (``log σ``, log-Cholesky vectors, a network), a target, a loss, and an
optimizer. :func:`fit` runs that loop, records the loss and any tracked quantities at
every step, keeps snapshots of the prediction at chosen steps, and reports a diverged
run (non-finite loss or parameters, or a scale that became invalid) instead of
raising, so learning-rate sweeps can map where optimization fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._checks import ScaleError

__all__ = [
    "half_mse",
    "make_optimizer",
    "fit",
    "FitResult",
    "OPTIMIZERS",
    "sweep",
    "SweepResult",
    "steps_to_tolerance",
]

OPTIMIZERS = frozenset({"sgd", "momentum", "adam"})


def half_mse(pred: Tensor, target: Tensor) -> Tensor:
    r"""The loss of the original experiments, :math:`L = \tfrac12\,\mathrm{mean}((\hat y - y)^2)`.

    Example:
        >>> half_mse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
        tensor(2.5000)
    """
    return 0.5 * torch.mean((pred - target) ** 2)


def make_optimizer(
    name: str, params: Iterable[Tensor], lr: float, *, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """Build ``'sgd'`` (plain), ``'momentum'`` (SGD with ``momentum``) or ``'adam'``.

    Raises:
        ValueError: if ``name`` is unknown or ``lr`` is not positive.

    Example:
        >>> p = torch.zeros(1, requires_grad=True)
        >>> type(make_optimizer('adam', [p], 0.1)).__name__
        'Adam'
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got optimizer={name!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got lr={lr!r}")
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    return torch.optim.Adam(params, lr=lr)


@dataclass
class FitResult:
    """What :func:`fit` records.

    Attributes:
        losses: loss at every evaluated step (before that step's update), length
            ``steps + 1`` for a finished run (the last entry is the final loss).
        tracked: for each name given in ``track``, a tensor of shape ``(len(losses), ...)``
            with the tracked value at the same steps.
        snapshots: prediction (detached) at each requested step.
        diverged: True if the run stopped early.
        reason: why it stopped early ("" if it did not).
    """

    losses: list[float] = field(default_factory=list)
    tracked: dict[str, Tensor] = field(default_factory=dict)
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    diverged: bool = False
    reason: str = ""

    @property
    def final_loss(self) -> float:
        """The last recorded loss (``nan`` if nothing was recorded)."""
        return self.losses[-1] if self.losses else math.nan

    @property
    def steps_run(self) -> int:
        """Number of optimizer updates applied."""
        return max(0, len(self.losses) - 1)

    def final(self, name: str) -> Tensor:
        """Last recorded value of a tracked quantity."""
        return self.tracked[name][-1]


def _format_value(v: Tensor) -> str:
    flat = v.detach().flatten().tolist()
    return " ".join(f"{x:.6f}" for x in flat)


def _loss_and_grad(opt, predict, loss_fn, target) -> Tensor:
    """Closure for optimizers that re-evaluate the loss within one step (L-BFGS)."""
    opt.zero_grad()
    loss = loss_fn(predict(), target)
    loss.backward()
    return loss


def fit(
    predict: Callable[[], Tensor],
    params: Iterable[Tensor],
    target: Tensor,
    *,
    steps: int,
    lr: float,
    optimizer: str | torch.optim.Optimizer = "sgd",
    momentum: float = 0.9,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = half_mse,
    track: Mapping[str, Callable[[], Tensor]] | None = None,
    snapshot_steps: Iterable[int] = (),
    log_every: int | None = None,
    max_loss: float = 1e12,
) -> FitResult:
    """Minimize ``loss_fn(predict(), target)`` over ``params`` for ``steps`` updates.

    Each step evaluates the prediction and loss, records them, then applies one
    optimizer update. After the last update the loss is evaluated once more, so a
    finished run has ``steps + 1`` recorded losses. Step ``i`` in snapshots and logs
    means "after ``i`` updates".

    Args:
        predict: zero-argument callable returning the prediction (it closes over the
            parameters and inputs).
        params: the tensors to optimize (leaf tensors with ``requires_grad=True``).
        target: the tensor the prediction should match.
        steps: number of optimizer updates.
        lr: learning rate.
        optimizer: ``'sgd'``, ``'momentum'``, ``'adam'`` (see :func:`make_optimizer`)
            or a ready :class:`torch.optim.Optimizer`. A :class:`torch.optim.LBFGS` gets
            the closure it needs, and one of its steps may evaluate the loss several
            times (up to its ``max_iter``). Default: ``'sgd'``.
        momentum: momentum for ``'momentum'``. Default: 0.9.
        loss_fn: ``loss_fn(pred, target) -> scalar``. Default: :func:`half_mse`.
        track: names mapped to zero-argument callables (e.g. ``{'sigma': lambda:
            log_sigma.exp()}``) recorded at every evaluated step.
        snapshot_steps: steps at which to keep a copy of the prediction.
        log_every: print ``step``, loss and tracked values every this many steps and
            at the end. Default: None (silent).
        max_loss: a loss above this counts as divergence. Default: 1e12.

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: if ``steps`` is negative or the optimizer name/lr is invalid.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> x = torch.randn(1, 1, 64, dtype=torch.float64)
        >>> y = sigma.blur1d(x, 2.0)
        >>> s = torch.zeros((), dtype=torch.float64, requires_grad=True)
        >>> r = fit(lambda: sigma.blur1d(x, s.exp()), [s], y, steps=100, lr=1.0,
        ...         track={'sigma': lambda: s.exp()})
        >>> round(float(r.final('sigma')), 4), r.steps_run, r.diverged
        (2.0, 100, False)
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got steps={steps!r}")
    params = list(params)
    opt = (
        optimizer
        if isinstance(optimizer, torch.optim.Optimizer)
        else make_optimizer(optimizer, params, lr, momentum=momentum)
    )
    track = dict(track or {})
    snaps = set(snapshot_steps)
    result = FitResult()
    records: dict[str, list[Tensor]] = {name: [] for name in track}

    def evaluate(step: int) -> Tensor | None:
        try:
            pred = predict()
        except ScaleError as e:
            result.diverged, result.reason = True, f"step {step}: {e}"
            return None
        loss = loss_fn(pred, target)
        value = float(loss.detach())
        if not math.isfinite(value) or value > max_loss:
            result.diverged, result.reason = True, f"step {step}: loss {value:.3g}"
            return None
        result.losses.append(value)
        with torch.no_grad():
            for name, fn in track.items():
                records[name].append(fn().detach().clone())
        if step in snaps:
            result.snapshots[step] = pred.detach().clone()
        if log_every and (step % log_every == 0 or step == steps):
            extra = "".join(f"  {name} {_format_value(rec[-1])}" for name, rec in records.items())
            print(f"step {step:4d}  loss {value:.6e}{extra}")
        return loss

    for step in range(steps + 1):
        loss = evaluate(step)
        if loss is None or step == steps:
            break
        opt.zero_grad()
        loss.backward()
        if isinstance(opt, torch.optim.LBFGS):  # its line search re-evaluates the loss
            opt.step(lambda: _loss_and_grad(opt, predict, loss_fn, target))
        else:
            opt.step()
        if not all(bool(torch.isfinite(p.detach()).all()) for p in params):
            result.diverged, result.reason = True, f"step {step + 1}: non-finite parameters"
            break
    result.tracked = {name: torch.stack(rec) if rec else torch.empty(0) for name, rec in records.items()}
    return result


@dataclass
class SweepResult:
    """What :func:`sweep` records: one :class:`FitResult` per (optimizer, learning rate).

    Attributes:
        optimizers: the optimizer names, in the order of the table rows.
        lrs: the learning rates, in the order of the table columns.
        runs: ``(optimizer, lr)`` mapped to that run's :class:`FitResult`.
    """

    optimizers: tuple[str, ...]
    lrs: tuple[float, ...]
    runs: dict[tuple[str, float], FitResult]

    @property
    def diverged(self) -> Tensor:
        """Which runs :func:`fit` reported as diverged, bool of shape ``(len(optimizers), len(lrs))``."""
        return torch.tensor([[self.runs[(o, lr)].diverged for lr in self.lrs] for o in self.optimizers])

    def relative_error(self, name: str, truth: float | Tensor) -> Tensor:
        r"""Final relative error :math:`\max |v - v^*| / |v^*|` of a tracked quantity, per run.

        Args:
            name: a name given in ``track``; its final value ``v`` is compared with ``truth``.
            truth: the true value ``v*``, a number or a tensor broadcastable to ``v``,
                nonzero.

        Returns:
            float64 tensor of shape ``(len(optimizers), len(lrs))``; ``nan`` for
            diverged runs (their final value is not a result).

        Raises:
            KeyError: if ``name`` was not tracked.
        """
        t = torch.as_tensor(truth, dtype=torch.float64)
        out = torch.full((len(self.optimizers), len(self.lrs)), math.nan, dtype=torch.float64)
        for i, o in enumerate(self.optimizers):
            for j, lr in enumerate(self.lrs):
                r = self.runs[(o, lr)]
                if not r.diverged:
                    v = r.final(name).detach().to(torch.float64)
                    out[i, j] = ((v - t).abs() / t.abs()).max()
        return out


def sweep(
    setup: Callable[[], tuple[Callable[[], Tensor], list[Tensor], Mapping[str, Callable[[], Tensor]]]],
    target: Tensor,
    *,
    lrs: Iterable[float],
    optimizers: Iterable[str] = ("sgd", "momentum", "adam"),
    steps: int,
    **fit_kwargs,
) -> SweepResult:
    """Run :func:`fit` from a fresh start for every optimizer and learning rate.

    ``setup()`` is called once per run and must build new parameters, so runs do not
    share state; diverged runs are recorded (see :attr:`FitResult.diverged`), never
    raised.

    Args:
        setup: zero-argument callable returning ``(predict, params, track)`` as taken
            by :func:`fit` (``track`` may be empty).
        target: the tensor the prediction should match.
        lrs: learning rates, each positive.
        optimizers: names accepted by :func:`make_optimizer`. Default:
            ``('sgd', 'momentum', 'adam')``.
        steps: optimizer updates per run.
        **fit_kwargs: passed on to :func:`fit` (``momentum``, ``loss_fn``, ``max_loss``...).

    Returns:
        A :class:`SweepResult` with ``len(optimizers) * len(lrs)`` runs.

    Raises:
        ValueError: if ``lrs`` or ``optimizers`` is empty, or as :func:`fit` for an
            invalid optimizer name, learning rate or ``steps``.

    Example:
        >>> x = torch.randn(1, 1, 40, dtype=torch.float64)
        >>> y = sigma.blur1d(x, 2.0)
        >>> def setup():
        ...     s = torch.zeros((), dtype=torch.float64, requires_grad=True)
        ...     return (lambda: sigma.blur1d(x, s.exp())), [s], {'sigma': lambda: s.exp()}
        >>> res = sweep(setup, y, lrs=[0.1, 1.0], optimizers=['sgd'], steps=50)
        >>> res.relative_error('sigma', 2.0).shape
        torch.Size([1, 2])
    """
    lrs = tuple(float(lr) for lr in lrs)
    optimizers = tuple(optimizers)
    if not lrs or not optimizers:
        raise ValueError(f"lrs and optimizers must not be empty, got lrs={lrs}, optimizers={optimizers}")
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got optimizer={o!r}")
    runs: dict[tuple[str, float], FitResult] = {}
    for o in optimizers:
        for lr in lrs:
            predict, params, track = setup()
            runs[(o, lr)] = fit(
                predict, params, target, steps=steps, lr=lr, optimizer=o, track=track, **fit_kwargs
            )
    return SweepResult(optimizers, lrs, runs)


def steps_to_tolerance(values: Tensor, truth: float | Tensor, tol: float) -> int | None:
    r"""First step from which the relative error :math:`|v - v^*| / |v^*|` stays at most ``tol``.

    Args:
        values: a trajectory, shape ``(T,)`` or ``(T, ...)`` (e.g. ``FitResult.tracked['sigma']``);
            for trailing dimensions the largest error over them counts.
        truth: the true value ``v*``, nonzero, broadcastable to ``values[0]``.
        tol: the tolerance, positive.

    Returns:
        The smallest ``n`` such that every step ``>= n`` is within ``tol``, or None if
        the last step is not.

    Raises:
        ValueError: if ``values`` is empty or ``tol`` is not positive.

    Example:
        >>> steps_to_tolerance(torch.tensor([1.0, 2.5, 1.9, 2.01, 2.0]), 2.0, 0.01)
        3
    """
    if values.numel() == 0:
        raise ValueError("values must not be empty")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive finite number, got tol={tol!r}")
    v = values.detach().to(torch.float64)
    t = torch.as_tensor(truth, dtype=torch.float64)
    err = ((v - t).abs() / t.abs()).reshape(v.shape[0], -1).amax(1)
    bad = (~(err <= tol)).nonzero()
    if bad.numel() == 0:
        return 0
    last_bad = int(bad[-1])
    return None if last_bad == v.shape[0] - 1 else last_bad + 1
