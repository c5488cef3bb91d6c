"""Each reference mixer: chunked equals naive at module level (forward, input and parameter gradients),
and each direction alone is causal / anti-causal."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from ictal.detector.config import StackConfig
from ictal.detector.stacks import build_stack

STACKS = ["bimamba2", "gated_deltanet"]
SMALL = StackConfig(n_layers=2, d_model=8, d_state=4, n_heads=2, expand=2, chunk_size=8)


def _small_stack(stack: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    module = build_stack(stack, SMALL, backend="reference")
    with torch.no_grad():  # slow decays, so that the state crosses chunk boundaries
        for name, param in module.named_parameters():
            if name.endswith("A_log"):
                param.copy_(torch.full_like(param, math.log(0.3)))
    return module


def _set_scan(module: torch.nn.Module, impl: str) -> None:
    for sub in module.modules():
        if hasattr(sub, "scan_impl"):
            sub.scan_impl = impl


@pytest.mark.parametrize("stack", STACKS)
def test_chunked_stack_equals_naive_forward_and_gradients(stack: str) -> None:
    chunked = _small_stack(stack)
    naive = copy.deepcopy(chunked)
    _set_scan(naive, "naive")
    x = torch.randn(2, 21, 8, generator=torch.Generator().manual_seed(3))  # 21: not a multiple of 8
    x_c, x_n = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_c, y_n = chunked(x_c), naive(x_n)
    assert (y_c - y_n).abs().max() <= 1e-4
    weight = torch.randn_like(y_c)
    (y_c * weight).sum().backward()
    (y_n * weight).sum().backward()
    assert (x_c.grad - x_n.grad).abs().max() <= 1e-4
    params_n = dict(naive.named_parameters())
    for name, param in chunked.named_parameters():
        assert param.grad is not None, f"no gradient reached {name}"
        diff = (param.grad - params_n[name].grad).abs().max().item()
        assert diff <= 1e-4 * max(1.0, params_n[name].grad.abs().max().item()), f"{name}: {diff}"


@pytest.mark.parametrize("stack", STACKS)
def test_unknown_scan_impl_is_an_error(stack: str) -> None:
    module = _small_stack(stack)
    _set_scan(module, "fast")
    with pytest.raises(ValueError, match="scan_impl"):
        module(torch.randn(1, 9, 8))


@pytest.mark.parametrize("stack", STACKS)
def test_forward_mixer_is_causal_and_backward_mixer_anticausal(stack: str) -> None:
    block = _small_stack(stack).layers[0]
    h = torch.randn(1, 30, 8)
    h2 = h.clone()
    h2[:, 17] += 1.0
    with torch.no_grad():
        fwd, fwd2 = block.forward_mixer(h), block.forward_mixer(h2)
        bwd, bwd2 = (block.backward_mixer(t.flip(1)).flip(1) for t in (h, h2))
    assert torch.allclose(fwd[:, :17], fwd2[:, :17], atol=1e-6)
    assert (fwd[:, 17:] - fwd2[:, 17:]).abs().max() > 1e-4
    assert torch.allclose(bwd[:, 18:], bwd2[:, 18:], atol=1e-6)
    assert (bwd[:, :18] - bwd2[:, :18]).abs().max() > 1e-4
