"""The stacks built by build_stack: bidirectional, batch-independent, finite, right shapes."""

from __future__ import annotations

import pytest
import torch

from ictal.detector.config import StackConfig
from ictal.detector.stacks import build_stack

STACKS = ["bimamba2", "gated_deltanet"]
CONFIG = StackConfig(n_layers=2, d_model=8, d_state=4, n_heads=2, expand=2, chunk_size=8)


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_stack(request.param, CONFIG, backend="reference").eval()


def test_output_at_t_depends_on_later_inputs(stack: torch.nn.Module) -> None:
    x = torch.randn(1, 40, 8)
    x2 = x.clone()
    x2[:, 20] += 1.0
    with torch.no_grad():
        y, y2 = stack(x), stack(x2)
    assert (y[:, 16] - y2[:, 16]).abs().max() > 1e-4  # the future reaches back (across a chunk edge)
    assert (y[:, 25] - y2[:, 25]).abs().max() > 1e-4  # and the past forward


def test_batch_items_are_independent(stack: torch.nn.Module) -> None:
    x = torch.randn(3, 25, 8)
    x2 = x.clone()
    x2[1] = 100 * torch.randn(25, 8)
    with torch.no_grad():
        y, y2, alone = stack(x), stack(x2), stack(x[2:3])
    assert torch.allclose(y[[0, 2]], y2[[0, 2]], atol=1e-5)
    assert torch.allclose(y[2:3], alone, atol=1e-5)
    assert not torch.allclose(y[1], y2[1], atol=1e-3)


@pytest.mark.parametrize("scale", [0.0, 3000.0, 1e6])
def test_outputs_are_finite_for_zero_and_large_inputs(stack: torch.nn.Module, scale: float) -> None:
    x = scale * torch.randn(2, 70, 8).sign()  # +/-scale: saturated, and all-zero for scale 0
    x[1, :, 3] = 0.0  # a flat channel
    with torch.no_grad():
        y = stack(x)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(("n", "length"), [(1, 1), (2, 3), (3, 8), (2, 65)])
def test_shape_is_preserved(stack: torch.nn.Module, n: int, length: int) -> None:
    with torch.no_grad():
        y = stack(torch.randn(n, length, 8))
    assert y.shape == (n, length, 8)
    assert y.dtype == torch.float32


def test_wrong_width_is_an_error_naming_the_shapes(stack: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match=r"\(N, L, 8\).*\(2, 5, 6\)"):
        stack(torch.randn(2, 5, 6))


@pytest.mark.parametrize("name", STACKS)
def test_n_layers_blocks_with_separate_direction_parameters(name: str) -> None:
    module = build_stack(name, CONFIG.model_copy(update={"n_layers": 3}), backend="reference")
    assert len(module.layers) == 3
    fwd = dict(module.layers[0].forward_mixer.named_parameters())
    bwd = dict(module.layers[0].backward_mixer.named_parameters())
    assert fwd.keys() == bwd.keys()
    assert all(fwd[k].data_ptr() != bwd[k].data_ptr() for k in fwd)
