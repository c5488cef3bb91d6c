"""BedSession: quality gate (suppression and recovery), gap events, padded warm-up windows, skipping to
the newest window, and run_recording's chunking invariance, on real EEG."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import detect_events
from ictal.detector import WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import BedSession, PaddedWindow, run_recording
from ictal.streaming.chunk import Chunk
from ictal.streaming.edf import load_canonical

FRONTEND = FrontendConfig()


class ConstantScorer:
    """Scores every window with the same probability (isolates the session's own logic)."""

    max_batch = 8

    def __init__(self, p: float) -> None:
        self.p = p

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[2]), self.p, dtype=np.float32)


class LineLengthScorer:
    """A deterministic data-dependent scorer: smoothed line length of the normalised window."""

    max_batch = 8

    def predict(self, windows: np.ndarray) -> np.ndarray:
        ll = np.abs(np.diff(windows, axis=2)).mean(axis=1)
        ll = np.concatenate([ll[:, :1], ll], axis=1)
        kernel = np.ones(2560) / 2560
        smooth = np.stack([np.convolve(x, kernel, mode="same") for x in ll])
        return (1.0 / (1.0 + np.exp(-(smooth - 0.5) * 8))).astype(np.float32)


@pytest.fixture(scope="module")
def eegmat(shared_data):
    return load_canonical(shared_data / "background" / "eegmat" / "Subject00_1.edf", FRONTEND)


def _chunks(data: np.ndarray, fs: float, chunk: int, skip: tuple[int, int] | None = None):
    for start in range(0, data.shape[1], chunk):
        stop = min(start + chunk, data.shape[1])
        if skip is not None and skip[0] <= start < skip[1]:
            continue
        yield Chunk(data=np.ascontiguousarray(data[:, start:stop]), first_index=start, clock_s=start / fs, fs=fs)


def _drive(session: BedSession, chunks, scorer) -> list:
    events = []
    for chunk in chunks:
        windows, gap_events = session.push(chunk)
        events.extend(gap_events)
        for window in windows:
            events.extend(session.score(window, scorer.predict(window.data[None])[0]).events)
    return events


THRESHOLDS = AlarmThresholds(tau_on=0.8, tau_off=0.5, min_duration_s=10.0, merge_gap_s=30.0, refractory_s=60.0)


def test_alarms_suppressed_while_input_unusable_and_resumed_after(eegmat):
    fs = eegmat.fs
    data = eegmat.data.copy()
    lo, hi = int(70 * fs), int(72 * fs)
    data[:5, lo:hi] = np.nan  # a 2 s NaN burst on 5 channels: more than max_bad_channels (3)
    session = BedSession("bed-a", FRONTEND, fs, THRESHOLDS, hop_s=4.0)
    events = _drive(session, _chunks(data, fs, 125), ConstantScorer(0.95))
    kinds = [(e.kind, e.reason) for e in events]
    assert kinds == [
        ("onset", "min_duration"),
        ("offset", "signal_unusable"),
        ("signal_quality", "signal_unusable"),
        ("signal_quality", "signal_usable"),
        ("onset", "min_duration"),
    ], kinds
    first_onset, offset, unusable, usable, second_onset = events
    # scored from min_history_s (10 s) on; the first window's span is its newest hop: 6-10 s
    assert first_onset.onset_s == 6.0 and first_onset.stream_time_s == pytest.approx(16.0, abs=0.01)
    # 16 s lies in the span [14, 18) of the window ending at 18 s: the alarm leaves when it is scored
    assert first_onset.window_end_s == pytest.approx(18.0)
    # the first window overlapping the burst ends one hop after it starts; the last one starts before it ends
    assert 70.0 < unusable.stream_time_s <= 76.0
    assert any("non-finite" in p for p in unusable.problems)
    assert offset.offset_s == pytest.approx(unusable.stream_time_s - 4.0, abs=1e-6)
    assert 72.0 + 60.0 <= usable.stream_time_s <= 72.0 + 64.0
    # the refractory period is not carried over the suppression: the onset follows min_duration later
    assert second_onset.onset_s == pytest.approx(usable.stream_time_s - 4.0, abs=1e-6)
    assert second_onset.stream_time_s - second_onset.onset_s == pytest.approx(10.0, abs=0.01)


