"""Any folder of EDF+ files with seizure annotations, in the EDF+ itself or in BIDS ``*_events.tsv``.

The events files follow the SzCORE convention (HED-SCORE event types): tab-separated columns
``onset`` and ``duration`` in seconds and ``eventType`` (``sz``, ``sz_foc_ia``, ... for seizures,
``bckg`` for background); time no event covers is background unless the config says unknown.

References
----------
Dan J. et al., "SzCORE: Seizure Community Open-Source Research Evaluation framework for the
validation of electroencephalography-based automated seizure detection algorithms", Epilepsia 2024.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ictal.training.datasets.base import DatasetIndex, LabelName, Recording, Skipped, recording_id_for
from ictal.training.datasets.labels import spans_from_annotations


def events_tsv_for(edf: Path) -> Path:
    """The BIDS events file of an EDF: ``..._eeg.edf`` -> ``..._events.tsv`` (else ``<stem>_events.tsv``)."""
    stem = edf.stem
    if stem.endswith("_eeg"):
        stem = stem[: -len("_eeg")]
    return edf.with_name(f"{stem}_events.tsv")


def read_events_tsv(path: Path) -> list[tuple[float, float | None, str]]:
    """Read a BIDS/SzCORE events file.

    Parameters
    ----------
    path : Path
        Tab-separated file with a header holding ``onset``, ``duration`` and ``eventType`` (or the
        BIDS ``trial_type``/``value`` column when ``eventType`` is absent).

    Returns
    -------
    events : list of (float, float or None, str)
        Onset and duration in seconds (None for ``n/a``) and event type.

    Raises
    ------
    ValueError
        If a required column is missing or an onset/duration is not a number (naming row and value).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        columns = reader.fieldnames or []
        type_column = next((c for c in ("eventType", "trial_type", "value") if c in columns), None)
        if "onset" not in columns or "duration" not in columns or type_column is None:
            raise ValueError(
                f"{path.name}: needs columns onset, duration and eventType (found: {', '.join(columns)})"
            )
        events: list[tuple[float, float | None, str]] = []
        for row_number, row in enumerate(reader, start=2):
            try:
                onset = float(row["onset"])
                duration = None if row["duration"] in ("n/a", "", None) else float(row["duration"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path.name} line {row_number}: onset/duration must be numbers in seconds "
                    f"(found {row['onset']!r}, {row['duration']!r})"
                ) from None
            events.append((onset, duration, row[type_column] or ""))
    return events


def discover_edf_folder(
    root: Path, unannotated: LabelName = "bckg", patient_pattern: str = r"^(?:sub-)?([^_]+)"
) -> DatasetIndex:
    """Find the recordings of a folder of EDF+ files.

    Parameters
    ----------
    root : Path
        Folder searched recursively for ``*.edf``.
    unannotated : {"bckg", "unknown"}
        Label of time no annotation covers.
    patient_pattern : str
        Regular expression whose first group, matched against the file stem, is the patient id; a
        ``sub-<label>`` folder in the path takes precedence (BIDS).

    Returns
    -------
    index : DatasetIndex
        Recordings with no split (patient-level splits are drawn later). With an events file the
        labels are read now (an unreadable one is skipped with its reason); without, the EDF+
        annotations are read when the recording is cached.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder or holds no EDF file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    edfs = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".edf")
    if not edfs:
        raise FileNotFoundError(f"{root}: no .edf file below this folder")
    regex = re.compile(patient_pattern)
    recordings: list[Recording] = []
    skipped: list[Skipped] = []
    for edf in edfs:
        subject = next((part[4:] for part in edf.relative_to(root).parts[:-1] if part.startswith("sub-")), None)
        match = regex.search(edf.stem)
        patient = subject or (match.group(1) if match and match.groups() else edf.stem)
        tsv = events_tsv_for(edf)
        annotations = None
        source = "edf_plus"
        if tsv.is_file():
            try:
                annotations = spans_from_annotations(read_events_tsv(tsv))
            except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
                skipped.append(Skipped(edf, f"unreadable events file {tsv.name}: {exc}"))
                continue
            source = "events_tsv"
        recordings.append(Recording(
            recording_id=recording_id_for(edf, root), path=edf, patient=patient, split=None,
            annotations=annotations, default_label=unannotated, source=source,
        ))
    return DatasetIndex(recordings, skipped)
