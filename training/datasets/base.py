"""The recording descriptor shared by every dataset layout, and the label codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SEIZURE: int = 1
"""Per-sample label of seizure."""
BACKGROUND: int = 0
"""Per-sample label of non-seizure EEG (rated or annotated as such)."""
UNKNOWN: int = -1
"""Per-sample label of unrated time: ignored (masked) by the loss and by dev scoring."""

LabelName = Literal["seiz", "bckg", "unknown"]
LABEL_CODES: dict[str, int] = {"seiz": SEIZURE, "bckg": BACKGROUND, "unknown": UNKNOWN}

SPLITS: tuple[str, ...] = ("train", "dev", "eval")
"""Split names: train fits the weights, dev picks the best checkpoint, eval is never seen by training."""


@dataclass(frozen=True)
class LabelSpan:
    """One annotated stretch of a recording.

    Attributes
    ----------
    onset_s, offset_s : float
        Start and end in seconds from the start of the recording (offset > onset).
    label : {"seiz", "bckg", "unknown"}
        What the stretch is.
    """

    onset_s: float
    offset_s: float
    label: LabelName


@dataclass
class Recording:
    """One EDF recording of a dataset, before preprocessing.

    Attributes
    ----------
    recording_id : str
        Unique, file-name-safe id (the path below the dataset root with ``/`` replaced by ``__``).
    path : Path
        The EDF file.
    patient : str
        Patient id; splits are made per patient.
    split : str or None
        "train", "dev" or "eval"; None until :func:`ictal.training.datasets.splits.assign_splits` sets it
        for layouts that carry no split.
    annotations : list of LabelSpan or None
        Labelled stretches; None means "read them from the EDF+ annotations when caching" (see
        ``edf_annotation_labels``).
    default_label : {"bckg", "unknown"}
        Label of time no span covers.
    edf_annotation_labels : dict of str to label name
        Only when ``annotations`` is None: maps lower-cased EDF+ annotation texts to labels; a text
        starting with ``sz`` is a seizure (SzCORE/HED-SCORE), other texts not in the map are ignored.
    source : str
        Where the labels came from (``csv_bi``, ``events_tsv``, ``edf_plus``, ``all_background``).
    has_seizure_hint : bool
        Whether the recording is known to hold a seizure before its EDF+ annotations are read (from a
        manifest); used only to stratify splits.
    """

    recording_id: str
    path: Path
    patient: str
    split: str | None
    annotations: list[LabelSpan] | None
    default_label: LabelName = "bckg"
    edf_annotation_labels: dict[str, LabelName] = field(default_factory=dict)
    source: str = ""
    has_seizure_hint: bool = False


@dataclass(frozen=True)
class Skipped:
    """A file that was left out, and why (every skip is reported, never silent)."""

    path: Path
    reason: str


@dataclass
class DatasetIndex:
    """What discovery found: usable recordings and skipped files with their reasons."""

    recordings: list[Recording]
    skipped: list[Skipped]


def recording_id_for(path: Path, root: Path) -> str:
    """Return the file-name-safe id of ``path`` below ``root``.

    Parameters
    ----------
    path, root : Path
        The EDF file and the dataset root it lies under.

    Returns
    -------
    recording_id : str
        ``a/b/c.edf`` -> ``a__b__c``.
    """
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    return "__".join(rel.with_suffix("").parts)
