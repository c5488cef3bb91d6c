"""The CHB-MIT Scalp EEG Database: the PhysioNet layout (EDF + ``chbNN-summary.txt``) and clip folders.

CHB-MIT is recorded in the longitudinal bipolar montage (the double banana plus a few extra
derivations, 10-10 names): a model reads it with ``FrontendConfig.montage: double_banana``
(:mod:`ictal.detector.montage`); a referential model refuses it with the reason.

Two layouts are recognised under ``root`` (searched recursively):

- **PhysioNet** (``chbNN/chbNN_MM.edf`` and ``chbNN/chbNN-summary.txt``): the summary lists every
  file with its seizures, one ``Seizure Start Time: <s> seconds`` / ``Seizure End Time: <s> seconds``
  pair per seizure (later cases write ``Seizure N Start Time`` / ``Seizure N End Time``), in seconds
  from the start of the file. Those spans are seizure; the rest of a listed file is background (the
  database annotates every seizure of its continuous recordings). A file the summaries do not list
  is skipped with the reason (its seizures are unknown); a summary that cannot be parsed is an error
  naming the file and line.
- **Clips** (no summary; e.g. ``../shared/data/bipolar/chbmit``): every EDF+ carries its labels as
  EDF+ annotations (``seiz``, ``bckg``); time no annotation covers is unrated (unknown, masked), never
  background. An optional ``manifest.csv`` (columns ``file``, ``patient``, ``label``) gives each
  clip's patient and whether it holds a seizure; otherwise the patient is the ``chbNN`` of the name.

The patient is the case (``chb01``, ...), except ``chb21``, which PhysioNet documents as the same
subject as ``chb01`` recorded 1.5 years later: both are patient ``chb01``, so a patient-level split
never puts them on both sides.

Clips of 10 s are shorter than the detector's 60 s window; the window sampler pads them as the daemon
pads its warm-up windows (``training.sampler``), as it does the 10 s rated clips of
:mod:`ictal.training.datasets.rated_windows`.

References
----------
Shoeb A. H., "Application of Machine Learning to Epileptic Seizure Onset Detection and Treatment",
PhD thesis, MIT, 2009; Guttag J., CHB-MIT Scalp EEG Database v1.0.0, PhysioNet 2010,
doi:10.13026/C2K01R (ODC-By 1.0).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ictal.training.datasets.base import (
    DatasetIndex,
    LabelName,
    LabelSpan,
    Recording,
    Skipped,
    recording_id_for,
)

SAME_SUBJECT: dict[str, str] = {"chb21": "chb01"}
"""Cases that are one subject (PhysioNet: chb21 was recorded 1.5 years after chb01, same girl)."""

CLIP_LABELS: dict[str, LabelName] = {"seiz": "seiz", "bckg": "bckg"}
"""EDF+ annotation texts of the clips and their labels."""

_CASE = re.compile(r"^(chb\d+)", re.IGNORECASE)
_FILE_NAME = re.compile(r"^\s*File Name:\s*(\S+)\s*$", re.IGNORECASE)
_SEIZURE_TIME = re.compile(
    r"^\s*Seizure(?:\s+(\d+))?\s+(Start|End)\s+Time\s*:\s*([0-9]+(?:\.[0-9]*)?)\s*(?:seconds?|s)?\s*$",
    re.IGNORECASE,
)
_N_SEIZURES = re.compile(r"^\s*Number of Seizures in File:\s*(\d+)\s*$", re.IGNORECASE)


def patient_of(name: str) -> str:
    """Patient id of a CHB-MIT file or case name (``chb21_05.edf`` -> ``chb01``, ``chb02_sz01`` -> ``chb02``).

    Raises
    ------
    ValueError
        If the name does not start with ``chbNN``.
    """
    match = _CASE.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a CHB-MIT name (expected it to start with chbNN, e.g. chb01_03.edf)")
    case = match.group(1).lower()
    return SAME_SUBJECT.get(case, case)


def parse_summary(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Seizures of every file a ``chbNN-summary.txt`` lists.

    Parameters
    ----------
    path : Path
        A CHB-MIT summary file.

    Returns
    -------
    seizures : dict of str to list of (float, float)
        File name (``chb01_03.edf``) -> (start_s, end_s) of each seizure in seconds from the start of
        the file, in the order listed; an empty list for a file without seizure.

    Raises
    ------
    ValueError
        If a seizure time appears outside a file's block, a start lacks its end (or the reverse), an
        end is not after its start, or the count of ``Number of Seizures in File`` differs from the
        seizures listed: the message names the summary, the line and what was found.
    """
    seizures: dict[str, list[tuple[float, float]]] = {}
    expected: dict[str, int] = {}
    current: str | None = None
    start: tuple[float, int] | None = None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if (match := _FILE_NAME.match(line)) is not None:
            if start is not None:
                raise ValueError(f"{path} line {start[1]}: seizure start of {current} has no end time")
            current = match.group(1)
            seizures[current] = []
            continue
        if (match := _N_SEIZURES.match(line)) is not None and current is not None:
            expected[current] = int(match.group(1))
            continue
        match = _SEIZURE_TIME.match(line)
        if match is None:
            continue
        if current is None:
            raise ValueError(f"{path} line {number}: seizure time {line.strip()!r} before any 'File Name:' line")
        seconds = float(match.group(3))
        if match.group(2).lower() == "start":
            if start is not None:
                raise ValueError(f"{path} line {start[1]}: seizure start of {current} has no end time")
            start = (seconds, number)
            continue
        if start is None:
            raise ValueError(f"{path} line {number}: seizure end of {current} without a start time")
        if not seconds > start[0]:
            raise ValueError(f"{path} line {number}: seizure of {current} ends at {seconds:g} s, not after its "
                             f"start {start[0]:g} s")
        seizures[current].append((start[0], seconds))
        start = None
    if start is not None:
        raise ValueError(f"{path} line {start[1]}: seizure start of {current} has no end time")
    for name, count in expected.items():
        if count != len(seizures[name]):
            raise ValueError(f"{path}: {name} says 'Number of Seizures in File: {count}' but lists "
                             f"{len(seizures[name])} seizure(s)")
    return seizures


