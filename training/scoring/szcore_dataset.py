"""SzCORE sample-based and event-based scores with the per-subject mean +- std, as ``szcore-evaluation`` reports them.

This is the computation of ``szcore_evaluation.evaluate.evaluate_dataset`` (PyPI ``szcore-evaluation``
0.0.7, J. Dan, EPFL; the scorer of the SzCORE framework: J. Dan et al., "SzCORE: Seizure Community
Open-Source Research Evaluation framework for the validation of electroencephalography-based
automated seizure detection algorithms", Epilepsia 2024), done on :class:`Annotation` objects:

1. each recording's seizure events become a binary mask at ``FS_HZ`` = 1 Hz, ``mask[int(onset x 1) :
   int((onset + duration) x 1)] = 1`` over ``int(recordingDuration x 1)`` samples (``epilepsy2bids``
   ``Annotations.getMask``: truncation, not rounding);
2. ``timescoring.scoring.SampleScoring`` and ``EventScoring`` (default parameters: 30 s before and
   60 s after a reference event tolerated, events closer than 90 s merged, longer than 300 s split)
   score the pair;
3. per subject the counts (TP, FP, reference-true samples or events, samples) are summed over its
   recordings and ``computeScores`` gives sensitivity, precision, F1 and FP per 24 h
   (``fpRate = FP / (samples / fs / 86400)``);
4. the dataset figure is the mean over subjects, ignoring subjects where the figure is undefined
   (``numpy.nanmean``: a subject without seizure has no sensitivity), with the population standard
   deviation (``numpy.nanstd``, ddof 0); the pooled figures (``avg_per_subject=False``) sum the counts
   of all subjects first.

Why a re-implementation and not the package: ``szcore-evaluation`` 0.0.7 requires Python >= 3.12
(this project supports 3.10 and runs 3.11), reads only BIDS folders of ``.tsv`` files, writes a JSON
file as a side effect, and on a hypothesis it cannot read (an index error, a length mismatch) prints a
line and scores an empty hypothesis instead; a missing hypothesis file is also scored as empty.
Here the hypothesis mask takes the reference's length (the hypothesis duration is not used) and a
bad file is an error before scoring. ``tests/training/test_szcore_dataset.py`` checks the figures
against the package itself on real TUSZ annotations where the package is importable.

``training.scoring.szcore`` (10 Hz, counts pooled over all recordings) is kept beside it under the
``szcore`` key of the reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from timescoring.annotations import Annotation as TsAnnotation
from timescoring.scoring import EventScoring, SampleScoring

from ictal.training.scoring.annotations import Annotation
from ictal.training.scoring.nedc_common import SECONDS_PER_DAY, SEIZ, two_class_label

FS_HZ = 1
"""Mask rate of ``szcore-evaluation`` (``evaluate_dataset``: ``FS = 1``)."""

METRICS = ("sensitivity", "precision", "f1", "fp_per_24h")
"""Figures of each scoring, in the order ``szcore-evaluation`` writes them (its ``fpRate`` is ``fp_per_24h``)."""

DEFINITION = (
    "szcore-evaluation 0.0.7 evaluate_dataset: 1 Hz masks (onset and end truncated to whole seconds), "
    "timescoring SampleScoring and EventScoring (defaults: +30 s/-60 s tolerance, merge < 90 s, split > 300 s); "
    "counts summed per subject, then mean and population std over subjects (subjects where a figure is "
    "undefined are left out of that figure); pooled = counts summed over all subjects"
)


@dataclass
class Counts:
    """Counts of one scoring summed over recordings (``szcore_evaluation.evaluate.Result``).

    Attributes
    ----------
    tp, fp : int
        True and false positives (samples or events).
    ref_true : int
        Reference seizure samples or events.
    duration_s : float
        Scored duration: mask samples / the scoring's mask rate (``SampleScoring`` works at 1 Hz,
        ``EventScoring`` resamples to 10 Hz; ``Result`` takes ``numSamples`` and ``ref.fs`` of each).
    """

    tp: int = 0
    fp: int = 0
    ref_true: int = 0
    duration_s: float = 0.0

    def add(self, other: Counts) -> None:
        """Sum another recording's counts into these."""
        self.tp += other.tp
        self.fp += other.fp
        self.ref_true += other.ref_true
        self.duration_s += other.duration_s

    def scores(self) -> dict[str, float]:
        """``timescoring`` ``computeScores``: sensitivity, precision, F1, FP per 24 h (NaN where undefined)."""
        nan = float("nan")
        sens = self.tp / self.ref_true if self.ref_true > 0 else nan
        prec = self.tp / (self.tp + self.fp) if self.tp + self.fp > 0 else nan
        f1 = nan if self.ref_true + self.fp == 0 else 2 * self.tp / (2 * self.tp + self.fp + self.ref_true - self.tp)
        fp_rate = self.fp / (self.duration_s / SECONDS_PER_DAY) if self.duration_s > 0 else nan
        return {"sensitivity": sens, "precision": prec, "f1": f1, "fp_per_24h": fp_rate}


def seizure_mask(annotation: Annotation, n_samples: int, fs: int = FS_HZ) -> np.ndarray:
    """Binary seizure mask of an annotation, as ``epilepsy2bids`` ``Annotations.getMask`` builds it.

    Parameters
    ----------
    annotation : Annotation
        Events in seconds; seizure-type labels are set, the rest is background.
    n_samples : int
        Mask length (``int(duration x fs)`` of the reference).
    fs : int
        Mask rate in Hz.

    Returns
    -------
    mask : ndarray of bool, shape (n_samples,)
        True on ``[int(start x fs), int(stop x fs))`` of every seizure event (truncated to the mask).

    Raises
    ------
    ValueError
        If a label is outside the SEIZ/BCKG problem.
    """
    mask = np.zeros(n_samples, dtype=bool)
    for e in annotation.events:
        if two_class_label(e.label) == SEIZ:
            mask[int(e.start_s * fs): int(e.stop_s * fs)] = True
    return mask


