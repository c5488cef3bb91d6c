"""Provenance: which recordings a checkpoint was trained on, and whether a scored set overlaps them.

Training writes ``metadata["provenance"]`` into every checkpoint (:func:`build_provenance`; layout in
:mod:`ictal.detector.checkpoint`)::

    {"dataset": {"format": "rated_windows", "root": "../shared/data"},
     "split": {"seed": 0, "dev_fraction": 0.0, "eval_recordings": [patterns], "rule": "..."},
     "train_recordings": [ids], "validation_recordings": [ids], "evaluation_recordings": [ids],
     "recording_id_rule": "..."}

- ``train_recordings``: split ``train``, the recordings whose windows fitted the weights;
  ``validation_recordings``: split ``dev`` (picked the best checkpoint, never fitted);
  ``evaluation_recordings``: split ``eval``, held out (``data.eval_recordings``), never seen.
- A recording id is the path of the EDF below the dataset root, without the suffix, with ``/``
  replaced by ``__`` (``labelled/iiic_03.edf`` -> ``labelled__iiic_03``;
  :func:`ictal.training.datasets.base.recording_id_for`), the id ``ictal evaluate`` and ``ictal tune``
  report. Ids do not depend on where the root lies, so a copy of the dataset at another path matches.
- A list longer than :data:`MAX_LISTED_IDS` ids is stored as ``<name>_recording_hashes`` instead: the
  sorted SHA-256 hex digests of the UTF-8 ids (:func:`id_hash`), and ``"hashed"`` names the lists
  stored that way. :func:`overlap` hashes the ids it is asked about to compare.

:func:`overlap` says which of a set of recordings a checkpoint was trained on or holds out;
:func:`format_warning` turns that into the one line that ``ictal evaluate`` and ``ictal tune`` print
(and write into their reports):

- evaluate: ``N of M recordings are training recordings of checkpoint <id>: figures on them are not
  held-out``;
- tune: the same count for training recordings (thresholds tuned on recordings the model has fitted
  see overconfident probabilities), and ``K of M recordings are marked for evaluation (held out) by
  checkpoint <id>: tuning on them makes later held-out figures optimistic``;
- both: ``provenance of checkpoint <id> unknown ...`` when the checkpoint does not say.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ictal.detector.checkpoint import PROVENANCE_LISTS, check_provenance
from ictal.training.config import DataConfig

MAX_LISTED_IDS: int = 5000
"""Longest recording list stored as ids; longer lists are stored as SHA-256 hashes. 5000 ids of about
40 characters keep ``metadata.json`` near 200 kB (TUSZ v2 train has about 4,600 recordings, listed)."""

RECORDING_ID_RULE: str = (
    "path of the EDF file below the dataset root, suffix removed, '/' replaced by '__' "
    "(training.datasets.base.recording_id_for; e.g. labelled/iiic_03.edf -> labelled__iiic_03)"
)
"""How the ids of the provenance lists are made (stored in ``recording_id_rule``)."""

SPLIT_RULE: str = (
    "recordings matching split.eval_recordings (fnmatch on the id, whole patients) are held out in eval; "
    "TUSZ keeps its own train/dev/eval folders; the other patients are drawn into dev (dev_fraction, per "
    "seizure/no-seizure stratum, numpy default_rng(seed)) or train (training.datasets.splits)"
)
"""How the split was drawn (stored in ``split.rule``)."""

SPLIT_OF_LIST: dict[str, str] = {"train": "train", "validation": "dev", "evaluation": "eval"}
"""Provenance list name -> split name of :mod:`ictal.training.datasets`."""

Purpose = Literal["evaluate", "tune"]


def id_hash(recording_id: str) -> str:
    """SHA-256 hex digest of a recording id (UTF-8), as stored in ``<name>_recording_hashes``."""
    return hashlib.sha256(recording_id.encode("utf-8")).hexdigest()


def build_provenance(data: DataConfig, splits: Iterable[tuple[str, str]],
                     max_listed: int = MAX_LISTED_IDS) -> dict[str, Any]:
    """The ``provenance`` of a checkpoint trained on ``data``.

    Parameters
    ----------
    data : DataConfig
        The run's dataset description (layout, root, split seed, dev fraction, held-out patterns).
    splits : iterable of (str, str)
        ``(recording_id, split)`` of every recording the run used (the cache entries), split one of
        ``train``/``dev``/``eval``.
    max_listed : int
        Longest list stored as ids; a longer one is stored as sorted hashes.

    Returns
    -------
    provenance : dict
        The layout of the module docstring (ids sorted).

    Raises
    ------
    ValueError
        If a split is not train/dev/eval or an id appears twice.
    """
    by_split: dict[str, list[str]] = {name: [] for name in SPLIT_OF_LIST.values()}
    seen: set[str] = set()
    for recording_id, split in splits:
        if split not in by_split:
            raise ValueError(f"recording {recording_id}: split must be one of {sorted(by_split)} (found {split!r})")
        if recording_id in seen:
            raise ValueError(f"recording id {recording_id!r} appears twice: ids must be unique")
        seen.add(recording_id)
        by_split[split].append(recording_id)
    provenance: dict[str, Any] = {
        "dataset": {"format": data.format, "root": str(data.root)},
        "split": {"seed": data.split_seed, "dev_fraction": data.dev_fraction,
                  "eval_recordings": list(data.eval_recordings), "rule": SPLIT_RULE},
    }
    hashed = []
    for name, split in SPLIT_OF_LIST.items():
        ids = sorted(by_split[split])
        if len(ids) > max_listed:
            provenance[f"{name}_recording_hashes"] = sorted(id_hash(i) for i in ids)
            hashed.append(name)
        else:
            provenance[f"{name}_recordings"] = ids
    provenance["recording_id_rule"] = RECORDING_ID_RULE
    if hashed:
        provenance["hashed"] = hashed
        provenance["hash_rule"] = (f"lists of more than {max_listed} ids are stored as <name>_recording_hashes: "
                                   "sorted SHA-256 hex digests of the UTF-8 recording ids")
    check_provenance(provenance)
    return provenance


@dataclass
class Overlap:
    """Which of a set of recordings a checkpoint was trained on or holds out.

    Attributes
    ----------
    train : list of str
        Ids of the set that are training recordings of the checkpoint (input order).
    evaluation : list of str
        Ids of the set that the checkpoint marks for evaluation (held out).
    known : bool
        False when the checkpoint has no provenance: nothing can be said (both lists empty).
    n_recordings : int
        Size of the set.
    validation : list of str
        Ids of the set that are the checkpoint's validation (dev) recordings.
    """

    train: list[str]
    evaluation: list[str]
    known: bool
    n_recordings: int = 0
    validation: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ``provenance`` entry of a report)."""
        return {"known": self.known, "n_recordings": self.n_recordings, "n_train": len(self.train),
                "train": list(self.train), "n_evaluation": len(self.evaluation), "evaluation": list(self.evaluation),
                "n_validation": len(self.validation), "validation": list(self.validation)}


