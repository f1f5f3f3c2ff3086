"""Support code for the book's chapters: the training loop, sample data, plots and glue.

Nothing here is needed to use the blurs in a model; ``import sigma`` does not import this
subpackage, and importing it does not import matplotlib (only drawing a figure does).

* :mod:`sigma.book.train`: :func:`fit`, :func:`sweep` and friends, the loop every
  experiment shares.
* :mod:`sigma.book.digits`: the digits-at-every-size protocol (data at controlled sizes,
  small CNNs, their training and accuracy), shared by two chapters.
* :mod:`sigma.book.data`: sample images, σ maps, synthetic tasks and the committed
  benchmark results, all shipped inside the package (nothing is downloaded).
* :mod:`sigma.book.plot`: the book's figures, in one style.
* :mod:`sigma.book.speed`: the benchmark's verdicts (``auto`` regret table, speed targets),
  shared by ``benchmarks/bench_blur.py`` and the performance chapter.
* :func:`glue`: hand a computed value to the page's prose (``{glue:text}`` role).
"""

from . import data, digits, plot, speed
from .glue import glue
from .train import (
    OPTIMIZERS,
    FitResult,
    SweepResult,
    fit,
    half_mse,
    make_optimizer,
    steps_to_tolerance,
    sweep,
)

__all__ = [
    "data",
    "digits",
    "plot",
    "speed",
    "glue",
    "OPTIMIZERS",
    "FitResult",
    "SweepResult",
    "fit",
    "half_mse",
    "make_optimizer",
    "steps_to_tolerance",
    "sweep",
]
