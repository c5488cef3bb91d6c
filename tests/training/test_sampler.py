"""Balanced window sampling from the cache: seizure share, unknown never anchors, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.detector.config import FrontendConfig
from ictal.training.cache import Cache, build_cache
from ictal.training.config import AugmentConfig, DataConfig
from ictal.training.datasets import discover
from ictal.training.sampler import WindowDataset, WindowSampler
from tests.training.tusz_fixture import build_tusz_tree

WINDOW = 2048  # 8 s: short windows keep the seizure share of a window informative


@pytest.fixture(scope="module")
def cache(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tusz_sampler")
    build_tusz_tree(shared_data, root, faults=False)
    index = discover(DataConfig(format="tusz", root=root))
    build_cache(index.recordings, root / "cache", FrontendConfig(), progress=False, log=lambda text: None)
    return Cache(root / "cache", FrontendConfig())


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.9])
def test_seizure_fraction_sets_the_share_of_seizure_anchored_windows(cache, fraction):
    sampler = WindowSampler(cache, cache.split("train"), WINDOW, fraction)
    rng = np.random.default_rng(0)
    with_seizure = 0
    n = 1500
    for _ in range(n):
        rec, start, cls = sampler.draw(rng)
        _signal, labels = sampler.read(rec, start)
        assert 0 <= start <= sampler.entries[rec].n_samples - WINDOW
        if cls == 1:
            assert (labels == 1).any()
        with_seizure += int(cls == 1)
    assert abs(with_seizure / n - fraction) < 0.04


def test_unlabelled_time_is_never_an_anchor_and_short_recordings_are_padded_unknown(cache):
    # A hand-made split: only the recording whose labels are unknown outside 20-30 s.
    entry = next(e for e in cache.split("dev") if e.patient == "aaaaaaad")
    labels = cache.labels(entry)
    labels_copy = np.array(labels)
    sampler = WindowSampler(cache, [entry], 60 * 256, 0.5)
    rng = np.random.default_rng(1)
    for _ in range(50):
        rec, start, _cls = sampler.draw(rng)
        signal, window_labels = sampler.read(rec, start)
        assert start < 0  # 50 s recording, 60 s window
        pad = -start
        assert (window_labels[:pad] == -1).all() and (signal[:, :pad] == 0).all()
        assert np.array_equal(window_labels[pad:], labels_copy)


def test_dataset_items_are_a_function_of_seed_epoch_rank_and_index(cache):
    sampler = WindowSampler(cache, cache.split("train"), WINDOW, 0.5)
    make = lambda seed=0, epoch=0, rank=0: WindowDataset(  # noqa: E731
        sampler, FrontendConfig(), AugmentConfig(), 8, seed, epoch, rank)
    x0, y0 = make()[3]
    x1, y1 = make()[3]
    assert x0.shape == (19, WINDOW) and x0.dtype == torch.float32 and y0.dtype == torch.int8
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert not torch.equal(make(rank=1)[3][0], x0)
    assert not torch.equal(make(epoch=1)[3][0], x0)
    assert not torch.equal(make()[4][0], x0)
    # Normalised by Frontend.prepare_window: robust per-channel scale, clipped.
    assert x0.abs().max() <= FrontendConfig().clip_sigma + 1e-6


def test_split_without_labelled_samples_is_refused(cache):
    entry = next(e for e in cache.entries if e.patient == "aaaaaaaa")
    sampler_ok = WindowSampler(cache, [entry], WINDOW, 0.5)
    assert sampler_ok.seizure_samples == pytest.approx(50 * 256, abs=2)
    with pytest.raises(ValueError, match="no labelled sample"):
        WindowSampler(cache, [], WINDOW, 0.5)


def test_short_recording_is_padded_after_normalisation_like_the_daemon():
    """A window longer than its recording: normalised real samples at the right, exact zeros at the left."""
    from ictal.detector.frontend import Frontend

    n_real, window = 3000, 4096
    rng = np.random.default_rng(3)
    real = (40.0 * rng.standard_normal((19, n_real)) + 500.0).astype(np.float32)  # offset: padding order matters

    class ShortRecordingSampler:
        """Test double: one recording of n_real samples, always read as one left-padded window."""

        window_samples = window
        all_background = [False]

        def draw(self, rng, shift=0):
            return 0, n_real - window, 0

        def read(self, rec_index, start, lead=0):
            signal = np.zeros((19, window), dtype=np.float32)
            signal[:, -start:] = real
            return signal, np.zeros(window, dtype=np.int8)

    config = FrontendConfig()
    dataset = WindowDataset(ShortRecordingSampler(), config, augment=None, length=1, seed=0)
    x, _ = dataset[0]
    x = x.numpy()
    pad = window - n_real
    assert np.all(x[:, :pad] == 0.0)
    expected = Frontend(config, float(config.fs_hz)).prepare_window(real)
    np.testing.assert_allclose(x[:, pad:], expected, atol=1e-6)
    # Normalising the padded window whole (the old behaviour) would give something else.
    whole = Frontend(config, float(config.fs_hz)).prepare_window(np.concatenate(
        [np.zeros((19, pad), np.float32), real], axis=1))
    assert np.abs(whole[:, pad:] - expected).max() > 0.1


def test_recording_weighting_gives_each_recording_the_same_share_of_anchors(cache):
    entries = cache.split("train")
    lengths = {i: int((np.asarray(cache.labels(e)) == 0).sum()) for i, e in enumerate(entries)}
    holding = [i for i, n in lengths.items() if n > 0]
    assert len(holding) >= 2 and max(lengths[i] for i in holding) > 1.5 * min(lengths[i] for i in holding)
    counts = {
        weighting: np.zeros(len(entries))
        for weighting in ("samples", "recording")
    }
    n = 3000
    for weighting, count in counts.items():
        sampler = WindowSampler(cache, entries, WINDOW, 0.0, weighting)
        rng = np.random.default_rng(7)
        for _ in range(n):
            rec, start, cls = sampler.draw(rng)
            assert cls == 0
            _signal, labels = sampler.read(rec, start)
            assert (labels == 0).any()  # anchored on a background sample
            count[rec] += 1
    uniform = 1.0 / len(holding)
    assert np.abs(counts["recording"][holding] / n - uniform).max() < 0.04
    proportional = np.array([lengths[i] for i in holding]) / sum(lengths[i] for i in holding)
    assert np.abs(counts["samples"][holding] / n - proportional).max() < 0.04
    assert np.abs(counts["samples"][holding] / n - uniform).max() > 0.05  # the two really differ here


def test_unknown_weighting_is_refused(cache):
    with pytest.raises(ValueError, match="weighting"):
        WindowSampler(cache, cache.split("train"), WINDOW, 0.5, "patients")


@pytest.mark.parametrize("lookahead", [0, 512, 1280])
def test_served_windows_hold_their_anchor_in_the_served_span(cache, lookahead):
    from ictal.detector.output_position import served_span

    hop, min_history = 1024, 2560
    sampler = WindowSampler(cache, cache.split("train"), 60 * 256, 0.5)
    rng = np.random.default_rng(4)
    in_span = padded = 0
    n = 600
    for _ in range(n):
        rec, start, cls = sampler.draw_served(rng, hop, lookahead, min_history)
        end = start + sampler.window_samples
        n_rec = sampler.entries[rec].n_samples
        assert end <= n_rec and end >= min(min_history, n_rec)
        lo, hi = served_span(end, hop, lookahead)
        _signal, labels = sampler.read(rec, start)
        span = labels[lo - start:hi - start]
        in_span += int((span == cls).any())
        padded += int(start < 0)
    # the anchor's class is in the served span of (almost) every window: only windows clipped at a
    # recording's edges may miss it
    assert in_span / n > 0.95
    assert padded > 0  # windows near a recording's start are the daemon's warm-up windows


def test_warm_up_fraction_crops_windows_to_a_left_padded_history(cache):
    from ictal.training.config import ServingConfig

    window = 60 * 256
    sampler = WindowSampler(cache, cache.split("train"), window, 0.5)
    serving = ServingConfig(hop_s=4.0, lookahead_s=0.0, min_history_s=10.0, warmup_fraction=0.5)
    dataset = WindowDataset(sampler, FrontendConfig(), augment=None, length=200, seed=1, serving=serving)
    cropped = 0
    for i in range(len(dataset)):
        x, y = dataset[i]
        x, y = x.numpy(), y.numpy()
        zero_head = int(np.argmax(np.abs(x).sum(axis=0) > 0))  # first column with signal
        if zero_head > 0:
            assert (y[:zero_head] == -1).all()  # the padding is never trained on
            assert window - zero_head >= 10 * 256  # at least min_history of history
            cropped += 1
        assert (y[window - 1024:] != -1).any() or (y == -1).all()  # labels where the loss is taken
    assert 0.4 < cropped / len(dataset) < 0.9  # the drawn half plus windows padded at recording starts
    unserved = WindowDataset(sampler, FrontendConfig(), augment=None, length=5, seed=1,
                             serving=serving.model_copy(update={"loss_positions": "window"}))
    first_plain = WindowDataset(sampler, FrontendConfig(), augment=None, length=5, seed=1)
    assert torch.equal(unserved[0][0], first_plain[0][0])  # window mode draws as the first recipe did
