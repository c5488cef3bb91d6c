"""Training of causal checkpoints (issue 16, item 4): running normalisation, served positions, config.

A causal checkpoint is served by stream mode: its input is one per-sample normalised stream
(``normalisation: running``) and every sample after a stream's warm-up is served, lookahead 0. These
tests check that training windows are slices of that stream (augmentations included), that the loss
is taken exactly where a stream serves, and that a trained causal checkpoint says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend
from ictal.training.config import AugmentConfig, ServingConfig, TrainConfig
from ictal.training.losses import causal_served_offsets, served_position_loss
from ictal.training.sampler import WindowDataset, WindowSampler

FS = 256
RUNNING = FrontendConfig(normalisation="running")


@dataclass
class _Entry:
    recording_id: str
    n_samples: int


class _ArrayCache:
    """Test double of ``training.cache.Cache``: recordings held in memory (filtered uV, labels)."""

    def __init__(self, signals: list[np.ndarray]):
        self.entries = [_Entry(f"rec{i}", s.shape[1]) for i, s in enumerate(signals)]
        self._signals = {e.recording_id: s for e, s in zip(self.entries, signals, strict=True)}

    def signal(self, entry):
        return self._signals[entry.recording_id]

    def labels(self, entry):
        return np.zeros(entry.n_samples, dtype=np.int8)  # background throughout


def _nonstationary_recording(seconds: float, seed: int) -> np.ndarray:
    """(19, n) float32 uV whose offset and scale drift per channel, so running statistics matter."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    scale = 10.0 + 30.0 * np.linspace(0, 1, 19)[:, None] * (1 + np.sin(2 * np.pi * t / 90.0))
    offset = 50.0 * np.linspace(-1, 1, 19)[:, None] + 20.0 * np.cos(2 * np.pi * t / 200.0)
    return (offset + scale * rng.standard_normal((19, n))).astype(np.float32)


def _stream_frontend(signal: np.ndarray, config: FrontendConfig = RUNNING) -> Frontend:
    """A front-end whose running statistics have seen ``signal`` from its first sample (the daemon's)."""
    frontend = Frontend(config, float(FS), keep_running_s=None)
    frontend.running.update(signal)
    return frontend


def _dataset(signals, window, serving, augment=None, length=24, direction="causal"):
    cache = _ArrayCache(signals)
    sampler = WindowSampler(cache, cache.entries, window, 0.0)
    drawn: list[tuple[int, int]] = []
    draw_served = sampler.draw_served

    def recording_draw(*args, **kwargs):
        rec_index, start, cls = draw_served(*args, **kwargs)
        drawn.append((rec_index, start))
        return rec_index, start, cls

    sampler.draw_served = recording_draw
    dataset = WindowDataset(sampler, RUNNING, augment, length, seed=5, serving=serving, direction=direction)
    return dataset, drawn


SERVING = ServingConfig(lookahead_s=0.0, hop_s=4.0, min_history_s=10.0, warmup_fraction=0.0)


def test_causal_training_windows_are_slices_of_the_recordings_per_sample_normalised_stream():
    long, short = _nonstationary_recording(700.0, 1), _nonstationary_recording(40.0, 2)  # > one 600 s chunk
    window = 60 * FS
    dataset, drawn = _dataset([long, short], window, SERVING, length=30)
    frontends = [_stream_frontend(long), _stream_frontend(short)]
    padded = 0
    for index in range(len(dataset)):
        x, _ = dataset[index]
        rec_index, start = drawn[-1]
        signal, frontend = (long, short)[rec_index], frontends[rec_index]
        end, lo = start + window, max(start, 0)
        expected = frontend.prepare_window(signal[:, lo:end], end_index=end)
        np.testing.assert_array_equal(x.numpy()[:, lo - start:], expected)
        assert np.all(x.numpy()[:, :lo - start] == 0.0)
        padded += start < 0
    assert padded > 0  # the 40 s recording only gives left-padded windows: that case is covered
    assert len({s for _, s in drawn}) > 10
    # Not a per-window statistic: normalising the window on its own gives another input.
    rec_index, start = drawn[-1]
    if start >= 0:
        alone = _stream_frontend((long, short)[rec_index][:, start:start + window])
        assert np.abs(alone.prepare_window((long, short)[rec_index][:, start:start + window],
                                           end_index=window) - x.numpy()).max() > 0.1


