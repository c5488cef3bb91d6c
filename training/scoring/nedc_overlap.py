"""NEDC OVERLAP scoring (NEDC EEG Eval v6.0.0, Shah et al. 2021, section "Any-Overlap Method").

After background fills the gaps of both annotations (`nedc_common.fill_background`), per label L:

- targets = reference events of L;
- a reference event of L is a hit when any hypothesis event of L overlaps it, else a miss;
- a hypothesis event of L that overlaps no reference event of L is a false alarm;
- insertions = false alarms, deletions = misses.

Two events overlap when they share more than ``guard_width`` seconds after their times are rounded
to ``ndigits`` decimals (NEDC defaults 0.001 s and 3 digits), so events that merely touch do not.
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
    summarise,
)


def _overlap(a: Event, b: Event, guard_width: float, ndigits: int) -> bool:
    start = max(round(a.start_s, ndigits), round(b.start_s, ndigits))
    stop = min(round(a.stop_s, ndigits), round(b.stop_s, ndigits))
    return round(stop - start, ndigits) >= guard_width


def score_file(
    ref: Annotation, hyp: Annotation, guard_width: float = 0.001, ndigits: int = 3
) -> dict[str, LabelCounts]:
    """OVERLAP counts of one ref/hyp pair, per label (definitions in the module docstring)."""
    ref_events = fill_background(ref)
    hyp_events = fill_background(hyp)
    counts = {label: LabelCounts() for label in LABELS}
    for r in ref_events:
        c = counts[r.label]
        c.targets += 1
        if any(h.label == r.label and _overlap(r, h, guard_width, ndigits) for h in hyp_events):
            c.hits += 1
        else:
            c.misses += 1
            c.deletions += 1
    for h in hyp_events:
        if not any(r.label == h.label and _overlap(r, h, guard_width, ndigits) for r in ref_events):
            counts[h.label].false_alarms += 1
            counts[h.label].insertions += 1
    return counts


def score(
    pairs: Iterable[tuple[Annotation, Annotation]], guard_width: float = 0.001, ndigits: int = 3
) -> NedcSummary:
    """Score ref/hyp pairs with NEDC OVERLAP scoring.

    Parameters
    ----------
    pairs : iterable of (Annotation, Annotation)
        Reference and hypothesis of each recording.
    guard_width : float
        Least shared time, in seconds, for two events to overlap (NEDC default 0.001).
    ndigits : int
        Decimals event times are rounded to before comparing (NEDC default 3).

    Returns
    -------
    NedcSummary

    Raises
    ------
    ValueError
        If there are no pairs or a label is outside the SEIZ/BCKG problem.
    """
    pairs = check_pairs(pairs)
    per_file = [score_file(r, h, guard_width, ndigits) for r, h in pairs]
    return summarise("overlap", per_file, sum(r.duration_s for r, _ in pairs))
