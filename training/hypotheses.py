"""Another detector's output on a dataset, read so that ``ictal evaluate --hypotheses DIR`` scores it like ictal's own.

Layout of ``DIR`` (any depth; files are found by name)::

    DIR/**/<name>.csv_bi  or  DIR/**/<name>_events.tsv     events of one recording (required):
                                                            TUSZ csv_bi or SzCORE / BIDS _events.tsv
    DIR/**/<name>.npy     or  DIR/**/<name>.csv             per-sample seizure probabilities (optional):
                                                            1-d float array in [0, 1] (NaN = not scored),
                                                            or a text file of one number per line; at
                                                            the rate given by --probs-rate-hz

``<name>`` matches a recording of the dataset when it is the recording's id (as ``ictal evaluate``
names it, e.g. ``labelled__iiic_01``), its EDF file name without extension, or that name without a
trailing ``_eeg`` (a BIDS ``..._run-00_eeg.edf`` matches ``..._run-00_events.tsv``). Every selected
recording must have an events file: a missing one is an error naming the recording and the names
tried. Files that match no selected recording are ignored (the folder may cover more recordings than
``--include`` keeps); two events files for one recording are an error.

How they enter the report
-------------------------
- Events are the detector's own (seizure events only; ``confidence`` becomes the event's peak and
  mean probability); they are scored by the same scorers as ictal's (NEDC OVERLAP, TAES, DP
  alignment, EPOCH; SzCORE; onset latency from the event onsets). Their alarm time is unknown, so
  the alarm latency is n/a and only the hypothesis-onset latency is given.
- The recording's duration is the EDF's (the reference's): events past it are an error, an events
  file whose own duration differs from it by more than :data:`DURATION_TOLERANCE_S` too.
- Probabilities, when given, are laid on the 256 Hz grid of the labels by holding each value for
  ``1 / rate`` s (sample ``i`` at 256 Hz takes value ``floor(i / 256 x rate)``; NaN past the end):
  they give the sample AUROC/AUPRC, the calibration and a sweep of ictal's post-processor (tau_on
  swept, the default hysteresis gap and minimum duration) over them. Without probabilities those
  figures are n/a and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ictal.detector import FS_HZ
from ictal.training.evaluate_metrics import DaemonEvent
from ictal.training.scoring.annotations import Annotation, AnnotationError, read_annotation
from ictal.training.scoring.bids_tsv import recording_name
from ictal.training.scoring.nedc_common import SEIZ, two_class_label

DURATION_TOLERANCE_S = 1.0
"""Largest difference between an events file's duration and the EDF's that is accepted (1 s: files
that round the duration to whole seconds, as many detectors write it)."""

EVENT_SUFFIXES = (".csv_bi", "_events.tsv")
PROB_SUFFIXES = (".npy", ".csv")


class HypothesesError(Exception):
    """The hypotheses folder does not fit the dataset (missing or duplicate recording, bad file); the
    message names the recording and file. Not a ValueError: a missing hypothesis must stop the run,
    not be skipped as an unreadable recording."""


@dataclass(frozen=True)
class HypothesisFiles:
    """The files of one recording in the hypotheses folder."""

    events: Path
    probs: Path | None


def _index(folder: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    events: dict[str, list[Path]] = {}
    probs: dict[str, list[Path]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        lower = path.name.lower()
        if lower.endswith(EVENT_SUFFIXES):
            events.setdefault(recording_name(path), []).append(path)
        elif lower.endswith(PROB_SUFFIXES):
            probs.setdefault(path.name[: -len(path.suffix)], []).append(path)
    return events, probs


def candidate_names(recording_id: str, path: Path) -> list[str]:
    """The names an events file of a recording may carry (module docstring), most specific first."""
    stem = path.name.split(".")[0]
    names = [recording_id, stem]
    if stem.endswith("_eeg"):
        names.append(stem[: -len("_eeg")])
    return list(dict.fromkeys(names))


class HypothesesRunner:
    """A runner of ``training.evaluate`` that reads a detector's stored output instead of running one.

    Parameters
    ----------
    folder : path
        The hypotheses folder (module docstring).
    probs_rate_hz : float, optional
        Rate of the probability files; required when the folder holds any.

    Attributes
    ----------
    external : bool
        True: ``training.evaluate`` takes every recording with an events file as scored.
    min_history_s, lookahead_s : float
        0: the detector's own timing is unknown; nothing is scored as missing history.
    mode : str
        ``"hypotheses"`` (``report.json`` ``meta.mode``).

    Raises
    ------
    HypothesesError
        If the folder does not exist, holds no events file, or holds probability files without
        ``probs_rate_hz`` (or a rate that is not positive).
    """

    external = True
    min_history_s = 0.0
    lookahead_s = 0.0
    mode = "hypotheses"

    def __init__(self, folder: Path | str, probs_rate_hz: float | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise HypothesesError(f"hypotheses folder {self.folder} not found (expected a folder of <recording>.csv_bi "
                                  "or <recording>_events.tsv files)")
        self._events, self._probs = _index(self.folder)
        if not self._events:
            raise HypothesesError(f"{self.folder}: no .csv_bi or _events.tsv file found, expected one per recording")
        if self._probs and probs_rate_hz is None:
            first = next(iter(self._probs.values()))[0]
            raise HypothesesError(f"{self.folder} holds probability files ({first.name}, ...) but no rate: give "
                                  "--probs-rate-hz (samples per second of those files)")
        if probs_rate_hz is not None and not (np.isfinite(probs_rate_hz) and probs_rate_hz > 0):
            raise HypothesesError(f"probability rate {probs_rate_hz} Hz, expected a positive number")
        self.probs_rate_hz = probs_rate_hz
        self.has_probabilities = bool(self._probs)

    def files_for(self, recording_id: str, path: Path) -> HypothesisFiles:
        """The events (and probability) file of a recording.

        Raises
        ------
        HypothesesError
            If no events file carries one of :func:`candidate_names`, or more than one does.
        """
        names = candidate_names(recording_id, Path(path))
        found = [p for n in names for p in self._events.get(n, [])]
        found = list(dict.fromkeys(found))
        if not found:
            raise HypothesesError(
                f"no hypothesis for recording {recording_id} ({path}) in {self.folder}: expected one of "
                + ", ".join(f"{n}.csv_bi or {n}_events.tsv" for n in names))
        if len(found) > 1:
            raise HypothesesError(f"recording {recording_id} has {len(found)} events files in {self.folder} "
                                  f"({', '.join(str(p) for p in found)}), expected one")
        probs = [p for n in names for p in self._probs.get(n, [])]
        probs = list(dict.fromkeys(probs))
        if len(probs) > 1:
            raise HypothesesError(f"recording {recording_id} has {len(probs)} probability files in {self.folder} "
                                  f"({', '.join(str(p) for p in probs)}), expected at most one")
        return HypothesisFiles(found[0], probs[0] if probs else None)

    def check(self, recordings: list) -> None:
        """Raise :class:`HypothesesError` naming every selected recording without an events file."""
        missing = []
        for rec in recordings:
            try:
                self.files_for(rec.recording_id, rec.path)
            except HypothesesError as exc:
                missing.append(str(exc))
        if missing:
            raise HypothesesError(f"{len(missing)} of {len(recordings)} recordings have no usable hypothesis: "
                                  + "; ".join(missing))

    def __call__(self, rec):
        """Read one recording's events and probabilities as a ``training.evaluate.RunOutput``.

        Raises
        ------
        HypothesesError
            If the files are missing or malformed, disagree with the recording's duration, or the
            probabilities are not a 1-d array of values in [0, 1] or NaN.
        ValueError, OSError
            If the EDF cannot be opened (the recording is then not evaluated, as for ictal).
        """
        from ictal.streaming.edf import open_canonical
        from ictal.training.evaluate import RunOutput

        files = self.files_for(rec.recording_id, rec.path)
        with open_canonical(rec.path) as stream:
            duration_s = stream.n_samples / stream.fs
        n = int(round(duration_s * FS_HZ))
        try:
            ann = read_annotation(files.events)
        except AnnotationError as exc:
            raise HypothesesError(f"hypothesis of {rec.recording_id}: {exc}") from exc
        if abs(ann.duration_s - duration_s) > DURATION_TOLERANCE_S:
            raise HypothesesError(
                f"{files.events}: duration {ann.duration_s} s, but recording {rec.recording_id} lasts {duration_s} s "
                f"(expected within {DURATION_TOLERANCE_S} s)")
        events = _events(ann, files.events, duration_s)
        probs = np.full(n, np.nan, dtype=np.float32)
        if files.probs is not None:
            probs = hold_on_grid(read_probabilities(files.probs), float(self.probs_rate_hz), n)
        return RunOutput(probs, events, [], None, signal_s=duration_s)


def _events(ann: Annotation, path: Path, duration_s: float) -> list[DaemonEvent]:
    out = []
    for e in ann.events:
        try:
            is_seizure = two_class_label(e.label) == SEIZ
        except ValueError as exc:
            raise HypothesesError(f"{path}: {exc}") from exc
        if not is_seizure or e.stop_s <= e.start_s:
            continue
        if e.stop_s > duration_s + DURATION_TOLERANCE_S:
            raise HypothesesError(f"{path}: event {e.start_s}-{e.stop_s} s ends after the recording ({duration_s} s)")
        out.append(DaemonEvent(e.start_s, min(e.stop_s, duration_s), e.confidence, e.confidence, float("nan"),
                               "hypothesis"))
    return sorted(out, key=lambda d: d.onset_s)


def read_probabilities(path: Path) -> np.ndarray:
    """A probability file: ``.npy`` 1-d array, or ``.csv`` text with one number (or ``nan``) per line.

    Raises
    ------
    HypothesesError
        If the file is not 1-d, holds a value outside [0, 1] (NaN allowed: not scored), or cannot be read.
    """
    try:
        if path.suffix.lower() == ".npy":
            p = np.load(path, allow_pickle=False)
        else:
            p = np.loadtxt(path, dtype=np.float64, delimiter=",", ndmin=1, comments="#")
    except (OSError, ValueError) as exc:
        raise HypothesesError(f"{path}: cannot read probabilities ({exc}); expected a 1-d .npy array or one "
                              "number per line") from exc
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise HypothesesError(f"{path}: probabilities of shape {p.shape}, expected one value per sample (1-d)")
    bad = np.isfinite(p) & ((p < 0) | (p > 1)) | np.isinf(p)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise HypothesesError(f"{path}: probability {p[i]} at sample {i}, expected values in [0, 1] (NaN = not scored)")
    return p


def hold_on_grid(p: np.ndarray, rate_hz: float, n: int) -> np.ndarray:
    """Lay probabilities at ``rate_hz`` on ``n`` samples at 256 Hz, holding each value (module docstring).

    Returns
    -------
    ndarray of float32, shape (n,)
        NaN where the probabilities end before the recording.
    """
    idx = np.floor(np.arange(n) / FS_HZ * rate_hz + 1e-9).astype(np.int64)
    out = np.full(n, np.nan, dtype=np.float32)
    ok = idx < p.size
    out[ok] = p[idx[ok]]
    return out
