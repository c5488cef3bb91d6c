"""Evaluation figures from stored probabilities: hysteresis -> csv_bi -> OVERLAP hand cases, gaps and
suppression, AUROC/AUPRC, the tau_on sweep and onset latency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import PostProcessor, detect_events
from ictal.training.evaluate_metrics import (
    DaemonEvent,
    ScoredRecording,
    auroc_auprc,
    events_from_probs,
    hypothesis,
    overlap_counts,
    sample_auc,
    seizure_latencies,
    sensitivity_at_budgets,
    sweep,
    tau_on_grid,
    with_tau_on,
)
from ictal.training.scoring.annotations import Annotation, Event, write_csv_bi
from ictal.training.scoring.report import score_lists

RATE = 4.0  # Hz: quarter-second samples keep the hand computation readable
RULES = AlarmThresholds(tau_on=0.8, tau_off=0.5, min_duration_s=10.0, merge_gap_s=5.0, max_duration_s=600.0,
                        refractory_s=0.0)


def _probs(duration_s: float, pieces: list[tuple[float, float, float]], base: float = 0.1) -> np.ndarray:
    p = np.full(int(duration_s * RATE), base)
    for start, stop, value in pieces:
        p[int(start * RATE):int(stop * RATE)] = value
    return p


# 400 s: A (50-70 s at 0.9) is an event; B (100-105 s, 5 s) is too short; C (150-165 at 0.9, a 3 s dip
# to 0.3, then 168-180 at 0.6: above tau_off) is one event 150-180 s; D (250-262 at 0.85) is an event;
# E (300-330 at 0.7) never reaches tau_on.
HAND = _probs(400.0, [(50, 70, 0.9), (100, 105, 0.9), (150, 165, 0.9), (165, 168, 0.3), (168, 180, 0.6),
                      (250, 262, 0.85), (300, 330, 0.7)])
HAND_REF = [Event(55.0, 65.0, "seiz"), Event(120.0, 140.0, "seiz"), Event(172.0, 200.0, "seiz"),
            Event(300.0, 320.0, "seiz")]


def test_hysteresis_events_of_the_hand_case():
    events = detect_events(HAND, RATE, RULES)
    assert [(e.onset_s, e.offset_s) for e in events] == [(50.0, 70.0), (150.0, 180.0), (250.0, 262.0)]
    # the onset alarm is raised by the sample that completes the 10 s minimum duration
    assert [e.raised_s for e in events] == [59.75, 159.75, 259.75]
    assert events_from_probs(HAND, RATE, RULES) == events


def test_overlap_counts_of_csv_bi_files_written_from_the_post_processor_match_hand_counts(tmp_path):
    events = events_from_probs(HAND, RATE, RULES)
    (tmp_path / "ref").mkdir()
    (tmp_path / "hyp").mkdir()
    write_csv_bi(tmp_path / "ref" / "rec.csv_bi", Annotation(400.0, HAND_REF))
    write_csv_bi(tmp_path / "hyp" / "rec.csv_bi", hypothesis(events, 400.0))
    (tmp_path / "ref.list").write_text("ref/rec.csv_bi\n")
    (tmp_path / "hyp.list").write_text("hyp/rec.csv_bi\n")
    seiz = score_lists(tmp_path / "ref.list", tmp_path / "hyp.list").nedc["overlap"].labels["seiz"]
    # by hand: A hits 55-65, C hits 172-200, 120-140 and 300-320 are missed, D overlaps no seizure
    assert (seiz.targets, seiz.hits, seiz.misses, seiz.false_alarms) == (4, 2, 2, 1)
    assert seiz.sensitivity == pytest.approx(0.5)
    assert seiz.fa_per_24h == pytest.approx(1 / 400.0 * 86400)
    rec = ScoredRecording("rec", 400.0, HAND.astype(np.float32), np.zeros(HAND.size, np.int8), HAND_REF, RATE)
    counts = overlap_counts([rec], [events])
    assert (counts.targets, counts.hits, counts.false_alarms) == (4, 2, 1)


def test_a_gap_of_unscored_samples_closes_the_event_as_the_stream_post_processor_does():
    p = _probs(200.0, [(20, 60, 0.9), (100, 150, 0.9)])
    p[40 * 4:45 * 4] = np.nan  # 5 s never scored (a stream gap) inside the first run
    events = events_from_probs(p, RATE, RULES)
    pp = PostProcessor(RULES)
    transitions = pp.feed(0.0, p[:160], RATE) + pp.feed(45.0, p[180:], RATE) + pp.finish()
    offsets = [(t.onset_s, t.offset_s, t.reason) for t in transitions if t.kind == "offset"]
    assert [(e.onset_s, e.offset_s, e.end_reason) for e in events] == offsets
    assert offsets[0] == (20.0, 40.0, "gap")


def test_unusable_input_restarts_the_post_processor_without_carrying_the_refractory_period():
    rules = RULES.model_copy(update={"refractory_s": 100.0})
    p = _probs(300.0, [(20, 60, 0.9), (70, 120, 0.9)])
    usable = np.ones(p.size, bool)
    usable[60 * 4:70 * 4] = False  # 10 s of unusable input: probabilities exist but are withheld
    events = events_from_probs(p, RATE, rules, usable=usable)
    # the first event ends where usable data ends; the second starts at 70 s although the refractory
    # period (100 s) of a stream gap would forbid it: the daemon starts a fresh post-processor
    assert [(e.onset_s, e.offset_s) for e in events] == [(20.0, 60.0), (70.0, 120.0)]
    gap = p.copy()
    gap[60 * 4:70 * 4] = np.nan
    assert [(e.onset_s, e.offset_s) for e in events_from_probs(gap, RATE, rules)] == [(20.0, 60.0)]


def test_auroc_and_average_precision_of_a_hand_case():
    auroc, ap = auroc_auprc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert auroc == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered right
    assert ap == pytest.approx((1.0 + 2 / 3) / 2)  # precision 1 at recall 0.5, 2/3 at recall 1
    tied, ap_tied = auroc_auprc(np.full(5, 0.3), np.array([1, 0, 0, 0, 1]))
    assert tied == pytest.approx(0.5) and ap_tied == pytest.approx(0.4)
    assert all(math.isnan(x) for x in auroc_auprc(np.array([0.2, 0.3]), np.array([0, 0])))


def test_sample_auc_ignores_unrated_and_unscored_samples():
    probs = np.array([0.9, 0.1, 0.8, np.nan, 0.95, 0.05], dtype=np.float32)
    labels = np.array([1, 0, 1, 1, -1, -1], dtype=np.int8)
    auc = sample_auc([ScoredRecording("r", 6.0, probs, labels, [], 1.0)])
    assert (auc.n_positive, auc.n_negative, auc.n_unscored) == (2, 1, 1)
    assert auc.auroc == pytest.approx(1.0)


def _rec(rid: str, probs: np.ndarray, ref: list[Event]) -> ScoredRecording:
    return ScoredRecording(rid, probs.size / RATE, probs.astype(np.float32), np.zeros(probs.size, np.int8), ref, RATE)


def test_sweep_keeps_the_gap_and_finds_sensitivity_within_each_budget():
    # 2 h in all: one false alarm = 12 FA/24h. The seizure peaks at 0.75; a 0.9375 artefact is a
    # false alarm whenever tau_on <= 0.9375.
    a = _rec("a", _probs(3600.0, [(1000, 1100, 0.75), (2000, 2030, 0.9375)]), [Event(1000.0, 1100.0, "seiz")])
    b = _rec("b", _probs(3600.0, []), [])
    taus = tau_on_grid([a, b])
    points = sweep([a, b], [with_tau_on(RULES, t) for t in taus])
    for p in points:
        if p.tau_on <= 0.1:  # the 0.1 background itself is "above tau_on": events everywhere
            assert p.counts.false_alarms > 1
            continue
        assert p.thresholds.tau_on - p.thresholds.tau_off == pytest.approx(0.3) or p.thresholds.tau_off == p.tau_on / 2
        assert p.thresholds.min_duration_s == RULES.min_duration_s
        assert p.sensitivity == (1.0 if p.tau_on <= 0.75 else 0.0)
        assert p.counts.false_alarms == (1 if p.tau_on <= 0.9375 else 0)
    best = sensitivity_at_budgets(points, (1.0, 12.5))
    assert best[1.0].sensitivity == 0.0 and best[1.0].fa_per_24h == 0.0
    assert best[12.5].sensitivity == 1.0 and best[12.5].fa_per_24h == pytest.approx(12.0)
    assert best[12.5].tau_on == max(t for t in taus if t <= 0.75)


def test_latency_is_when_the_alarm_leaves_the_daemon_minus_the_annotated_onset():
    p = _probs(300.0, [(95, 140, 0.9)])
    rec = _rec("r", p, [Event(100.0, 150.0, "seiz")])
    rerun = events_from_probs(p, RATE, RULES)
    lat = seizure_latencies(rec, rerun)
    assert len(lat) == 1
    # crossing at 95 s, minimum duration met at 104.75 s; a re-run post-processor knows no window:
    # the alarm time is unknown, not guessed
    assert lat[0].event_onset_s == 95.0 and lat[0].min_duration_met_s == pytest.approx(104.75)
    assert math.isnan(lat[0].latency_s)
    assert lat[0].hypothesis_onset_latency_s == pytest.approx(-5.0)  # the classic figure, under its own name
    # the daemon's event: the window ending at 108 s (hop 4 s, lookahead 0) completed the minimum duration
    e = rerun[0]
    daemon = DaemonEvent(e.onset_s, e.offset_s, e.peak, e.mean, e.raised_s, e.end_reason, window_end_s=108.0)
    lat = seizure_latencies(rec, [daemon])
    assert lat[0].alarm_leaves_s == 108.0 and lat[0].latency_s == pytest.approx(8.0)
    assert lat[0].hypothesis_onset_latency_s == pytest.approx(-5.0)
