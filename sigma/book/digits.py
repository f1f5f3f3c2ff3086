r"""The digits-at-every-size experiment: its data, its small CNNs, their training and accuracy.

Two chapters share this protocol (``scale_generalization`` and ``scale_covariant``), so it
lives here once:

* :func:`digit_sizes`: the bundled handwritten digits split once into training and test
  digits, the training digits drawn at one size, the test digits at seven sizes from half to
  twice it, and a scale-augmented training set of the same digits at eight sizes.
* :func:`small_cnn`: three 3 x 3 convolution layers (free-form, ``sigma.GaussConv2d`` or with a
  ``sigma.DynamicBlur2d`` front end), max pooling, global average pooling, a linear read-out.
* :func:`train_classifier`: Adam with a one-cycle schedule on shuffled minibatches, seeded.
* :func:`accuracy`: the fraction of correct predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_positive_real
from ..modules import DynamicBlur2d, GaussConv2d
from .data import digits, digits_at_scale

__all__ = ["DigitSizes", "digit_sizes", "CNN_KINDS", "small_cnn", "train_classifier", "accuracy"]

#: The layer kinds :func:`small_cnn` builds.
CNN_KINDS = ("free-form", "GaussConv2d", "DynamicBlur2d")


@dataclass(frozen=True)
class DigitSizes:
    """Training and test digits at controlled sizes (see :func:`digit_sizes`).

    Attributes:
        side: the training size in pixels.
        factors: the test sizes as multiples of ``side``, smallest first.
        sides: the test sizes in pixels, ``side * factor``.
        x_train, y_train: ``(n_train, 1, canvas, canvas)`` digits at ``side``, and their labels.
        x_test: ``{factor: (n_test, 1, canvas, canvas)}``, the same test digits at every size.
        y_test: ``(n_test,)`` labels.
        x_aug, y_aug: the training digits split into eight groups, each drawn at one of eight
            sizes spaced evenly in log-size from ``side / 2`` to ``2 * side`` (scale
            augmentation: as many images as ``x_train``).
        aug_sides: those eight sizes in pixels.
        train_idx, test_idx: the digits' indices in :func:`sigma.book.data.digits` (disjoint).
    """

    side: float
    factors: list[float]
    sides: list[float]
    x_train: Tensor
    y_train: Tensor
    x_test: dict[float, Tensor]
    y_test: Tensor
    x_aug: Tensor
    y_aug: Tensor
    aug_sides: list[float]
    train_idx: Tensor
    test_idx: Tensor


def digit_sizes(
    side: float = 10.0,
    *,
    canvas: int = 24,
    n_train: int = 1200,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> DigitSizes:
    r"""The digits split once (no test digit is ever a training digit), drawn at controlled sizes.

    The 1,797 digits of :func:`sigma.book.data.digits` are shuffled with ``seed``; the first
    ``n_train`` train, the rest test. Training digits are drawn ``side`` pixels tall on a
    ``canvas`` (:func:`sigma.book.data.digits_at_scale`); test digits at the seven sizes
    ``side * 2 ** (k / 3)``, k = -3..3 (half to twice the training size).

    Args:
        side: training size in pixels. Default: 10.
        canvas: image side in pixels. Default: 24.
        n_train: number of training digits, 8..1789. Default: 1200.
        seed: seed of the split. Default: 0.
        dtype: floating-point dtype of the images. Default: float64.

    Returns:
        A :class:`DigitSizes`.

    Raises:
        ValueError: if ``side`` is not positive and finite or ``n_train`` is out of range.

    Example:
        >>> d = digit_sizes(n_train=1200)
        >>> d.x_train.shape, len(d.x_test), d.x_test[1.0].shape
        (torch.Size([1200, 1, 24, 24]), 7, torch.Size([597, 1, 24, 24]))
    """
    side = check_positive_real(side, "side")
    n_train = check_int(n_train, "n_train", 8, 1789)
    images, labels = digits(dtype=dtype)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train_idx, test_idx = order[:n_train], order[n_train:]
    factors = [2 ** (k / 3) for k in range(-3, 4)]
    aug_sides = (side * torch.logspace(-1, 1, 8, base=2, dtype=torch.float64)).tolist()
    y_train = labels[train_idx]
    return DigitSizes(
        side=side,
        factors=factors,
        sides=[side * f for f in factors],
        x_train=digits_at_scale(images[train_idx], side, canvas=canvas),
        y_train=y_train,
        x_test={f: digits_at_scale(images[test_idx], side * f, canvas=canvas) for f in factors},
        y_test=labels[test_idx],
        x_aug=torch.cat(
            [digits_at_scale(images[train_idx[i::8]], s, canvas=canvas) for i, s in enumerate(aug_sides)]
        ),
        y_aug=torch.cat([y_train[i::8] for i in range(8)]),
        aug_sides=aug_sides,
        train_idx=train_idx,
        test_idx=test_idx,
    )


def small_cnn(
    kind: str = "free-form",
    widths: tuple[int, ...] = (8, 16, 16),
    *,
    kernel: str = "sampled",
    sigma0: float = 0.5,
) -> nn.Sequential:
    """A small digit classifier: 3 x 3 convolutions with ReLU, 2 x 2 max pooling after all but the
    last, global average pooling and a linear layer to ten classes.

    Args:
        kind: ``'free-form'`` (``nn.Conv2d`` layers), ``'GaussConv2d'`` (every layer a
            ``sigma.GaussConv2d``, a learned blur then the 3 x 3 filter) or
            ``'DynamicBlur2d'`` (free-form, with a ``sigma.DynamicBlur2d`` in front of the first
            layer: σ predicted per pixel, bounded to [0.25, 2], starting at 0.5).
        widths: output channels of the convolution layers. Default: (8, 16, 16).
        kernel: the Gaussian kernel type of ``GaussConv2d`` layers. Default: ``'sampled'``.
        sigma0: starting σ of ``GaussConv2d`` layers. Default: 0.5.

    Returns:
        An ``nn.Sequential`` mapping ``(B, 1, H, W)`` images to ``(B, 10)`` logits. Convolution
        weights are He-initialized for ReLU, biases zero (draw with the global RNG: seed it first).

    Raises:
        ValueError: if ``kind`` is not one of :data:`CNN_KINDS`.

    Example:
        >>> small_cnn("GaussConv2d")(torch.rand(2, 1, 24, 24)).shape
        torch.Size([2, 10])
    """
    check_choice(kind, CNN_KINDS, "kind")
    layers: list[nn.Module] = []
    c_in = 1
    for i, c_out in enumerate(widths):
        if kind == "GaussConv2d":
            conv = GaussConv2d(c_in, c_out, 3, sigma=sigma0, kernel=kernel)
        else:
            conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        if kind == "DynamicBlur2d" and i == 0:
            layers.append(DynamicBlur2d(c_in, sigma=0.5, sigma_range=(0.25, 2.0)))
        layers += [conv, nn.ReLU()]
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10))


def _forward(model: nn.Module, x: Tensor, scale: Tensor | None) -> Tensor:
    return model(x) if scale is None else model(x, scale)


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    seed: int,
    *,
    epochs: int = 12,
    batch: int = 100,
    lr: float = 0.02,
    scale: Tensor | None = None,
) -> None:
    """Train ``model`` in place with the cross-entropy loss: Adam on shuffled minibatches, with a
    one-cycle learning-rate schedule peaking at ``lr`` (warm up, then anneal to almost zero).

    Args:
        model: maps ``(b, C, H, W)`` to ``(b, classes)`` logits; called as ``model(x, scale)``
            when ``scale`` is given.
        x: ``(N, C, H, W)`` inputs. y: ``(N,)`` class labels.
        seed: seeds the minibatch order (seed the global RNG yourself for the initial weights).
        epochs, batch, lr: passes over the data, minibatch size, peak learning rate.
        scale: optional ``(N,)`` per-example factor handed to the model with its minibatch.

    Raises:
        ValueError: if ``x``, ``y`` (and ``scale``) disagree in length.
    """
    n = len(x)
    if len(y) != n or (scale is not None and len(scale) != n):
        raise ValueError(
            f"x, y and scale must have the same length, got {n}, {len(y)}"
            + ("" if scale is None else f", {len(scale)}")
        )
    epochs, batch = check_int(epochs, "epochs"), check_int(batch, "batch")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(n / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch):
            loss = F.cross_entropy(_forward(model, x[idx], None if scale is None else scale[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()


def accuracy(model: nn.Module, x: Tensor, y: Tensor, scale: Tensor | None = None) -> float:
    """The fraction of ``x`` that ``model`` classifies as ``y`` (in eval mode, without gradients;
    the model's mode is restored). ``scale``, if given, is handed to the model as in
    :func:`train_classifier`."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return (_forward(model, x, scale).argmax(1) == y).double().mean().item()
    finally:
        model.train(was_training)
