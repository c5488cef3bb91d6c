"""Causal direction and the streaming API: stepping hop by hop equals one causal forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.detector.checkpoint import save_checkpoint
from ictal.detector.config import FrontendConfig, ModelConfig
from ictal.detector.inference import Detector
from ictal.detector.model import TimeThenGraphDetector
from ictal.detector.normalise import RunningNormaliser
from ictal.detector.streaming_state import StreamState

FS = 256


def _model(stack: str = "bimamba2", direction: str = "causal", seed: int = 0) -> TimeThenGraphDetector:
    torch.manual_seed(seed)
    config = ModelConfig(stack=stack, backend="reference", direction=direction)
    return TimeThenGraphDetector(19, config.n_times, 256.0, config).eval()


def _steps(model: TimeThenGraphDetector, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    state = model.init_state(x.shape[0])
    outs, start = [], 0
    for size in sizes:
        y, state = model.step(x[:, :, start : start + size], state)
        outs.append(y)
        start += size
    assert start == x.shape[2]
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("stack", ["bimamba2", "gated_deltanet"])
def test_stepping_hop_by_hop_equals_one_causal_forward_over_the_recording(stack):
    model = _model(stack)
    torch.manual_seed(1)
    x = torch.randn(1, 19, 64 * FS)  # 64 s: longer than a training window, crosses scan chunks
    with torch.no_grad():
        whole = model(x)
        for hop_s in (1, 2, 4, 8):
            stepped = _steps(model, x, [hop_s * FS] * (64 // hop_s))
            assert (stepped - whole).abs().max().item() <= 1e-4, hop_s
        # odd pieces (multiples of the 16-sample stride, off the 1 s edge-pooling blocks)
        sizes = [48, 208, 16, 4096, 752]
        sizes.append(x.shape[2] - sum(sizes))
        assert (_steps(model, x, sizes) - whole).abs().max().item() <= 1e-4


def test_the_causal_model_never_reads_a_later_step():
    model = _model()
    torch.manual_seed(2)
    x = torch.randn(1, 19, 40 * FS)
    with torch.no_grad():
        base = model(x)
        for cut in (16 * 300, 16 * 301 + 7, 30 * FS):
            changed = x.clone()
            changed[:, :, cut:] += 3.0
            out = model(changed)
            step_start = cut // 16 * 16
            assert torch.equal(out[:, :step_start], base[:, :step_start]), cut
            assert (out[:, step_start:] - base[:, step_start:]).abs().max() > 1e-3  # the change is seen


def test_the_bidirectional_model_reads_the_future_and_refuses_to_step():
    model = _model(direction="bidirectional")
    torch.manual_seed(3)
    x = torch.randn(1, 19, 15360)
    with torch.no_grad():
        changed = x.clone()
        changed[:, :, 12000:] += 3.0
        assert (model(changed)[:, :11000] - model(x)[:, :11000]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="causal"):
        model.init_state(1)


def test_a_causal_model_takes_any_multiple_of_16_samples_and_refuses_others():
    model = _model()
    with torch.no_grad():
        assert model(torch.zeros(1, 19, 16 * 37)).shape == (1, 16 * 37)
        with pytest.raises(ValueError, match="16 m"):
            model(torch.zeros(1, 19, 100))


@pytest.fixture(scope="module")
def causal_detector(tmp_path_factory) -> Detector:
    model = _model(seed=4)
    path = save_checkpoint(
        tmp_path_factory.mktemp("causal") / "ckpt", model, model.config, FrontendConfig(normalisation="running")
    )
    return Detector.from_checkpoint(path, device="cpu", backend="reference")


def test_detector_step_batches_beds_that_joined_at_different_times(causal_detector):
    det = causal_detector
    assert det.direction == "causal" and det.stream_multiple_samples == 256
    rng = np.random.default_rng(5)
    a = rng.standard_normal((19, 20 * FS)).astype(np.float32)
    b = rng.standard_normal((19, 12 * FS)).astype(np.float32)
    hop = 4 * FS
    # alone
    alone_a, sa = [], det.init_state()
    for i in range(0, a.shape[1], hop):
        p, sa = det.step(a[None, :, i : i + hop], sa)
        alone_a.append(p[0])
    alone_b, sb = [], det.init_state()
    for i in range(0, b.shape[1], hop):
        p, sb = det.step(b[None, :, i : i + hop], sb)
        alone_b.append(p[0])
    # bed b joins the batch after bed a has run 8 s (its first step is taken in the batch)
    state_a = det.init_state()
    together_a = []
    for i in range(0, 8 * FS, hop):
        p, state_a = det.step(a[None, :, i : i + hop], state_a)
        together_a.append(p[0])
    state = StreamState.stack([state_a, det.init_state()])
    together_b = []
    for k, i in enumerate(range(8 * FS, a.shape[1], hop)):
        x = np.stack([a[:, i : i + hop], b[:, k * hop : (k + 1) * hop]])
        p, state = det.step(x, state)
        together_a.append(p[0])
        together_b.append(p[1])
    assert state.batch == 2 and [s.batch for s in state.split()] == [1, 1]
    assert list(state.samples_seen) == [20 * FS, 12 * FS]
    np.testing.assert_allclose(np.concatenate(together_a), np.concatenate(alone_a), atol=1e-5)
    np.testing.assert_allclose(np.concatenate(together_b), np.concatenate(alone_b), atol=1e-5)
    # the split states carry on as the lone ones do
    last_a, last_b = state.split()
    x_next = rng.standard_normal((1, 19, hop)).astype(np.float32)
    np.testing.assert_allclose(det.step(x_next, last_a)[0], det.step(x_next, sa)[0], atol=1e-5)


def test_detector_step_refuses_out_of_phase_states_bad_shapes_and_non_finite_input(causal_detector):
    det = causal_detector
    s1 = det.step(np.zeros((1, 19, 256), np.float32), det.init_state())[1]
    s2 = det.step(np.zeros((1, 19, 128), np.float32), det.init_state())[1]
    with pytest.raises(ValueError, match="phases"):
        StreamState.stack([s1, s2])
    with pytest.raises(ValueError, match="16 m"):
        det.step(np.zeros((1, 19, 100), np.float32), s1)
    bad = np.zeros((1, 19, 256), np.float32)
    bad[0, 3, 7] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        det.step(bad, s1)


def test_detector_step_equals_window_prediction_on_a_window_from_a_fresh_state(causal_detector):
    det = causal_detector
    x = np.random.default_rng(6).standard_normal((1, 19, 15360)).astype(np.float32)
    stepped, _ = det.step(x, det.init_state())
    np.testing.assert_allclose(stepped, det.predict(x), atol=1e-5)


def test_running_normalisation_gives_each_sample_one_value_whatever_the_window():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((19, 30 * FS)) * np.linspace(5, 50, 19)[:, None] + 3.0
    norm = RunningNormaliser(tau_s=10.0, keep_s=None)
    norm.update(x[:, :1000])
    norm.update(x[:, 1000:])
    whole = norm.normalise_causal(x, 0)
    assert not whole[:, :FS].any()  # the first second has no statistics yet
    assert np.abs(whole[:, FS:]).max() > 0.5
    for start, stop in ((300, 2900), (4 * FS, 9 * FS + 17), (25 * FS, 30 * FS)):
        np.testing.assert_array_equal(norm.normalise_causal(x[:, start:stop], start), whole[:, start:stop])
    # a sample is normalised only by samples of earlier seconds
    later = x.copy()
    later[:, 10 * FS :] *= 100.0
    other = RunningNormaliser(tau_s=10.0, keep_s=None)
    other.update(later)
    np.testing.assert_array_equal(other.normalise_causal(later[:, : 10 * FS], 0), whole[:, : 10 * FS])
    assert not np.allclose(other.normalise_causal(later, 0)[:, 11 * FS :], whole[:, 11 * FS :])
