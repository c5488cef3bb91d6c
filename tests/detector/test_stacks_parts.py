"""The parts the mixers share: the causal depthwise convolution and the gated RMS norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ictal.detector.stacks.conv import causal_depthwise_conv1d
from ictal.detector.stacks.norms import RMSNormGated


@pytest.mark.parametrize(("length", "width", "with_bias"), [(13, 4, True), (2, 4, False), (9, 2, True)])
def test_causal_conv_equals_padded_conv1d_forward_and_gradient(
    length: int, width: int, with_bias: bool
) -> None:
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(3, length, 5, generator=gen, requires_grad=True)
    weight = torch.randn(5, 1, width, generator=gen, requires_grad=True)
    bias = torch.randn(5, generator=gen, requires_grad=True) if with_bias else None
    got = causal_depthwise_conv1d(x, weight, bias)
    want = F.conv1d(x.transpose(1, 2), weight, bias, padding=width - 1, groups=5)[..., :length].transpose(
        1, 2
    )
    assert got.shape == (3, length, 5)
    assert (got - want).abs().max() <= 1e-6
    params = [x, weight] + ([bias] if with_bias else [])
    w = torch.randn_like(want)
    for a, b in zip(
        torch.autograd.grad((got * w).sum(), params),
        torch.autograd.grad((want * w).sum(), params),
        strict=True,
    ):
        assert (a - b).abs().max() <= 1e-5


def test_causal_conv_never_looks_ahead() -> None:
    x = torch.randn(1, 10, 3)
    x2 = x.clone()
    x2[:, 6] += 1.0
    weight = torch.randn(3, 1, 4)
    y, y2 = causal_depthwise_conv1d(x, weight), causal_depthwise_conv1d(x2, weight)
    assert torch.equal(y[:, :6], y2[:, :6])
    assert not torch.allclose(y[:, 6:], y2[:, 6:])


@pytest.mark.parametrize("norm_before_gate", [False, True])
def test_gated_rms_norm_follows_its_formula(norm_before_gate: bool) -> None:
    norm = RMSNormGated(6, eps=1e-5, norm_before_gate=norm_before_gate)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 6))
    x, z = torch.randn(4, 6), torch.randn(4, 6)

    def rms(a: torch.Tensor) -> torch.Tensor:
        return a / torch.sqrt(a.pow(2).mean(-1, keepdim=True) + 1e-5)

    if norm_before_gate:  # fla FusedRMSNormGated: normalise, scale, then gate
        want = rms(x) * norm.weight * F.silu(z)
    else:  # mamba-ssm RMSNormGated(norm_before_gate=False): gate, then normalise and scale
        want = rms(x * F.silu(z)) * norm.weight
    assert torch.allclose(norm(x, z), want, atol=1e-6)