def score_recording(ref: Annotation, hyp: Annotation) -> tuple[Counts, Counts]:
    """Sample and event counts of one recording (steps 1 and 2 of the module docstring).

    Returns
    -------
    sample, event : Counts

    Raises
    ------
    ValueError
        If a label is outside the SEIZ/BCKG problem or the reference is shorter than one mask sample.
    """
    n = int(ref.duration_s * FS_HZ)
    if n < 1:
        raise ValueError(f"reference duration {ref.duration_s} s, expected at least {1 / FS_HZ:g} s (one mask sample)")
    ts_ref = TsAnnotation(seizure_mask(ref, n), FS_HZ)
    ts_hyp = TsAnnotation(seizure_mask(hyp, n), FS_HZ)
    out = []
    for scoring in (SampleScoring(ts_ref, ts_hyp), EventScoring(ts_ref, ts_hyp)):
        duration_s = int(scoring.numSamples) / float(scoring.ref.fs)
        out.append(Counts(int(scoring.tp), int(scoring.fp), int(scoring.refTrue), duration_s))
    return out[0], out[1]


def _none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else float(x)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std())


def score_dataset(pairs: Sequence[tuple[Annotation, Annotation]], subjects: Sequence[str] | None = None) -> dict:
    """SzCORE sample and event scores of a dataset, per-subject mean +- std and pooled.

    Parameters
    ----------
    pairs : sequence of (Annotation, Annotation)
        Reference and hypothesis of each recording.
    subjects : sequence of str, optional
        The subject of each pair (same order); default: every recording is its own subject.

    Returns
    -------
    dict
        ``{"definition", "fs_hz", "n_subjects", "n_recordings",
        "sample": {sensitivity, sensitivity_std, precision, precision_std, f1, f1_std, fp_per_24h,
        fp_per_24h_std}, "event": {same}, "pooled": {"sample": {sensitivity, precision, f1, fp_per_24h},
        "event": {same}}, "subjects": [{subject, n_recordings, duration_s, "sample": {tp, fp, ref_true,
        sensitivity, precision, f1, fp_per_24h}, "event": {same}}]}``; None where a figure is undefined
        (no subject has it). Ratios are fractions, rates per 24 h.

    Raises
    ------
    ValueError
        If there are no pairs, ``subjects`` has another length, or a recording cannot be scored
        (:func:`score_recording`).
    """
    if not pairs:
        raise ValueError("no ref/hyp pairs to score, expected at least one")
    if subjects is None:
        subjects = [f"recording-{i:04d}" for i in range(len(pairs))]
    if len(subjects) != len(pairs):
        raise ValueError(f"{len(subjects)} subjects for {len(pairs)} pairs, expected one subject per pair")
    per: dict[str, dict] = {}
    for (ref, hyp), subject in zip(pairs, subjects, strict=True):
        sample, event = score_recording(ref, hyp)
        entry = per.setdefault(subject, {"sample": Counts(), "event": Counts(), "n": 0, "duration_s": 0.0})
        entry["sample"].add(sample)
        entry["event"].add(event)
        entry["n"] += 1
        entry["duration_s"] += ref.duration_s
    out: dict = {"definition": DEFINITION, "fs_hz": FS_HZ, "n_subjects": len(per), "n_recordings": len(pairs)}
    rows = []
    for subject, entry in per.items():
        row = {"subject": subject, "n_recordings": entry["n"], "duration_s": entry["duration_s"]}
        for kind in ("sample", "event"):
            c: Counts = entry[kind]
            row[kind] = {"tp": c.tp, "fp": c.fp, "ref_true": c.ref_true,
                         **{k: _none(v) for k, v in c.scores().items()}}
        rows.append(row)
    for kind in ("sample", "event"):
        agg: dict[str, float | None] = {}
        for metric in METRICS:
            mean, std = _mean_std([np.nan if r[kind][metric] is None else r[kind][metric] for r in rows])
            agg[metric] = mean
            agg[f"{metric}_std"] = std
        out[kind] = agg
    pooled = {}
    for kind in ("sample", "event"):
        total = Counts()
        for entry in per.values():
            total.add(entry[kind])
        pooled[kind] = {k: _none(v) for k, v in total.scores().items()}
    out["pooled"] = pooled
    out["subjects"] = rows
    return out


def format_lines(result: dict) -> list[str]:
    """Two lines of text: sample and event scores as ``mean +- std`` over subjects (``n/a`` where undefined)."""
    def pm(d: dict, metric: str, pct: bool) -> str:
        mean, std = d[metric], d[f"{metric}_std"]
        if mean is None:
            return "n/a"
        scale = 100.0 if pct else 1.0
        unit = "%" if pct else ""
        return f"{scale * mean:.2f}{unit} +- {scale * std:.2f}{unit}"

    lines = []
    for kind in ("sample", "event"):
        d = result[kind]
        lines.append(f"  {kind}-based: sensitivity {pm(d, 'sensitivity', True)}, precision {pm(d, 'precision', True)}, "
                     f"F1 {pm(d, 'f1', False)}, FP/24h {pm(d, 'fp_per_24h', False)}")
    return lines
