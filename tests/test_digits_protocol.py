"""sigma.book.digits: the digits-at-every-size protocol shared by two chapters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sigma
from sigma.book import data, digits


@pytest.fixture(scope="module")
def sizes():
    return digits.digit_sizes(n_train=1200)


def test_split_is_disjoint_and_complete(sizes):
    train, test = set(sizes.train_idx.tolist()), set(sizes.test_idx.tolist())
    assert not train & test
    assert len(train) == 1200 and len(train | test) == 1797


def test_sets_are_the_digits_drawn_at_their_sizes(sizes):
    images, labels = data.digits(dtype=torch.float64)
    assert sizes.factors[0] == pytest.approx(0.5) and sizes.factors[-1] == pytest.approx(2.0)
    assert sizes.sides == pytest.approx([10 * f for f in sizes.factors])
    assert torch.equal(sizes.y_train, labels[sizes.train_idx])
    assert torch.equal(sizes.y_test, labels[sizes.test_idx])
    want = data.digits_at_scale(images[sizes.test_idx[:5]], 10 * sizes.factors[2], canvas=24)
    torch.testing.assert_close(
        sizes.x_test[sizes.factors[2]][:5], want, rtol=0, atol=1e-12
    )  # drawn in one batch
    assert sizes.x_train.dtype == torch.float64 and sizes.x_train.shape == (1200, 1, 24, 24)


def test_augmented_set_spans_the_test_range_with_the_same_digits(sizes):
    assert sizes.aug_sides[0] == pytest.approx(5.0) and sizes.aug_sides[-1] == pytest.approx(20.0)
    assert sizes.x_aug.shape == sizes.x_train.shape
    assert torch.equal(sizes.y_aug.sort().values, sizes.y_train.sort().values)
    images, _ = data.digits(dtype=torch.float64)
    first = data.digits_at_scale(images[sizes.train_idx[0:1]], sizes.aug_sides[0], canvas=24)
    torch.testing.assert_close(
        sizes.x_aug[0:1], first, rtol=0, atol=1e-12
    )  # group 0 (digits 0, 8, 16, ...) at the smallest size


@pytest.mark.parametrize(
    "bad", [dict(side=0.0), dict(side=float("nan")), dict(n_train=0), dict(n_train=1797)]
)
def test_digit_sizes_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        digits.digit_sizes(**bad)


@pytest.mark.parametrize("kind", digits.CNN_KINDS)
def test_small_cnn_kinds(kind):
    torch.manual_seed(0)
    model = digits.small_cnn(kind)
    assert model(torch.rand(3, 1, 24, 24)).shape == (3, 10)
    convs = [m for m in model if isinstance(m, (nn.Conv2d, sigma.GaussConv2d))]
    assert len(convs) == 3 and all(float(c.bias.detach().abs().max()) == 0 for c in convs)
    assert any(isinstance(m, sigma.DynamicBlur2d) for m in model) == (kind == "DynamicBlur2d")


def test_small_cnn_parameter_counts_and_options():
    count = {k: sum(p.numel() for p in digits.small_cnn(k).parameters()) for k in digits.CNN_KINDS}
    assert count["GaussConv2d"] - count["free-form"] == 3
    layer = digits.small_cnn("GaussConv2d", kernel="erf", sigma0=1.0)[0]
    assert layer.blur.kernel == "erf" and layer.sigma.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kind"):
        digits.small_cnn("resnet")


def _tiny_task():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(60, 1, 6, 6, generator=gen, dtype=torch.float64)
    y = (x.mean((1, 2, 3)) > 0).long()
    return x, y


def test_train_classifier_learns_and_is_seeded():
    x, y = _tiny_task()

    def run(seed):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(36, 2)).double()
        before = digits.accuracy(model, x, y)
        digits.train_classifier(model, x, y, seed, epochs=20, batch=20, lr=0.1)
        return before, digits.accuracy(model, x, y), model[1].weight.detach().clone()

    before, after, w0 = run(0)
    assert after > 0.9 and after > before
    assert torch.equal(run(0)[2], w0)  # same seeds, same weights
    assert not torch.equal(run(1)[2], w0)  # another minibatch order


class _Scaled(nn.Module):
    """Records the scales it was called with; predicts class 1 where scale > 1."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.seen: list[torch.Tensor] = []

    def forward(self, x, scale):
        self.seen.append(scale.detach().clone())
        logit = (scale - 1) + self.w * x.flatten(1).mean(1)
        return torch.stack([-logit, logit], 1)


def test_scale_goes_with_its_minibatch_and_to_accuracy():
    x, y = _tiny_task()
    scale = torch.linspace(0.5, 1.5, len(x), dtype=torch.float64)
    model = _Scaled()
    digits.train_classifier(model, x, y, 0, epochs=1, batch=25, scale=scale)
    assert sorted(torch.cat(model.seen).tolist()) == sorted(scale.tolist())  # every example once
    assert digits.accuracy(model, x, (scale > 1).long(), scale) == 1.0


def test_accuracy_restores_the_mode_and_records_no_graph():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(36, 2)).double()
    x, y = _tiny_task()
    model.train()
    a = digits.accuracy(model, x, y)
    assert model.training and a == digits.accuracy(model, x, y)  # eval mode: dropout off, same result
    model.eval()
    digits.accuracy(model, x, y)
    assert not model.training


def test_train_classifier_rejects_mismatched_lengths():
    x, y = _tiny_task()
    with pytest.raises(ValueError, match="same length"):
        digits.train_classifier(nn.Linear(36, 2), x, y[:-1], 0)
    with pytest.raises(ValueError, match="same length"):
        digits.train_classifier(_Scaled(), x, y, 0, scale=torch.ones(3))
