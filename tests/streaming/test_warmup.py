"""What a bed sees in its first minute and after a long gap, and how far back an onset can be dated."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.detector import FS_HZ, WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import RESTART_GAP_S, BedSession, PaddedWindow, run_recording
from ictal.streaming.chunk import Chunk
from ictal.streaming.edf import CanonicalRecording, load_canonical

FRONTEND = FrontendConfig()
THRESHOLDS = AlarmThresholds(tau_on=0.8, tau_off=0.5, min_duration_s=2.0, merge_gap_s=0.0, refractory_s=0.0)


@pytest.fixture(scope="module")
def eegmat(shared_data):
    return load_canonical(shared_data / "background" / "eegmat" / "Subject01_1.edf", FRONTEND)


class ConstantScorer:
    max_batch = 8

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[2]), 0.1, dtype=np.float32)


class PeekingScorer:
    """A scorer that uses all of its window's future: every sample of a window gets p = 1 as soon as
    a 70 Hz tone (the injected "seizure"; EEGMAT was recorded with a 45 Hz low-pass,
    so its own signal has next to none) appears anywhere in the window, so any backdating shows."""

    max_batch = 8

    def __init__(self, lookahead_s: float) -> None:
        self.lookahead_s = lookahead_s

    def predict(self, windows: np.ndarray) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(windows.mean(axis=1), axis=1)) ** 2
        freqs = np.fft.rfftfreq(windows.shape[2], 1 / FS_HZ)
        tone = spectrum[:, (freqs > 69.5) & (freqs < 70.5)].sum(axis=1)
        band = spectrum[:, (freqs > 30) & (freqs < 45)].sum(axis=1)
        hot = tone > band
        return np.repeat(hot[:, None].astype(np.float32), windows.shape[2], axis=1)


def _drive(session, data, fs, chunk, first_index=0, scorer=None):
    """Push ``data`` in chunks starting at ``first_index``; return the scored windows and their results."""
    scorer = scorer or ConstantScorer()
    out = []
    for start in range(0, data.shape[1], chunk):
        piece = np.ascontiguousarray(data[:, start:start + chunk])
        index = first_index + start
        windows, _ = session.push(Chunk(piece, index, index / fs, fs))
        for window in windows:
            out.append((window, session.score(window, scorer.predict(window.data[None])[0])))
    return out


def test_a_bed_is_scored_from_min_history_after_connecting(eegmat):
    fs = eegmat.fs
    session = BedSession("bed-1", FRONTEND, fs, THRESHOLDS, hop_s=4.0)  # min_history_s 10 by default
    scored = _drive(session, eegmat.data[:, : int(70 * fs)], fs, 125)
    first_window, first = scored[0]
    assert isinstance(first_window, PaddedWindow) and first_window.end_index == 10 * FS_HZ
    assert first.segments[0][0] == 6 * FS_HZ  # 10 s of history - 4 s hop - 0 s lookahead
    assert all(result.usable for _, result in scored)  # padding is not a gap: the first minute is watched
    covered = np.concatenate([np.arange(f, f + s.size) for _, r in scored for f, s in r.segments])
    np.testing.assert_array_equal(covered, np.arange(6 * FS_HZ, covered[-1] + 1))  # no hole, no repeat


@pytest.mark.parametrize("gap_s", [60.0, 70.0, 200.0])
def test_after_a_long_gap_the_bed_is_scored_again_from_min_history_not_after_a_minute(eegmat, gap_s):
    fs = eegmat.fs
    session = BedSession("bed-2", FRONTEND, fs, THRESHOLDS, hop_s=4.0)
    before = _drive(session, eegmat.data[:, : int(70 * fs)], fs, 125)
    resume_in = int((70 + gap_s) * fs)
    after = _drive(session, eegmat.data[:, int(70 * fs): int(180 * fs)], fs, 125, first_index=resume_in)
    assert before and after
    resume = resume_in * FS_HZ // int(fs)
    assert session.pipeline.n_restarts == 1
    first_window, first = after[0]
    # warm-up again: a padded window with 10 s of post-gap history, nothing from before the gap
    assert isinstance(first_window, PaddedWindow)
    assert first_window.end_index == resume + 10 * FS_HZ
    assert first_window.padding_samples == WINDOW_SAMPLES - 10 * FS_HZ
    assert first.usable and first.segments[0][0] == resume + 6 * FS_HZ
    assert all(result.usable for _, result in after)


def test_a_short_gap_does_not_restart_the_warm_up(eegmat):
    fs = eegmat.fs
    session = BedSession("bed-3", FRONTEND, fs, THRESHOLDS, hop_s=4.0)
    _drive(session, eegmat.data[:, : int(70 * fs)], fs, 125)
    short = RESTART_GAP_S - 1.0
    after = _drive(session, eegmat.data[:, int(70 * fs): int(100 * fs)], fs, 125,
                   first_index=int((70 + short) * fs))
    assert session.pipeline.n_restarts == 0
    assert not any(isinstance(w, PaddedWindow) for w, _ in after)


@pytest.mark.parametrize("min_history_s", [10.0, 60.0])  # 60: the first window is a full one
@pytest.mark.parametrize("lookahead_s", [0.0, 2.0, 5.0])
def test_an_onset_at_t_is_never_reported_before_t_minus_lookahead_minus_hop(eegmat, lookahead_s, min_history_s):
    fs = eegmat.fs
    hop_s = 4.0
    rng = np.random.default_rng(3)
    backdated = []
    for onset_s in rng.uniform(12.0, 150.0, size=4):
        data = eegmat.data[:, : int(170 * fs)].copy()
        lo = int(onset_s * fs)
        data[:, lo:] += 5.0 * np.sin(2 * np.pi * 70.0 * np.arange(data.shape[1] - lo) / fs)  # the "seizure"
        recording = CanonicalRecording(data=data, fs=fs, annotations=[], montage=eegmat.montage,
                                       path=eegmat.path)
        result = run_recording(recording, PeekingScorer(lookahead_s), FRONTEND, THRESHOLDS, hop_s,
                               min_history_s=min_history_s)
        assert [e.kind for e in result.events][:1] == ["onset"], onset_s
        earliest = onset_s - lookahead_s - hop_s
        hot = result.times_s[np.nan_to_num(result.probabilities) > 0.5]
        assert hot.size and hot[0] >= earliest - 1 / FS_HZ, (onset_s, hot[0])
        onset = result.events[0]
        assert onset.onset_s >= earliest - 1 / FS_HZ
        backdated.append(onset.onset_s < onset_s)
        # and the alarm leaves no earlier than the signal it used: the window's end is past the onset
        assert onset.window_end_s >= onset_s
    # the peeking scorer does date onsets before the truth (the bound is not vacuous)
    assert any(backdated)
