"""Read and write SzCORE / BIDS ``_events.tsv`` annotation files, one per recording in a BIDS tree.

The convention (SzCORE, J. Dan et al., "SzCORE: Seizure Community Open-Source Research Evaluation
framework for the validation of electroencephalography-based automated seizure detection
algorithms", Epilepsia 2024; the ``epilepsy2bids`` 0.0.7 package, ``epilepsy2bids/annotations.py``
and its ``bids/events.json`` sidecar, which ``szcore-evaluation`` 0.0.7 reads): a tab-separated file
with a header row and one row per event::

    onset   duration  eventType  confidence  channels  dateTime             recordingDuration
    42.28   39.50     sz         1.00        n/a       2024-01-01 10:00:00  1289.00

- ``onset``: start of the event in seconds from the start of the recording; ``duration``: its length
  in seconds (the event covers ``[onset, onset + duration)``).
- ``eventType``: ``bckg`` (background) or a seizure: ``sz`` (unclassified) or one of the ILAE 2017
  subtypes ``sz_foc``, ``sz_foc_a``, ..., ``sz_gen_m_tonicClonic``, ... (:data:`SEIZURE_EVENT_TYPES`,
  the 70 ``sz*`` levels of ``events.json``). Every seizure type is a seizure for scoring.
- ``confidence``: in [0, 1] or ``n/a``; ``channels``: comma-separated channel names or ``n/a``
  (term-based annotations); ``dateTime``: ``YYYY-MM-DD HH:MM:SS`` start of the recording or ``n/a``.
- ``recordingDuration``: duration of the recording in seconds, repeated on every row. A recording
  without any seizure is one ``bckg`` row covering it (``0``, ``recordingDuration``), so the duration is
  always carried.

BIDS layout (as ``szcore-evaluation`` walks it: ``sub-*/**/*.tsv``, reference and hypothesis trees of
the same structure)::

    ROOT/sub-<label>/ses-<label>/eeg/sub-<label>_ses-<label>_task-<label>_run-<index>_events.tsv

The subject of a file is its ``sub-`` entity (:func:`subject_of`); the recording name is the file
name without ``_events.tsv`` (:func:`recording_name`).

Mapping to :class:`ictal.training.scoring.annotations.Annotation` (what the scorers read): every seizure
``eventType`` becomes the TUSZ label ``seiz`` (the SzCORE subtype is kept in no scorer), ``bckg``
stays ``bckg``; a ``confidence`` of ``n/a`` becomes 1.0 (TUSZ references carry 1.0; no scorer reads
it). Writing maps TUSZ labels back as ``epilepsy2bids``' TUH converter does (``seiz`` -> ``sz``,
``fnsz`` -> ``sz_foc``, ``gnsz`` -> ``sz_gen``, ...; :data:`TUSZ_TO_SZCORE`).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

from ictal.training.scoring.annotations import (
    Annotation,
    AnnotationError,
    Event,
    _format_time,
    _parse_float,
    _parse_time,
    _read_lines,
)
from ictal.training.scoring.nedc_common import BCKG, SEIZ, two_class_label

COLUMNS = ("onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration")
"""The columns of an SzCORE ``_events.tsv`` file, in the order ``epilepsy2bids`` writes them."""

REQUIRED_COLUMNS = ("onset", "duration", "eventType", "recordingDuration")
"""Columns without which a file cannot be scored (times, seizure or not, and the recording's length)."""

SUFFIX = "_events.tsv"
"""BIDS suffix and extension of an events file."""

TASK = "szMonitoring"
"""BIDS task label of SzCORE datasets (``task-szMonitoring``)."""

BACKGROUND_EVENT_TYPE = "bckg"

SEIZURE_EVENT_TYPES: frozenset[str] = frozenset({
    "sz", "sz_foc", "sz_foc_a", "sz_foc_a_m", "sz_foc_a_m_automatisms", "sz_foc_a_m_atonic",
    "sz_foc_a_m_clonic", "sz_foc_a_m_spasms", "sz_foc_a_m_hyperkinetic", "sz_foc_a_m_myoclonic",
    "sz_foc_a_m_tonic", "sz_foc_a_nm", "sz_foc_a_nm_autonomic", "sz_foc_a_nm_behavior",
    "sz_foc_a_nm_cognitive", "sz_foc_a_nm_emotional", "sz_foc_a_nm_sensory", "sz_foc_a_um", "sz_foc_ia",
    "sz_foc_ia_m", "sz_foc_ia_m_automatisms", "sz_foc_ia_m_atonic", "sz_foc_ia_m_clonic", "sz_foc_ia_m_spasms",
    "sz_foc_ia_m_hyperkinetic", "sz_foc_ia_m_myoclonic", "sz_foc_ia_m_tonic", "sz_foc_ia_nm",
    "sz_foc_ia_nm_autonomic", "sz_foc_ia_nm_behavior", "sz_foc_ia_nm_cognitive", "sz_foc_ia_nm_emotional",
    "sz_foc_ia_nm_sensory", "sz_foc_ia_um", "sz_foc_ua_m", "sz_foc_ua_m_automatisms", "sz_foc_ua_m_atonic",
    "sz_foc_ua_m_clonic", "sz_foc_ua_m_spasms", "sz_foc_ua_m_hyperkinetic", "sz_foc_ua_m_myoclonic",
    "sz_foc_ua_m_tonic", "sz_foc_ua_nm", "sz_foc_ua_nm_autonomic", "sz_foc_ua_nm_behavior",
    "sz_foc_ua_nm_cognitive", "sz_foc_ua_nm_emotional", "sz_foc_ua_nm_sensory", "sz_foc_ua_um", "sz_foc_f2b",
    "sz_gen", "sz_gen_m", "sz_gen_m_tonicClonic", "sz_gen_m_clonic", "sz_gen_m_tonic", "sz_gen_m_myoTC",
    "sz_gen_m_myoAtonic", "sz_gen_m_atonic", "sz_gen_m_spasms", "sz_gen_nm", "sz_gen_nm_typical",
    "sz_gen_nm_atypical", "sz_gen_nm_myoclonic", "sz_gen_nm_eyelidMyio", "sz_uo", "sz_uo_m",
    "sz_uo_m_tonicClonic", "sz_uo_m_spasms", "sz_uo_nm", "sz_uo_nm_behavior",
})
"""Seizure ``eventType`` values: the ``sz*`` levels of ``epilepsy2bids`` 0.0.7 ``bids/events.json``
(HED-SCORE / ILAE 2017 seizure types, spelled as there, ``sz_gen_nm_eyelidMyio`` included)."""

TUSZ_TO_SZCORE = {
    "seiz": "sz", "fnsz": "sz_foc", "gnsz": "sz_gen", "spsz": "sz_foc_a", "cpsz": "sz_foc_ia",
    "absz": "sz_gen_nm", "tnsz": "sz_gen_m_tonic", "cnsz": "sz_gen_m_clonic", "tcsz": "sz_gen_m_tonicClonic",
    "atsz": "sz_gen_m_atonic", "mysz": "sz_gen_nm_myoclonic", "bckg": "bckg", "null": "bckg",
}
"""TUSZ label -> SzCORE eventType (``epilepsy2bids/load_annotations/tuh.py`` MAPPING; ``nesz``, a
non-epileptic seizure that NEDC scores as SEIZ, has no SzCORE type and is written ``sz``)."""

ROUNDING_TOLERANCE_S = 0.01
"""An event may end up to 0.01 s after ``recordingDuration``: ``epilepsy2bids`` writes onset, duration
and recordingDuration with 2 decimals each, so ``onset + duration`` can pass the duration by that
rounding. Such an event is clipped to the duration; a later end is an error."""

_ENTITY_LABEL = re.compile(r"[^A-Za-z0-9]")
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_HEADER = "\t".join(COLUMNS)


def recording_name(path: str | Path) -> str:
    """The recording a file annotates: its name without ``_events.tsv`` (``.tsv``), else up to the first dot.

    ``sub-01_ses-01_task-szMonitoring_run-00_events.tsv`` -> ``sub-01_ses-01_task-szMonitoring_run-00``;
    ``aaaaaasf_s001_t000.csv_bi`` -> ``aaaaaasf_s001_t000`` (so a csv_bi and a tsv of one recording pair).
    """
    name = Path(path).name
    lower = name.lower()
    if lower.endswith(SUFFIX):
        return name[: -len(SUFFIX)]
    if lower.endswith(".tsv"):
        return name[: -len(".tsv")]
    return name.split(".")[0]


def subject_of(path: str | Path) -> str:
    """The subject of an annotation file, for per-subject SzCORE averages.

    The BIDS ``sub-<label>`` entity of the name when there is one (``sub-01_ses-01_..._events.tsv`` ->
    ``sub-01``); otherwise, as in TUSZ names (``aaaaaasf_s001_t000.csv_bi`` -> ``aaaaaasf``), the
    recording name up to its first underscore.
    """
    name = recording_name(path)
    for part in name.split("_"):
        if part.startswith("sub-") and len(part) > 4:
            return part
    return name.split("_")[0]


def entity_label(text: str) -> str:
    """A BIDS entity label made of ``text``: its letters and digits only (BIDS labels are alphanumeric)."""
    return _ENTITY_LABEL.sub("", text)


def bids_path(subject: str, run: int, session: str = "01", task: str = TASK) -> Path:
    """Relative path of a recording's events file in a BIDS tree.

    Parameters
    ----------
    subject, session, task : str
        Entity labels (alphanumeric, see :func:`entity_label`).
    run : int
        Run index of the recording within the subject's session (0-based, written with 2 digits).

    Returns
    -------
    Path
        ``sub-<subject>/ses-<session>/eeg/sub-<subject>_ses-<session>_task-<task>_run-<run:02d>_events.tsv``.

    Raises
    ------
    ValueError
        If a label is empty or not alphanumeric, or ``run`` is negative.
    """
    for what, label in (("subject", subject), ("session", session), ("task", task)):
        if not label or entity_label(label) != label:
            raise ValueError(f"BIDS {what} label {label!r}, expected letters and digits only")
    if run < 0:
        raise ValueError(f"BIDS run index {run}, expected >= 0")
    stem = f"sub-{subject}_ses-{session}_task-{task}_run-{run:02d}"
    return Path(f"sub-{subject}") / f"ses-{session}" / "eeg" / f"{stem}{SUFFIX}"


def _event_type_to_label(value: str, path: Path, line_no: int) -> str:
    text = value.strip()
    if text == BACKGROUND_EVENT_TYPE:
        return BCKG
    if text in SEIZURE_EVENT_TYPES:
        return SEIZ
    raise AnnotationError(
        f"{path}:{line_no}: eventType {text!r}, expected 'bckg', 'sz' or an SzCORE seizure subtype "
        "('sz_foc', 'sz_gen', ... as in epilepsy2bids bids/events.json)"
    )


def read_events_tsv(path: str | Path) -> Annotation:
    """Read an SzCORE ``_events.tsv`` file.

    Parameters
    ----------
    path : str or Path
        The tab-separated file (header row, then one row per event; module docstring).

    Returns
    -------
    Annotation
        Duration = ``recordingDuration``; events in file order, labelled ``seiz`` (every seizure
        eventType) or ``bckg``, ``stop_s = onset + duration``, confidence ``n/a`` read as 1.0.

    Raises
    ------
    AnnotationError
        If the header lacks one of :data:`REQUIRED_COLUMNS` or repeats a column; a row has another
        number of fields than the header; onset, duration or recordingDuration is not a plain decimal
        number of seconds from 0 to 31 days (``n/a`` included); the eventType is not ``bckg`` or an
        SzCORE seizure type; a confidence is neither ``n/a`` nor a number in [0, 1]; a dateTime is
        neither ``n/a`` nor ``YYYY-MM-DD HH:MM:SS``; rows give different recordingDurations; an event ends
        more than :data:`ROUNDING_TOLERANCE_S` after the recording; the file has no row (the duration
        is then unknown); it is not UTF-8 text or larger than the annotation size limit.
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    header: list[str] | None = None
    events: list[Event] = []
    duration_s: float | None = None
    for line_no, raw in enumerate(_read_lines(path), start=1):
        if not raw.strip():
            continue
        fields = [f.strip() for f in raw.split("\t")]
        if header is None:
            header = fields
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise AnnotationError(
                    f"{path}:{line_no}: header {raw.strip()!r} lacks {', '.join(missing)}; expected the "
                    f"tab-separated SzCORE columns {', '.join(COLUMNS)}"
                )
            if len(set(header)) != len(header):
                raise AnnotationError(f"{path}:{line_no}: header {header} repeats a column, expected each once")
            continue
        if len(fields) != len(header):
            raise AnnotationError(
                f"{path}:{line_no}: {len(fields)} tab-separated fields, expected {len(header)} ({', '.join(header)})"
            )
        row = dict(zip(header, fields, strict=True))
        onset = _parse_time(row["onset"], "onset", path, line_no)
        length = _parse_time(row["duration"], "duration", path, line_no)
        rec_s = _parse_time(row["recordingDuration"], "recordingDuration", path, line_no)
        if duration_s is None:
            duration_s = rec_s
        elif rec_s != duration_s:
            raise AnnotationError(
                f"{path}:{line_no}: recordingDuration {rec_s}, expected {duration_s} as on the first row"
            )
        label = _event_type_to_label(row["eventType"], path, line_no)
        conf_text = row.get("confidence", "n/a")
        confidence = 1.0 if conf_text == "n/a" else _parse_float(
            conf_text, "confidence", path, line_no, expected="n/a or a number from 0 to 1")
        if not 0.0 <= confidence <= 1.0:
            raise AnnotationError(f"{path}:{line_no}: confidence is {confidence}, expected n/a or a number from 0 to 1")
        when = row.get("dateTime", "n/a")
        if when != "n/a":
            try:
                datetime.strptime(when, _DATETIME_FORMAT)
            except ValueError:
                raise AnnotationError(
                    f"{path}:{line_no}: dateTime {when!r}, expected n/a or YYYY-MM-DD HH:MM:SS"
                ) from None
        stop = onset + length
        if stop > rec_s + ROUNDING_TOLERANCE_S:
            raise AnnotationError(
                f"{path}:{line_no}: event {onset}-{stop} s ({row['eventType']}) ends after the recordingDuration "
                f"{rec_s} s (more than the {ROUNDING_TOLERANCE_S} s of 2-decimal rounding)"
            )
        events.append(Event(onset, min(stop, rec_s), label, confidence))
    if header is None:
        raise AnnotationError(f"{path}: empty file, expected the header {_HEADER!r} then events")
    if duration_s is None:
        raise AnnotationError(
            f"{path}: no event row, expected at least one (a recording without seizure is one 'bckg' row "
            "carrying its recordingDuration)"
        )
    return Annotation(duration_s=duration_s, events=events)


def _format_duration(start_s: float, stop_s: float) -> str:
    """``stop - start`` with 4 decimals when both times have at most 4 (TUSZ precision), else exactly."""
    if float(f"{start_s:.4f}") == start_s and float(f"{stop_s:.4f}") == stop_s:
        return f"{stop_s - start_s:.4f}"
    return repr(float(stop_s - start_s))


def write_events_tsv(path: str | Path, annotation: Annotation, date_time: datetime | None = None) -> None:
    """Write an annotation as an SzCORE ``_events.tsv`` file that :func:`read_events_tsv` reads back.

    Parameters
    ----------
    path : str or Path
        Output file; missing parent folders are created (a BIDS tree).
    annotation : Annotation
        Duration and events; labels are TUSZ labels (``seiz``, ``fnsz``, ..., ``bckg``), written as
        SzCORE eventTypes (:data:`TUSZ_TO_SZCORE`). An annotation without events is written as one
        ``bckg`` row over the whole recording (the SzCORE convention, so the duration is carried).
    date_time : datetime, optional
        Start of the recording for the ``dateTime`` column; default ``n/a``.

    Raises
    ------
    ValueError
        If a label is outside the SEIZ/BCKG problem.

    Notes
    -----
    Times are written with 4 decimals (the precision of TUSZ files), or exactly when 4 decimals would
    change the value, and ``duration = stop - start``; reading back gives ``onset + duration``, which
    equals the stop time to within floating-point rounding (1e-12 s). ``channels`` is ``n/a``
    (term-based events).
    """
    path = Path(path)
    events = annotation.events or [Event(0.0, annotation.duration_s, BCKG, 1.0)]
    when = "n/a" if date_time is None else date_time.strftime(_DATETIME_FORMAT)
    lines = [_HEADER]
    for e in events:
        label = e.label.lower()
        two_class = two_class_label(label)  # raises for a label outside the problem
        event_type = TUSZ_TO_SZCORE.get(label, "sz" if two_class == SEIZ else BACKGROUND_EVENT_TYPE)
        confidence = "n/a" if math.isnan(e.confidence) else _format_time(e.confidence)
        lines.append("\t".join((_format_time(e.start_s), _format_duration(e.start_s, e.stop_s), event_type,
                                confidence, "n/a", when, _format_time(annotation.duration_s))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def bids_layout(recordings: list[tuple[str, str]]) -> dict[str, Path]:
    """Where each recording's events file goes in a BIDS tree.

    Parameters
    ----------
    recordings : list of (recording name, subject)
        In order; the subject is any text (a TUSZ patient, a dataset's patient id).

    Returns
    -------
    paths : dict of recording name to Path
        :func:`bids_path` relative paths: subject label = the subject's letters and digits
        (:func:`entity_label`; a second subject with the same label gets ``x2``, ``x3``... appended; an
        empty label becomes ``unknown``), session ``01``, task ``szMonitoring``, runs numbered from 0 in
        order within each subject.

    Raises
    ------
    ValueError
        If a recording name repeats.
    """
    labels: dict[str, str] = {}
    used: set[str] = set()
    runs: dict[str, int] = {}
    out: dict[str, Path] = {}
    for name, subject in recordings:
        if name in out:
            raise ValueError(f"recording {name!r} listed twice, expected each recording once")
        if subject not in labels:
            base = entity_label(subject) or "unknown"
            label, k = base, 1
            while label in used:
                k += 1
                label = f"{base}x{k}"
            labels[subject] = label
            used.add(label)
        label = labels[subject]
        run = runs.get(label, 0)
        runs[label] = run + 1
        out[name] = bids_path(label, run)
    return out
