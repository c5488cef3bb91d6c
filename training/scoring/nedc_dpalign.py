"""NEDC DP alignment scoring (NEDC EEG Eval v6.0.0, Shah et al. 2021, section "DP Alignment").

The reference and hypothesis of a file are reduced to their label sequences (background filling the
gaps, see `nedc_common.fill_background`) and aligned by dynamic programming with penalties for
deletion, insertion and substitution (default 1.0 each; a match costs 0), as in speech recognition
word-error scoring. Per label L, from the alignment:

- hits: aligned pairs (L, L); substitutions: (L, other); deletions: (L, nothing);
  insertions: (nothing, L);
- targets = hits + substitutions from L + deletions of L;
- misses = substitutions from L + deletions of L;
- false alarms = substitutions into L + insertions of L.

Ties between alignments of equal cost are broken by preferring, when tracing back from the end, a
match or substitution, then a deletion, then an insertion.
"""

from __future__ import annotations

from collections.abc import Iterable

from ictal.training.scoring.annotations import Annotation
from ictal.training.scoring.nedc_common import (
    LABELS,
    LabelCounts,
    NedcSummary,
    check_pairs,
    fill_background,
    summarise,
)

NULL = None


def align(
    ref: list[str],
    hyp: list[str],
    del_penalty: float = 1.0,
    ins_penalty: float = 1.0,
    sub_penalty: float = 1.0,
) -> list[tuple[str | None, str | None]]:
    """Minimum-cost alignment of two label sequences.

    Parameters
    ----------
    ref, hyp : list of str
        Label sequences.
    del_penalty, ins_penalty, sub_penalty : float
        Costs of a deleted reference label, an inserted hypothesis label and a substitution.

    Returns
    -------
    list of (ref_label or None, hyp_label or None)
        The aligned pairs in order; None marks a deletion (hyp side) or an insertion (ref side).
    """
    n, m = len(ref), len(hyp)
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = cost[i - 1][0] + del_penalty
    for j in range(1, m + 1):
        cost[0][j] = cost[0][j - 1] + ins_penalty
    for i in range(1, n + 1):
        row, prev = cost[i], cost[i - 1]
        for j in range(1, m + 1):
            diag = prev[j - 1] + (0.0 if ref[i - 1] == hyp[j - 1] else sub_penalty)
            row[j] = min(diag, prev[j] + del_penalty, row[j - 1] + ins_penalty)
    pairs: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            diag = cost[i - 1][j - 1] + (0.0 if ref[i - 1] == hyp[j - 1] else sub_penalty)
            if cost[i][j] == diag:
                pairs.append((ref[i - 1], hyp[j - 1]))
                i, j = i - 1, j - 1
                continue
        if i > 0 and cost[i][j] == cost[i - 1][j] + del_penalty:
            pairs.append((ref[i - 1], NULL))
            i -= 1
        else:
            pairs.append((NULL, hyp[j - 1]))
            j -= 1
    pairs.reverse()
    return pairs


def score_file(
    ref: Annotation,
    hyp: Annotation,
    del_penalty: float = 1.0,
    ins_penalty: float = 1.0,
    sub_penalty: float = 1.0,
) -> dict[str, LabelCounts]:
    """DP-alignment counts of one ref/hyp pair, per label (definitions in the module docstring)."""
    ref_labels = [e.label for e in fill_background(ref)]
    hyp_labels = [e.label for e in fill_background(hyp)]
    counts = {label: LabelCounts() for label in LABELS}
    for r, h in align(ref_labels, hyp_labels, del_penalty, ins_penalty, sub_penalty):
        if r is not None:
            counts[r].targets += 1
        if r is not None and r == h:
            counts[r].hits += 1
        elif h is None:
            counts[r].deletions += 1
            counts[r].misses += 1
        elif r is None:
            counts[h].insertions += 1
            counts[h].false_alarms += 1
        else:
            counts[r].misses += 1
            counts[h].false_alarms += 1
    return counts


def score(
    pairs: Iterable[tuple[Annotation, Annotation]],
    del_penalty: float = 1.0,
    ins_penalty: float = 1.0,
    sub_penalty: float = 1.0,
) -> NedcSummary:
    """Score ref/hyp pairs with NEDC DP alignment.

    Parameters
    ----------
    pairs : iterable of (Annotation, Annotation)
        Reference and hypothesis of each recording.
    del_penalty, ins_penalty, sub_penalty : float
        Alignment costs (NEDC defaults 1.0).

    Returns
    -------
    NedcSummary
        Per-label counts and metrics; FA/24h over the summed reference durations.

    Raises
    ------
    ValueError
        If there are no pairs or a label is outside the SEIZ/BCKG problem.
    """
    pairs = check_pairs(pairs)
    per_file = [score_file(r, h, del_penalty, ins_penalty, sub_penalty) for r, h in pairs]
    return summarise("dpalign", per_file, sum(r.duration_s for r, _ in pairs))
