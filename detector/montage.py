"""Montages of the model input: the 19 referential 10-20 electrodes, or the 18-derivation double banana.

Two montages (``FrontendConfig.montage``, recorded by every checkpoint):

- ``referential`` (the default): the 19 referential 10-20 electrodes, rows in
  :data:`ictal.detector.CANONICAL_CHANNELS` order. Graph nodes are electrodes.
- ``double_banana``: the 18 derivations of the longitudinal bipolar montage (the "double banana" of the
  American Clinical Neurophysiology Society, Guideline 3 "A proposal for standard montages to be used
  in clinical EEG", 2016, formerly Guideline 6, 2006: anterior-posterior chains over the left and right
  temporal and parasagittal regions and the midline), rows in :data:`DOUBLE_BANANA_CHANNELS` order
  (CHB-MIT's order: left temporal, left parasagittal, right parasagittal, right temporal, midline).
  Graph nodes are derivations. A derivation ``"Fp1-F7"`` is the potential of Fp1 minus that of F7.

How a recording becomes the model's rows (:func:`map_montage`):

- referential montage from referential input: each electrode is read from its label (midline repairs
  of ``FrontendConfig.repair_missing`` allowed). Bipolar input is refused: the referential potentials
  cannot be recovered from differences (the message says so and names the derivations found).
- double banana from referential input: derived exactly, row ``a-b`` = electrode a - electrode b of
  the same sample (after the same repairs), computed in float64 from the input and rounded once to
  float32.
- double banana from bipolar input (e.g. CHB-MIT): each derivation is read natively from its label
  (``"EEG FP1-F7"``, ``"EEG T7-P7"``: 10-10 names map to 10-20, T7->T3, T8->T4, P7->T5, P8->T6). Other
  derivations (CHB-MIT's ``P7-T7``, ``T7-FT9``, ``FT9-FT10``, ``FT10-T8``) and a repeated label (CHB-MIT's
  second ``EEG T8-P8``, a copy of the first) are ignored and listed in ``MontageMapping.ignored``; the
  first of repeated labels is used. A missing derivation is an error that names every missing one.

When a recording holds both all 18 derivations and referential electrodes, the recorded derivations
are used.

Geometry of the nodes (:func:`channel_positions`, :func:`channel_mirror`): an electrode sits at its
10-20 position on the unit circle (:data:`ELECTRODE_POSITIONS`); a derivation sits at the midpoint of
its two electrodes, and its mirror image (left-right flip) is the derivation of the two mirrored
electrodes (``Fp1-F7`` <-> ``Fp2-F8``; midline derivations map to themselves).

References
----------
Acharya J. N., Hani A. J., Thirumala P. D., Tsuchida T. N., "American Clinical Neurophysiology Society
Guideline 3: A Proposal for Standard Montages to Be Used in Clinical EEG", J Clin Neurophysiol
33(4):312-316, 2016. Jasper H. H., "The ten-twenty electrode system of the International Federation",
Electroencephalogr Clin Neurophysiol 10:371-375, 1958. Shoeb A. H., PhD thesis, MIT, 2009 (CHB-MIT).
"""

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

MONTAGES: tuple[str, ...] = ("referential", "double_banana")
"""Names of the model input montages (``FrontendConfig.montage``)."""

