"""The whole detector model: presets, shapes, robustness to bad input, gradients, batch independence."""

from __future__ import annotations

import pytest
import torch

from ictal.detector.config import ModelConfig
from ictal.detector.model import build_model, count_parameters
from tests.detector.model_configs import preset, small_config

STACKS = ["bimamba2", "gated_deltanet"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("stack", STACKS)
def test_tiny_preset_has_at_most_1_5_million_parameters(stack):
    n = count_parameters(build_model(preset("tiny", stack)))
    assert 100_000 < n <= 1_500_000


@pytest.mark.parametrize("stack", STACKS)
def test_full_preset_has_about_30_million_parameters(stack):
    n = count_parameters(build_model(preset("full", stack)))
    assert 27_000_000 <= n <= 33_000_000


def test_model_config_defaults_are_the_tiny_bimamba2_preset():
    assert ModelConfig() == preset("tiny", "bimamba2")


@pytest.mark.parametrize("stack", STACKS)
def test_full_preset_has_the_specified_streams(stack):
    config = preset("full", stack)
    assert max(config.tcn_widths) == 512 and max(config.tcn_dilations) >= 128
    assert (config.node_stack.n_layers, config.node_stack.d_model) == (6, 64)
    assert config.edge_stack.n_layers == 2 and config.lpe_k == 16 and config.top_k == 3
    assert config.n_times == 15360 and config.stack == stack


@pytest.mark.parametrize("stack", STACKS)
def test_tiny_preset_maps_windows_to_one_logit_per_sample(stack):
    model = build_model(preset("tiny", stack, n_times=512, backend="reference")).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 19, 512))
    assert logits.shape == (2, 512) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_model_rejects_a_window_of_the_wrong_shape():
    model = build_model(small_config())
    with pytest.raises(ValueError, match=r"\(B, 19, 256\).*\(2, 18, 256\)"):
        model(torch.randn(2, 18, 256))
    with pytest.raises(ValueError, match=r"\(1, 19, 512\)"):
        model(torch.randn(1, 19, 512))


def _bad_inputs(n_times: int) -> dict[str, torch.Tensor]:
    flat = torch.randn(1, 19, n_times)
    flat[:, 4] = 0.0
    saturated = torch.randn(1, 19, n_times)
    saturated[:, 2] = 3000.0 * torch.sign(torch.sin(torch.arange(n_times) / 7.0))
    saturated[:, 11] = -3000.0
    return {"zeros": torch.zeros(1, 19, n_times), "flat_channel": flat, "saturated_3000": saturated}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("case", ["zeros", "flat_channel", "saturated_3000"])
def test_outputs_are_finite_for_degenerate_input(stack, case):
    model = build_model(small_config(stack)).eval()
    with torch.no_grad():
        logits = model(_bad_inputs(256)[case])
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_are_finite_when_every_node_of_the_graph_is_isolated(stack):
    model = build_model(small_config(stack)).eval()
    seen = {}

    def zero_weights(module, inputs, output):
        return torch.zeros_like(output)

    def record(module, inputs, output):
        seen["adjacency"] = output

    model.edge_stream.register_forward_hook(zero_weights)
    model.adjacency.register_forward_hook(record)
    with torch.no_grad():
        logits = model(torch.randn(2, 19, 256))
    assert torch.isfinite(logits).all()
    eye = torch.eye(19).expand_as(seen["adjacency"])
    assert torch.equal(seen["adjacency"], eye)  # disconnected: self-loops only


def test_gradients_reach_every_layer_including_the_edge_stream_through_the_graph():
    model = build_model(small_config())
    model(torch.randn(2, 19, 256)).pow(2).mean().backward()
    for name in ["encoder", "projection", "node_stream", "edge_stream", "graph", "fusion", "decoder"]:
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    assert model.edge_stream.readout.weight.grad.abs().sum() > 0


def test_each_window_is_scored_independently_of_the_others_in_the_batch():
    model = build_model(small_config()).eval()
    x = torch.randn(3, 19, 256)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
        x[0] += 5.0
        changed = model(x)
    assert torch.allclose(together[1], alone[0], atol=1e-5)
    assert torch.allclose(together[1:], changed[1:], atol=1e-5)


def test_the_first_step_depends_on_the_end_of_the_window_through_the_bidirectional_stack():
    model = build_model(small_config()).eval()
    streams = []
    model.node_stream.register_forward_hook(lambda module, inputs, output: streams.append(output))
    x = torch.randn(1, 19, 256)
    y = x.clone()
    y[..., -16:] += 3.0
    with torch.no_grad():
        logits_x, logits_y = model(x), model(y)
    encoded_x, encoded_y = (model.projection(model.encoder(v)) for v in (x, y))
    assert torch.equal(encoded_x[:, :, 0], encoded_y[:, :, 0])  # not through the TCN
    assert (streams[0][:, :, 0] - streams[1][:, :, 0]).abs().max() > 1e-5  # through the stack
    assert not torch.equal(logits_x[0, :16], logits_y[0, :16])


@pytest.mark.parametrize("n_times", [160, 320])
def test_any_multiple_of_16_samples_works_and_others_are_refused(n_times):
    config = small_config(n_times=n_times, edge_pool=1)
    assert build_model(config)(torch.randn(1, 19, n_times)).shape == (1, n_times)
    with pytest.raises(ValueError, match="multiple of 16"):
        small_config(n_times=n_times + 8)
