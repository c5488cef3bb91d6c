"""`training.injected_eval`: latency, sensitivity and false alarms on seizures injected at a known onset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.schema import AlarmEvent
from ictal.detector import WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.training.injected_eval import (
    CachedScorer,
    evaluate_injected,
    inject_copy,
    plan_placements,
    seizure_outcome,
    wilson_interval,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REST = DATA / "background" / "eegmat" / "Subject08_1.edf"
needs_data = pytest.mark.skipif(not REST.is_file(), reason=f"real EEG not present ({REST} missing; see "
                                "../shared/data/README.md)")

HOP_S = 4.0
THRESHOLDS = AlarmThresholds(min_duration_s=2.0)


def _key(window: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(window).tobytes(), digest_size=16).digest()


class NeverFires:
    """Probability 0 everywhere."""

    lookahead_s = 0.0

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.zeros((windows.shape[0], windows.shape[2]), dtype=np.float32)


class RecentAmplitude:
    """Causal within the window: 1 where the channel-mean |x| over the trailing 1 s exceeds a level."""

    lookahead_s = 0.0

    def __init__(self, level: float = 1.6) -> None:
        self.level = level

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = np.abs(windows).mean(axis=1)
        c = np.cumsum(x, axis=1)
        k = 256
        trailing = np.empty_like(x)
        trailing[:, :k] = c[:, :k] / np.arange(1, k + 1)
        trailing[:, k:] = (c[:, k:] - c[:, :-k]) / k
        return (trailing > self.level).astype(np.float32)


class Recorder(NeverFires):
    """Never fires; remembers every window it was given (to learn the clean recording's windows)."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.keys.update(_key(w) for w in windows)
        return super().predict(windows)


class PeeksIntoFuture:
    """An oracle that marks the WHOLE window seizure as soon as any of its samples holds injected signal.

    It knows the windows of the clean recording; a window it has not seen holds injected signal,
    wherever in the window (the newest samples included): it uses all the future the window offers.
    """

    def __init__(self, clean_keys: set[bytes], lookahead_s: float) -> None:
        self.clean_keys = clean_keys
        self.lookahead_s = lookahead_s

    def predict(self, windows: np.ndarray) -> np.ndarray:
        fired = np.array([_key(w) not in self.clean_keys for w in windows], dtype=np.float32)
        return np.repeat(fired[:, None], windows.shape[2], axis=1)


@pytest.fixture(scope="module")
def rest_recording():
    from ictal.streaming.edf import load_canonical

    return "background__eegmat__Subject08_1", load_canonical(REST, FrontendConfig())


# -- placements and measurement (no data) ----------------------------------------------------------


def test_placements_are_deterministic_and_leave_clean_signal_before_and_room_after():
    fs, n = 500.0, 182 * 500
    a = plan_placements("rec_a", n, fs, 5, seed=3, clean_before_s=60.0, keep_after_s=30.0)
    assert a == plan_placements("rec_a", n, fs, 5, seed=3, clean_before_s=60.0, keep_after_s=30.0)
    assert a != plan_placements("rec_a", n, fs, 5, seed=4, clean_before_s=60.0, keep_after_s=30.0)
    assert a != plan_placements("rec_b", n, fs, 5, seed=3, clean_before_s=60.0, keep_after_s=30.0)
    assert len(a) == 5 and len({p.onset_sample for p in a}) == 5
    for p in a:
        assert p.onset_s >= 60.0
        assert 15.0 <= p.duration_s <= 60.0
        assert p.onset_s + p.duration_s + 30.0 <= n / fs + 1 / fs


def test_recording_too_short_hosts_no_seizure():
    assert plan_placements("arith", 62 * 500, 500.0, 3, seed=0) == []


def _onset(onset_s: float, window_end_s: float) -> AlarmEvent:
    return AlarmEvent(bed_id="b", kind="onset", stream_time_s=window_end_s - 1.0, onset_s=onset_s,
                      window_end_s=window_end_s)


def _offset(onset_s: float, offset_s: float) -> AlarmEvent:
    return AlarmEvent(bed_id="b", kind="offset", stream_time_s=offset_s, onset_s=onset_s, offset_s=offset_s)


def test_latency_is_window_end_of_first_overlapping_alarm_minus_true_onset():
    events = [_onset(20.0, 25.0), _offset(20.0, 40.0),  # a false alarm long before the seizure
              _onset(101.5, 107.0), _offset(101.5, 130.0),
              _onset(140.0, 144.0), _offset(140.0, 150.0)]
    out = seizure_outcome(events, 100.0, 135.0)
    assert out.detected and not out.pre_onset
    assert out.latency_s == pytest.approx(7.0)
    assert out.onset_error_s == pytest.approx(1.5)


def test_alarm_decided_before_onset_is_an_overlap_hit_without_latency():
    out = seizure_outcome([_onset(90.0, 95.0), _offset(90.0, 120.0)], 100.0, 135.0)
    assert out.detected and out.pre_onset and out.latency_s is None


def test_alarm_after_offset_or_still_open_counts_only_when_it_overlaps():
    assert not seizure_outcome([_onset(136.0, 140.0), _offset(136.0, 150.0)], 100.0, 135.0).detected
    open_alarm = seizure_outcome([_onset(110.0, 115.0)], 100.0, 135.0)  # no offset: open to the end
    assert open_alarm.detected and open_alarm.latency_s == pytest.approx(15.0)


def test_wilson_interval_known_values():
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = wilson_interval(0, 6)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.3903, abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_cached_scorer_scores_each_distinct_window_once():
    calls = []

    class Counting(NeverFires):
        def predict(self, windows):
            calls.append(windows.shape[0])
            return windows[:, 0, :] * 0 + windows[:, 0, :1]

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 19, WINDOW_SAMPLES)).astype(np.float32)
    cached = CachedScorer(Counting())
    first = cached.predict(np.stack([a, b, a]))
    second = cached.predict(np.stack([b, a]))
    assert calls == [2]
    np.testing.assert_array_equal(first[0], second[1])
    assert (cached.windows_scored, cached.windows_reused) == (2, 3)


