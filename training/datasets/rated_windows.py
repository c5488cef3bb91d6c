"""The expert-rated collections of ../shared/data: ``labelled/`` (rated windows) and ``background/eegmat``.

``labelled/manifest.csv`` lists one EDF+ per row; only its rated windows carry a label (an EDF+
annotation over each window whose text is the plurality class of the expert votes): ``seiz`` is a
seizure, ``lpd``/``gpd``/``lrda``/``grda``/``other`` are non-seizure patterns (hard background), ``tie``
is undecided and stays unknown. The rest of each file is unrated: unknown, never background.
``background/eegmat/*.edf`` are seizure-free recordings of healthy adults: background throughout.

A labelled file is its own patient (the public IIIC/HMS segments do not say which patient they come
from) unless its manifest ``source`` names a subject (``sub-S0001111958090`` in the GROND clips): then
that subject is the patient, so the five subjects who give two GROND clips stay on one side of a
patient-wise split or fold. EEGMAT patients are the subjects (``Subject03_1`` and ``Subject03_2`` are
one patient).

References
----------
Jing J. et al., Neurology 2023 (IIIC); Zyma I. et al., Data 2019 (EEGMAT); Kaggle HMS (CC BY-NC 4.0).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ictal.training.datasets.base import DatasetIndex, LabelName, Recording, Skipped, recording_id_for

RATED_LABELS: dict[str, LabelName] = {
    "seiz": "seiz", "lpd": "bckg", "gpd": "bckg", "lrda": "bckg", "grda": "bckg", "other": "bckg",
    "tie": "unknown",
}
"""EDF+ annotation text of a rated window -> label."""

MANIFEST_COLUMNS: tuple[str, ...] = ("file", "rated_windows", "seizure")

_SUBJECT = re.compile(r"sub-([A-Za-z0-9]+)")


def patient_of(stem: str, source: str | None) -> str:
    """The patient of a labelled file: ``sub-<id>`` named in its manifest ``source``, else the file stem.

    Parameters
    ----------
    stem : str
        The EDF file name without suffix (``grond_gpd_19``).
    source : str or None
        The manifest's ``source`` column (``.../gpd_25_sub-S0001111958090_20120226164014.mat``).

    Returns
    -------
    str
        ``sub-S0001111958090`` when the source names a BIDS-style subject, else ``stem``.
    """
    match = _SUBJECT.search(source or "")
    return f"sub-{match.group(1)}" if match else stem


def discover_rated_windows(root: Path) -> DatasetIndex:
    """Find the rated-window and background recordings under ``root``.

    Parameters
    ----------
    root : Path
        The shared data folder (holding ``labelled/manifest.csv`` and/or ``background/eegmat/``).

    Returns
    -------
    index : DatasetIndex
        Recordings without split (drawn later, per patient); rows whose EDF is missing are skipped
        with the reason.

    Raises
    ------
    FileNotFoundError
        If ``root`` holds neither a manifest nor EEGMAT files.
    ValueError
        If the manifest lacks a required column.
    """
    root = Path(root)
    manifest = root / "labelled" / "manifest.csv"
    eegmat = root / "background" / "eegmat"
    if not manifest.is_file() and not eegmat.is_dir():
        raise FileNotFoundError(
            f"{root}: no rated-window collection here (expected labelled/manifest.csv or background/eegmat/)"
        )
    recordings: list[Recording] = []
    skipped: list[Skipped] = []
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{manifest}: missing column(s) {missing} (found: {reader.fieldnames})")
            for row in reader:
                edf = root / row["file"]
                if not edf.is_file():
                    skipped.append(Skipped(edf, f"listed in {manifest.name} but the file is missing"))
                    continue
                recordings.append(Recording(
                    recording_id=recording_id_for(edf, root), path=edf,
                    patient=patient_of(edf.stem, row.get("source")), split=None,
                    annotations=None, default_label="unknown", edf_annotation_labels=dict(RATED_LABELS),
                    source="edf_plus", has_seizure_hint=row["seizure"].strip() == "1",
                ))
    if eegmat.is_dir():
        for edf in sorted(eegmat.glob("*.edf")):
            recordings.append(Recording(
                recording_id=recording_id_for(edf, root), path=edf, patient="eegmat_" + edf.stem.split("_")[0],
                split=None, annotations=[], default_label="bckg", source="all_background",
            ))
    return DatasetIndex(recordings, skipped)
