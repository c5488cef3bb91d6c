"""Hand-computed cases of the NEDC scorers: one reference seizure 40-60 s in a 100 s recording.

Background fills the gaps, so the reference is bckg 0-40, seiz 40-60, bckg 60-100.
"""

from __future__ import annotations

import math

import pytest

from ictal.training.scoring import nedc_dpalign, nedc_epoch, nedc_overlap, nedc_taes
from ictal.training.scoring.annotations import Annotation, Event
from ictal.training.scoring.nedc_common import LabelCounts, derive, fill_background, two_class_label

REF = Annotation(100.0, [Event(40.0, 60.0, "seiz")])


def hyp(*spans: tuple[float, float]) -> Annotation:
    return Annotation(100.0, [Event(a, b, "seiz") for a, b in spans])


def seiz(counts) -> tuple:
    c = counts["seiz"]
    return (c.targets, c.hits, c.misses, c.false_alarms)


# ---------------------------------------------------------------- background filling and labels


def test_background_fills_every_gap_from_zero_to_duration():
    events = fill_background(Annotation(100.0, [Event(70.0, 80.0, "fnsz"), Event(10.0, 20.0, "seiz")]))
    assert [(e.start_s, e.stop_s, e.label) for e in events] == [
        (0.0, 10.0, "bckg"),
        (10.0, 20.0, "seiz"),
        (20.0, 70.0, "bckg"),
        (70.0, 80.0, "seiz"),
        (80.0, 100.0, "bckg"),
    ]


def test_unknown_label_is_refused_with_its_name():
    with pytest.raises(ValueError, match="'artf'"):
        two_class_label("artf")


# ---------------------------------------------------------------- OVERLAP


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(50.0, 70.0)], (1, 1, 0, 0)),  # partial overlap: hit
        ([(30.0, 70.0)], (1, 1, 0, 0)),  # covers the seizure: hit
        ([(10.0, 20.0)], (1, 0, 1, 1)),  # elsewhere: miss and false alarm
        ([(42.0, 45.0), (50.0, 55.0)], (1, 1, 0, 0)),  # two hyps in one ref: one hit, no FA
        ([(60.0, 70.0)], (1, 0, 1, 1)),  # only touches the end: no overlap
        ([(59.9999, 70.0)], (1, 0, 1, 1)),  # 0.1 ms rounds away at 3 digits (guard 0.001 s)
        ([(59.99, 70.0)], (1, 1, 0, 0)),  # 10 ms of overlap is enough
        ([], (1, 0, 1, 0)),  # nothing detected
    ],
)
def test_overlap_counts_any_overlap_as_a_hit(spans, expected):
    assert seiz(nedc_overlap.score_file(REF, hyp(*spans))) == expected


def test_overlap_background_and_summary_metrics():
    # hyp seiz 10-20 and 50-70: hyp bckg 0-10, 20-50, 70-100 all overlap ref bckg -> no bckg FA
    counts = nedc_overlap.score_file(REF, hyp((10.0, 20.0), (50.0, 70.0)))
    assert (counts["bckg"].targets, counts["bckg"].hits, counts["bckg"].false_alarms) == (2, 2, 0)
    summary = nedc_overlap.score([(REF, hyp((10.0, 20.0), (50.0, 70.0)))])
    s = summary.labels["seiz"]
    assert (s.hits, s.false_alarms, s.tn) == (1, 1, 2)
    assert s.sensitivity == 1.0
    assert s.precision == 0.5
    assert s.f1 == pytest.approx(2 * 0.5 / 1.5)
    assert s.fa_per_24h == pytest.approx(1 / 100.0 * 86400)


# ---------------------------------------------------------------- TAES


@pytest.mark.parametrize(
    ("spans", "hit", "miss", "fa"),
    [
        ([(50.0, 70.0)], 0.5, 0.5, 0.5),  # late start, runs over: hit 10/20, FA 10/20
        ([(30.0, 50.0)], 0.5, 0.5, 0.5),  # early start, stops inside
        ([(35.0, 65.0)], 1.0, 0.0, 0.5),  # covers: hit 1, FA (5 + 5)/20
        ([(0.0, 100.0)], 1.0, 0.0, 1.0),  # FA of one event is capped at 1
        ([(45.0, 55.0)], 0.5, 0.5, 0.0),  # inside: hit 10/20, no FA
        ([(42.0, 46.0), (50.0, 58.0)], 0.6, 0.4, 0.0),  # two hyps in one ref add up
        ([(10.0, 20.0)], 0.0, 1.0, 1.0),  # no overlap
    ],
)
def test_taes_gives_fractional_hits_and_false_alarms(spans, hit, miss, fa):
    t, h, m, f = seiz(nedc_taes.score_file(REF, hyp(*spans)))
    assert t == 1
    assert (h, m, f) == pytest.approx((hit, miss, fa))


def test_taes_one_hyp_over_two_seizures_credits_only_the_first():
    ref = Annotation(100.0, [Event(40.0, 60.0, "seiz"), Event(70.0, 80.0, "seiz")])
    t, h, m, f = seiz(nedc_taes.score_file(ref, hyp((50.0, 75.0))))
    # first seizure: hit 10/20, FA min(1, 15/20); second: a whole miss
    assert t == 2
    assert (h, m, f) == pytest.approx((0.5, 0.5 + 1.0, 0.75))


