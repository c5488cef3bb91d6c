"""The chunked scans equal the step-by-step recurrences of the same equations (forward and gradient)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ictal.detector.stacks._naive import naive_gated_delta_rule, naive_ssd_scan
from ictal.detector.stacks.gated_delta import chunk_gated_delta_rule
from ictal.detector.stacks.ssd import ssd_chunked_scan

TOL = 1e-4


def _ssd_inputs(n: int, length: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    h, p, s = 3, 4, 5
    x = torch.randn(n, length, h, p, generator=gen)
    dt = F.softplus(torch.randn(n, length, h, generator=gen))
    A = -torch.rand(h, generator=gen) * 2 - 0.05  # slow and fast heads: state crosses several chunks
    B = torch.randn(n, length, s, generator=gen)
    C = torch.randn(n, length, s, generator=gen)
    return [t.requires_grad_() for t in (x, dt, A, B, C)]


def _delta_inputs(n: int, length: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    h, k, v = 2, 4, 6
    q = F.normalize(torch.randn(n, length, h, k, generator=gen), dim=-1)
    key = F.normalize(torch.randn(n, length, h, k, generator=gen), dim=-1)
    val = torch.randn(n, length, h, v, generator=gen)
    g = -0.2 * torch.rand(n, length, h, generator=gen)  # long memory: chunk hand-over matters
    beta = torch.rand(n, length, h, generator=gen)
    return [t.requires_grad_() for t in (q, key, val, g, beta)]


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], weight: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad((out * weight).sum(), inputs))


@pytest.mark.parametrize(("length", "chunk_size"), [(37, 16), (50, 8), (16, 16), (5, 8)])
def test_ssd_chunked_scan_equals_step_by_step_recurrence(length: int, chunk_size: int) -> None:
    inputs = _ssd_inputs(2, length, seed=length)
    chunked = ssd_chunked_scan(*inputs, chunk_size=chunk_size)
    naive = naive_ssd_scan(*inputs)
    assert chunked.shape == naive.shape == (2, length, 3, 4)
    assert (chunked - naive).abs().max() <= TOL
    weight = torch.randn_like(naive)
    for got, want in zip(_grads(chunked, inputs, weight), _grads(naive, inputs, weight), strict=True):
        assert (got - want).abs().max() <= TOL * max(1.0, want.abs().max().item())


@pytest.mark.parametrize(("length", "chunk_size"), [(37, 16), (50, 8), (16, 16), (5, 8)])
def test_gated_delta_chunked_equals_step_by_step_recurrence(length: int, chunk_size: int) -> None:
    inputs = _delta_inputs(2, length, seed=length)
    chunked = chunk_gated_delta_rule(*inputs, scale=0.5, chunk_size=chunk_size)
    naive = naive_gated_delta_rule(*inputs, scale=0.5)
    assert chunked.shape == naive.shape == (2, length, 2, 6)
    assert (chunked - naive).abs().max() <= TOL
    weight = torch.randn_like(naive)
    for got, want in zip(_grads(chunked, inputs, weight), _grads(naive, inputs, weight), strict=True):
        assert (got - want).abs().max() <= TOL * max(1.0, want.abs().max().item())


def test_ssd_state_is_carried_across_chunks() -> None:
    """An input in the first chunk still moves the output several chunks later (slow decay)."""
    x, dt, A, B, C = (t.detach() for t in _ssd_inputs(1, 48, seed=1))
    A = torch.full_like(A, -0.01)
    dt = torch.full_like(dt, 0.5)
    base = ssd_chunked_scan(x, dt, A, B, C, chunk_size=8)
    x2 = x.clone()
    x2[:, 2] += 1.0
    moved = ssd_chunked_scan(x2, dt, A, B, C, chunk_size=8)
    assert torch.equal(moved[:, :2], base[:, :2])
    assert (moved[:, 40:] - base[:, 40:]).abs().max() > 1e-3


def test_gated_delta_state_is_carried_across_chunks() -> None:
    q, k, v, g, beta = (t.detach() for t in _delta_inputs(1, 48, seed=2))
    base = chunk_gated_delta_rule(q, k, v, torch.zeros_like(g), beta, scale=1.0, chunk_size=8)
    v2 = v.clone()
    v2[:, 2] += 1.0
    moved = chunk_gated_delta_rule(q, k, v2, torch.zeros_like(g), beta, scale=1.0, chunk_size=8)
    assert torch.equal(moved[:, :2], base[:, :2])
    assert (moved[:, 40:] - base[:, 40:]).abs().max() > 1e-3