def test_gain_and_mirroring_act_on_the_running_statistics_as_on_the_whole_recording():
    from ictal.training.augment import montage_mirror

    signal = _nonstationary_recording(300.0, 3)
    augment = AugmentConfig(amplitude_scale=(2.0, 2.0), noise_std_uv=0.0, channel_dropout_p=0.0,
                            time_shift_s=0.0, hemisphere_flip_p=1.0)
    dataset, drawn = _dataset([signal], 60 * FS, SERVING, augment=augment, length=8)
    transformed = 2.0 * signal[montage_mirror("referential")]  # the recording as if recorded with gain 2 and mirrored
    frontend = _stream_frontend(transformed)
    for index in range(len(dataset)):
        x, _ = dataset[index]
        _, start = drawn[-1]
        lo, end = max(start, 0), start + 60 * FS
        np.testing.assert_allclose(x.numpy()[:, lo - start:],
                                   frontend.prepare_window(transformed[:, lo:end], end_index=end), atol=2e-5)


def test_additive_noise_adds_its_variance_to_the_running_statistics():
    rng = np.random.default_rng(4)
    signal = (5.0 * rng.standard_normal((19, 200 * FS))).astype(np.float32)  # 5 uV background
    augment = AugmentConfig(amplitude_scale=(1.0, 1.0), noise_std_uv=20.0, channel_dropout_p=0.0,
                            time_shift_s=0.0)
    dataset, drawn = _dataset([signal], 60 * FS, SERVING, augment=augment, length=6)
    for index in range(len(dataset)):
        x, _ = dataset[index]
        _, start = drawn[-1]
        real = x.numpy()[:, max(0, -start) + 2 * FS:]  # past the first seconds of statistics
        # 5 uV signal + 20 uV noise over statistics of sqrt(5^2 + 20^2) uV: unit spread. Statistics of
        # the clean recording alone (5 uV) would give a spread of about 4.
        assert 0.85 < real.std() < 1.15


def test_a_warm_up_window_restarts_the_running_statistics_at_its_first_real_sample():
    signal = _nonstationary_recording(300.0, 6)
    serving = SERVING.model_copy(update={"warmup_fraction": 1.0})
    dataset, drawn = _dataset([signal], 60 * FS, serving, length=10)
    for index in range(len(dataset)):
        x, y = dataset[index]
        x = x.numpy()
        _, start = drawn[-1]
        end = start + 60 * FS
        # Labels start at the stream's first probability, min_history - hop after the first real sample.
        pad = int(np.flatnonzero(y.numpy() >= 0)[0]) - int((SERVING.min_history_s - SERVING.hop_s) * FS)
        assert pad > 0
        real = signal[:, start + pad:end]
        fresh = _stream_frontend(real)  # a bed that connected at the window's first real sample
        np.testing.assert_array_equal(x[:, pad:], fresh.prepare_window(real, end_index=real.shape[1]))
        assert np.all(x[:, :pad + FS] == 0.0)  # padding, then a first second without statistics


def _stream_served(origin: int, n: int, min_history: int, hop: int) -> np.ndarray:
    """Samples among the first ``n`` that a stream-mode bed connected at ``origin`` serves: hops end
    on window mode's grid (``origin + min_history + k * hop``), each serving its own samples
    ``[end - hop, end)``; the stream goes on after sample ``n`` (a hop that ends later serves the last
    samples, with the probability a causal model gives them from the samples up to them)."""
    served = np.zeros(n + hop, dtype=bool)
    for end in range(origin + min_history, n + hop + 1, hop):
        served[max(end - hop, origin):end] = True
    return served[:n]


def test_the_causal_loss_is_taken_on_exactly_the_samples_a_stream_serves():
    window, hop, history = 60 * FS, 4 * FS, 10 * FS
    serving = ServingConfig(lookahead_s=0.0, hop_s=4.0, min_history_s=10.0, warmup_fraction=0.0)
    loss_fn = served_position_loss(lambda logits, labels: (logits * (labels >= 0)).sum(), serving, window, "causal")
    assert loss_fn.served_offsets == causal_served_offsets(history, hop, window) == (history - hop, window)

    # Training windows of a 70 s recording: whole ones, and left-padded ones (a bed that connected
    # `pad` samples after the window's start) near its beginning.
    dataset, drawn = _dataset([_nonstationary_recording(70.0, 7)], window, serving, length=40)
    pads = set()
    for index in range(len(dataset)):
        _, y = dataset[index]
        pad = max(0, -drawn[-1][1])
        pads.add(pad)
        logits = torch.zeros(1, window, requires_grad=True)
        loss_fn(logits, y[None].long()).backward()
        trained = (logits.grad[0] != 0).numpy()
        # The stream fed from the window's first real sample serves exactly the samples trained.
        np.testing.assert_array_equal(trained, _stream_served(pad, window, history, hop))
        assert trained[window - hop:].all()  # window mode's served span (the newest hop) among them
    assert 0 in pads and len(pads) > 3
    # A bidirectional model at lookahead 0 is trained on the newest hop only.
    bidirectional = served_position_loss(lambda lg, lb: lg.sum(), serving, window, "bidirectional")
    assert bidirectional.served_offsets == (window - hop, window)


