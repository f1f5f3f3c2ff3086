"""``method='auto'``: one pure rule from shapes to an engine, and the measured plan behind it.

The rule never times anything at run time: it is a function of the input's shape, the
kernel sizes, the boundary mode, the device and the grad case (whether a backward pass may
follow). Its constants form a :class:`Plan`. The built-in plan (:data:`BUILTIN`) was measured
on CPU with ``benchmarks/bench_blur.py`` (the book's performance chapter shows the races it
comes from); :func:`sigma.tune` measures the same constants on the machine at hand and stores
them in the user's cache directory, where :func:`plan` finds them on the next import, keyed
by CPU model and PyTorch version (FFTW's "wisdom", in small). Where no tuned plan exists for this
machine, the built-in one applies.

The rule, for a kernel of ``k`` taps (after folding onto the signal) along an axis of ``L``
samples:

* ``L <= DENSE_MAX_LENGTH``: one whole-axis matrix (``'dense'``), a few operations in all,
  where shifted sums' per-tap operations and an FFT's transforms cost more than the arithmetic;
* up to ``dense_auto_max_length`` samples, on CPU: whole-axis matrices where a cost model says
  they beat the shifted sums (``op_us`` per operation plus ``pass_ns`` per element and tap,
  against ``dense_fixed_us`` plus the multiply-adds at ``matmul_gflops``, each times its
  measured backward factor when a backward pass will follow);
* the compiled fused loops (``'fused'``) up to ``fused_max_taps`` taps, where a tuned plan
  found them fastest (the built-in plan never picks them: their first call compiles);
* shifted sums (``'direct'``) up to ``direct_max_taps_1d`` taps (``..._grad`` with a backward
  pass);
* banded products (``'matmul'``) while a block of outputs reads at most ``matmul_max_window``
  inputs (``..._grad``); the FFT (``'fft'``) beyond;
* dense 2D kernels (full covariance): 2D shifted sums up to ``direct_max_taps_2d`` taps in
  all (``..._grad``), the 2D FFT beyond.

Every function here is pure (no tensors): the dispatcher (:mod:`sigma._conv`) and the book's
benchmark helpers (:mod:`sigma.book.speed`) call the same ones, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ._band import BLOCK
from ._dense import DENSE_MAX_LENGTH
from ._padding import BoundaryMode, boundary, folded_radius

#: Every engine ``'auto'`` can choose. ``'dense'`` is the whole-axis matrix (what
#: ``method='matmul'`` runs on axes of at most ``DENSE_MAX_LENGTH`` samples).
ENGINES = ("direct", "matmul", "dense", "fft", "fused")

#: Where :func:`sigma.tune` stores plans: this environment variable if set, else
#: ``$XDG_CACHE_HOME/sigma``, else ``~/.cache/sigma``.
CACHE_ENV = "SIGMA_CACHE_DIR"


@dataclass(frozen=True)
class Plan:
    """The constants of ``method='auto'`` (see the module's docstring for the rule they feed).

    Attributes:
        op_us, pass_ns, dense_fixed_us, matmul_gflops, grad_factor_direct, grad_factor_dense,
            dense_auto_max_length: the cost model between shifted sums and whole-axis matrices.
        direct_max_taps_1d, direct_max_taps_1d_grad: longest kernel (taps) for shifted sums.
        matmul_max_window, matmul_max_window_grad: widest block window for banded products.
        direct_max_taps_2d, direct_max_taps_2d_grad: largest dense 2D kernel (taps in all)
            for 2D shifted sums.
        fused_max_taps: longest kernel for the compiled fused loops; 0: never.
        fused_inline_max_taps: largest 2D kernel (``ky * kx`` taps) whose fused forward, when no
            backward needs the row pass, recomputes each output's row sums instead of storing the
            row pass (the same result bit for bit; which is faster depends on the CPU). Built in:
            9, i.e. 3 x 3 kernels only, where recomputing won on every CPU measured; at 5 x 5 it
            won on one and lost by up to 23 % on two (:func:`sigma._fused2d._sep_loop`).
        source: where the plan comes from (``'built-in'``, or the machine it was tuned on).
    """

    op_us: float = 20.0
    pass_ns: float = 0.064
    dense_fixed_us: float = 120.0
    matmul_gflops: float = 120.0
    grad_factor_direct: float = 4.3
    grad_factor_dense: float = 3.4
    dense_auto_max_length: int = 128
    direct_max_taps_1d: int = 9
    direct_max_taps_1d_grad: int = 9
    matmul_max_window: int = 256
    matmul_max_window_grad: int = 256
    direct_max_taps_2d: int = 81
    direct_max_taps_2d_grad: int = 25
    fused_max_taps: int = 0
    fused_inline_max_taps: int = 9
    source: str = "built-in"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        """A plan from a stored dictionary; unknown keys are ignored, missing ones built-in."""
        names = {f.name: f.type for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


#: The plan measured on CPU with ``benchmarks/bench_blur.py`` (AMD EPYC, 2 threads).
BUILTIN = Plan()


# ----------------------------------------------------------------------------- the stored plan


def machine_key() -> str:
    """What a tuned plan is valid for: the CPU model and PyTorch's version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} | torch {torch.__version__}"


def cache_dir() -> Path:
    """The directory tuned plans are stored in (see :data:`CACHE_ENV`)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sigma"


def plan_path() -> Path:
    return cache_dir() / "plans.json"


def _load_all() -> dict:
    try:
        with open(plan_path()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _read() -> Plan:
    d = _load_all().get(machine_key())
    try:
        return Plan.from_dict(d) if isinstance(d, dict) else BUILTIN
    except TypeError:  # a hand-edited entry of the wrong form
        return BUILTIN


_override: Plan | None = None
_stored: Plan = BUILTIN


def reload() -> Plan:
    """Read this machine's stored plan again (the cache directory may have changed)."""
    global _stored
    _stored = _read()
    return _stored


def plan() -> Plan:
    """The plan ``'auto'`` follows: one set with :func:`use_plan`, else this machine's tuned
    plan if :func:`sigma.tune` stored one (read when ``sigma`` is imported, or by :func:`reload`),
    else :data:`BUILTIN`. Reads no file: cheap, and traceable by ``torch.compile``."""
    return _stored if _override is None else _override


def use_plan(p: Plan | None) -> None:
    """Make ``'auto'`` follow ``p`` in this process (None: back to the stored or built-in plan)."""
    global _override
    if p is not None and not isinstance(p, Plan):
        raise TypeError(f"plan must be a sigma Plan or None, got {type(p).__name__}")
    _override = p


def store(p: Plan) -> Path:
    """Store ``p`` as this machine's plan (other machines' plans in the file are kept)."""
    path = plan_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _load_all()
    data[machine_key()] = dataclasses.asdict(p)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    reload()
    return path


reload()


# ----------------------------------------------------------------------------- the rule


def dense_pays(
    numel: int, lengths: tuple[int, ...], taps: tuple[int, ...], grad: bool, device, p: Plan
) -> bool:
    """Whether whole-axis matrices beat shifted sums for a blur of ``numel`` elements along axes
    of ``lengths`` with kernels of ``taps`` taps (CPU only beyond ``DENSE_MAX_LENGTH``)."""
    if max(lengths) <= DENSE_MAX_LENGTH:
        return True
    if torch.device(device).type != "cpu" or max(lengths) > p.dense_auto_max_length:
        return False
    direct = sum(taps) * (p.op_us + numel * p.pass_ns * 1e-3)
    dense = p.dense_fixed_us + 2 * numel * sum(lengths) / (p.matmul_gflops * 1e3)
    if grad:
        direct, dense = direct * p.grad_factor_direct, dense * p.grad_factor_dense
    return dense < direct


def spatial_engine(h: int, length: int, mode: BoundaryMode, grad: bool, p: Plan, fused: bool = False) -> str:
    """The engine along one axis of ``length`` samples for half-size ``h`` where whole-axis
    matrices do not pay; ``fused``: whether the compiled fused loops may run here."""
    if length <= DENSE_MAX_LENGTH:
        return "dense"
    h = folded_radius(h, length, mode)
    taps = 2 * h + 1
    if fused and taps <= p.fused_max_taps:
        return "fused"
    if taps <= (p.direct_max_taps_1d_grad if grad else p.direct_max_taps_1d):
        return "direct"
    padded = length if mode.index is None else length + 2 * h
    window = min(padded, max(BLOCK, 2 * h) + 2 * h)
    if window <= (p.matmul_max_window_grad if grad else p.matmul_max_window):
        return "matmul"
    return "fft"


def axis_engine(
    h: int, length: int, numel: int, mode, grad: bool, device, fused: bool = False, p=None
) -> str:
    """The engine ``'auto'`` runs for a kernel of half-size ``h`` along one axis of ``length``
    samples of a tensor of ``numel`` elements."""
    p, mode = p or plan(), boundary(mode)
    taps = 2 * folded_radius(h, length, mode) + 1
    if dense_pays(numel, (length,), (taps,), grad, device, p):
        return "dense"
    return spatial_engine(h, length, mode, grad, p, fused)


def separable_engines(
    hy: int,
    hx: int,
    shape: tuple[int, int],
    numel: int,
    mode,
    grad: bool,
    device,
    fused: bool = False,
    p=None,
) -> tuple[str, str]:
    """The engines ``'auto'`` runs down the rows and along the columns of an ``(H, W)`` image;
    ``('dense', 'dense')``: both whole-axis matrices in one operation; ``('fft', 'fft')``: one
    2D FFT (chosen whenever either axis wants an FFT)."""
    p, mode = p or plan(), boundary(mode)
    H, W = shape
    taps = (2 * folded_radius(hy, H, mode) + 1, 2 * folded_radius(hx, W, mode) + 1)
    if dense_pays(numel, (H, W), taps, grad, device, p):
        return "dense", "dense"
    ey = spatial_engine(hy, H, mode, grad, p, fused)
    ex = spatial_engine(hx, W, mode, grad, p, fused)
    if "fft" in (ey, ex):
        return "fft", "fft"
    return ey, ex


def dense_2d_engine(hy: int, hx: int, shape: tuple[int, int], grad: bool, p=None) -> str:
    """The engine ``'auto'`` runs for a dense ``(2 hy + 1, 2 hx + 1)`` kernel on an ``(H, W)`` image."""
    p = p or plan()
    taps = (2 * min(hy, shape[0]) + 1) * (2 * min(hx, shape[1]) + 1)
    return "direct" if taps <= (p.direct_max_taps_2d_grad if grad else p.direct_max_taps_2d) else "fft"
