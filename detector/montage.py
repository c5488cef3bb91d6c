"""Mapping of EDF/LSL channel labels to the canonical 19-channel referential 10-20 montage."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ictal.detector import CANONICAL_CHANNELS

ALIASES_10_10: dict[str, str] = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
"""10-10 names of the four 10-20 temporal/parietal sites whose names changed (ACNS 2006 guideline)."""

REFERENCE_SUFFIXES: tuple[str, ...] = ("REF", "LE", "AR")
"""Reference suffixes stripped from a label (``-REF`` common reference, ``-LE`` linked ears,
``-AR`` average reference); matched case-insensitively, so ``-Ref`` is accepted too."""

REPAIR_NEIGHBOURS: dict[str, tuple[str, str]] = {"Fz": ("F3", "F4"), "Cz": ("C3", "C4"), "Pz": ("P3", "P4")}
"""Neighbours from which a missing midline channel may be interpolated.

Each midline electrode lies halfway between its two lateral neighbours on the same coronal line of
the 10-20 system (Jasper 1958), so the repair is the mean of the two: nearest-neighbour linear
interpolation, the zero-order case of spherical-spline interpolation (Perrin et al. 1989). The
lateral electrodes themselves are never repaired, so a repair never depends on another repair.
"""

# Scalp electrode names of the 10-10 system (ears/mastoids excluded), to recognise bipolar derivations.
_SCALP_ELECTRODE = re.compile(
    r"^(fp|af|f|fc|ft|c|cp|tp|t|p|po|o|i)(z|[0-9]{1,2})$",
)
_CANONICAL_BY_KEY: dict[str, str] = {name.lower(): name for name in CANONICAL_CHANNELS}
_ALIAS_BY_KEY: dict[str, str] = {alias.lower(): name for alias, name in ALIASES_10_10.items()}


class MontageError(ValueError):
    """A recording's channels cannot be mapped to the canonical montage (missing, duplicated, bipolar)."""


def canonical_name(label: str) -> str | None:
    """Canonical 10-20 name of one EDF/LSL label, or None when it is not a canonical EEG channel.

    Parameters
    ----------
    label : str
        A channel label such as ``"EEG FP1-REF"``, ``"EEG Fp1-LE"``, ``"Fp1"``, ``"EEG T7-Ref"``.

    Returns
    -------
    name : str or None
        One of ``detector.CANONICAL_CHANNELS`` (``"Fp1"``, ``"T3"``, ...), or None for a non-EEG
        channel (``"EKG"``, ``"ECG ECG"``), an ear/reference derivation (``"EEG A2-A1"``), an
        unknown label (``"EEG Effort-Ref"``) or a bipolar derivation (``"F7-C3"``).

    Notes
    -----
    The label is stripped of surrounding spaces, of a leading ``EEG `` and of a trailing reference
    suffix (:data:`REFERENCE_SUFFIXES`), compared case-insensitively, and 10-10 aliases are mapped
    to their 10-20 names (:data:`ALIASES_10_10`).
    """
    key = _strip_label(label).lower()
    return _CANONICAL_BY_KEY.get(key) or _ALIAS_BY_KEY.get(key)


def _strip_label(label: str) -> str:
    text = label.strip()
    if text[:4].lower() == "eeg ":
        text = text[4:].strip()
    for suffix in REFERENCE_SUFFIXES:
        if text.lower().endswith("-" + suffix.lower()):
            return text[: -len(suffix) - 1].strip()
    return text


def _bipolar_pair(label: str) -> tuple[str, str] | None:
    """The two scalp electrodes of a bipolar derivation label (``"F7-C3"``), else None."""
    parts = _strip_label(label).split("-")
    if len(parts) != 2:
        return None
    first, second = (part.strip().lower() for part in parts)
    if _SCALP_ELECTRODE.match(first) and _SCALP_ELECTRODE.match(second):
        return parts[0].strip(), parts[1].strip()
    return None


