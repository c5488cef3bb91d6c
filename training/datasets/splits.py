"""Patient-level train/dev splits: never a patient on both sides."""

from __future__ import annotations

import fnmatch
from collections import defaultdict

import numpy as np

from ictal.training.datasets.base import SPLITS, Recording


def assign_splits(recordings: list[Recording], dev_fraction: float, seed: int) -> None:
    """Give every recording without a split one, by patient.

    Patients are drawn separately among those with a seizure and those without (a stratified split),
    so dev sees seizures whenever two or more patients have them.

    Parameters
    ----------
    recordings : list of Recording
        Recordings whose ``split`` is None get "train" or "dev" in place; others keep theirs.
    dev_fraction : float
        Share of patients (rounded, per stratum) put in dev; in a stratum of two or more patients at
        least one goes to dev when the fraction is positive.
    seed : int
        Seed of the draw; the same recordings and seed always give the same split.

    Raises
    ------
    ValueError
        If ``dev_fraction`` is outside [0, 1), or a patient already has recordings in a split and
        some without one (the split would be ambiguous).
    """
    if not 0 <= dev_fraction < 1:
        raise ValueError(f"dev_fraction must lie in [0, 1) (found {dev_fraction})")
    by_patient: dict[str, list[Recording]] = defaultdict(list)
    for rec in recordings:
        by_patient[rec.patient].append(rec)
    pending: dict[bool, list[str]] = {True: [], False: []}
    for patient in sorted(by_patient):
        recs = by_patient[patient]
        given = {r.split for r in recs if r.split is not None}
        if not given:
            pending[any(_has_seizure(r) for r in recs)].append(patient)
        elif len(given) != len(recs) and any(r.split is None for r in recs):
            raise ValueError(
                f"patient {patient!r} has recordings in split(s) {sorted(given)} and some without a split"
            )
    rng = np.random.default_rng(seed)
    for stratum in (True, False):
        patients = pending[stratum]
        n_dev = int(round(dev_fraction * len(patients)))
        if dev_fraction > 0 and n_dev == 0 and len(patients) >= 2:
            n_dev = 1
        order = rng.permutation(len(patients))
        dev = {patients[i] for i in order[:n_dev]}
        for patient in patients:
            for rec in by_patient[patient]:
                rec.split = "dev" if patient in dev else "train"
    check_patient_splits(recordings)


def _has_seizure(rec: Recording) -> bool:
    if rec.annotations is None:
        return rec.has_seizure_hint
    return any(span.label == "seiz" for span in rec.annotations)


def check_patient_splits(recordings: list[Recording]) -> dict[str, set[str]]:
    """Check that no patient has recordings in two splits.

    Parameters
    ----------
    recordings : list of Recording

    Returns
    -------
    patients : dict of str to set of str
        Split name -> patient ids in it.

    Raises
    ------
    ValueError
        If a patient appears in more than one split (naming the patient and the splits), or a split
        name is not one of train/dev/eval.
    """
    splits_of: dict[str, set[str]] = defaultdict(set)
    for rec in recordings:
        if rec.split not in SPLITS:
            raise ValueError(f"recording {rec.recording_id}: split must be one of {SPLITS} (found {rec.split!r})")
        splits_of[rec.patient].add(rec.split)
    shared = {p: s for p, s in splits_of.items() if len(s) > 1}
    if shared:
        listed = ", ".join(f"{p} in {sorted(s)}" for p, s in sorted(shared.items()))
        raise ValueError(f"patients on both sides of a split (a patient-level split is required): {listed}")
    patients: dict[str, set[str]] = {name: set() for name in SPLITS}
    for patient, splits in splits_of.items():
        patients[next(iter(splits))].add(patient)
    return patients


def hold_out(recordings: list[Recording], patterns: list[str] | tuple[str, ...]) -> list[Recording]:
    """Put the recordings whose id matches one of ``patterns`` in split ``eval`` (held out).

    The held-out list is data (``DataConfig.eval_recordings`` in a train config), so the split a
    checkpoint was trained with is written down once and the same patterns select the held-out
    recordings in ``ictal evaluate --include``.

    Parameters
    ----------
    recordings : list of Recording
        Modified in place: a matching recording's ``split`` becomes "eval" (overriding a split the
        layout gave it); the others are left as they are.
    patterns : sequence of str
        Shell patterns (:func:`fnmatch.fnmatchcase`) on ``Recording.recording_id``.

    Returns
    -------
    held_out : list of Recording
        The recordings put in eval, in input order.

    Raises
    ------
    ValueError
        If a pattern matches no recording (a typo would silently train on held-out data), or a
        patient has recordings both matched and not matched (the split would not be per patient).
    """
    held: list[Recording] = []
    unused = [p for p in patterns if not any(fnmatch.fnmatchcase(r.recording_id, p) for r in recordings)]
    if unused:
        raise ValueError(f"eval_recordings pattern(s) match no recording: {unused}")
    if not patterns:
        return held
    matched_patients: dict[str, list[bool]] = defaultdict(list)
    for rec in recordings:
        matched = any(fnmatch.fnmatchcase(rec.recording_id, p) for p in patterns)
        matched_patients[rec.patient].append(matched)
        if matched:
            rec.split = "eval"
            held.append(rec)
    split_patients = sorted(p for p, flags in matched_patients.items() if any(flags) and not all(flags))
    if split_patients:
        raise ValueError(
            f"eval_recordings hold out only some recordings of patient(s) {split_patients}: "
            "hold out all of a patient's recordings or none"
        )
    return held