def test_gap_emits_quality_event_and_closes_the_alarm(eegmat):
    fs = eegmat.fs
    chunk = 250
    session = BedSession("bed-b", FRONTEND, fs, THRESHOLDS, hop_s=4.0)
    skip = (int(90 * fs), int(93 * fs))  # 3 s lost: less than 10 % of a window, so still usable
    events = _drive(session, _chunks(eegmat.data, fs, chunk, skip), ConstantScorer(0.95))
    gaps = [e for e in events if e.kind == "signal_quality" and e.reason == "gap"]
    assert len(gaps) == 1
    assert gaps[0].stream_time_s == pytest.approx(93.0)
    assert f"{int(3 * fs)} samples" in gaps[0].detail
    assert session.samples_lost == int(3 * fs) and session.n_gaps == 1
    offsets = [e for e in events if e.kind == "offset"]
    assert [e.reason for e in offsets] == ["gap"]
    assert offsets[0].offset_s == pytest.approx(90.0, abs=0.01)
    assert not [e for e in events if e.kind == "signal_quality" and e.reason == "signal_unusable"]


def test_run_recording_events_do_not_depend_on_chunking(shared_data):
    path = shared_data / "labelled" / "hms_1628180742.edf"
    thresholds = AlarmThresholds(tau_on=0.2, tau_off=0.15, min_duration_s=3.0, merge_gap_s=5.0, refractory_s=5.0)
    a = run_recording(path, LineLengthScorer(), FRONTEND, thresholds, 4.0, None, min_history_s=30.0)
    b = run_recording(path, LineLengthScorer(), FRONTEND, thresholds, 4.0, 37, min_history_s=30.0)
    # the first window ends at 30 s and yields its newest hop, 26-30 s; the last ends at 88 s
    assert a.first_index == b.first_index == 26 * 256
    assert a.probabilities.shape == b.probabilities.shape == (62 * 256,)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    strip = [(e.kind, e.stream_time_s, e.onset_s, e.offset_s, e.reason) for e in a.events]
    assert strip == [(e.kind, e.stream_time_s, e.onset_s, e.offset_s, e.reason) for e in b.events]
    assert [e.kind for e in a.events] == ["onset", "offset"]
    # the session's events are the post-processor's over the stitched output
    detected = detect_events(a.probabilities, 256.0, thresholds, t0_s=26.0)
    assert [(d.onset_s, d.offset_s) for d in detected] == [(a.events[0].onset_s, a.events[1].offset_s)]


