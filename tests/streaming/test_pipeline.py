"""streaming.pipeline: chunked == offline windows on real EEG, gaps, stitching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ictal.detector import WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend
from ictal.detector.output_position import served_span
from ictal.streaming.chunk import Chunk
from ictal.streaming.edf import load_canonical
from ictal.streaming.pipeline import BedPipeline

HOP_S = 4.0
HOP = int(HOP_S * 256)


def _stream(pipeline: BedPipeline, data: np.ndarray, fs: float, rng: np.random.Generator, first_index: int = 0):
    """Push ``data`` in random chunks of 1 to 4096 samples; return the windows."""
    windows, i = [], 0
    while i < data.shape[1]:
        n = int(rng.integers(1, 4097))
        part = np.ascontiguousarray(data[:, i : i + n])
        windows += pipeline.push(Chunk(part, first_index + i, (first_index + i) / fs, fs))
        i += part.shape[1]
    return windows


def _offline_windows(data: np.ndarray, fs: float, config: FrontendConfig) -> dict[int, np.ndarray]:
    frontend = Frontend(config, fs)
    filtered = frontend.process(data)
    ends = range(WINDOW_SAMPLES, filtered.shape[1] + 1, HOP)
    return {end: frontend.prepare_window(filtered[:, end - WINDOW_SAMPLES : end], end_index=end) for end in ends}


@pytest.mark.parametrize(
    ("relpath", "fs", "normalisation"),
    [
        ("background/eegmat/Subject00_1.edf", 500.0, "window_robust"),
        ("labelled/hms_1628180742.edf", 200.0, "window_robust"),
        ("labelled/hms_1628180742.edf", 200.0, "running"),
    ],
)
def test_random_chunks_give_the_offline_windows(shared_data, relpath, fs, normalisation):
    config = FrontendConfig(normalisation=normalisation)
    rec = load_canonical(shared_data / relpath, config)
    assert rec.fs == fs
    offline = _offline_windows(rec.data, rec.fs, config)
    assert len(offline) >= 8
    for seed in (0, 1):
        windows = _stream(BedPipeline(config, rec.fs, HOP_S), rec.data, rec.fs, np.random.default_rng(seed))
        assert [w.end_index for w in windows] == list(offline)
        for window in windows:
            assert window.data.shape == (19, WINDOW_SAMPLES) and window.data.dtype == np.float32
            assert np.abs(window.data - offline[window.end_index]).max() <= 1e-4
            assert not window.has_gap and window.quality.usable in (True, False)
    # The whole recording pushed at once (as `ictal evaluate` may do) gives the same windows, although
    # it is longer than the ring buffer.
    pipeline = BedPipeline(config, rec.fs, HOP_S, ring_s=60.0)
    windows = pipeline.push(Chunk(rec.data, 0, 0.0, rec.fs))
    assert rec.data.shape[1] / rec.fs > pipeline.ring.capacity / 256
    assert [w.end_index for w in windows] == list(offline)
    assert max(np.abs(w.data - offline[w.end_index]).max() for w in windows) <= 1e-4


def test_iiic_files_stream_to_the_offline_filtered_signal(shared_data):
    """IIIC segments (50 s, 200 Hz) are shorter than a window: their filtered stream must match."""
    config = FrontendConfig()
    for name in ("iiic_01.edf", "iiic_13.edf"):
        rec = load_canonical(shared_data / "labelled" / name, config)
        pipeline = BedPipeline(config, rec.fs, HOP_S)
        assert _stream(pipeline, rec.data, rec.fs, np.random.default_rng(3)) == []  # still warming up
        offline = Frontend(config, rec.fs).process(rec.data)
        streamed, valid = pipeline.ring.read(0, pipeline.ring.end_index)
        assert streamed.shape == offline.shape and abs(offline.shape[1] - 50 * 256) <= 1
        assert valid.all()
        assert np.abs(streamed - offline).max() <= 1e-4


@pytest.mark.parametrize("lookahead_s", [0.0, 2.0, 5.0])
def test_every_window_the_first_included_yields_only_its_served_span(shared_data, lookahead_s):
    rec = load_canonical(shared_data / "labelled" / "hms_1628180742.edf")
    pipeline = BedPipeline(FrontendConfig(), rec.fs, HOP_S, lookahead_s=lookahead_s)
    windows = _stream(pipeline, rec.data, rec.fs, np.random.default_rng(5))
    lookahead = int(lookahead_s * 256)
    pieces = []
    for window in windows:
        probs = (window.start_index + np.arange(WINDOW_SAMPLES)).astype(np.float32)  # "probability" = index
        pieces.append(pipeline.stitch(window, probs))
    # the first window of the stream too: [end - lookahead - hop, end - lookahead), no more
    assert pieces[0][0] == WINDOW_SAMPLES - lookahead - HOP and pieces[0][1].size == HOP
    assert all(p[1].size == HOP for p in pieces)
    for window, (first, _) in zip(windows, pieces, strict=True):
        assert (first, first + HOP) == served_span(window.end_index, HOP, lookahead)
    # successive spans are contiguous: every sample from the first span on gets one probability, once
    output = np.concatenate([p[1] for p in pieces])
    np.testing.assert_array_equal(output, np.arange(pieces[0][0], windows[-1].end_index - lookahead,
                                                    dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(15360,\)"):
        pipeline.stitch(windows[0], np.zeros(100))


def test_window_clock_follows_the_source_clock(shared_data):
    rec = load_canonical(shared_data / "labelled" / "hms_1628180742.edf")
    pipeline = BedPipeline(FrontendConfig(), rec.fs, HOP_S)
    windows = []
    for i in range(0, rec.data.shape[1], 100):
        chunk = Chunk(np.ascontiguousarray(rec.data[:, i : i + 100]), i, 1000.0 + i / rec.fs, rec.fs)
        windows += pipeline.push(chunk)
    for window in windows:
        assert window.end_clock_s == pytest.approx(1000.0 + (window.end_index - 1) / 256, abs=1e-6)


def test_gap_resets_the_front_end_and_is_flagged_not_glued(shared_data):
    config = FrontendConfig()
    rec = load_canonical(shared_data / "background" / "eegmat" / "Subject00_1.edf", config)
    fs = rec.fs
    cut, resume = 41_000, 51_000  # samples at 500 Hz: 20 s of signal never arrive
    pipeline = BedPipeline(config, fs, HOP_S)
    rng = np.random.default_rng(7)
    windows = _stream(pipeline, rec.data[:, :cut], fs, rng)
    windows += _stream(pipeline, rec.data[:, resume:], fs, rng, first_index=resume)
    assert pipeline.n_resets == 1
    gap_start = Frontend(config, fs).resampler.n_out_for(cut)
    gap_stop = math.ceil(resume * 256 / fs)
    assert pipeline.ring.gaps == [(gap_start, gap_stop)]
    ends = [w.end_index for w in windows]
    # Windows whose newest hop lies entirely in the gap are skipped, all others are emitted on the grid.
    grid = range(WINDOW_SAMPLES, windows[-1].end_index + 1, HOP)
    assert ends == [e for e in grid if e - HOP < gap_start or e > gap_stop]
    assert any(e - HOP < gap_start < e for e in ends)  # the window holding the gap's start is scored
    # After the gap: a fresh front-end on the new segment, placed at its true time.
    after = Frontend(config, fs).process(rec.data[:, resume:])
    for window in windows:
        expected_valid = (np.arange(window.start_index, window.end_index) < gap_start) | (
            np.arange(window.start_index, window.end_index) >= gap_stop
        )
        np.testing.assert_array_equal(window.valid, expected_valid)
        assert window.has_gap == (not expected_valid.all())
        if window.start_index >= gap_stop:
            lo = window.start_index - gap_stop
            expected = Frontend(config, fs).prepare_window(after[:, lo : lo + WINDOW_SAMPLES])
            assert np.abs(window.data - expected).max() <= 1e-4


def test_nonfinite_input_is_counted_in_the_windows_that_hold_it(shared_data):
    rec = load_canonical(shared_data / "labelled" / "hms_1628180742.edf")
    data = rec.data.copy()
    data[3, 1000:1010] = np.nan
    pipeline = BedPipeline(FrontendConfig(), rec.fs, HOP_S)
    windows = _stream(pipeline, data, rec.fs, np.random.default_rng(2))
    first = windows[0]
    assert first.nonfinite_replaced[3] == 10 and first.nonfinite_replaced.sum() == 10
    assert np.isfinite(first.data).all()
    assert windows[-1].nonfinite_replaced.sum() == 0  # the last window starts after sample 1010


def test_bad_chunks_are_errors():
    pipeline = BedPipeline(FrontendConfig(), 250.0, HOP_S)
    zeros = np.zeros((19, 100), np.float32)
    with pytest.raises(ValueError, match="200.0 Hz differs .* 250.0 Hz"):
        pipeline.push(Chunk(zeros, 0, 0.0, 200.0))
    pipeline.push(Chunk(zeros, 0, 0.0, 250.0))
    with pytest.raises(ValueError, match="starts at sample 50, before the end of the previous chunk"):
        pipeline.push(Chunk(zeros, 50, 0.2, 250.0))
    with pytest.raises(ValueError, match="hop_s"):
        BedPipeline(FrontendConfig(), 250.0, 0.001)
    with pytest.raises(ValueError, match="shape"):
        Chunk(np.zeros((8, 10), np.float32), 0, 0.0, 250.0)
    with pytest.raises(ValueError, match="float32"):
        Chunk(np.zeros((19, 10)), 0, 0.0, 250.0)


@pytest.mark.parametrize("gap_s", [60.0, 70.0, 120.0, 300.0])
def test_a_gap_longer_than_the_ring_buffer_never_fails_a_read(gap_s):
    # without a warm-up restart the scheduler still wants windows reaching back over the gap: the
    # samples before it are no longer held and are read as filler (nothing scored from them)
    pipeline = BedPipeline(FrontendConfig(), 256.0, hop_s=4.0, ring_s=120.0)
    rng = np.random.default_rng(0)
    windows = []
    index = 0
    for _part in range(2):
        for _ in range(int(90 * 256 / 64)):
            windows += pipeline.push(Chunk(rng.normal(0, 20, (19, 64)).astype(np.float32), index, index / 256, 256.0))
            index += 64
        index += int(gap_s * 256)
    after = [w for w in windows if w.end_index > 90 * 256 + gap_s * 256]
    assert after, "nothing scored after the gap"
    assert all(w.valid[w.stitch_from - w.start_index:w.stitch_to - w.start_index].any() for w in after)
