"""Read and write TUSZ term annotations (``csv_bi``, ``tse``/``tse_bi``) and list files of them.

SzCORE / BIDS ``_events.tsv`` files are read and written by :mod:`ictal.training.scoring.bids_tsv`;
:func:`read_annotation` dispatches to it by extension.

Formats (TUH EEG Seizure Corpus, Temple University NEDC; the files read by NEDC EEG Eval v6.0.0):

``csv_bi`` (TUSZ v2.0 and later)::

    # version = csv_v1.0.0
    # bname = aaaaaasf_s001_t000
    # duration = 1289.0000 secs
    # montage_file = nedc_eas_default_montage.txt
    #
    channel,start_time,stop_time,label,confidence
    TERM,42.2786,81.7760,seiz,1.0000

``tse`` / ``tse_bi`` (TUSZ v1.x)::

    version = tse_v1.0.0

    0.0000 42.2786 bckg 1.0000
    42.2786 81.7760 seiz 1.0000

Times are in seconds from the start of the recording. A ``tse`` file carries no duration header: its
duration is the stop time of its last event (which is how TUSZ v1 files cover the whole recording).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

CSV_HEADER = "channel,start_time,stop_time,label,confidence"
CSV_VERSION = "csv_v1.0.0"
TSE_VERSION = "tse_v1.0.0"
TERM_CHANNEL = "TERM"


class AnnotationError(ValueError):
    """A malformed annotation or list file; the message names the file, the line, what was found and expected."""


@dataclass(frozen=True)
class Event:
    """One annotated event.

    Parameters
    ----------
    start_s, stop_s : float
        Start and stop of the event in seconds from the start of the recording (``stop_s >= start_s``).
    label : str
        Event label, lower case as in TUSZ (``"seiz"``, ``"bckg"``, ...).
    confidence : float
        Annotator or detector confidence in [0, 1] (1.0 in TUSZ references).
    """

    start_s: float
    stop_s: float
    label: str
    confidence: float = 1.0

    @property
    def duration_s(self) -> float:
        """Length of the event in seconds."""
        return self.stop_s - self.start_s


@dataclass(frozen=True)
class Annotation:
    """The term-based annotation of one recording.

    Parameters
    ----------
    duration_s : float
        Duration of the recording in seconds (``# duration = ... secs`` of a csv_bi file).
    events : list of Event
        Events in file order.
    """

    duration_s: float
    events: list[Event] = field(default_factory=list)


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A plain decimal number. Stricter than ``float()``, which also reads ``1_0`` as 10, ``inf`` and ``nan``."""

MAX_TIME_S = 31 * 86400.0
"""Latest time (s) an annotation may give: 31 days, longer than any one EEG recording file. It bounds
the memory and time of scoring (the EPOCH scorer walks the recording in 0.25 s epochs)."""

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest annotation or list file read (64 MiB, about a million events; a TUSZ file is a few KB)."""


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a leading byte-order mark is dropped), after size and encoding checks."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise AnnotationError(
            f"{path}: file is {size} bytes, expected at most {MAX_FILE_BYTES} (an annotation or list file)"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise AnnotationError(
            f"{path}:{line_no}: byte {raw[exc.start]:#04x} at offset {exc.start} is not UTF-8 text; expected a "
            "text annotation or list file"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _parse_float(text: str, what: str, path: Path, line_no: int, expected: str = "a number of seconds") -> float:
    value = text.strip()
    if not _DECIMAL.fullmatch(value):
        raise AnnotationError(f"{path}:{line_no}: {what} is {value!r}, expected {expected}")
    number = float(value)
    if not math.isfinite(number):
        raise AnnotationError(f"{path}:{line_no}: {what} is {value!r}, expected a finite number")
    return number


def _parse_time(text: str, what: str, path: Path, line_no: int) -> float:
    value = _parse_float(text, what, path, line_no)
    if not 0 <= value <= MAX_TIME_S:
        raise AnnotationError(f"{path}:{line_no}: {what} is {value}, expected from 0 to {MAX_TIME_S:g} s (31 days)")
    return value


def _make_event(start: str, stop: str, label: str, confidence: str, path: Path, line_no: int) -> Event:
    start_s = _parse_time(start, "start time", path, line_no)
    stop_s = _parse_time(stop, "stop time", path, line_no)
    conf = _parse_float(confidence, "confidence", path, line_no, expected="a number from 0 to 1")
    if not 0.0 <= conf <= 1.0:
        raise AnnotationError(f"{path}:{line_no}: confidence is {conf}, expected a number from 0 to 1")
    if stop_s < start_s:
        raise AnnotationError(
            f"{path}:{line_no}: stop time {stop_s} is before start time {start_s}, expected stop >= start"
        )
    label = label.strip().lower()
    if not label:
        raise AnnotationError(f"{path}:{line_no}: empty label, expected e.g. 'seiz' or 'bckg'")
    return Event(start_s, stop_s, label, conf)


def read_csv_bi(path: str | Path) -> Annotation:
    """Read a TUSZ ``csv_bi`` (term-based) annotation file.

    Parameters
    ----------
    path : str or Path
        The ``.csv_bi`` file.

    Returns
    -------
    Annotation
        Duration from the ``# duration = N secs`` header and the events in file order.

    Raises
    ------
    AnnotationError
        If the duration header is missing or not a number, the column header is not
        ``channel,start_time,stop_time,label,confidence``, a row does not have 5 fields, a time or
        confidence is not a number, a stop time precedes its start time, an event ends after the
        duration, or a row's channel is not ``TERM`` (a per-channel ``csv`` file, not ``csv_bi``); if a
        time is not a plain decimal number from 0 to :data:`MAX_TIME_S` or a confidence not from 0 to 1;
        if the file is not UTF-8 text or is larger than :data:`MAX_FILE_BYTES`.
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    duration_s: float | None = None
    header_seen = False
    events: list[Event] = []
    for line_no, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            key, sep, value = body.partition("=")
            if sep and key.strip() == "duration":
                text = value.strip()
                if text.endswith("secs"):
                    text = text[: -len("secs")]
                duration_s = _parse_time(text, "duration", path, line_no)
            continue
        if not header_seen:
            if line.replace(" ", "") != CSV_HEADER:
                raise AnnotationError(
                    f"{path}:{line_no}: found {line!r} where the column header {CSV_HEADER!r} was expected"
                )
            header_seen = True
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 5:
            raise AnnotationError(
                f"{path}:{line_no}: {len(fields)} fields in {line!r}, expected 5 ({CSV_HEADER})"
            )
        channel, start, stop, label, confidence = fields
        if channel != TERM_CHANNEL:
            raise AnnotationError(
                f"{path}:{line_no}: channel {channel!r}, expected {TERM_CHANNEL!r} "
                "(only term-based csv_bi annotations can be scored)"
            )
        events.append(_make_event(start, stop, label, confidence, path, line_no))
    if duration_s is None:
        raise AnnotationError(f"{path}: no '# duration = N secs' header line, expected one before the events")
    if not header_seen:
        raise AnnotationError(f"{path}: no column header {CSV_HEADER!r} found")
    for event in events:
        if event.stop_s > duration_s + 1e-6:
            raise AnnotationError(
                f"{path}: event {event.start_s}-{event.stop_s} s ({event.label}) ends after the "
                f"duration {duration_s} s"
            )
    return Annotation(duration_s=duration_s, events=events)


def read_tse(path: str | Path) -> Annotation:
    """Read a TUSZ v1 ``tse`` or ``tse_bi`` annotation file.

    Parameters
    ----------
    path : str or Path
        The ``.tse`` / ``.tse_bi`` file: ``version = tse_v1.0.0`` then ``start stop label confidence``
        rows.

    Returns
    -------
    Annotation
        The events; the duration is the latest stop time (tse files have no duration header).

    Raises
    ------
    AnnotationError
        If the version line is missing or not ``tse_v1.0.0``, a row does not have 4 fields, a field
        is not a number or a stop time precedes its start time (and for the time, confidence, encoding
        and size checks of `read_csv_bi`).
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    version_seen = False
    events: list[Event] = []
    for line_no, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not version_seen:
            key, sep, value = line.partition("=")
            if not sep or key.strip() != "version" or value.strip() != TSE_VERSION:
                raise AnnotationError(
                    f"{path}:{line_no}: found {line!r}, expected 'version = {TSE_VERSION}'"
                )
            version_seen = True
            continue
        fields = line.split()
        if len(fields) != 4:
            raise AnnotationError(
                f"{path}:{line_no}: {len(fields)} fields in {line!r}, expected 4 (start stop label confidence)"
            )
        events.append(_make_event(*fields, path=path, line_no=line_no))
    if not version_seen:
        raise AnnotationError(f"{path}: empty file, expected 'version = {TSE_VERSION}' then events")
    duration_s = max((e.stop_s for e in events), default=0.0)
    return Annotation(duration_s=duration_s, events=events)


def read_annotation(path: str | Path) -> Annotation:
    """Read an annotation file, choosing the reader by its extension.

    Parameters
    ----------
    path : str or Path
        ``.csv_bi`` (or ``.csv`` with only ``TERM`` rows), ``.tse`` / ``.tse_bi``, or an SzCORE / BIDS
        ``_events.tsv`` (:mod:`ictal.training.scoring.bids_tsv`).

    Returns
    -------
    Annotation

    Raises
    ------
    AnnotationError
        If the extension is none of these, or the file is malformed (see `read_csv_bi`, `read_tse`,
        `training.scoring.bids_tsv.read_events_tsv`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv_bi", ".csv"):
        return read_csv_bi(path)
    if suffix in (".tse", ".tse_bi"):
        return read_tse(path)
    if suffix == ".tsv":
        from ictal.training.scoring.bids_tsv import read_events_tsv

        return read_events_tsv(path)
    raise AnnotationError(
        f"{path}: extension {suffix!r}, expected .csv_bi, .csv, .tse, .tse_bi or an SzCORE _events.tsv"
    )


def _format_time(value: float) -> str:
    """Four decimals as TUSZ writes them, or the full repr when 4 decimals would change the value."""
    text = f"{value:.4f}"
    return text if float(text) == value else repr(float(value))


def write_csv_bi(
    path: str | Path, annotation: Annotation, bname: str | None = None, montage_file: str = "none"
) -> None:
    """Write an annotation as a TUSZ ``csv_bi`` file that `read_csv_bi` reads back identically.

    Parameters
    ----------
    path : str or Path
        Output file (parents must exist).
    annotation : Annotation
        Duration and events to write, in the given order.
    bname : str, optional
        Recording base name for the ``# bname`` header (default: the file stem).
    montage_file : str
        Value of the ``# montage_file`` header.

    Notes
    -----
    Times and confidences are written with 4 decimals like TUSZ, unless that would change the value,
    in which case the shortest exact representation is written, so the round trip is exact.
    """
    path = Path(path)
    lines = [
        f"# version = {CSV_VERSION}",
        f"# bname = {bname if bname is not None else path.stem}",
        f"# duration = {_format_time(annotation.duration_s)} secs",
        f"# montage_file = {montage_file}",
        "#",
        CSV_HEADER,
    ]
    for event in annotation.events:
        lines.append(
            f"{TERM_CHANNEL},{_format_time(event.start_s)},{_format_time(event.stop_s)},"
            f"{event.label},{_format_time(event.confidence)}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_list(path: str | Path) -> list[Path]:
    """Read a list file (one annotation path a line), as given to NEDC EEG Eval.

    Parameters
    ----------
    path : str or Path
        The ``.list`` file. Blank lines and lines starting with ``#`` are skipped; relative paths are
        resolved against the folder of the list file (and normalised: ``..`` removed).

    Returns
    -------
    list of Path
        The paths in file order.

    Raises
    ------
    AnnotationError
        If the list names no file, is not UTF-8 text or is larger than :data:`MAX_FILE_BYTES`.
    OSError
        If the list file cannot be read.
    """
    path = Path(path)
    base = path.resolve().parent
    out: list[Path] = []
    for line in _read_lines(path):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        entry = Path(text).expanduser()
        out.append(entry if entry.is_absolute() else Path(os.path.normpath(base / entry)))
    if not out:
        raise AnnotationError(f"{path}: the list names no file, expected one annotation path per line")
    return out
