"""NEDC TAES, time-aligned event scoring (NEDC EEG Eval v6.0.0; Shah et al. 2021, section "TAES").

Hits, misses and false alarms are fractions of event durations. Background fills the gaps of both
annotations (`nedc_common.fill_background`); each label L is scored on the events of L alone. For a
reference event ``r`` and an overlapping hypothesis event ``h`` (``calc_hit_fa``), with ``D`` the
duration of ``r``:

- ``h`` starts at or before ``r`` and stops inside it: hit = (h.stop - r.start) / D,
  false alarm = min(1, (r.start - h.start) / D);
- ``h`` starts inside ``r`` and stops at or after it: hit = (r.stop - h.start) / D,
  false alarm = min(1, (h.stop - r.stop) / D);
- ``h`` covers ``r`` and sticks out on both sides: hit = 1,
  false alarm = min(1, (r.start - h.start + h.stop - r.stop) / D);
- ``h`` lies inside ``r``: hit = (h.stop - h.start) / D, false alarm = 0.

Reference events are taken in time order; each is matched with the first unused hypothesis event
that overlaps it:

- if that hypothesis stops at or after the reference, the reference gets its hit and false alarm and
  a miss of 1 - hit, and every later reference event that the same hypothesis also overlaps counts a
  whole miss (one detection earns credit for one event only);
- if the reference outlasts that hypothesis, every unused hypothesis event overlapping the
  reference adds its hit and false alarm to the reference (miss = 1 - sum of hits); the last of them
  may run past the reference, and then every later reference event it overlaps counts a whole miss.

Reference events left unmatched are whole misses, hypothesis events left unused whole false alarms.
Targets = number of reference events; insertions = false alarms, deletions = misses.
"""

from __future__ import annotations

from collections.abc import Iterable

from ictal.training.scoring.annotations import Annotation, Event
from ictal.training.scoring.nedc_common import (
    LABELS,
    LabelCounts,
    NedcSummary,
    check_pairs,
    fill_background,
    overlaps,
    summarise,
)


def calc_hit_fa(ref: Event, hyp: Event) -> tuple[float, float]:
    """Fractional hit and false alarm of one hypothesis event against one reference event.

    Parameters
    ----------
    ref, hyp : Event
        Overlapping events (seconds); ``ref`` must have a positive duration.

    Returns
    -------
    hit, false_alarm : float
        Fractions of the reference duration, cases in the module docstring.
    """
    dur = ref.stop_s - ref.start_s
    if hyp.start_s <= ref.start_s and hyp.stop_s <= ref.stop_s:
        return (hyp.stop_s - ref.start_s) / dur, min(1.0, (ref.start_s - hyp.start_s) / dur)
    if hyp.start_s >= ref.start_s and hyp.stop_s >= ref.stop_s:
        return (ref.stop_s - hyp.start_s) / dur, min(1.0, (hyp.stop_s - ref.stop_s) / dur)
    if hyp.start_s < ref.start_s and hyp.stop_s > ref.stop_s:
        return 1.0, min(1.0, ((hyp.stop_s - ref.stop_s) + (ref.start_s - hyp.start_s)) / dur)
    return (hyp.stop_s - hyp.start_s) / dur, 0.0


def score_label(ref_events: list[Event], hyp_events: list[Event]) -> tuple[float, float, float]:
    """TAES hits, misses and false alarms of one label's events (sorted, same label).

    Returns
    -------
    hits, misses, false_alarms : float
    """
    ref_free = [r.stop_s > r.start_s for r in ref_events]
    hyp_free = [True] * len(hyp_events)
    hits = misses = fas = 0.0
    # zero-length reference events cannot be scored by duration: they count as misses below
    misses += sum(1 for free in ref_free if not free)

    def consume_later_refs(i: int, hyp: Event) -> float:
        extra = 0.0
        for k in range(i + 1, len(ref_events)):
            if ref_free[k] and overlaps(ref_events[k], hyp):
                ref_free[k] = False
                extra += 1.0
        return extra

    for i, ref in enumerate(ref_events):
        if not ref_free[i]:
            continue
        j = next((j for j, h in enumerate(hyp_events) if hyp_free[j] and overlaps(ref, h)), None)
        if j is None:
            continue
        ref_free[i] = False
        first = hyp_events[j]
        if first.stop_s >= ref.stop_s:
            hyp_free[j] = False
            hit, fa = calc_hit_fa(ref, first)
            hits += hit
            fas += fa
            misses += 1.0 - hit
            misses += consume_later_refs(i, first)
            continue
        ref_hit = 0.0
        for k in range(j, len(hyp_events)):
            hyp = hyp_events[k]
            if not hyp_free[k] or not overlaps(ref, hyp):
                continue
            hyp_free[k] = False
            hit, fa = calc_hit_fa(ref, hyp)
            ref_hit += hit
            fas += fa
            if hyp.stop_s > ref.stop_s:
                misses += consume_later_refs(i, hyp)
        hits += ref_hit
        misses += 1.0 - ref_hit
    misses += sum(
        1 for i, free in enumerate(ref_free) if free and ref_events[i].stop_s > ref_events[i].start_s
    )
    fas += sum(1 for free in hyp_free if free)
    return hits, misses, fas


def score_file(ref: Annotation, hyp: Annotation) -> dict[str, LabelCounts]:
    """TAES counts of one ref/hyp pair, per label."""
    ref_events = fill_background(ref)
    hyp_events = fill_background(hyp)
    counts: dict[str, LabelCounts] = {}
    for label in LABELS:
        refs = [e for e in ref_events if e.label == label]
        hyps = [e for e in hyp_events if e.label == label]
        hits, misses, fas = score_label(refs, hyps)
        counts[label] = LabelCounts(
            targets=len(refs), hits=hits, misses=misses, false_alarms=fas, insertions=fas, deletions=misses
        )
    return counts


def score(pairs: Iterable[tuple[Annotation, Annotation]]) -> NedcSummary:
    """Score ref/hyp pairs with NEDC TAES.

    Parameters
    ----------
    pairs : iterable of (Annotation, Annotation)
        Reference and hypothesis of each recording.

    Returns
    -------
    NedcSummary
        Fractional counts; FA/24h = fractional false alarms / total reference duration x 86400.

    Raises
    ------
    ValueError
        If there are no pairs or a label is outside the SEIZ/BCKG problem.
    """
    pairs = check_pairs(pairs)
    per_file = [score_file(r, h) for r, h in pairs]
    return summarise("taes", per_file, sum(r.duration_s for r, _ in pairs))