DOUBLE_BANANA: tuple[tuple[str, str], ...] = (
    ("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
    ("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
    ("Fz", "Cz"), ("Cz", "Pz"),
)
"""The 18 electrode pairs of the longitudinal bipolar double banana (ACNS Guideline 3, 2016), in
CHB-MIT's channel order, with 10-20 names; each derivation is the first electrode minus the second."""

DOUBLE_BANANA_CHANNELS: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in DOUBLE_BANANA)
"""Names of the 18 derivations (``"Fp1-F7"``, ...): the row order of double-banana model input."""

ELECTRODE_POSITIONS: dict[str, tuple[float, float]] = {
    "Fp1": (-0.31, 0.95), "Fp2": (0.31, 0.95), "F7": (-0.81, 0.59), "F3": (-0.40, 0.52),
    "Fz": (0.0, 0.50), "F4": (0.40, 0.52), "F8": (0.81, 0.59), "T3": (-1.0, 0.0), "C3": (-0.50, 0.0),
    "Cz": (0.0, 0.0), "C4": (0.50, 0.0), "T4": (1.0, 0.0), "T5": (-0.81, -0.59), "P3": (-0.40, -0.52),
    "Pz": (0.0, -0.50), "P4": (0.40, -0.52), "T6": (0.81, -0.59), "O1": (-0.31, -0.95),
    "O2": (0.31, -0.95),
}
"""Approximate 2-D scalp positions (x: left -> right, y: back -> front, nasion-inion and preauricular
lines on the unit circle) of the 19 electrodes in the 10-20 system (Jasper 1958); the left-right
mirror of each electrode is at (-x, y)."""

# Scalp electrode names of the 10-10 system (ears/mastoids excluded), to recognise bipolar derivations.
_SCALP_ELECTRODE = re.compile(
    r"^(fp|af|f|fc|ft|c|cp|tp|t|p|po|o|i)(z|[0-9]{1,2})$",
)
_CANONICAL_BY_KEY: dict[str, str] = {name.lower(): name for name in CANONICAL_CHANNELS}
_ALIAS_BY_KEY: dict[str, str] = {alias.lower(): name for alias, name in ALIASES_10_10.items()}


class MontageError(ValueError):
    """A recording's channels cannot give the model's montage (missing, duplicated, bipolar for referential)."""


def montage_channels(montage: str) -> tuple[str, ...]:
    """Row names of a montage's model input.

    Parameters
    ----------
    montage : {"referential", "double_banana"}

    Returns
    -------
    channels : tuple of str
        :data:`ictal.detector.CANONICAL_CHANNELS` (19) or :data:`DOUBLE_BANANA_CHANNELS` (18).

    Raises
    ------
    ValueError
        If ``montage`` is not one of :data:`MONTAGES`.
    """
    if montage == "referential":
        return CANONICAL_CHANNELS
    if montage == "double_banana":
        return DOUBLE_BANANA_CHANNELS
    raise ValueError(f"unknown montage {montage!r}; expected one of {', '.join(MONTAGES)}")


def montage_of_channels(channels: Sequence[str]) -> str | None:
    """The montage whose row names are exactly ``channels`` (in order), or None."""
    for name in MONTAGES:
        if tuple(channels) == montage_channels(name):
            return name
    return None


def _electrodes_of(channel: str) -> tuple[str, ...]:
    """The electrodes of one row name: ``("Fp1",)`` or ``("Fp1", "F7")``."""
    return tuple(channel.split("-"))


def channel_positions(montage: str) -> np.ndarray:
    """2-D scalp position of every graph node of a montage.

    Parameters
    ----------
    montage : {"referential", "double_banana"}

    Returns
    -------
    positions : ndarray of float64, shape (n_channels, 2)
        x (left -> right) and y (back -> front) on the unit circle, rows in :func:`montage_channels`
        order: an electrode's position (:data:`ELECTRODE_POSITIONS`), or the midpoint of a
        derivation's two electrodes.
    """
    rows = [np.mean([ELECTRODE_POSITIONS[e] for e in _electrodes_of(c)], axis=0) for c in montage_channels(montage)]
    return np.asarray(rows, dtype=np.float64)


def mirror_electrode(name: str) -> str:
    """The left-right mirror of a 10-20 electrode: odd numbers are left, even right (Fp1 <-> Fp2,
    T3 <-> T4, T5 <-> T6, ...); midline (``z``) electrodes are their own mirror.

    Raises
    ------
    ValueError
        If the name is neither lateral (ends in a number) nor midline (ends in z).
    """
    if name.lower().endswith("z"):
        return name
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    if not tail:
        raise ValueError(f"channel {name!r} is neither lateral (a number) nor midline (z)")
    number = int(tail)
    return f"{head}{number + 1 if number % 2 else number - 1}"


def channel_mirror(channels: Sequence[str]) -> np.ndarray:
    """Row permutation that swaps the left and right hemispheres of electrodes or derivations.

    Parameters
    ----------
    channels : sequence of str
        Row names: electrodes (``"Fp1"``) or derivations (``"Fp1-F7"``), e.g. :func:`montage_channels`.

    Returns
    -------
    permutation : ndarray of int64, shape (n_channels,)
        ``window[permutation]`` is the mirrored window: row i takes the row of the mirrored electrode,
        or of the derivation of the two mirrored electrodes (``Fp1-F7`` <-> ``Fp2-F8``, ``Fz-Cz`` itself).

    Raises
    ------
    ValueError
        If a name has no side, or a row's mirror is not among ``channels`` (named with the mirror sought).
    """
    index = {name.lower(): i for i, name in enumerate(channels)}
    permutation = np.empty(len(channels), dtype=np.int64)
    for i, name in enumerate(channels):
        mirror = "-".join(mirror_electrode(e) for e in _electrodes_of(name))
        if mirror.lower() not in index:
            raise ValueError(f"channel {name!r} has no mirror {mirror!r} among the channels (names compared "
                             f"case-insensitively: {mirror.lower()!r})")
        permutation[i] = index[mirror.lower()]
    return permutation


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


def derivation_name(label: str) -> str | None:
    """10-20 name of the bipolar derivation a label holds (``"EEG T7-P7"`` -> ``"T3-T5"``), else None.

    Parameters
    ----------
    label : str
        A channel label; a leading ``EEG`` is removed, electrode names are matched case-insensitively
        and 10-10 aliases map to 10-20 (:data:`ALIASES_10_10`).

    Returns
    -------
    name : str or None
        ``"<first>-<second>"`` with canonical electrode names when both electrodes are among the 19
        canonical ones; None for a referential label, a non-EEG channel or a derivation involving
        another electrode (``"T7-FT9"``).
    """
    pair = _bipolar_pair(label)
    if pair is None:
        return None
    first, second = canonical_name(pair[0]), canonical_name(pair[1])
    if first is None or second is None:
        return None
    return f"{first}-{second}"


@dataclass(frozen=True)
class MontageMapping:
    """How the channels of one recording or stream become the rows of the model's montage.

    Attributes
    ----------
    source : str
        Name of the recording or stream (for messages).
    labels : tuple of str
        The input labels, in input order (n_in of them).
    indices : tuple of int
        The input row each needed channel is read from (-1 for a repaired electrode): one per output
        row (``channels`` order) when read directly, or one per referential electrode
        (``CANONICAL_CHANNELS`` order) when ``derivations`` derives the rows from them.
    repairs : dict of str to tuple of str
        Repaired electrodes and the electrodes whose mean replaces them (e.g.
        ``{"Cz": ("C3", "C4")}``); empty when nothing was repaired.
    ignored : tuple of str
        Input labels not used (EKG, ``EEG A2-A1``, derivations outside the montage, repeated labels).
    montage : {"referential", "double_banana"}
        The model input montage the rows follow.
    channels : tuple of str
        The output row names (:func:`montage_channels` of ``montage``).
    derivations : tuple of (int, int)
        Empty when the rows are read directly; else, for each output row, the two referential
        electrodes (rows of ``CANONICAL_CHANNELS``) whose difference it is.
    """

    source: str
    labels: tuple[str, ...]
    indices: tuple[int, ...]
    repairs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    montage: str = "referential"
    channels: tuple[str, ...] = CANONICAL_CHANNELS
    derivations: tuple[tuple[int, int], ...] = ()

    @property
    def n_in(self) -> int:
        """Number of input channels the mapping expects."""
        return len(self.labels)

    @property
    def n_out(self) -> int:
        """Number of output rows (19 referential, 18 double banana)."""
        return len(self.channels)

    def describe(self) -> str:
        """One line for logs: which labels were used, derived, repaired and ignored."""
        read = CANONICAL_CHANNELS if self.derivations else self.channels
        used = ", ".join(
            f"{name}<-{self.labels[i]}" for name, i in zip(read, self.indices, strict=True) if i >= 0
        )
        parts = [f"{self.source}: {used}"]
        if self.derivations:
            parts.append(f"derived: {self.montage} ({len(self.derivations)} derivations, electrode differences)")
        if self.repairs:
            parts.append(
                "repaired: "
                + ", ".join(f"{name} = mean({', '.join(nb)})" for name, nb in self.repairs.items())
            )
        if self.ignored:
            parts.append("ignored: " + ", ".join(self.ignored))
        return "; ".join(parts)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Reorder (repair, derive) the input channels into the montage's rows.

        Parameters
        ----------
        data : ndarray, shape (n_in, n_samples)
            Samples of the input channels, in the order of ``labels`` (any unit; usually uV).

        Returns
        -------
        rows : ndarray of float32, shape (n_out, n_samples)
            The rows in ``channels`` order: an input row, a repaired electrode (the mean of its
            neighbours, :data:`REPAIR_NEIGHBOURS`), or a derivation (electrode a - electrode b,
            computed in float64 and rounded once to float32).

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
        if self.derivations:
            return self._derive(data)
        out = np.empty((len(self.channels), data.shape[1]), dtype=np.float32)
        for row, index in enumerate(self.indices):
            if index >= 0:
                out[row] = data[index]
        for name, neighbours in self.repairs.items():
            rows = [self.indices[CANONICAL_CHANNELS.index(nb)] for nb in neighbours]
            out[CANONICAL_CHANNELS.index(name)] = data[rows].astype(np.float64).mean(axis=0)
        return out

    def _derive(self, data: np.ndarray) -> np.ndarray:
        """Rows ``a - b`` of the referential electrodes, each computed in float64 and rounded once."""
        repaired = {
            CANONICAL_CHANNELS.index(name): data[[self.indices[CANONICAL_CHANNELS.index(nb)] for nb in neighbours]]
            .astype(np.float64).mean(axis=0)
            for name, neighbours in self.repairs.items()
        }

        def electrode(row: int) -> np.ndarray:
            return repaired[row] if row in repaired else data[self.indices[row]]

        out = np.empty((len(self.derivations), data.shape[1]), dtype=np.float32)
        for k, (a, b) in enumerate(self.derivations):
            np.subtract(electrode(a), electrode(b), out=out[k], dtype=np.float64, casting="same_kind")
        return out


def map_montage(
    labels: Iterable[str], source: str = "<recording>", repair_missing: Sequence[str] = (),
    montage: str = "referential",
) -> MontageMapping:
    """Match the labels of a recording or stream to the rows of the model's montage.

    Parameters
    ----------
    labels : iterable of str
        Channel labels in input order, e.g. from an EDF header or an LSL stream description.
    source : str
        Name of the recording or stream, used in messages.
    repair_missing : sequence of {"Fz", "Cz", "Pz"}
        Midline electrodes that may be interpolated from their neighbours when missing from
        referential input (the site's ``FrontendConfig.repair_missing``). A repair is reported in
        ``MontageMapping.repairs``.
    montage : {"referential", "double_banana"}
        The model input montage (``FrontendConfig.montage``; the module docstring says how each is
        obtained from referential or bipolar input).

    Returns
    -------
    mapping : MontageMapping

    Raises
    ------
    MontageError
        Referential: if two labels map to the same electrode; if the labels are bipolar derivations
        (a referential montage cannot be derived from them: the message says so and names the
        derivations found); or if electrodes are missing and not repairable (every missing one named,
        with the labels found). Double banana: if neither all 18 derivations are recorded nor the
        electrodes they need: the message names the missing derivations (bipolar input) or the
        missing electrodes (referential input), with the labels found.
    ValueError
        If ``repair_missing`` names a channel that cannot be repaired, or ``montage`` is unknown.
    """
    labels = tuple(labels)
    montage_channels(montage)  # raises ValueError for an unknown montage
    for name in repair_missing:
        if name not in REPAIR_NEIGHBOURS:
            raise ValueError(
                f"repair_missing names {name!r}; only {', '.join(REPAIR_NEIGHBOURS)} can be repaired"
            )
    if montage == "double_banana":
        return _map_double_banana(labels, source, repair_missing)
    return _map_referential(labels, source, repair_missing)


def _map_referential(
    labels: tuple[str, ...], source: str, repair_missing: Sequence[str], needed_by: str = ""
) -> MontageMapping:
    """The 19 electrodes from referential labels (``needed_by`` names what needs them, for messages)."""
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
                f"{source} is a bipolar montage ({', '.join(bipolar)}): the model's montage is referential "
                f"(the 19 referential 10-20 channels), which cannot be derived from bipolar derivations; "
                f"missing: {', '.join(unrepaired)} (found: {listed}). A checkpoint trained on the "
                f"double_banana montage reads bipolar recordings that hold its 18 derivations"
            )
        hint = ""
        repairable = [name for name in unrepaired if name in REPAIR_NEIGHBOURS]
        if repairable:
            hint = (
                f"; {', '.join(repairable)} can be interpolated from their neighbours if the site "
                f"allows it (FrontendConfig.repair_missing)"
            )
        raise MontageError(
            f"{source}: {len(unrepaired)} of the 19 canonical channels missing{needed_by}: "
            f"{', '.join(unrepaired)} (found: {listed}){hint}"
        )
    indices = tuple(found.get(name, -1) for name in CANONICAL_CHANNELS)
    return MontageMapping(source=source, labels=labels, indices=indices, repairs=repairs, ignored=tuple(ignored))