def test_causal_configs_refuse_a_lookahead_and_window_normalisation_with_the_reason(repo_root):
    from ictal.config import load_config

    base = load_config(repo_root / "configs/train/demo_causal.yaml", kind="train").model_dump()
    assert base["model"]["direction"] == "causal" and base["frontend"]["normalisation"] == "running"
    assert base["serving"]["lookahead_s"] == 0.0
    with pytest.raises(ValueError, match="lookahead_s must be 0 for model.direction: causal"):
        TrainConfig.model_validate({**base, "serving": {**base["serving"], "lookahead_s": 2.0}})
    with pytest.raises(ValueError, match="normalisation must be 'running'.*not be causal"):
        TrainConfig.model_validate({**base, "frontend": {**base["frontend"], "normalisation": "window_robust"}})
    # running is only an input normalisation: a bidirectional model may use it.
    TrainConfig.model_validate({**base, "model": {**base["model"], "direction": "bidirectional"},
                                "serving": {**base["serving"], "lookahead_s": 2.0}})


def test_a_window_robust_cache_is_reused_by_a_running_run_and_another_band_is_refused(shared_data, tmp_path):
    from ictal.training.cache import CacheMismatchError, build_cache
    from ictal.training.config import DataConfig
    from ictal.training.datasets import discover
    from tests.training.tusz_fixture import build_tusz_tree

    build_tusz_tree(shared_data, tmp_path / "tusz", faults=False)
    recordings = discover(DataConfig(format="tusz", root=tmp_path / "tusz")).recordings[:2]
    quiet = {"progress": False, "log": lambda text: None}
    first = build_cache(recordings, tmp_path / "cache", FrontendConfig(), **quiet)
    again = build_cache(recordings, tmp_path / "cache", RUNNING, **quiet)
    assert first.built == 2 and again.built == 0 and again.reused == 2
    with pytest.raises(CacheMismatchError, match="bandpass_hz"):
        build_cache(recordings, tmp_path / "cache", FrontendConfig(bandpass_hz=(1.0, 70.0)), **quiet)


def test_a_causal_checkpoint_records_direction_causal_lookahead_0_and_running_normalisation(tmp_path):
    """Fast: the checkpoint writer of training, on a causal config and an untrained tiny model."""
    from ictal.detector.checkpoint import load_checkpoint
    from ictal.detector.model import build_model
    from ictal.training.train import build_optimizer, write_checkpoint
    from tests.training.test_train import small_model

    config = TrainConfig.model_validate({
        "data": {"format": "tusz", "root": tmp_path}, "model": small_model(direction="causal", n_times=512).model_dump(),
        "frontend": {"normalisation": "running"},
        "serving": {"hop_s": 0.25, "lookahead_s": 0.0, "min_history_s": 1.0}})
    model = build_model(config.model)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = write_checkpoint(tmp_path / "ckpt", model, config, optimizer, scheduler, {"global_step": 0})
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["lookahead_s"] == 0.0 and metadata["serving"]["loss_positions"] == "served"
    loaded = load_checkpoint(path, backend="reference", device="cpu")
    assert loaded.model_config.direction == "causal" and loaded.frontend_config.normalisation == "running"
    assert loaded.lookahead_s == 0.0


@pytest.mark.slow
def test_a_causal_model_trains_and_its_checkpoint_records_direction_causal_and_lookahead_0(
        repo_root, shared_data, tmp_path):
    from ictal.detector.checkpoint import load_checkpoint
    from ictal.training.train import train
    from tests.training.test_train import make_config, small_model
    from tests.training.tusz_fixture import build_tusz_tree

    build_tusz_tree(shared_data, tmp_path / "tusz", faults=False)
    config = make_config(repo_root, tmp_path / "tusz", tmp_path / "run")
    config = TrainConfig.model_validate({
        **config.model_dump(), "model": small_model(direction="causal", n_times=512).model_dump(),
        "frontend": {"normalisation": "running"},
        "serving": {"hop_s": 0.25, "lookahead_s": 0.0, "min_history_s": 1.0, "warmup_fraction": 0.5}})
    result = train(config)
    assert result.global_step == 4 and np.isfinite(result.final_loss)
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "dev" and np.isfinite(r["dev_loss"]) for r in rows)  # dev scoring ran on running
    metadata = json.loads((result.last_checkpoint / "metadata.json").read_text())
    assert metadata["lookahead_s"] == 0.0
    loaded = load_checkpoint(result.last_checkpoint, backend="reference", device="cpu")
    assert loaded.model_config.direction == "causal"
    assert loaded.frontend_config.normalisation == "running"
    assert metadata["serving"]["loss_positions"] == "served"
