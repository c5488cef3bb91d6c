"""Builds a small TUSZ v2 tree in a temporary folder from real EDF files of ../shared/data.

The EDF files are copied (never into the repository) and renamed into
``edf/{train,dev,eval}/<patient>/<session>/<montage>/``; the ``.csv_bi`` term annotations are written
here. Besides the usable recordings the tree holds the faults a real corpus has: a non-referential
montage folder, a corrupt EDF, a corrupt ``.csv_bi`` and an EDF without annotations.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ictal.training.scoring.annotations import Annotation, Event, write_csv_bi

# (split, patient, montage, source file below shared data, duration s, seizure (start, stop) or None)
USABLE = [
    ("train", "aaaaaaaa", "01_tcp_ar", "labelled/hms_1628180742.edf", 90.0, (20.0, 70.0)),
    ("train", "aaaaaaab", "02_tcp_le", "labelled/iiic_01.edf", 50.0, (20.0, 30.0)),
    ("train", "aaaaaaac", "01_tcp_ar", "background/eegmat/Subject00_2.edf", 62.0, None),
    ("dev", "aaaaaaad", "03_tcp_ar_a", "labelled/iiic_02.edf", 50.0, (20.0, 30.0)),
    ("dev", "aaaaaaae", "01_tcp_ar", "background/eegmat/Subject01_2.edf", 62.0, None),
    ("eval", "aaaaaaaf", "01_tcp_ar", "labelled/iiic_03.edf", 50.0, (20.0, 30.0)),
]


def _edf_path(root: Path, split: str, patient: str, montage: str, session: str = "s001_2020") -> Path:
    folder = root / "edf" / split / patient / session / montage
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{patient}_s001_t000.edf"


def write_terms(path: Path, duration_s: float, seizure: tuple[float, float] | None) -> None:
    """Write a csv_bi covering the whole recording: bckg, with one seiz term when given."""
    events = []
    if seizure is None:
        events.append(Event(0.0, duration_s, "bckg"))
    else:
        start, stop = seizure
        events += [Event(0.0, start, "bckg"), Event(start, stop, "seiz"), Event(stop, duration_s, "bckg")]
    write_csv_bi(path, Annotation(duration_s, [e for e in events if e.stop_s > e.start_s]))


def build_tusz_tree(shared: Path, root: Path, faults: bool = True) -> dict[str, Path]:
    """Create the tree under ``root``; returns the paths of the faulty files by kind."""
    for split, patient, montage, source, duration, seizure in USABLE:
        edf = _edf_path(root, split, patient, montage)
        shutil.copyfile(shared / source, edf)
        write_terms(edf.with_suffix(".csv_bi"), duration, seizure)
        edf.with_suffix(".csv").write_text("# per-channel annotations are not read by training\n")
    bad: dict[str, Path] = {}
    if not faults:
        return bad
    bipolar = _edf_path(root, "train", "aaaaaaag", "04_tcp_le_a")
    shutil.copyfile(shared / "labelled/iiic_04.edf", bipolar)
    write_terms(bipolar.with_suffix(".csv_bi"), 50.0, None)
    bad["montage"] = bipolar
    corrupt_edf = _edf_path(root, "train", "aaaaaaah", "01_tcp_ar")
    corrupt_edf.write_bytes(b"0       this is not an EDF header" * 20)
    write_terms(corrupt_edf.with_suffix(".csv_bi"), 50.0, None)
    bad["edf"] = corrupt_edf
    corrupt_csv = _edf_path(root, "train", "aaaaaaai", "01_tcp_ar")
    shutil.copyfile(shared / "labelled/iiic_05.edf", corrupt_csv)
    corrupt_csv.with_suffix(".csv_bi").write_text("# duration = 50.0 secs\nchannel,start_time,stop_time,label,"
                                                  "confidence\nTERM,abc,30.0,seiz,1.0\n")
    bad["csv_bi"] = corrupt_csv
    no_csv = _edf_path(root, "train", "aaaaaaaj", "01_tcp_ar")
    shutil.copyfile(shared / "labelled/iiic_06.edf", no_csv)
    bad["missing"] = no_csv
    return bad