def _map_double_banana(labels: tuple[str, ...], source: str, repair_missing: Sequence[str]) -> MontageMapping:
    """The 18 derivations, read natively from bipolar labels or derived from referential ones."""
    found: dict[str, int] = {}
    bipolar = False
    for index, label in enumerate(labels):
        bipolar = bipolar or _bipolar_pair(label) is not None
        name = derivation_name(label)
        if name in DOUBLE_BANANA_CHANNELS and name not in found:
            found[name] = index
    if len(found) == len(DOUBLE_BANANA_CHANNELS):
        used = set(found.values())
        ignored = tuple(
            f"{label} (repeated; the first is used)" if derivation_name(label) in found else label
            for index, label in enumerate(labels) if index not in used
        )
        indices = tuple(found[name] for name in DOUBLE_BANANA_CHANNELS)
        return MontageMapping(source=source, labels=labels, indices=indices, ignored=ignored,
                              montage="double_banana", channels=DOUBLE_BANANA_CHANNELS)
    has_referential = any(canonical_name(label) is not None for label in labels)
    if not has_referential and bipolar:
        missing = [name for name in DOUBLE_BANANA_CHANNELS if name not in found]
        listed = ", ".join(repr(label) for label in labels)
        raise MontageError(
            f"{source}: bipolar recording lacks {len(missing)} of the 18 double-banana derivations: "
            f"{', '.join(missing)} (found: {listed}); the montage needs every derivation, recorded or "
            f"derived from the 19 referential electrodes"
        )
    referential = _map_referential(labels, source, repair_missing,
                                   needed_by=" (the double_banana montage derives its 18 derivations from them)")
    index = {name: i for i, name in enumerate(CANONICAL_CHANNELS)}
    derivations = tuple((index[a], index[b]) for a, b in DOUBLE_BANANA)
    return MontageMapping(source=source, labels=labels, indices=referential.indices, repairs=referential.repairs,
                          ignored=referential.ignored, montage="double_banana", channels=DOUBLE_BANANA_CHANNELS,
                          derivations=derivations)