def _members(provenance: dict[str, Any], name: str) -> tuple[set[str], bool]:
    if f"{name}_recording_hashes" in provenance:
        return set(provenance[f"{name}_recording_hashes"]), True
    return set(provenance[f"{name}_recordings"]), False


def overlap(provenance: dict[str, Any] | None, recording_ids: Iterable[str]) -> Overlap:
    """Which of ``recording_ids`` the checkpoint of ``provenance`` trained on, validated on or holds out.

    Parameters
    ----------
    provenance : dict or None
        ``metadata["provenance"]`` of a checkpoint (None: unknown).
    recording_ids : iterable of str
        The recordings about to be scored or tuned on (ids of :data:`RECORDING_ID_RULE`).

    Returns
    -------
    Overlap

    Raises
    ------
    ValueError
        If ``provenance`` is malformed (:func:`ictal.detector.checkpoint.check_provenance`).
    """
    ids = list(recording_ids)
    if provenance is None:
        return Overlap([], [], False, len(ids))
    check_provenance(provenance)
    found: dict[str, list[str]] = {}
    for name in PROVENANCE_LISTS:
        members, hashed = _members(provenance, name)
        found[name] = [i for i in ids if (id_hash(i) if hashed else i) in members]
    return Overlap(found["train"], found["evaluation"], True, len(ids), found["validation"])


def format_warning(result: Overlap, checkpoint_id: str, purpose: Purpose = "evaluate") -> str | None:
    """One line warning about ``result``, or None when there is nothing to warn about.

    Parameters
    ----------
    result : Overlap
    checkpoint_id : str
        The checkpoint's id (named in the line).
    purpose : {"evaluate", "tune"}
        evaluate warns about training recordings (figures not held out); tune also about recordings
        marked for evaluation (later held-out figures optimistic).

    Returns
    -------
    line : str or None
        Starts with ``WARNING:``.
    """
    n, m = len(result.train), result.n_recordings
    if not result.known:
        return (f"WARNING: provenance of checkpoint {checkpoint_id} unknown (its metadata.json has no "
                f"'provenance'): cannot tell which of the {m} recordings it was trained on")
    parts = []
    if n:
        consequence = ("figures on them are not held-out" if purpose == "evaluate" else
                       "thresholds tuned on recordings the model has fitted see overconfident probabilities")
        parts.append(f"{n} of {m} recordings are training recordings of checkpoint {checkpoint_id}: {consequence}")
    if purpose == "tune" and result.evaluation:
        parts.append(f"{len(result.evaluation)} of {m} recordings are marked for evaluation (held out) by "
                     f"checkpoint {checkpoint_id}: tuning on them makes later held-out figures optimistic")
    return "WARNING: " + "; ".join(parts) if parts else None


def checkpoint_warning(metadata: dict[str, Any], recording_ids: Iterable[str],
                       purpose: Purpose = "evaluate") -> tuple[Overlap, str | None]:
    """:func:`overlap` and :func:`format_warning` for a checkpoint's ``metadata.json`` contents.

    Parameters
    ----------
    metadata : dict
        The checkpoint's metadata (``provenance`` and ``checkpoint_id`` are read).
    recording_ids : iterable of str
    purpose : {"evaluate", "tune"}

    Returns
    -------
    result : Overlap
    line : str or None
    """
    result = overlap(metadata.get("provenance"), recording_ids)
    return result, format_warning(result, str(metadata.get("checkpoint_id", "?")), purpose)
