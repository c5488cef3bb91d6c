"""Per-sample labels (seizure / background / unknown) from annotation spans."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from ictal.training.datasets.base import BACKGROUND, LABEL_CODES, SEIZURE, UNKNOWN, LabelName, LabelSpan

TUSZ_SEIZURE_TYPES: frozenset[str] = frozenset(
    {"seiz", "fnsz", "gnsz", "spsz", "cpsz", "absz", "tnsz", "cnsz", "tcsz", "atsz", "mysz", "nesz"}
)
"""Term and channel labels of the TUH Seizure Corpus that denote a seizure (Shah et al. 2018)."""


def label_for_text(text: str, mapping: Mapping[str, LabelName] | None = None) -> LabelName | None:
    """Map one annotation text to a label, or None when the text is not a label.

    Parameters
    ----------
    text : str
        Annotation text (EDF+ TAL text, csv_bi label, events.tsv ``eventType``).
    mapping : mapping of str to label name, optional
        Texts (lower case) with an explicit label; consulted first.

    Returns
    -------
    label : {"seiz", "bckg", "unknown"} or None
        ``seiz`` for TUSZ seizure types and for SzCORE/HED-SCORE event types starting with ``sz``
        (``sz``, ``sz_foc_ia``, ...); ``bckg`` for ``bckg``; None for anything else (e.g. an EDF+
        "[Total time]" note), which the caller ignores.
    """
    key = text.strip().lower()
    if mapping and key in mapping:
        return mapping[key]
    if key in TUSZ_SEIZURE_TYPES or key.startswith("sz") or key == "seizure":
        return "seiz"
    if key in {"bckg", "background"}:
        return "bckg"
    return None


def spans_from_annotations(
    annotations: Iterable[tuple[float, float | None, str]],
    mapping: Mapping[str, LabelName] | None = None,
) -> list[LabelSpan]:
    """Turn ``(onset_s, duration_s, text)`` annotations into label spans.

    Parameters
    ----------
    annotations : iterable of (float, float or None, str)
        Onset and duration in seconds and text, as ``streaming.edf`` returns EDF+ annotations.
    mapping : mapping of str to label name, optional
        Passed to :func:`label_for_text`.

    Returns
    -------
    spans : list of LabelSpan
        One span per annotation whose text is a label and whose duration is positive; point
        annotations (no duration) cannot label samples and are left out.
    """
    spans = []
    for onset_s, duration_s, text in annotations:
        label = label_for_text(text, mapping)
        if label is None or duration_s is None or not duration_s > 0:
            continue
        spans.append(LabelSpan(float(onset_s), float(onset_s) + float(duration_s), label))
    return spans


def build_labels(
    spans: Iterable[LabelSpan], n_samples: int, fs: float, default: LabelName = "bckg"
) -> np.ndarray:
    """Per-sample labels of a recording.

    Parameters
    ----------
    spans : iterable of LabelSpan
        Labelled stretches in seconds from the first sample.
    n_samples : int
        Samples of the recording at ``fs``.
    fs : float
        Sampling rate in Hz of the labels (256 Hz in the cache).
    default : {"bckg", "unknown"}
        Label of samples no span covers.

    Returns
    -------
    labels : ndarray of int8, shape (n_samples,)
        1 seizure, 0 background, -1 unknown. Sample ``i`` (time ``i / fs``) takes the label of the
        spans with ``onset_s <= i / fs < offset_s``; where spans overlap, seizure wins over unknown,
        which wins over background (a doubtful stretch is never trained as background).

    Raises
    ------
    ValueError
        If a span has ``offset_s <= onset_s`` or a non-finite bound.
    """
    labels = np.full(n_samples, LABEL_CODES[default], dtype=np.int8)
    ordered = sorted(spans, key=lambda s: {"bckg": 0, "unknown": 1, "seiz": 2}[s.label])
    for span in ordered:
        if not (math.isfinite(span.onset_s) and math.isfinite(span.offset_s)) or span.offset_s <= span.onset_s:
            raise ValueError(
                f"annotation span must have finite onset < offset (found {span.onset_s} s to {span.offset_s} s)"
            )
        start = max(0, math.ceil(span.onset_s * fs - 1e-9))
        stop = min(n_samples, math.ceil(span.offset_s * fs - 1e-9))
        if stop > start:
            labels[start:stop] = LABEL_CODES[span.label]
    return labels


def label_runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding of per-sample labels.

    Parameters
    ----------
    labels : ndarray of int8, shape (n_samples,)

    Returns
    -------
    starts, stops : ndarray of int64, shape (n_runs,)
        Sample range ``[start, stop)`` of each run.
    values : ndarray of int8, shape (n_runs,)
        The label of each run.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.int8)
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    stops = np.concatenate([change, [labels.size]]).astype(np.int64)
    return starts, stops, labels[starts].astype(np.int8)


def seizure_events(labels: np.ndarray, fs: float) -> list[tuple[float, float]]:
    """Seizure events (onset_s, offset_s) of per-sample labels: each run of label 1."""
    starts, stops, values = label_runs(labels)
    keep = values == SEIZURE
    return [(s / fs, e / fs) for s, e in zip(starts[keep], stops[keep], strict=True)]


__all__ = [
    "BACKGROUND", "SEIZURE", "UNKNOWN", "TUSZ_SEIZURE_TYPES", "build_labels", "label_for_text",
    "label_runs", "seizure_events", "spans_from_annotations",
]