# -- through the daemon path on real EEG -----------------------------------------------------------


@needs_data
def test_injected_copy_equals_clean_signal_up_to_the_true_onset(rest_recording):
    rid, rec = rest_recording
    placement = plan_placements(rid, rec.data.shape[1], rec.fs, 1, seed=0)[0]
    copy, seizure = inject_copy(rec, placement, cut_after_s=10.0)
    assert seizure.onset_sample == placement.onset_sample
    differs = np.flatnonzero(np.any(copy.data != rec.data[:, :copy.data.shape[1]], axis=0))
    assert differs[0] >= placement.onset_sample and differs[0] < placement.onset_sample + rec.fs
    assert copy.data.shape[1] == seizure.offset_sample + int(10.0 * rec.fs)


@needs_data
def test_latency_is_measured_from_the_true_onset_in_seconds_of_the_file(rest_recording):
    rid, rec = rest_recording
    result = evaluate_injected(RecentAmplitude(), [rest_recording], FrontendConfig(), THRESHOLDS, hop_s=HOP_S,
                               seizures_per_recording=2, seed=0, amplitude_ratio=(10.0, 10.0))
    placements = plan_placements(rid, rec.data.shape[1], rec.fs, 2, seed=0)
    assert [s.onset_s for s in result.seizures] == pytest.approx([p.onset_sample / rec.fs for p in placements])
    assert result.hits == 2 and result.latencies_s.size == 2
    # A causal scorer decides after the onset, and these strong seizures are seen within half a minute.
    assert np.all(result.latencies_s >= 0.0) and np.all(result.latencies_s < 30.0)
    assert result.windows_reused > 0  # the copies' pre-onset windows are the clean recording's
    assert result.auroc > 0.6


@needs_data
@pytest.mark.parametrize("lookahead_s", [0.0, 5.0])
def test_future_peeking_scorer_cannot_alarm_before_onset_minus_lookahead_minus_hop(rest_recording, lookahead_s):
    from ictal.streaming.bed import run_recording

    _, rec = rest_recording
    recorder = Recorder()
    run_recording(rec, recorder, FrontendConfig(), THRESHOLDS, HOP_S, lookahead_s=lookahead_s)
    oracle = PeeksIntoFuture(recorder.keys, lookahead_s)
    result = evaluate_injected(oracle, [rest_recording], FrontendConfig(), THRESHOLDS, hop_s=HOP_S,
                               seizures_per_recording=3, seed=1)
    assert result.lookahead_s == lookahead_s and result.false_alarms == 0
    assert result.hits == 3
    for s in result.seizures:
        assert not s.pre_onset
        # Marks as far back as the contract lets it, and no further.
        assert -(lookahead_s + HOP_S) <= s.onset_error_s <= -lookahead_s + 0.05
        # The alarm leaves with the first window that holds seizure signal: after the onset, within a hop.
        assert 0.0 <= s.latency_s <= HOP_S + 0.05
    assert result.earliest_onset_error_s >= result.onset_error_bound_s == -(lookahead_s + HOP_S)


@needs_data
def test_scorer_that_never_fires_has_no_sensitivity_and_no_false_alarm(rest_recording):
    result = evaluate_injected(NeverFires(), [rest_recording], FrontendConfig(), THRESHOLDS, hop_s=HOP_S,
                               seizures_per_recording=2, seed=0)
    assert len(result.seizures) == 2
    assert result.hits == 0 and result.sensitivity == 0.0 and result.latencies_s.size == 0
    assert result.false_alarms == 0 and result.fa_per_24h == 0.0
    assert result.clean_duration_s == pytest.approx(rec_duration(rest_recording))
    assert result.auroc == pytest.approx(0.5)  # every probability tied


def rec_duration(item) -> float:
    return item[1].duration_s