def test_taes_short_seizure_false_alarm_is_capped():
    ref = Annotation(100.0, [Event(40.0, 42.0, "seiz")])
    _, h, m, f = seiz(nedc_taes.score_file(ref, hyp((40.5, 60.0))))
    assert (h, m, f) == pytest.approx((0.75, 0.25, 1.0))


# ---------------------------------------------------------------- EPOCH


def test_epoch_samples_every_quarter_second_at_epoch_centres():
    ref = Annotation(10.0, [Event(2.0, 4.0, "seiz")])  # 8 epochs of seizure out of 40
    matrix = nedc_epoch.confusion(ref, Annotation(10.0, [Event(3.0, 6.0, "seiz")]))  # 12 epochs
    assert matrix == {"seiz": {"seiz": 4, "bckg": 4}, "bckg": {"seiz": 8, "bckg": 24}}
    summary = nedc_epoch.score([(ref, Annotation(10.0, [Event(3.0, 6.0, "seiz")]))])
    s, b = summary.labels["seiz"], summary.labels["bckg"]
    assert (s.targets, s.hits, s.misses, s.false_alarms, s.insertions, s.deletions) == (8, 4, 4, 8, 8, 4)
    assert (b.targets, b.hits, b.misses, b.false_alarms, b.fp) == (32, 24, 8, 0, 4)
    assert s.fa_per_24h == pytest.approx(8 * 0.25 / 10.0 * 86400)  # seconds of false alarm per day
    assert s.specificity == pytest.approx(24 / 32)


def test_epoch_label_at_a_boundary_belongs_to_the_event_starting_there():
    ref = Annotation(1.0, [Event(0.125, 0.375, "seiz")])
    assert nedc_epoch.sample_labels(fill_background(ref), 1.0) == ["seiz", "bckg", "bckg", "bckg"]


# ---------------------------------------------------------------- DP alignment


def test_dpalign_extra_detection_is_an_insertion():
    counts = nedc_dpalign.score_file(REF, hyp((10.0, 20.0), (50.0, 70.0)))
    # ref: bckg seiz bckg; hyp: bckg seiz bckg seiz bckg -> 3 hits, 2 insertions (one seiz, one bckg)
    assert seiz(counts) == (1, 1, 0, 1)
    assert (counts["seiz"].insertions, counts["bckg"].insertions, counts["bckg"].hits) == (1, 1, 2)


def test_dpalign_missed_seizure_is_a_deletion():
    counts = nedc_dpalign.score_file(REF, hyp())
    # ref: bckg seiz bckg; hyp: bckg -> 1 hit, 2 deletions
    assert seiz(counts) == (1, 0, 1, 0)
    assert counts["seiz"].deletions == 1
    assert (counts["bckg"].targets, counts["bckg"].hits, counts["bckg"].deletions) == (2, 1, 1)


def test_dpalign_substitution_is_a_miss_of_one_label_and_false_alarm_of_the_other():
    ref = Annotation(100.0, [Event(0.0, 100.0, "seiz")])
    counts = nedc_dpalign.score_file(ref, hyp())
    assert seiz(counts) == (1, 0, 1, 0)
    assert (counts["seiz"].deletions, counts["bckg"].false_alarms, counts["bckg"].insertions) == (0, 1, 0)


def test_align_is_a_minimum_edit_distance_alignment():
    pairs = nedc_dpalign.align(list("abcd"), list("axd"))
    cost = sum(1 for r, h in pairs if r != h)
    assert cost == 2  # b -> x substitution, c deleted
    assert [r for r, _ in pairs if r is not None] == list("abcd")
    assert [h for _, h in pairs if h is not None] == list("axd")


# ---------------------------------------------------------------- derived metrics


def test_derived_metrics_follow_the_nedc_definitions():
    counts = {
        "seiz": LabelCounts(targets=10, hits=6, misses=4, false_alarms=2),
        "bckg": LabelCounts(targets=12, hits=9, misses=3, false_alarms=4),
    }
    s = derive("seiz", counts, duration_s=3600.0)
    tp, tn, fp, fn = 6, 9, 2, 4
    assert (s.tp, s.tn, s.fp, s.fn) == (tp, tn, fp, fn)
    assert s.sensitivity == pytest.approx(0.6)
    assert s.specificity == pytest.approx(9 / 11)
    assert s.precision == pytest.approx(0.75)
    assert s.npv == pytest.approx(9 / 13)
    assert s.accuracy == pytest.approx(15 / 21)
    assert s.prevalence == pytest.approx(10 / 21)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert s.mcc == pytest.approx((tp * tn - fp * fn) / math.sqrt(8 * 10 * 11 * 13))
    assert s.fa_per_24h == pytest.approx(2 / 3600 * 86400)


def test_ratios_with_zero_denominator_are_zero_as_nedc_prints():
    counts = {"seiz": LabelCounts(), "bckg": LabelCounts(targets=1, hits=1)}
    s = derive("seiz", counts, duration_s=0.0)
    assert (s.sensitivity, s.precision, s.f1, s.fa_per_24h) == (0.0, 0.0, 0.0, 0.0)


def test_scorers_refuse_an_empty_list_of_pairs():
    for scorer in (nedc_dpalign.score, nedc_epoch.score, nedc_overlap.score, nedc_taes.score):
        with pytest.raises(ValueError, match="no ref/hyp pairs"):
            scorer([])
