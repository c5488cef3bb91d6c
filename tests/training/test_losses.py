"""Focal loss and weighted BCE with unknown labels masked; warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ictal.training.config import OptimConfig
from ictal.training.losses import focal_loss, loss_from_config, weighted_bce
from ictal.training.schedule import warmup_cosine


@pytest.mark.parametrize("loss", [lambda z, y: focal_loss(z, y), lambda z, y: weighted_bce(z, y, 3.0)])
def test_unknown_samples_change_neither_loss_nor_gradient(loss):
    torch.manual_seed(0)
    labels = torch.tensor([[1, 0, -1, -1, 1, 0]])
    a = torch.randn(1, 6, requires_grad=True)
    b = a.detach().clone()
    b[0, 2:4] += 50.0  # wildly different logits where the label is unknown
    b.requires_grad_(True)
    la, lb = loss(a, labels), loss(b, labels)
    la.backward()
    lb.backward()
    assert torch.allclose(la, lb)
    assert torch.equal(a.grad[0, 2:4], torch.zeros(2)) and torch.equal(b.grad[0, 2:4], torch.zeros(2))
    assert torch.allclose(a.grad, b.grad)


def test_focal_with_gamma_zero_is_alpha_weighted_cross_entropy():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    labels = torch.tensor([[1, 0, 1, 0]])
    alpha = 0.3
    weights = torch.tensor([[alpha, 1 - alpha, alpha, 1 - alpha]])
    expected = (weights * F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")).mean()
    assert torch.allclose(focal_loss(logits, labels, alpha=alpha, gamma=0.0), expected)


def test_focal_down_weights_easy_samples_more_than_hard_ones():
    easy, hard = torch.tensor([[6.0]]), torch.tensor([[-1.0]])
    label = torch.tensor([[1]])
    ratio_easy = focal_loss(easy, label, 0.5, 2.0) / focal_loss(easy, label, 0.5, 0.0)
    ratio_hard = focal_loss(hard, label, 0.5, 2.0) / focal_loss(hard, label, 0.5, 0.0)
    assert ratio_easy < 1e-4 < ratio_hard < 1


def test_weighted_bce_weighs_seizure_samples():
    logits = torch.zeros(1, 2)
    labels = torch.tensor([[1, 0]])
    plain = weighted_bce(logits, labels, 1.0)
    weighted = weighted_bce(logits, labels, 3.0)
    assert torch.allclose(plain, torch.tensor(math.log(2)))
    assert torch.allclose(weighted, torch.tensor(4 * math.log(2) / 2))


def test_batch_without_labelled_sample_gives_zero_that_backpropagates():
    logits = torch.randn(2, 5, requires_grad=True)
    loss = focal_loss(logits, torch.full((2, 5), -1))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(2, 5))


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"\(2, 5\) and \(2, 4\)"):
        weighted_bce(torch.zeros(2, 5), torch.zeros(2, 4, dtype=torch.long))


def test_config_picks_the_loss():
    logits, labels = torch.tensor([[1.0, -2.0]]), torch.tensor([[1, 0]])
    focal = loss_from_config(OptimConfig(loss="focal", focal_alpha=0.4, focal_gamma=1.0))
    bce = loss_from_config(OptimConfig(loss="bce", pos_weight=2.0))
    assert torch.allclose(focal(logits, labels), focal_loss(logits, labels, 0.4, 1.0))
    assert torch.allclose(bce(logits, labels), weighted_bce(logits, labels, 2.0))


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    factors = [warmup_cosine(s, 10, 110, 0.1) for s in range(120)]
    assert factors[0] == pytest.approx(0.1) and factors[4] == pytest.approx(0.5) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.1 + 0.9 * 0.5)
    assert factors[110] == pytest.approx(0.1) and factors[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
