"""The hysteresis post-processor: rules, edge cases, chunking invariance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import PostProcessor, detect_events
from tests.alarms.reference_pp import reference_events


def th(**kw) -> AlarmThresholds:
    base = dict(tau_on=0.8, tau_off=0.5, min_duration_s=3.0, merge_gap_s=2.0, max_duration_s=100.0,
                refractory_s=0.0)
    base.update(kw)
    return AlarmThresholds(**base)


def spans(events):
    return [(e.onset_s, e.offset_s) for e in events]


def as_tuples(events):
    return [(e.onset_s, e.offset_s, e.peak, e.mean, e.raised_s, e.end_reason) for e in events]


def test_hand_computed_case():
    # 1 Hz; n_min = 3, n_gap = 2, refractory 5 samples
    p = [0.1, 0.9, 0.85, 0.95, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1]
    events = detect_events(np.array(p), 1.0, th(refractory_s=5.0))
    assert len(events) == 2
    first, second = events
    # crossing at 1 s; minimum duration met at sample 3; dip at 5 (1 sample) merged; dip at 7-8 ends it
    assert (first.onset_s, first.raised_s, first.offset_s, first.end_reason) == (1.0, 3.0, 7.0, "below_tau_off")
    assert first.peak == pytest.approx(0.95)
    assert first.mean == pytest.approx((0.9 + 0.85 + 0.95 + 0.6 + 0.4 + 0.7) / 6)
    # refractory until 7 + 5 = 12: the run from 10 starts its candidate at 12
    assert (second.onset_s, second.raised_s, second.offset_s) == (12.0, 14.0, 15.0)
    assert second.mean == pytest.approx(0.9)


def test_without_refractory_the_second_event_starts_at_its_crossing():
    p = [0.1, 0.9, 0.85, 0.95, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1]
    assert spans(detect_events(np.array(p), 1.0, th(refractory_s=0.0))) == [(1.0, 7.0), (10.0, 15.0)]


def test_flicker_around_tau_on_never_raises_an_alarm():
    # half of the samples are above tau_on, but never 3 in a row
    p = np.tile([0.81, 0.81, 0.79], 200)
    assert detect_events(p, 1.0, th()) == []
    # the same flicker with runs of 3 does raise one
    assert len(detect_events(np.tile([0.81, 0.81, 0.81, 0.79], 5), 1.0, th(merge_gap_s=50.0))) == 1


def test_onset_needs_min_duration_above_tau_on():
    short = np.r_[np.zeros(5), np.full(2, 0.9), np.zeros(5)]
    exact = np.r_[np.zeros(5), np.full(3, 0.9), np.zeros(5)]
    assert detect_events(short, 1.0, th()) == []
    events = detect_events(exact, 1.0, th())
    assert spans(events) == [(5.0, 8.0)]
    assert events[0].raised_s - events[0].onset_s == 2.0  # emitted at the sample completing 3 samples


def test_hysteresis_keeps_event_between_tau_off_and_tau_on():
    p = np.r_[np.full(3, 0.9), np.full(20, 0.6), np.zeros(5)]
    assert spans(detect_events(p, 1.0, th())) == [(0.0, 23.0)]


def test_dip_shorter_than_merge_gap_is_merged():
    p = np.r_[np.full(5, 0.9), np.full(3, 0.1), np.full(5, 0.9), np.zeros(10)]
    events = detect_events(p, 1.0, th(merge_gap_s=4.0))
    assert spans(events) == [(0.0, 13.0)]
    assert events[0].mean == pytest.approx((10 * 0.9 + 3 * 0.1) / 13)  # the merged dip counts


def test_dip_as_long_as_merge_gap_ends_the_event():
    p = np.r_[np.full(5, 0.9), np.full(4, 0.1), np.full(5, 0.9), np.zeros(10)]
    events = detect_events(p, 1.0, th(merge_gap_s=4.0))
    assert spans(events) == [(0.0, 5.0), (9.0, 14.0)]
    assert events[0].raised_s == 2.0
    assert events[0].mean == pytest.approx(0.9)  # the final dip does not count


def test_event_at_start_and_end_of_data():
    p = np.full(10, 0.95)
    events = detect_events(p, 2.0, th(), t0_s=100.0)
    assert as_tuples(events) == [(100.0, 105.0, 0.95, pytest.approx(0.95), 102.5, "end_of_data")]  # 6 samples at 2 Hz


def test_dip_in_progress_at_end_of_data_gives_offset_at_dip_start():
    p = np.r_[np.full(6, 0.9), np.full(1, 0.1)]
    assert as_tuples(detect_events(p, 1.0, th()))[0][:2] == (0.0, 6.0)


def test_max_duration_closes_and_reannounces():
    p = np.ones(25)
    events = detect_events(p, 1.0, th(min_duration_s=2.0, max_duration_s=10.0))
    assert [(e.onset_s, e.offset_s, e.end_reason) for e in events] == [
        (0.0, 10.0, "max_duration"), (10.0, 20.0, "max_duration"), (20.0, 25.0, "end_of_data")]


def test_refractory_delays_the_next_onset():
    p = np.ones(25)
    events = detect_events(p, 1.0, th(min_duration_s=2.0, max_duration_s=10.0, refractory_s=3.0))
    assert spans(events) == [(0.0, 10.0), (13.0, 23.0)]


def test_latency_is_min_duration_at_256_hz():
    rate = 256.0
    p = np.r_[np.zeros(2560), np.full(256 * 30, 0.99), np.zeros(256 * 40)]
    pp = PostProcessor(th(min_duration_s=10.0, merge_gap_s=30.0))
    onset = pp.feed(0.0, p, rate)[0]
    assert onset.kind == "onset" and onset.onset_s == 10.0
    assert onset.latency_s == pytest.approx(10.0 - 1 / rate)


def test_gap_in_stream_closes_event_at_the_gap():
    pp = PostProcessor(th())
    out = pp.feed(0.0, np.full(10, 0.9), 1.0)
    out += pp.feed(20.0, np.full(10, 0.9), 1.0)
    out += pp.finish()
    assert [(t.kind, t.onset_s, t.offset_s, t.reason) for t in out] == [
        ("onset", 0.0, None, "min_duration"), ("offset", 0.0, 10.0, "gap"),
        ("onset", 20.0, None, "min_duration"), ("offset", 20.0, 30.0, "end_of_data")]


@pytest.mark.parametrize("probs, message", [
    (np.array([0.1, np.nan]), "non-finite"),
    (np.array([0.1, 1.5]), r"\[0, 1\]"),
    (np.zeros((2, 3)), "1-D"),
])
def test_bad_probabilities_are_rejected(probs, message):
    with pytest.raises(ValueError, match=message):
        PostProcessor(th()).feed(0.0, probs, 1.0)


def test_overlapping_chunk_and_rate_change_are_rejected():
    pp = PostProcessor(th())
    pp.feed(0.0, np.zeros(10), 1.0)
    with pytest.raises(ValueError, match="overlap"):
        pp.feed(5.0, np.zeros(10), 1.0)
    with pytest.raises(ValueError, match="rate_hz changed"):
        pp.feed(10.0, np.zeros(10), 2.0)
    with pytest.raises(ValueError, match="first_time_s must be a finite"):
        pp.feed(float("nan"), np.zeros(10), 1.0)
    with pytest.raises(ValueError, match="rate_hz must be a positive"):
        PostProcessor(th()).feed(0.0, np.zeros(10), 0.0)


def test_thresholds_reject_tau_off_above_tau_on_and_max_below_min():
    with pytest.raises(ValueError, match="tau_off must be <= tau_on"):
        AlarmThresholds(tau_on=0.5, tau_off=0.6)
    with pytest.raises(ValueError, match="max_duration_s must be > min_duration_s"):
        AlarmThresholds(min_duration_s=20.0, max_duration_s=10.0)


LEVELS = [0.05, 0.3, 0.5, 0.6, 0.8, 0.95]


@st.composite
def cases(draw):
    tau_on = draw(st.sampled_from([0.5, 0.8]))
    thresholds = AlarmThresholds(
        tau_on=tau_on, tau_off=draw(st.sampled_from([x for x in (0.3, 0.5, 0.8) if x <= tau_on])),
        # halves of seconds at 2 Hz: odd and even sample counts
        min_duration_s=draw(st.integers(0, 8)) / 2, merge_gap_s=draw(st.integers(0, 8)) / 2,
        max_duration_s=draw(st.integers(9, 24)) / 2, refractory_s=draw(st.integers(0, 8)) / 2)
    blocks = draw(st.lists(st.tuples(st.sampled_from(LEVELS), st.integers(1, 6)), min_size=1, max_size=25))
    probs = np.concatenate([np.full(k, v) for v, k in blocks])
    cuts = draw(st.lists(st.integers(0, len(probs)), max_size=8))
    return thresholds, probs, sorted(set(cuts) | {0, len(probs)})


@settings(max_examples=300, deadline=None)
@given(cases())
def test_same_events_whatever_the_chunking_and_equal_to_the_per_sample_rules(case):
    thresholds, probs, cuts = case
    rate = 2.0
    whole = detect_events(probs, rate, thresholds, t0_s=5.0)
    pp = PostProcessor(thresholds)
    transitions = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        transitions += pp.feed(5.0 + a / rate, probs[a:b], rate)
    transitions += pp.finish()
    whole_pp = PostProcessor(thresholds)
    whole_transitions = whole_pp.feed(5.0, probs, rate) + whole_pp.finish()
    assert [(t.kind, t.time_s, t.onset_s, t.offset_s, t.reason) for t in transitions] == [
        (t.kind, t.time_s, t.onset_s, t.offset_s, t.reason) for t in whole_transitions]
    np.testing.assert_allclose([t.mean for t in transitions], [t.mean for t in whole_transitions], rtol=1e-12)
    np.testing.assert_allclose([t.peak for t in transitions], [t.peak for t in whole_transitions], rtol=1e-12)
    reference = reference_events(probs, rate, thresholds, t0_s=5.0)
    assert [(e[0], e[1], e[4], e[5]) for e in reference] == [
        (e.onset_s, e.offset_s, e.raised_s, e.end_reason) for e in whole]
    np.testing.assert_allclose([e[3] for e in reference], [e.mean for e in whole], rtol=1e-12)


def test_a_day_at_256_hz_runs_offline():
    rng = np.random.default_rng(1)
    probs = np.repeat(rng.random(3600 * 24), 256) ** 6  # one day, many transitions
    events = detect_events(probs, 256.0, th(min_duration_s=2.0, merge_gap_s=2.0))
    reference = detect_events(probs[: 256 * 3600], 256.0, th(min_duration_s=2.0, merge_gap_s=2.0))
    assert len(events) > 10
    # the first hour gives the same events alone as inside the day (those that end within it)
    inside = [e for e in events if e.offset_s < 3599.0]
    assert spans(inside) == spans([e for e in reference if e.offset_s < 3599.0])
