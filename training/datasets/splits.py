"""Patient-level train/dev splits: never a patient on both sides."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from training.datasets.base import SPLITS, Recording


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
