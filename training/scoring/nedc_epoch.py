"""NEDC EPOCH scoring (NEDC EEG Eval v6.0.0, Shah et al. 2021, section "Epoch-Based Sampling").

Each recording is sampled every ``epoch_s`` seconds (default 0.25 s) at the centre of each epoch,
``t_k = (k + 1/2) epoch_s`` for ``k = 0 .. floor(duration / epoch_s) - 1``; the label of the reference
and of the hypothesis at ``t_k`` (background filling the gaps, see `nedc_common.fill_background`)
make one entry of a confusion matrix ``M[ref][hyp]`` summed over all files. Per label L, with the null
class N (BCKG by default):

- targets = sum_h M[L][h]; hits = M[L][L]; misses = targets - hits;
- false positives (used by the metrics) = sum_r M[r][L] - M[L][L];
- insertions = false alarms = M[N][L] and deletions = M[L][N] for L != N; 0 for the null class;
- FA/24h = false positives x epoch_s / total duration x 86400 (seconds of false alarm per day).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from ictal.training.scoring.annotations import Annotation, Event
from ictal.training.scoring.nedc_common import (
    BCKG,
    LABELS,
    LabelCounts,
    NedcSummary,
    check_pairs,
    fill_background,
    summarise,
)


def sample_labels(events: list[Event], duration_s: float, epoch_s: float = 0.25) -> list[str]:
    """Label at the centre of every epoch of a recording.

    Parameters
    ----------
    events : list of Event
        Sorted events covering the recording (output of `fill_background`).
    duration_s : float
        Recording duration in seconds.
    epoch_s : float
        Epoch length in seconds.

    Returns
    -------
    list of str
        One label per epoch; the event with ``start <= t < stop`` gives it (the background label
        where no event covers ``t``).
    """
    if epoch_s <= 0:
        raise ValueError(f"epoch duration is {epoch_s} s, expected > 0")
    n_epochs = int(math.floor(duration_s / epoch_s + 1e-9))
    starts = [e.start_s for e in events]
    labels: list[str] = []
    for k in range(n_epochs):
        t = (k + 0.5) * epoch_s
        idx = bisect.bisect_right(starts, t) - 1
        if idx >= 0 and events[idx].start_s <= t < events[idx].stop_s:
            labels.append(events[idx].label)
        else:
            labels.append(BCKG)
    return labels


def confusion(ref: Annotation, hyp: Annotation, epoch_s: float = 0.25) -> dict[str, dict[str, int]]:
    """Epoch confusion matrix ``M[ref_label][hyp_label]`` of one recording (the reference duration sets the epochs)."""
    ref_labels = sample_labels(fill_background(ref), ref.duration_s, epoch_s)
    hyp_labels = sample_labels(
        fill_background(Annotation(ref.duration_s, hyp.events)), ref.duration_s, epoch_s
    )
    matrix = {r: dict.fromkeys(LABELS, 0) for r in LABELS}
    for r, h in zip(ref_labels, hyp_labels, strict=True):
        matrix[r][h] += 1
    return matrix


def counts_from_confusion(
    matrix: dict[str, dict[str, int]], null_class: str = BCKG
) -> dict[str, LabelCounts]:
    """Per-label counts of a confusion matrix (definitions in the module docstring)."""
    out: dict[str, LabelCounts] = {}
    for label in LABELS:
        targets = sum(matrix[label].values())
        hits = matrix[label][label]
        column = sum(matrix[r][label] for r in LABELS)
        ins = matrix[null_class][label] if label != null_class else 0
        dels = matrix[label][null_class] if label != null_class else 0
        out[label] = LabelCounts(
            targets=targets,
            hits=hits,
            misses=targets - hits,
            false_alarms=ins,
            insertions=ins,
            deletions=dels,
            false_positives=column - hits,
        )
    return out


def score(
    pairs: Iterable[tuple[Annotation, Annotation]], epoch_s: float = 0.25, null_class: str = BCKG
) -> NedcSummary:
    """Score ref/hyp pairs with NEDC EPOCH scoring.

    Parameters
    ----------
    pairs : iterable of (Annotation, Annotation)
        Reference and hypothesis of each recording.
    epoch_s : float
        Epoch length in seconds (NEDC default 0.25).
    null_class : str
        The class insertions and deletions are counted against (NEDC default BCKG).

    Returns
    -------
    NedcSummary
        Counts in epochs; FA/24h in seconds of false alarm per 24 h (``fa_unit_s = epoch_s``).

    Raises
    ------
    ValueError
        If there are no pairs, ``epoch_s <= 0`` or a label is outside the SEIZ/BCKG problem.
    """
    pairs = check_pairs(pairs)
    per_file = [counts_from_confusion(confusion(r, h, epoch_s), null_class) for r, h in pairs]
    return summarise("epoch", per_file, sum(r.duration_s for r, _ in pairs), fa_unit_s=epoch_s)
