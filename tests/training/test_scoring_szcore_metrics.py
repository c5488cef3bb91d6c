"""SzCORE event scoring (timescoring defaults) and the evaluation helpers of training.scoring.metrics."""

from __future__ import annotations

import math

import pytest

from ictal.training.scoring import szcore
from ictal.training.scoring.annotations import Annotation, Event
from ictal.training.scoring.metrics import (
    OnsetLatency,
    OperatingPoint,
    lowest_fa,
    onset_latencies,
    sensitivity_at_fa,
    summarise_latencies,
)

# ---------------------------------------------------------------- SzCORE


def test_szcore_tolerates_30_s_early_detection_and_counts_far_detections_as_false_positives():
    ref = Annotation(3600.0, [Event(1000.0, 1060.0, "seiz")])
    hyp = Annotation(3600.0, [Event(975.0, 985.0, "seiz"), Event(2000.0, 2010.0, "seiz")])
    counts = szcore.score_file(ref, hyp)
    assert (counts.ref_events, counts.tp, counts.fp) == (1, 1, 1)
    summary = szcore.score([(ref, hyp)])
    assert summary.sensitivity == 1.0
    assert summary.precision == 0.5
    assert summary.f1 == pytest.approx(2 / 3)
    assert summary.fp_per_24h == pytest.approx(24.0)  # 1 FP in one hour


def test_szcore_detection_more_than_30_s_early_is_a_miss():
    ref = Annotation(3600.0, [Event(1000.0, 1060.0, "seiz")])
    hyp = Annotation(3600.0, [Event(950.0, 965.0, "seiz")])
    counts = szcore.score_file(ref, hyp)
    assert (counts.tp, counts.fp) == (0, 1)


def test_szcore_merges_seizures_closer_than_90_s_and_micro_averages_files():
    ref_a = Annotation(3600.0, [Event(100.0, 130.0, "seiz"), Event(180.0, 200.0, "seiz")])  # 50 s apart
    hyp_a = Annotation(3600.0, [Event(110.0, 120.0, "seiz")])
    ref_b = Annotation(7200.0, [Event(1000.0, 1030.0, "seiz"), Event(5000.0, 5030.0, "seiz")])
    hyp_b = Annotation(7200.0, [Event(10.0, 11.0, "bckg")])  # background only: no detection
    summary = szcore.score([(ref_a, hyp_a), (ref_b, hyp_b)])
    assert (summary.ref_events, summary.tp, summary.fp, summary.fn) == (3, 1, 0, 2)
    assert summary.sensitivity == pytest.approx(1 / 3)
    assert summary.duration_s == 10800.0
    assert summary.fp_per_24h == 0.0


def test_szcore_without_any_event_reports_undefined_ratios_as_null():
    summary = szcore.score([(Annotation(60.0, []), Annotation(60.0, []))])
    assert math.isnan(summary.sensitivity) and math.isnan(summary.precision)
    assert summary.to_dict()["sensitivity"] is None
    assert summary.to_dict()["fp_per_24h"] == 0.0


# ---------------------------------------------------------------- sensitivity at FA/24h

SWEEP = {0.9: (0.5, 0.5), 0.7: (0.7, 2.0), 0.5: (0.8, 6.0), 0.3: (0.9, 12.0)}


@pytest.mark.parametrize(
    ("budget", "threshold", "sensitivity"),
    [(1.0, 0.9, 0.5), (2.5, 0.7, 0.7), (5.0, 0.7, 0.7), (10.0, 0.5, 0.8), (12.0, 0.3, 0.9)],
)
def test_sensitivity_at_fa_takes_the_best_point_within_the_budget(budget, threshold, sensitivity):
    point = sensitivity_at_fa(SWEEP, budget)
    assert point == OperatingPoint(threshold, sensitivity, SWEEP[threshold][1])


def test_sensitivity_at_fa_unreachable_budget_is_none_and_lowest_fa_says_what_is_reachable():
    assert sensitivity_at_fa(SWEEP, 0.1) is None
    assert lowest_fa(SWEEP) == OperatingPoint(0.9, 0.5, 0.5)


def test_sensitivity_at_fa_prefers_lower_fa_among_equal_sensitivities():
    sweep = [OperatingPoint(0.6, 0.8, 3.0), OperatingPoint(0.5, 0.8, 4.0), OperatingPoint(0.4, 0.7, 1.0)]
    assert sensitivity_at_fa(sweep, 5.0) == OperatingPoint(0.6, 0.8, 3.0)


def test_sensitivity_at_fa_rejects_invalid_points():
    with pytest.raises(ValueError, match="sensitivity 1.5"):
        sensitivity_at_fa({0.5: (1.5, 1.0)}, 2.0)
    with pytest.raises(ValueError, match="not finite"):
        sensitivity_at_fa({0.5: (0.5, float("nan"))}, 2.0)


# ---------------------------------------------------------------- onset latency


def test_onset_latency_is_alarm_start_minus_annotated_onset_per_detected_seizure():
    seizures = [Event(100.0, 160.0, "seiz"), Event(300.0, 360.0, "seiz"), Event(500.0, 520.0, "seiz")]
    alarms = [Event(110.0, 170.0, "seiz"), Event(295.0, 330.0, "seiz"), Event(600.0, 610.0, "seiz")]
    lat = onset_latencies(seizures, alarms)
    assert [x.latency_s for x in lat] == [10.0, -5.0]  # the third seizure was not detected
    assert lat[0] == OnsetLatency(100.0, 110.0)


def test_onset_latency_ignores_an_alarm_already_running_when_a_fresh_one_starts():
    seizures = [Event(100.0, 200.0, "seiz")]
    alarms = [Event(0.0, 105.0, "seiz"), Event(130.0, 150.0, "seiz")]
    assert [x.latency_s for x in onset_latencies(seizures, alarms)] == [30.0]
    assert [x.latency_s for x in onset_latencies(seizures, alarms[:1])] == [-100.0]


def test_onset_latency_pre_tolerance_counts_early_alarms():
    seizures = [Event(100.0, 160.0, "seiz")]
    alarms = [Event(90.0, 95.0, "seiz")]
    assert onset_latencies(seizures, alarms) == []
    assert [x.latency_s for x in onset_latencies(seizures, alarms, pre_tolerance_s=30.0)] == [-10.0]
    with pytest.raises(ValueError, match="pre_tolerance_s"):
        onset_latencies(seizures, alarms, pre_tolerance_s=-1.0)


def test_latency_summary_gives_median_and_90th_percentile():
    summary = summarise_latencies([10.0, 40.0, 20.0, 30.0])
    assert summary.n == 4
    assert summary.median_s == pytest.approx(25.0)
    assert summary.p90_s == pytest.approx(37.0)  # linear interpolation: 30 + 0.7 x 10
    empty = summarise_latencies([])
    assert empty.n == 0 and math.isnan(empty.median_s) and math.isnan(empty.p90_s)
