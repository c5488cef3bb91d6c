"""SzCORE event scoring through the `timescoring` library, reported beside the NEDC scorers.

SzCORE (J. Dan et al., "SzCORE: Seizure Community Open-Source Research Evaluation framework for the
validation of electroencephalography-based automated seizure detection algorithms", Epilepsia, 2024)
scores seizure events with the library's defaults: a reference event is detected when a hypothesis
event overlaps it extended by 30 s before and 60 s after; events closer than 90 s are merged and
events longer than 300 s are split (both on reference and hypothesis); a hypothesis event that
overlaps no detected (extended) reference event is a false positive. Times are handled at 10 Hz.

Over several recordings the counts are summed (micro-average, as EpilepsyBench reports them):
sensitivity = TP / reference events, precision = TP / (TP + FP), F1 = 2 TP / (2 TP + FP + FN),
FP/24h = FP / total reference duration x 86400.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from timescoring.annotations import Annotation as TsAnnotation
from timescoring.scoring import EventScoring

from ictal.training.scoring.annotations import Annotation
from ictal.training.scoring.nedc_common import SECONDS_PER_DAY, SEIZ, check_pairs, two_class_label

#: Annotation rate handed to timescoring (its event scoring works at 10 Hz).
_FS_HZ = 10


@dataclass(frozen=True)
class SzcoreCounts:
    """SzCORE counts of one recording: reference events, true positives, false positives, duration (s)."""

    ref_events: int
    tp: int
    fp: int
    duration_s: float


@dataclass(frozen=True)
class SzcoreSummary:
    """Micro-averaged SzCORE results (ratios as fractions; NaN where the denominator is 0)."""

    n_files: int
    duration_s: float
    ref_events: int
    tp: int
    fp: int
    fn: int
    sensitivity: float
    precision: float
    f1: float
    fp_per_24h: float

    def to_dict(self) -> dict:
        """JSON-ready dict of the fields (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _seizures(annotation: Annotation) -> list[tuple[float, float]]:
    return [(e.start_s, e.stop_s) for e in annotation.events if two_class_label(e.label) == SEIZ]


def score_file(
    ref: Annotation, hyp: Annotation, param: EventScoring.Parameters | None = None
) -> SzcoreCounts:
    """SzCORE counts of one recording (the reference duration sets the length).

    Raises
    ------
    ValueError
        If a label is outside the SEIZ/BCKG problem.
    """
    n_samples = round(ref.duration_s * _FS_HZ)
    ts_ref = TsAnnotation(_seizures(ref), _FS_HZ, n_samples)
    ts_hyp = TsAnnotation(_seizures(hyp), _FS_HZ, n_samples)
    scores = EventScoring(ts_ref, ts_hyp, param if param is not None else EventScoring.Parameters())
    return SzcoreCounts(int(scores.refTrue), int(scores.tp), int(scores.fp), ref.duration_s)


def summarise(counts: list[SzcoreCounts]) -> SzcoreSummary:
    """Micro-average per-recording counts (definitions in the module docstring)."""
    ref_events = sum(c.ref_events for c in counts)
    tp = sum(c.tp for c in counts)
    fp = sum(c.fp for c in counts)
    duration_s = sum(c.duration_s for c in counts)
    fn = ref_events - tp
    nan = float("nan")
    return SzcoreSummary(
        n_files=len(counts),
        duration_s=duration_s,
        ref_events=ref_events,
        tp=tp,
        fp=fp,
        fn=fn,
        sensitivity=tp / ref_events if ref_events else nan,
        precision=tp / (tp + fp) if tp + fp else nan,
        f1=2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else nan,
        fp_per_24h=fp / duration_s * SECONDS_PER_DAY if duration_s > 0 else nan,
    )


def score(
    pairs: Iterable[tuple[Annotation, Annotation]], param: EventScoring.Parameters | None = None
) -> SzcoreSummary:
    """Score ref/hyp pairs with SzCORE event scoring.

    Parameters
    ----------
    pairs : iterable of (Annotation, Annotation)
        Reference and hypothesis of each recording; seizure-type labels are the events, the rest is
        background.
    param : timescoring.scoring.EventScoring.Parameters, optional
        Tolerances; default the library's (30 s before, 60 s after, merge < 90 s, split > 300 s).

    Returns
    -------
    SzcoreSummary

    Raises
    ------
    ValueError
        If there are no pairs or a label is outside the SEIZ/BCKG problem.
    """
    return summarise([score_file(r, h, param) for r, h in check_pairs(pairs)])