@dataclass(frozen=True)
class MontageMapping:
    """How the channels of one recording or stream become the canonical 19 channels.

    Attributes
    ----------
    source : str
        Name of the recording or stream (for messages).
    labels : tuple of str
        The input labels, in input order (n_in of them).
    indices : tuple of int
        For each canonical channel (in ``CANONICAL_CHANNELS`` order), the input row it is read from,
        or -1 for a repaired channel.
    repairs : dict of str to tuple of str
        Repaired canonical channels and the canonical neighbours whose mean replaces them
        (e.g. ``{"Cz": ("C3", "C4")}``); empty when nothing was repaired.
    ignored : tuple of str
        Input labels that are not canonical EEG channels (EKG, ``EEG A2-A1``, ...).
    """

    source: str
    labels: tuple[str, ...]
    indices: tuple[int, ...]
    repairs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    @property
    def n_in(self) -> int:
        """Number of input channels the mapping expects."""
        return len(self.labels)

    def describe(self) -> str:
        """One line for logs: which labels were used, repaired and ignored."""
        used = ", ".join(
            f"{name}<-{self.labels[i]}" for name, i in zip(CANONICAL_CHANNELS, self.indices, strict=True) if i >= 0
        )
        parts = [f"{self.source}: {used}"]
        if self.repairs:
            parts.append(
                "repaired: "
                + ", ".join(f"{name} = mean({', '.join(nb)})" for name, nb in self.repairs.items())
            )
        if self.ignored:
            parts.append("ignored: " + ", ".join(self.ignored))
        return "; ".join(parts)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Reorder (and repair) the input channels into the canonical montage.

        Parameters
        ----------
        data : ndarray, shape (n_in, n_samples)
            Samples of the input channels, in the order of ``labels`` (any unit; usually uV).

        Returns
        -------
        canonical : ndarray of float32, shape (19, n_samples)
            The canonical channels in ``CANONICAL_CHANNELS`` order; a repaired channel is the mean of
            its neighbours (:data:`REPAIR_NEIGHBOURS`).

        Raises
        ------
        ValueError
            If ``data`` is not 2-D with ``n_in`` rows.
        """
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[0] != self.n_in:
            raise ValueError(
                f"montage of {self.source} expects data of shape ({self.n_in}, n_samples) "
                f"(labels {list(self.labels)}), found shape {data.shape}"
            )
        out = np.empty((len(CANONICAL_CHANNELS), data.shape[1]), dtype=np.float32)
        for row, index in enumerate(self.indices):
            if index >= 0:
                out[row] = data[index]
        for name, neighbours in self.repairs.items():
            rows = [self.indices[CANONICAL_CHANNELS.index(nb)] for nb in neighbours]
            out[CANONICAL_CHANNELS.index(name)] = data[rows].astype(np.float64).mean(axis=0)
        return out


def map_montage(
    labels: Iterable[str], source: str = "<recording>", repair_missing: Sequence[str] = ()
) -> MontageMapping:
    """Match the labels of a recording or stream to the canonical 19 channels.

    Parameters
    ----------
    labels : iterable of str
        Channel labels in input order, e.g. from an EDF header or an LSL stream description.
    source : str
        Name of the recording or stream, used in messages.
    repair_missing : sequence of {"Fz", "Cz", "Pz"}
        Midline channels that may be interpolated from their neighbours when missing (the site's
        ``FrontendConfig.repair_missing``). A repair is reported in ``MontageMapping.repairs``.

    Returns
    -------
    mapping : MontageMapping

    Raises
    ------
    MontageError
        If two labels map to the same canonical channel; if the labels are bipolar derivations
        (the message says so and names the missing channels); or if canonical channels are missing
        and not repairable: the message names every missing channel and the labels found.
    ValueError
        If ``repair_missing`` names a channel that cannot be repaired.
    """
    labels = tuple(labels)
    for name in repair_missing:
        if name not in REPAIR_NEIGHBOURS:
            raise ValueError(
                f"repair_missing names {name!r}; only {', '.join(REPAIR_NEIGHBOURS)} can be repaired"
            )
    found: dict[str, int] = {}
    ignored: list[str] = []
    for index, label in enumerate(labels):
        name = canonical_name(label)
        if name is None:
            ignored.append(label)
            continue
        if name in found:
            raise MontageError(
                f"{source}: labels {labels[found[name]]!r} and {label!r} both map to channel {name}; "
                f"expected exactly one label per canonical channel"
            )
        found[name] = index

    missing = [name for name in CANONICAL_CHANNELS if name not in found]
    repairs: dict[str, tuple[str, ...]] = {}
    for name in missing:
        neighbours = REPAIR_NEIGHBOURS.get(name)
        if name in repair_missing and neighbours and all(nb in found for nb in neighbours):
            repairs[name] = neighbours
    unrepaired = [name for name in missing if name not in repairs]
    if unrepaired:
        bipolar = [label for label in labels if _bipolar_pair(label) is not None]
        listed = ", ".join(repr(label) for label in labels) or "no channels"
        if bipolar and not found:
            raise MontageError(
                f"{source} is a bipolar montage ({', '.join(bipolar)}): the detector needs the 19 "
                f"referential 10-20 channels; missing: {', '.join(unrepaired)} (found: {listed})"
            )
        hint = ""
        repairable = [name for name in unrepaired if name in REPAIR_NEIGHBOURS]
        if repairable:
            hint = (
                f"; {', '.join(repairable)} can be interpolated from their neighbours if the site "
                f"allows it (FrontendConfig.repair_missing)"
            )
        raise MontageError(
            f"{source}: {len(unrepaired)} of the 19 canonical channels missing: {', '.join(unrepaired)} "
            f"(found: {listed}){hint}"
        )
    indices = tuple(found.get(name, -1) for name in CANONICAL_CHANNELS)
    return MontageMapping(source=source, labels=labels, indices=indices, repairs=repairs, ignored=tuple(ignored))