def is_chbmit_layout(root: Path) -> bool:
    """Whether ``root`` holds CHB-MIT data: a ``chbNN-summary.txt`` below it, or ``chbNN*.edf`` files only."""
    root = Path(root)
    if not root.is_dir():
        return False
    if any(root.rglob("chb*-summary.txt")):
        return True
    edfs = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".edf"]
    return bool(edfs) and all(_CASE.match(p.name) for p in edfs)


def discover_chbmit(root: Path, unannotated: LabelName = "unknown") -> DatasetIndex:
    """Find the recordings of a CHB-MIT folder (PhysioNet layout or clips; module docstring).

    Parameters
    ----------
    root : Path
        The database root (``chb01/``, ``chb02/``, ... with their summaries) or a folder of clips.
    unannotated : {"unknown", "bckg"}
        Clips only: label of time no EDF+ annotation covers (unknown: the clips' remainder is
        unrated). The PhysioNet layout is always background outside the summary's seizures.

    Returns
    -------
    index : DatasetIndex
        Recordings without split (patient-level splits are drawn later); files the summaries do not
        list, and manifest rows whose EDF is missing, are skipped with the reason.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder or holds no EDF file.
    ValueError
        If a summary cannot be parsed, or an EDF's name does not start with ``chbNN``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: CHB-MIT folder not found")
    edfs = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".edf")
    if not edfs:
        raise FileNotFoundError(f"{root}: no .edf file below this folder (expected CHB-MIT chbNN_MM.edf files)")
    summaries = sorted(root.rglob("chb*-summary.txt"))
    if summaries:
        return _discover_physionet(root, edfs, summaries)
    return _discover_clips(root, edfs, unannotated)


def _discover_physionet(root: Path, edfs: list[Path], summaries: list[Path]) -> DatasetIndex:
    listed: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    for summary in summaries:
        for name, spans in parse_summary(summary).items():
            listed[(summary.parent, name)] = spans
    recordings: list[Recording] = []
    skipped: list[Skipped] = []
    for edf in edfs:
        spans = listed.get((edf.parent, edf.name))
        if spans is None:
            where = ", ".join(str(s.relative_to(root)) for s in summaries if s.parent == edf.parent) or "none"
            skipped.append(Skipped(edf, f"not listed in the CHB-MIT summary of its folder ({where}): its "
                                        "seizures are unknown"))
            continue
        recordings.append(Recording(
            recording_id=recording_id_for(edf, root), path=edf, patient=patient_of(edf.name), split=None,
            annotations=[LabelSpan(start, end, "seiz") for start, end in spans], default_label="bckg",
            source="chbmit_summary", has_seizure_hint=bool(spans),
        ))
    return DatasetIndex(recordings, skipped)


def _discover_clips(root: Path, edfs: list[Path], unannotated: LabelName) -> DatasetIndex:
    manifest = root / "manifest.csv"
    rows: dict[str, dict[str, str]] = {}
    skipped: list[Skipped] = []
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("file", "patient", "label") if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{manifest}: missing column(s) {missing} (found: {reader.fieldnames})")
            for row in reader:
                name = Path(row["file"]).name
                if not (root / name).is_file() and not (root / row["file"]).is_file():
                    skipped.append(Skipped(root / name, f"listed in {manifest.name} but the file is missing"))
                    continue
                rows[name] = row
    recordings: list[Recording] = []
    for edf in edfs:
        row = rows.get(edf.name)
        patient = row["patient"].strip() if row and row["patient"].strip() else patient_of(edf.name)
        recordings.append(Recording(
            recording_id=recording_id_for(edf, root), path=edf, patient=SAME_SUBJECT.get(patient, patient),
            split=None, annotations=None, default_label=unannotated, edf_annotation_labels=dict(CLIP_LABELS),
            source="edf_plus", has_seizure_hint=bool(row and row["label"].strip() == "seiz"),
        ))
    return DatasetIndex(recordings, skipped)
