"""What the NEDC scorers share: the two-class label map, background filling, counts and derived metrics.

Definitions follow NEDC EEG Eval v6.0.0 (Temple University Neural Engineering Data Consortium) and
V. Shah, M. Golmohammadi, I. Obeid and J. Picone, "Objective evaluation metrics for automatic
classification of EEG events", in Signal Processing in Medicine and Biology, Springer, 2021.

For each label L of the two-class problem (SEIZ, BCKG), a scorer yields targets, hits, misses, false
alarms, insertions and deletions. The derived metrics then use, as NEDC prints them::

    TP = hits(L)            FN = misses(L)           FP = false positives of L (= false alarms,
    TN = sum of hits of the other labels              except for the EPOCH null class)
    sensitivity = TP / (TP + FN)      specificity = TN / (TN + FP)      precision = TP / (TP + FP)
    NPV = TN / (TN + FN)              FNR = FN / (TP + FN)              FPR = FP / (TN + FP)
    FDR = FP / (TP + FP)              FOR = FN / (TN + FN)
    accuracy = (TP + TN) / (TP + TN + FP + FN)       prevalence = (TP + FN) / (TP + TN + FP + FN)
    F1 = 2 precision sensitivity / (precision + sensitivity)
    MCC = (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))
    FA/24h = FP x fa_unit_s / total duration of the reference files x 86400

where ``fa_unit_s`` is 1 for the event scorers and the epoch duration (0.25 s) for EPOCH (NEDC counts
epochs there, so the rate is seconds of false alarm per 24 h). A ratio whose denominator is 0 is 0, as
NEDC prints it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from ictal.training.scoring.annotations import Annotation, Event

SEIZ = "seiz"
BCKG = "bckg"
LABELS = (SEIZ, BCKG)
SECONDS_PER_DAY = 86400.0

#: TUSZ labels folded into the two classes, as in NEDC's default parameter file (nedc_eeg_eval_params
#: v00: SEIZ = every seizure type; BCKG = background).
SEIZURE_LABELS = frozenset(
    {"seiz", "fnsz", "gnsz", "spsz", "cpsz", "absz", "tnsz", "cnsz", "tcsz", "atsz", "mysz", "nesz"}
)
BACKGROUND_LABELS = frozenset({"bckg", "null"})


def two_class_label(label: str) -> str:
    """Fold a TUSZ label into ``"seiz"`` or ``"bckg"``.

    Raises
    ------
    ValueError
        If the label is neither a seizure type nor background.
    """
    lab = label.lower()
    if lab in SEIZURE_LABELS:
        return SEIZ
    if lab in BACKGROUND_LABELS:
        return BCKG
    raise ValueError(
        f"label {label!r} is not part of the two-class SEIZ/BCKG problem, expected one of "
        f"{sorted(SEIZURE_LABELS | BACKGROUND_LABELS)}"
    )


def fill_background(annotation: Annotation) -> list[Event]:
    """Two-class events covering the whole recording, background filling every gap (NEDC augmentation).

    Parameters
    ----------
    annotation : Annotation
        Events in any order; labels are folded with `two_class_label`.

    Returns
    -------
    list of Event
        Events sorted by start time; a ``bckg`` event fills each gap between 0 s, the events and
        ``annotation.duration_s`` (as NEDC EEG Eval does before scoring, so that a reference that
        only lists seizures scores background too).
    """
    events = sorted(
        (Event(e.start_s, e.stop_s, two_class_label(e.label), e.confidence) for e in annotation.events),
        key=lambda e: (e.start_s, e.stop_s),
    )
    out: list[Event] = []
    cursor = 0.0
    for event in events:
        if event.start_s > cursor:
            out.append(Event(cursor, event.start_s, BCKG, 1.0))
        out.append(event)
        cursor = max(cursor, event.stop_s)
    if annotation.duration_s > cursor:
        out.append(Event(cursor, annotation.duration_s, BCKG, 1.0))
    return out


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else 0.0


@dataclass
class LabelCounts:
    """Raw counts of one label, summed over files (floats: TAES counts are fractional).

    ``false_positives`` is None when it equals ``false_alarms`` (all scorers but EPOCH's null class).
    """

    targets: float = 0.0
    hits: float = 0.0
    misses: float = 0.0
    false_alarms: float = 0.0
    insertions: float = 0.0
    deletions: float = 0.0
    false_positives: float | None = None

    def add(self, other: LabelCounts) -> None:
        """Add another file's counts in place."""
        self.targets += other.targets
        self.hits += other.hits
        self.misses += other.misses
        self.false_alarms += other.false_alarms
        self.insertions += other.insertions
        self.deletions += other.deletions
        if other.false_positives is not None or self.false_positives is not None:
            mine = self.false_positives if self.false_positives is not None else 0.0
            theirs = other.false_positives if other.false_positives is not None else 0.0
            self.false_positives = mine + theirs

    @property
    def fp(self) -> float:
        """False positives used by the derived metrics."""
        return self.false_alarms if self.false_positives is None else self.false_positives


@dataclass(frozen=True)
class LabelStats:
    """Counts and derived metrics of one label, as NEDC prints them (ratios as fractions, not %)."""

    label: str
    targets: float
    hits: float
    misses: float
    false_alarms: float
    insertions: float
    deletions: float
    tp: float
    tn: float
    fp: float
    fn: float
    sensitivity: float
    specificity: float
    precision: float
    npv: float
    miss_rate: float
    fpr: float
    fdr: float
    false_omission_rate: float
    accuracy: float
    misclassification_rate: float
    prevalence: float
    f1: float
    mcc: float
    fa_per_24h: float


def derive(
    label: str, counts: dict[str, LabelCounts], duration_s: float, fa_unit_s: float = 1.0
) -> LabelStats:
    """Derived metrics of ``label`` from the per-label counts (definitions in the module docstring).

    Parameters
    ----------
    label : str
        The label to report.
    counts : dict of str to LabelCounts
        Counts of every label (TN of ``label`` is the sum of the other labels' hits).
    duration_s : float
        Total duration of the reference files in seconds.
    fa_unit_s : float
        Seconds one false positive stands for in the FA/24h rate (epoch duration for EPOCH, else 1).
    """
    c = counts[label]
    tp, fn, fp = c.hits, c.misses, c.fp
    tn = sum(other.hits for name, other in counts.items() if name != label)
    total = tp + tn + fp + fn
    sens = _ratio(tp, tp + fn)
    prec = _ratio(tp, tp + fp)
    mcc_den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return LabelStats(
        label=label,
        targets=c.targets,
        hits=c.hits,
        misses=c.misses,
        false_alarms=c.false_alarms,
        insertions=c.insertions,
        deletions=c.deletions,
        tp=tp,
        tn=tn,
        fp=fp,
        fn=fn,
        sensitivity=sens,
        specificity=_ratio(tn, tn + fp),
        precision=prec,
        npv=_ratio(tn, tn + fn),
        miss_rate=_ratio(fn, tp + fn),
        fpr=_ratio(fp, tn + fp),
        fdr=_ratio(fp, tp + fp),
        false_omission_rate=_ratio(fn, tn + fn),
        accuracy=_ratio(tp + tn, total),
        misclassification_rate=_ratio(fp + fn, total),
        prevalence=_ratio(tp + fn, total),
        f1=_ratio(2 * prec * sens, prec + sens),
        mcc=_ratio(tp * tn - fp * fn, mcc_den),
        fa_per_24h=_ratio(fp * fa_unit_s, duration_s) * SECONDS_PER_DAY,
    )


@dataclass
class NedcSummary:
    """What one NEDC scorer reports over a list of files.

    Attributes
    ----------
    scorer : str
        ``"dpalign"``, ``"epoch"``, ``"overlap"`` or ``"taes"``.
    labels : dict of str to LabelStats
        Per-label results, ``"seiz"`` and ``"bckg"``.
    duration_s : float
        Total duration of the reference files in seconds.
    n_files : int
        Number of ref/hyp pairs scored.
    fa_unit_s : float
        Seconds one false positive stands for in FA/24h (epoch duration for EPOCH, 1 otherwise).
    per_file : list of dict
        Per-file counts ``{label: LabelCounts}`` in list order.
    """

    scorer: str
    labels: dict[str, LabelStats]
    duration_s: float
    n_files: int
    fa_unit_s: float = 1.0
    per_file: list[dict[str, LabelCounts]] = field(default_factory=list)

    @property
    def total_false_alarms(self) -> float:
        """False positives summed over labels (NEDC's "Total False Alarms")."""
        return sum(s.fp for s in self.labels.values())

    @property
    def total_fa_per_24h(self) -> float:
        """Total false positives (times ``fa_unit_s``) per 24 h of reference (NEDC's "Total False Alarm Rate")."""
        return _ratio(self.total_false_alarms * self.fa_unit_s, self.duration_s) * SECONDS_PER_DAY

    def to_dict(self) -> dict:
        """JSON-ready dict: scorer, n_files, duration_s, labels {label: LabelStats fields}, totals."""
        return {
            "scorer": self.scorer,
            "n_files": self.n_files,
            "duration_s": self.duration_s,
            "labels": {name: asdict(stats) for name, stats in self.labels.items()},
            "total_false_alarms": self.total_false_alarms,
            "total_fa_per_24h": self.total_fa_per_24h,
        }


def summarise(
    scorer: str,
    per_file: list[dict[str, LabelCounts]],
    duration_s: float,
    fa_unit_s: float = 1.0,
) -> NedcSummary:
    """Sum per-file counts and derive the per-label metrics."""
    totals = {label: LabelCounts() for label in LABELS}
    for counts in per_file:
        for label in LABELS:
            totals[label].add(counts[label])
    labels = {label: derive(label, totals, duration_s, fa_unit_s) for label in LABELS}
    return NedcSummary(scorer, labels, duration_s, len(per_file), fa_unit_s, per_file)


def check_pairs(pairs: Iterable[tuple[Annotation, Annotation]]) -> list[tuple[Annotation, Annotation]]:
    """Materialise ref/hyp pairs; raises ValueError when there are none."""
    out = list(pairs)
    if not out:
        raise ValueError("no ref/hyp pairs to score, expected at least one")
    return out


def overlaps(a: Event, b: Event) -> bool:
    """True when two events share time (open intervals: touching ends do not overlap)."""
    return a.stop_s > b.start_s and a.start_s < b.stop_s
