"""The TUH Seizure Corpus v2 layout: ``edf/{train,dev,eval}/<patient>/<session>/<montage>/*.edf``.

Each EDF has a ``.csv_bi`` file of term annotations beside it (labels ``seiz``/``bckg`` over the whole
file) and a ``.csv`` file of per-channel annotations; the per-sample detector trains on the term
labels, so only ``.csv_bi`` is read. Only the referential montages are usable by the 19-channel
model; the others are skipped with the reason.

References
----------
Shah V. et al., "The Temple University Hospital Seizure Detection Corpus", Front. Neuroinform. 2018.
"""

from __future__ import annotations

from pathlib import Path

from ictal.training.datasets.base import SPLITS, DatasetIndex, Recording, Skipped, recording_id_for
from ictal.training.datasets.labels import spans_from_annotations

USABLE_MONTAGES: tuple[str, ...] = ("01_tcp_ar", "02_tcp_le", "03_tcp_ar_a")
"""Montage folders whose EDF files hold referential channels (averaged or linked-ears reference)."""


def read_term_annotations(path: Path) -> list[tuple[float, float, str]]:
    """Read the term annotations of a ``.csv_bi`` file as ``(onset_s, duration_s, label)``.

    Parameters
    ----------
    path : Path
        A TUSZ ``.csv_bi`` file.

    Returns
    -------
    annotations : list of (float, float, str)
        Start in seconds, duration in seconds and label (``seiz``/``bckg``) of each term.

    Raises
    ------
    ValueError, OSError
        If the file cannot be read or parsed (the scoring package's reader says why).

    Notes
    -----
    The project has one csv_bi reader, in ``training.scoring.annotations``; this only adapts its events.
    """
    from ictal.training.scoring.annotations import read_csv_bi

    annotation = read_csv_bi(path)
    return [(float(e.start_s), float(e.stop_s) - float(e.start_s), str(e.label)) for e in annotation.events]


def discover_tusz(root: Path) -> DatasetIndex:
    """Find the usable recordings of a TUSZ v2 tree.

    Parameters
    ----------
    root : Path
        The corpus root (holding ``edf/``) or its ``edf/`` folder.

    Returns
    -------
    index : DatasetIndex
        One Recording per EDF of a usable montage with a readable ``.csv_bi`` (split and patient from
        the path); every other EDF in a skipped entry with its reason (non-referential montage,
        unexpected layout, missing or unreadable ``.csv_bi``).

    Raises
    ------
    FileNotFoundError
        If ``root`` holds none of the split folders train/dev/eval.
    ValueError
        If a patient has recordings in two splits.
    """
    root = Path(root)
    edf_root = root / "edf" if (root / "edf").is_dir() else root
    split_dirs = [edf_root / name for name in SPLITS if (edf_root / name).is_dir()]
    if not split_dirs:
        found = sorted(p.name for p in edf_root.iterdir()) if edf_root.is_dir() else "no such folder"
        raise FileNotFoundError(
            f"{edf_root}: not a TUSZ v2 tree (expected folders {list(SPLITS)}; found: {found})"
        )
    recordings: list[Recording] = []
    skipped: list[Skipped] = []
    for split_dir in split_dirs:
        for edf in sorted(split_dir.rglob("*")):
            if not edf.is_file() or edf.suffix.lower() != ".edf":
                continue
            parts = edf.relative_to(split_dir).parts
            if len(parts) != 4:
                skipped.append(Skipped(edf, f"not in the <patient>/<session>/<montage>/ layout below "
                                             f"{split_dir.name}/ (found {'/'.join(parts)})"))
                continue
            patient, _session, montage, _name = parts
            if montage not in USABLE_MONTAGES:
                skipped.append(Skipped(edf, f"montage {montage} is not usable by the 19-channel referential "
                                             f"model (usable: {', '.join(USABLE_MONTAGES)})"))
                continue
            csv_bi = edf.with_suffix(".csv_bi")
            if not csv_bi.is_file():
                skipped.append(Skipped(edf, f"no term annotation file {csv_bi.name} beside it"))
                continue
            try:
                annotations = read_term_annotations(csv_bi)
                spans = spans_from_annotations(annotations)
            except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
                skipped.append(Skipped(edf, f"unreadable annotations {csv_bi.name}: {exc}"))
                continue
            if not spans:
                skipped.append(Skipped(edf, f"{csv_bi.name} holds no seiz/bckg term"))
                continue
            recordings.append(Recording(
                recording_id=recording_id_for(edf, edf_root), path=edf, patient=patient,
                split=split_dir.name, annotations=spans, default_label="unknown", source="csv_bi",
            ))
    return DatasetIndex(recordings, skipped)