def test_short_recording_is_scored_with_left_padded_windows(shared_data):
    path = shared_data / "labelled" / "iiic_01.edf"
    recording = load_canonical(path, FRONTEND)
    session = BedSession("bed-c", FRONTEND, recording.fs, THRESHOLDS, hop_s=4.0, min_history_s=30.0)
    windows = []
    for chunk in _chunks(recording.data, recording.fs, 50):
        windows.extend(session.push(chunk)[0])
    ends = [w.end_index for w in windows]
    held = session.pipeline.ring.end_index  # the resampler holds back a few samples of the 50 s
    assert 49 * 256 < held < 50 * 256
    assert ends == [30 * 256 + k * 4 * 256 for k in range(5)]  # 30, 34, ..., 46 s
    first = windows[0]
    assert isinstance(first, PaddedWindow) and first.padding_samples == WINDOW_SAMPLES - 30 * 256
    assert not first.data[:, : first.padding_samples].any()
    filtered, _ = session.pipeline.ring.read(0, 30 * 256)
    expected = session.pipeline.frontend.prepare_window(filtered)
    np.testing.assert_array_equal(first.data[:, first.padding_samples:], expected)
    # every padded window is judged on its history only: the zero padding is not a gap
    assert all(session.assess(w).usable for w in windows)

    # every window yields its newest hop only: 26-30 s, ..., 42-46 s
    assert [(w.stitch_from // 256, w.stitch_end // 256) for w in windows] == [(26 + 4 * k, 30 + 4 * k)
                                                                              for k in range(5)]
    result = run_recording(path, ConstantScorer(0.1), FRONTEND, THRESHOLDS, 4.0, min_history_s=30.0)
    assert result.first_index == 26 * 256 and result.probabilities.size == 20 * 256
    assert not np.isnan(result.probabilities).any()
    # by default (min_history_s 10) the 50 s clip is scored from 6 s on
    default = run_recording(path, ConstantScorer(0.1), FRONTEND, THRESHOLDS, 4.0)
    assert default.first_index == 6 * 256 and default.probabilities.size == 40 * 256
    unscored = run_recording(path, ConstantScorer(0.1), FRONTEND, THRESHOLDS, 4.0, min_history_s=60.0)
    assert unscored.probabilities.size == 0 and unscored.events == []


def test_discarded_windows_are_covered_by_the_newest_one(eegmat):
    fs = eegmat.fs
    session = BedSession("bed-d", FRONTEND, fs, THRESHOLDS, hop_s=4.0, min_history_s=60.0)
    windows = []
    for chunk in _chunks(eegmat.data[:, : int(80 * fs)], fs, 500):
        windows.extend(session.push(chunk)[0])
    assert [w.end_index // 256 for w in windows] == [60, 64, 68, 72, 76, 80]
    first = session.score(windows[0], np.full(WINDOW_SAMPLES, 0.1, dtype=np.float32))
    assert first.segments[0][0] == 56 * 256 and first.segments[0][1].size == 4 * 256  # its newest hop only
    for stale in windows[1:5]:
        session.discard(stale)
    newest = session.score(windows[5], np.linspace(0, 1, WINDOW_SAMPLES, dtype=np.float32))
    (start, probs), = newest.segments
    assert start == 60 * 256 and probs.size == 20 * 256  # the four skipped hops and its own
    np.testing.assert_array_equal(probs, np.linspace(0, 1, WINDOW_SAMPLES, dtype=np.float32)[40 * 256:])
    assert session.windows_discarded == 4
    with pytest.raises(ValueError, match="push order"):
        session.score(windows[3], np.zeros(WINDOW_SAMPLES, dtype=np.float32))


def test_non_finite_probabilities_make_the_window_unusable(eegmat):
    fs = eegmat.fs
    session = BedSession("bed-e", FRONTEND, fs, THRESHOLDS, hop_s=4.0)
    windows = []
    for chunk in _chunks(eegmat.data[:, : int(64 * fs)], fs, 500):
        windows.extend(session.push(chunk)[0])
    probs = np.full(WINDOW_SAMPLES, 0.9, dtype=np.float32)
    probs[100] = np.nan
    result = session.score(windows[0], probs)
    assert not result.usable
    assert [(e.kind, e.reason) for e in result.events] == [("signal_quality", "signal_unusable")]
    assert "non-finite" in result.events[0].detail


def test_an_input_fault_suppresses_alarms_until_its_windows_are_gone(shared_data):
    rec = load_canonical(shared_data / "labelled/hms_1628180742.edf", FRONTEND)
    session = BedSession("bed-x", FRONTEND, rec.fs, AlarmThresholds(), hop_s=4.0, min_history_s=8.0)
    step, states = int(rec.fs), []
    for first in range(0, rec.data.shape[1], step):
        if first == 20 * step:
            session.set_input_fault("rate", "stream rate: announced 256 Hz, measured 200 Hz")
        if first == 30 * step:
            session.clear_input_fault("rate", first)
        chunk = Chunk(np.ascontiguousarray(rec.data[:, first:first + step]), first, first / rec.fs, rec.fs)
        windows, _ = session.push(chunk)
        for window in windows:
            result = session.score(window, np.full(WINDOW_SAMPLES, 0.1, dtype=np.float32))
            states.append((window.end_index / 256, result.usable,
                           [e.reason for e in result.events if e.kind == "signal_quality"]))
    unusable = [t for t, usable, _ in states if not usable]
    assert unusable and 20 <= unusable[0] <= 22 and unusable[-1] < 30 + 60 + 5, states
    reasons = [r for _, _, rs in states for r in rs]
    assert reasons.count("signal_unusable") == 1
    assert session.quality.usable or states[-1][0] < 90 + 4, states[-1]
