"""``ictal evaluate``: run every recording of a dataset through the daemon path and score it.

Each recording is replayed through :func:`ictal.streaming.bed.run_recording`, the per-bed path that
``ictal serve`` runs (source chunks -> front-end in streaming chunks -> ring buffer -> a window every
``hop_s`` -> model -> causal stitching -> alarm post-processor), so the events written here are the
events the daemon would have raised. Nothing of that path is re-implemented here.

Output folder (``--out DIR``)::

    DIR/probs/<recording_id>.npy     float32 (n_samples,) at 256 Hz, NaN where no window scored
    DIR/labels/<recording_id>.npy    int8 (n_samples,): 1 seizure, 0 background, -1 unrated
    DIR/usable/<recording_id>.npy    bool (n_samples,): False where the daemon withheld the samples from
                                     the post-processor (input unusable) or none exists
    DIR/ref/<recording_id>.csv_bi    reference seizures (TUSZ csv_bi), DIR/ref.list
    DIR/hyp/<recording_id>.csv_bi    the daemon's events (csv_bi, confidence = peak probability), DIR/hyp.list
    DIR/bids/ref/sub-<patient>/ses-01/eeg/sub-<patient>_ses-01_task-szMonitoring_run-<NN>_events.tsv
    DIR/bids/hyp/... (same names)    the same reference and events as SzCORE / BIDS _events.tsv files
                                     (training.scoring.bids_tsv), DIR/ref_tsv.list, DIR/hyp_tsv.list;
                                     ``szcore-evaluation DIR/bids/ref DIR/bids/hyp out.json`` scores them
    DIR/recordings.json              per recording: path, duration, reference and detected events
    DIR/report.json, DIR/report.md   the report (:mod:`ictal.training.evaluate_report`)
    DIR/plots/sensitivity_vs_fa.png, DIR/plots/timeline_<recording_id>.png

Every recording gets a status
-----------------------------
A recording selected for evaluation is either **scored** (some probability reached the
post-processor) or listed in ``report.json`` ``meta.unscored`` with its reason, never silently counted
as a miss (:func:`recording_status`):

- ``too_short``: the stream holds less than ``min_history_s`` of signal at 256 Hz, so the daemon never
  scores a window of it (it scores a bed from ``min_history_s`` after it connects);
- ``unusable``: every scored window was judged unusable (flat, saturated, gaps...): the daemon
  withheld all its probabilities and would have raised no alarm ("unusable signal for N s");
- ``no_window``: long enough, yet no window scored (e.g. gaps everywhere);
- ``not_evaluated``: the daemon path cannot read it (a montage the detector cannot use, an
  unreadable file).

Unscored recordings are left out of every figure (event scoring, FA/24h and its duration, sample
AUROC, sweep, latency); their reference seizures are counted in ``meta`` instead. A scored recording
counts whole, its unscored start (the first ``min_history_s - hop_s - lookahead_s``) included.

Short rated clips and the resampler's last sample
-------------------------------------------------
A 10 s clip at 200 Hz (the GROND clips) holds 2000 samples covering [0, 10) s, but the causal
resampler (``detector.resample``) can emit only the 256 Hz samples up to the last input sample's
time, 2559 of the 2560: the stream is 3.9 ms short of the 10 s the first window needs, and the daemon
replaying the file never scores it. :class:`DaemonPathRunner` therefore holds a recording's last input
sample (edge hold, as the resampler does before the first sample) for as few samples as needed to
complete the stream to the EDF's duration -- **only when that is what stands between the recording
and its first window** (one sample at 200 Hz). The scored window then ends exactly at
``min_history_s`` with ``min_history_s`` of history, on the daemon's grid: the clip is scored as the
same 10 s of a continuing stream would be. A recording scored without it is left untouched, so
evaluate and ``ictal serve`` give identical events on it; the number of held samples is in
``recordings.json`` (``held_samples``). ``min_history_s`` is not lowered per recording: a stream is
never scored with less history than the daemon's, and no probability lies before
``min_history_s - hop_s - lookahead_s``.

Recordings the checkpoint was trained on
----------------------------------------
Before scoring, the selected recording ids are compared with the checkpoint's ``provenance``
(:mod:`ictal.training.provenance`): when some are its training recordings, ``warn`` receives the line
``WARNING: N of M recordings are training recordings of checkpoint <id>: figures on them are not
held-out``, and ``report.json`` ``meta.provenance`` holds the counts and ids (``known``, ``n_recordings``,
``n_train``, ``train``, ``n_evaluation``, ``evaluation``, ``n_validation``, ``validation``, ``warning``).
A checkpoint without provenance gets a warning that its training data is unknown.

Another detector's output
-------------------------
With ``hypotheses=DIR`` (``ictal evaluate --hypotheses DIR``) no checkpoint runs: each recording's
events (and optional probabilities) are read from DIR (:class:`ictal.training.hypotheses.HypothesesRunner`,
layout there), every selected recording must have them (checked before anything runs), and the same
files, scorers and report follow. Such a recording is scored whenever its events file was read;
``meta.mode`` is ``hypotheses``.

Progress
--------
``progress`` receives one line per recording; with ``progress_bar`` a tqdm bar on stderr counts the
recordings done of those selected, with the elapsed time and ETA (``ictal evaluate`` shows it only
when stderr is a terminal).

Figures are computed by :mod:`ictal.training.evaluate_metrics` (definitions there) and
:mod:`ictal.training.scoring` (NEDC EEG Eval v6.0.0-compatible OVERLAP, TAES, DP alignment and EPOCH;
SzCORE, Dan et al., Epilepsia 2024). ``ictal tune`` reuses the stored probabilities (:func:`load_scored`).
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import DetectedEvent
from ictal.detector import FS_HZ
from ictal.training.config import DataConfig
from ictal.training.datasets import Recording, discover, is_chbmit_layout
from ictal.training.datasets.base import Skipped
from ictal.training.datasets.labels import build_labels, seizure_events, spans_from_annotations
from ictal.training.evaluate_metrics import (
    DaemonEvent,
    ScoredRecording,
    alarm_leaves_s,
    events_from_probs,
    hypothesis,
)
from ictal.training.hypotheses import HypothesesError, HypothesesRunner
from ictal.training.scoring.annotations import Event, write_csv_bi
from ictal.training.scoring.bids_tsv import bids_layout, write_events_tsv


class EvaluationError(ValueError):
    """Evaluation cannot proceed (no recording, unreadable dataset, ...); the message says what and where."""


def dataset_config(root: Path | str, fmt: str | None = None) -> DataConfig:
    """The dataset description of a ``--data`` folder, guessing its layout when not given.

    Parameters
    ----------
    root : path
        Dataset folder.
    fmt : {"tusz", "edf_folder", "rated_windows", "chbmit"}, optional
        Layout; default: ``rated_windows`` when ``labelled/manifest.csv`` or ``background/eegmat/``
        is there, ``tusz`` when ``edf/`` or a ``train``/``dev``/``eval`` folder is there, ``chbmit``
        for a CHB-MIT folder (:func:`ictal.training.datasets.is_chbmit_layout`), else ``edf_folder``.

    Returns
    -------
    DataConfig

    Raises
    ------
    EvaluationError
        If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise EvaluationError(f"dataset folder {root} not found (expected a folder of EDF recordings)")
    if fmt is None:
        if (root / "labelled" / "manifest.csv").is_file() or (root / "background" / "eegmat").is_dir():
            fmt = "rated_windows"
        elif (root / "edf").is_dir() or any((root / s).is_dir() for s in ("train", "dev", "eval")):
            fmt = "tusz"
        elif is_chbmit_layout(root):
            fmt = "chbmit"
        else:
            fmt = "edf_folder"
    return DataConfig(format=fmt, root=root)


def select_recordings(config: DataConfig, include: Sequence[str] = (), split: str | None = None
                      ) -> tuple[list[Recording], list[Skipped]]:
    """Discover a dataset's recordings and keep those asked for.

    Parameters
    ----------
    config : DataConfig
    include : sequence of str
        Shell patterns matched against the recording id (e.g. ``"labelled__iiic_0*"``); empty keeps
        every recording.
    split : str, optional
        Keep only this split (``train``/``dev``/``eval``; meaningful for TUSZ, whose split is given).

    Returns
    -------
    recordings, skipped

    Raises
    ------
    EvaluationError
        If nothing is left to evaluate.
    """
    try:
        index = discover(config)
    except (FileNotFoundError, ValueError) as exc:
        raise EvaluationError(f"cannot read dataset {config.root} as {config.format}: {exc}") from exc
    recs = index.recordings
    if include:
        recs = [r for r in recs if any(fnmatch.fnmatchcase(r.recording_id, pat) for pat in include)]
    if split is not None:
        recs = [r for r in recs if r.split == split]
    if not recs:
        raise EvaluationError(
            f"no recording of {config.root} ({config.format}, {len(index.recordings)} found) matches "
            f"include={list(include) or 'all'} split={split or 'all'}"
        )
    return recs, index.skipped


def label_spans(rec: Recording) -> list:
    """The label spans of a recording.

    Parameters
    ----------
    rec : Recording
        A discovered recording; when discovery deferred its labels (``annotations`` None) its EDF+
        annotations are read (``streaming.edf.read_annotations``: the ``EDF Annotations`` bytes only, not
        the samples) and mapped with ``edf_annotation_labels``.

    Returns
    -------
    spans : list of training.datasets.LabelSpan
        Seconds from the start of the recording.

    Raises
    ------
    ValueError, OSError
        If the EDF cannot be read.
    """
    if rec.annotations is not None:
        return list(rec.annotations)
    from ictal.streaming.edf import read_annotations

    return spans_from_annotations(read_annotations(rec.path), rec.edf_annotation_labels)


@dataclass
class RunOutput:
    """What the daemon path gives for one recording.

    Attributes
    ----------
    probs : ndarray of float32, shape (n_samples,)
        Stitched per-sample probabilities at 256 Hz over the whole recording; NaN where no window
        scored the sample.
    events : list of DetectedEvent
        The events the post-processor raised (``raised_s`` = stream time of the onset alarm).
    quality_events : list
        Signal-quality events of the run (counted in the report).
    usable : ndarray of bool, shape (n_samples,), optional
        False where the daemon withheld the probabilities from the post-processor (input unusable);
        None means usable wherever a probability exists.
    signal_s : float, optional
        Seconds of signal the stream held at 256 Hz (after resampling and any held last sample);
        None: take the recording's duration.
    held_samples : int
        Input samples appended by holding the last one (module docstring; 0 for most recordings).
    """

    probs: np.ndarray
    events: list[DetectedEvent]
    quality_events: list = field(default_factory=list)
    usable: np.ndarray | None = None
    signal_s: float | None = None
    held_samples: int = 0


Runner = Callable[[Recording], RunOutput]
"""Runs one recording through the daemon path (:class:`DaemonPathRunner`; tests may inject another)."""


def detected_events(alarm_events: Iterable[Any]) -> list[DetectedEvent]:
    """Pair the onset and offset ``alarms.schema.AlarmEvent`` of a run into detected events.

    Parameters
    ----------
    alarm_events : iterable of AlarmEvent
        Onsets and offsets in order (other kinds are ignored).

    Returns
    -------
    list of DaemonEvent
        One per offset: onset and offset times, peak and mean probability, ``raised_s`` = stream time
        of the matching onset alarm (the sample that completed the minimum duration), ``window_end_s``
        = the onset alarm's ``window_end_s`` (when it leaves the daemon), both NaN when the onset is
        missing; ``end_reason`` = the offset's reason.
    """
    nan = float("nan")
    raised: dict[float, tuple[float, float]] = {}
    out = []
    for ev in alarm_events:
        if ev.kind == "onset":
            leaves = getattr(ev, "window_end_s", None)
            raised[float(ev.onset_s)] = (float(ev.stream_time_s), nan if leaves is None else float(leaves))
        elif ev.kind == "offset":
            prob = ev.probability
            at, leaves = raised.pop(float(ev.onset_s), (nan, nan))
            out.append(DaemonEvent(float(ev.onset_s), float(ev.offset_s), float(prob.peak) if prob else nan,
                                   float(prob.mean) if prob else nan, at, str(ev.reason or ""), leaves))
    return out


def held_samples_needed(fs: float, n_in: int, min_history_s: float) -> int:
    """Input samples :func:`complete_short_recording` appends to a recording (from its length alone).

    Parameters
    ----------
    fs : float
        Input rate in Hz.
    n_in : int
        Input samples per channel.
    min_history_s : float
        History the first window needs (s).

    Returns
    -------
    held : int
        0 unless the 256 Hz stream of ``n_in`` samples holds fewer than ``min_history_s * 256`` samples
        while the recording lasts at least ``min_history_s``; then the fewest repeats of the last input
        sample that bring the stream to ``round(n_in / fs * 256)`` samples.
    """
    from ictal.detector.resample import StreamingResampler

    need = int(round(min_history_s * FS_HZ))
    target = int(round(n_in / fs * FS_HZ))
    resampler = StreamingResampler(fs, FS_HZ, n_channels=1)
    if n_in == 0 or resampler.n_out_for(n_in) >= need or target < need:
        return 0
    held = 0
    while resampler.n_out_for(n_in + held) < target:
        held += 1
    return held


def complete_short_recording(recording: Any, min_history_s: float) -> tuple[Any, int]:
    """Hold the last input sample of a recording whose resampled stream falls just short of its first window.

    Parameters
    ----------
    recording : streaming.edf.CanonicalRecording
        Data (19, n_in) at ``fs`` Hz.
    min_history_s : float
        History the first window needs (s).

    Returns
    -------
    recording : CanonicalRecording
        Unchanged (the same object) unless the 256 Hz stream it gives holds fewer than
        ``min_history_s * 256`` samples while the EDF's duration is at least ``min_history_s``: then
        a copy whose last input sample is repeated as few times as needed for the stream to reach
        ``round(duration * 256)`` samples (see the module docstring).
    held : int
        Input samples appended (0 when unchanged).
    """
    from dataclasses import replace

    held = held_samples_needed(float(recording.fs), int(recording.data.shape[1]), min_history_s)
    if held == 0:
        return recording, 0
    data = np.concatenate([recording.data, np.repeat(recording.data[:, -1:], held, axis=1)], axis=1)
    return replace(recording, data=data), held


class DaemonPathRunner:
    """Run recordings through :func:`ictal.streaming.bed.run_recording`, the daemon's per-bed path.

    Parameters
    ----------
    scorer : object with ``predict``
        ``detector.inference.Detector`` (see :meth:`from_checkpoint`), or any object with
        ``predict((B, 19, 15360)) -> (B, 15360)`` (``streaming.bed.Scorer``).
    frontend_config : FrontendConfig
        The checkpoint's front-end.
    thresholds : AlarmThresholds
        Post-processor rules of the run.
    hop_s : float
        Seconds between scored windows (the daemon's ``scheduler.hop_s``).
    min_history_s : float, optional
        Score a left-padded window once this much signal exists; None: the daemon's default
        (``SchedulerConfig().min_history_s``, 10 s).
    mode : {"window", "stream"} or None, default None
        The daemon's ``detector.mode``; None: the scorer's natural mode, ``stream`` for a causal
        checkpoint (``direction == "causal"``), else ``window``.

    Attributes
    ----------
    lookahead_s : float
        The scorer's ``lookahead_s`` (the checkpoint's; 0 for a scorer that declares none).
    mode : str
        The mode recordings are run in.
    """

    def __init__(self, scorer: Any, frontend_config: Any, thresholds: AlarmThresholds, hop_s: float,
                 min_history_s: float | None = None, mode: str | None = None) -> None:
        from ictal.streaming.config import SchedulerConfig

        self.scorer = scorer
        self.frontend_config = frontend_config
        self.thresholds = thresholds
        self.hop_s = hop_s
        self.min_history_s = float(SchedulerConfig().min_history_s if min_history_s is None else min_history_s)
        self.lookahead_s = float(getattr(scorer, "lookahead_s", 0.0))
        self.mode = natural_mode(scorer) if mode is None else mode
        if self.mode not in ("window", "stream"):
            raise ValueError(f"mode must be 'window' or 'stream' (found {self.mode!r})")

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | str, thresholds: AlarmThresholds, hop_s: float,
                        min_history_s: float | None = None, device: str = "auto", backend: str = "auto",
                        max_batch: int = 32, mode: str | None = None) -> DaemonPathRunner:
        """Load the checkpoint as the daemon does (``Detector.from_checkpoint``) and wrap it."""
        from ictal.detector.inference import Detector

        detector = Detector.from_checkpoint(Path(checkpoint), device=device, backend=backend, max_batch=max_batch)
        return cls(detector, detector.frontend_config, thresholds, hop_s, min_history_s, mode)

    def __call__(self, rec: Recording) -> RunOutput:
        """Run one recording; probabilities are laid over the whole recording (see :class:`RunOutput`).

        Raises
        ------
        ValueError, OSError, detector.montage.MontageError
            As ``streaming.edf.load_canonical`` (unreadable file, unusable montage).
        """
        from ictal.detector.resample import StreamingResampler
        from ictal.streaming.bed import run_recording
        from ictal.streaming.edf import CanonicalRecording, open_canonical

        with open_canonical(rec.path, self.frontend_config) as stream:
            duration_s = stream.duration_s
            held = held_samples_needed(stream.fs, stream.n_samples, self.min_history_s)
            signal_s = StreamingResampler(stream.fs, FS_HZ, n_channels=1).n_out_for(stream.n_samples + held) / FS_HZ
            source: Any = stream  # read block by block: memory does not grow with the recording's length
            if held:  # a clip of about min_history_s: loaded whole to hold its last sample
                whole = CanonicalRecording(data=stream.read(0, stream.n_samples), fs=stream.fs,
                                           annotations=stream.annotations, montage=stream.montage, path=stream.path)
                source, held = complete_short_recording(whole, self.min_history_s)
            # laid over the whole recording by run_recording itself: the one per-sample array, no copy
            result = run_recording(source, self.scorer, self.frontend_config, self.thresholds, self.hop_s,
                                   min_history_s=self.min_history_s, lookahead_s=self.lookahead_s,
                                   from_start_samples=int(round(duration_s * FS_HZ)), mode=self.mode)
        if result.first_index != 0:
            raise RuntimeError(f"run_recording laid the probabilities of {rec.path} from sample {result.first_index}; "
                               f"expected 0 (from_start_samples)")
        return RunOutput(result.probabilities, detected_events(result.events), list(result.quality_events),
                         result.usable, signal_s=signal_s, held_samples=held)


def natural_mode(scorer: Any) -> str:
    """The daemon mode a scorer is served in by default: ``stream`` for a causal checkpoint, else ``window``."""
    return "stream" if getattr(scorer, "direction", None) == "causal" else "window"


SCORED = "scored"
TOO_SHORT = "too_short"
UNUSABLE = "unusable"
NO_WINDOW = "no_window"
NOT_EVALUATED = "not_evaluated"
STATUSES: tuple[str, ...] = (SCORED, TOO_SHORT, UNUSABLE, NO_WINDOW, NOT_EVALUATED)
"""Statuses of an evaluated recording (module docstring); every one but ``scored`` is unscored."""


@dataclass
class EvaluatedRecording:
    """One evaluated recording: the scored data, where it came from, and whether it was scored.

    Attributes
    ----------
    recording : Recording
    scored : ScoredRecording
        Probabilities, labels and events (all-NaN probabilities when nothing was scored).
    quality_events : int
        Signal-quality events of the run.
    rerun_matches : bool
        Re-running the post-processor on the stored probabilities gives the daemon's events.
    status : str
        One of :data:`STATUSES` (:func:`recording_status`).
    reason : str or None
        Why it is not scored (None when scored).
    signal_s : float
        Seconds of 256 Hz signal the stream held.
    unusable_s : float
        Seconds with a probability that the daemon withheld from the post-processor (input unusable).
    held_samples : int
        Last input sample holds appended (:func:`complete_short_recording`).
    """

    recording: Recording
    scored: ScoredRecording
    quality_events: int
    rerun_matches: bool
    status: str = SCORED
    reason: str | None = None
    signal_s: float = float("nan")
    unusable_s: float = 0.0
    held_samples: int = 0

    @property
    def first_prob_s(self) -> float | None:
        """Stream time (s) of the first probability, None when there is none."""
        idx = np.flatnonzero(np.isfinite(self.scored.probs))
        return float(idx[0] / self.scored.rate_hz) if idx.size else None


@dataclass(frozen=True)
class NotEvaluated:
    """A selected recording that the daemon path could not read (status ``not_evaluated``)."""

    recording_id: str
    path: Path
    reason: str


def recording_status(probs: np.ndarray, usable: np.ndarray | None, signal_s: float, min_history_s: float,
                     quality_events: Sequence[Any] = (), rate_hz: float = FS_HZ) -> tuple[str, str | None]:
    """Whether a run scored its recording and, when not, why (module docstring).

    Parameters
    ----------
    probs : ndarray of float, shape (n_samples,)
        Probabilities laid over the recording (NaN = no window).
    usable : ndarray of bool, shape (n_samples,), optional
        False where the daemon withheld a probability from the post-processor.
    signal_s : float
        Seconds of 256 Hz signal the stream held.
    min_history_s : float
        History the first window needs (s).
    quality_events : sequence of AlarmEvent
        The run's signal-quality events (their ``problems`` name what made the input unusable).
    rate_hz : float
        Rate of ``probs``.

    Returns
    -------
    status : str
        ``scored``, ``too_short``, ``unusable`` or ``no_window``.
    reason : str or None
        None when scored; else a sentence with the numbers (found and needed).
    """
    finite = np.isfinite(np.asarray(probs, dtype=np.float64))
    ok = finite if usable is None else finite & np.asarray(usable, dtype=bool)
    if ok.any():
        return SCORED, None
    if not finite.any():
        if signal_s < min_history_s:
            return TOO_SHORT, (f"too short for min_history_s: {signal_s:.3f} s of signal at {FS_HZ} Hz, the first "
                               f"window needs {min_history_s:g} s")
        return NO_WINDOW, f"no window scored although {signal_s:.1f} s of signal exist (min_history_s {min_history_s:g} s)"
    problems = sorted({str(p) for ev in quality_events for p in (getattr(ev, "problems", None) or [])})
    why = f": {'; '.join(problems)}" if problems else ""
    return UNUSABLE, (f"unusable signal for {finite.sum() / rate_hz:.1f} s (every scored window; alarms "
                      f"suppressed throughout){why}")


def score_recording(rec: Recording, run: RunOutput, min_history_s: float | None = None) -> EvaluatedRecording:
    """Attach labels and reference events to a run's probabilities.

    Parameters
    ----------
    rec : Recording
    run : RunOutput

    Returns
    -------
    EvaluatedRecording
        Labels at 256 Hz over the probabilities' length; reference seizures are the runs of seizure
        labels (overlapping rated windows merge); ``rerun_matches`` says whether re-running the
        post-processor over the stored probabilities (:func:`events_from_probs`) gives the daemon's
        events, which the sweep and the tuning rely on; ``status`` and ``reason`` from
        :func:`recording_status`.
    """
    from ictal.streaming.config import SchedulerConfig

    if min_history_s is None:
        min_history_s = SchedulerConfig().min_history_s
    probs = np.asarray(run.probs, dtype=np.float32)
    n = probs.size
    labels = build_labels(label_spans(rec), n, FS_HZ, rec.default_label)
    ref = [Event(a, b, "seiz") for a, b in seizure_events(labels, FS_HZ)]
    usable = None if run.usable is None else np.asarray(run.usable, dtype=bool)
    scored = ScoredRecording(rec.recording_id, n / FS_HZ, probs, labels, ref, float(FS_HZ), list(run.events), usable)
    signal_s = float(n / FS_HZ if run.signal_s is None else run.signal_s)
    status, reason = recording_status(probs, usable, signal_s, min_history_s, run.quality_events)
    finite = np.isfinite(probs)
    unusable_s = float(np.count_nonzero(finite & ~usable) / FS_HZ) if usable is not None else 0.0
    return EvaluatedRecording(rec, scored, len(run.quality_events), True, status, reason, signal_s, unusable_s,
                              int(run.held_samples))


def _same_events(a: Sequence[DetectedEvent], b: Sequence[DetectedEvent], tol_s: float = 1.0 / FS_HZ) -> bool:
    return len(a) == len(b) and all(
        abs(x.onset_s - y.onset_s) <= tol_s and abs(x.offset_s - y.offset_s) <= tol_s for x, y in zip(a, b, strict=True)
    )


def run_dataset(recordings: Iterable[Recording], runner: Runner, thresholds: AlarmThresholds,
                progress: Callable[[str], None] | None = None,
                skipped: list[Skipped] | None = None, min_history_s: float | None = None,
                not_evaluated: list[NotEvaluated] | None = None) -> list[EvaluatedRecording]:
    """Run every recording through ``runner`` and attach its reference.

    Parameters
    ----------
    recordings : iterable of Recording
    runner : Runner
    thresholds : AlarmThresholds
        The thresholds the runner used (for the re-run check).
    progress : callable, optional
        Called with one line per recording.
    skipped : list of Skipped, optional
        A recording the daemon path cannot read (a montage the detector cannot use, an unreadable
        file: ``MontageError``, ``ValueError``, ``OSError``) is appended here with the reason and left
        out; without this list the error propagates.
    min_history_s : float, optional
        The runner's history before its first window (for :func:`recording_status`); default the
        runner's ``min_history_s`` attribute, else ``SchedulerConfig().min_history_s``.
    not_evaluated : list of NotEvaluated, optional
        Each recording appended to ``skipped`` is also appended here, with its id (status
        ``not_evaluated`` in the report).

    Returns
    -------
    list of EvaluatedRecording
        Every recording the runner read, scored or not (see ``status``).

    Raises
    ------
    EvaluationError
        If ``skipped`` is given and no recording could be evaluated.
    """
    if min_history_s is None:
        min_history_s = getattr(runner, "min_history_s", None)
    out = []
    n_seen = 0
    for rec in recordings:
        n_seen += 1
        t0 = time.perf_counter()
        try:
            run = runner(rec)
        except (ValueError, OSError) as exc:  # MontageError is a ValueError
            if skipped is None:
                raise
            skipped.append(Skipped(rec.path, f"not evaluated: {exc}"))
            if not_evaluated is not None:
                not_evaluated.append(NotEvaluated(rec.recording_id, rec.path, f"not evaluated: {exc}"))
            if progress is not None:
                progress(f"{rec.recording_id}: skipped ({exc})")
            continue
        ev = score_recording(rec, run, min_history_s)
        if getattr(runner, "external", False):
            # another detector's stored events (training.hypotheses): scored whenever its events file was
            # read, even without probabilities; its events come from no post-processor to re-run
            ev.status, ev.reason = SCORED, None
        else:
            rerun = events_from_probs(ev.scored.probs, ev.scored.rate_hz, thresholds, usable=ev.scored.usable)
            ev.rerun_matches = _same_events(rerun, ev.scored.events)
        out.append(ev)
        if progress is not None:
            p = ev.scored.probs
            pmax = float(np.nanmax(p)) if np.isfinite(p).any() else float("nan")
            state = "" if ev.status == SCORED else f", NOT SCORED: {ev.reason}"
            progress(f"{rec.recording_id}: {ev.scored.duration_s:.1f} s, {len(ev.scored.events)} events, "
                     f"max p {pmax:.3f} ({time.perf_counter() - t0:.1f} s){state}")
    if skipped is not None and n_seen and not out:
        raise EvaluationError(
            f"none of the {n_seen} recordings could be evaluated: "
            + "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[-n_seen:])
        )
    return out


def _event_dict(e: DetectedEvent) -> dict:
    leaves = alarm_leaves_s(e)
    return {"onset_s": e.onset_s, "offset_s": e.offset_s, "raised_s": None if math.isnan(e.raised_s) else e.raised_s,
            "window_end_s": None if math.isnan(leaves) else leaves,
            "peak": e.peak, "mean": e.mean, "end_reason": e.end_reason}


def write_recordings(out_dir: Path, evaluated: Sequence[EvaluatedRecording]) -> dict[str, Path]:
    """Write probabilities, labels, csv_bi files, list files and ``recordings.json``.

    Parameters
    ----------
    out_dir : Path
        Created if needed.
    evaluated : sequence of EvaluatedRecording
        Every run recording; the arrays of all are written, but only scored ones get csv_bi files and
        a line in ``ref.list``/``hyp.list`` (the lists score exactly what the report scores).

    Returns
    -------
    paths : dict of str to Path
        ``ref_list``, ``hyp_list``, ``ref_tsv_list``, ``hyp_tsv_list`` and ``recordings`` (the JSON index).

    Notes
    -----
    The BIDS tree (module docstring) names each scored recording by its patient
    (:func:`ictal.training.scoring.bids_tsv.bids_layout`: the patient id's letters and digits as subject,
    runs numbered in order); ``recordings.json`` gives each recording's ``bids_events`` path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("probs", "labels", "ref", "hyp"):
        (out_dir / sub).mkdir(exist_ok=True)
    index = []
    ref_lines, hyp_lines, tsv_lines = [], [], []
    layout = bids_layout([(ev.scored.recording_id, str(ev.recording.patient or ev.scored.recording_id))
                          for ev in evaluated if ev.status == SCORED])
    for ev in evaluated:
        s = ev.scored
        rid = s.recording_id
        np.save(out_dir / "probs" / f"{rid}.npy", s.probs.astype(np.float32))
        np.save(out_dir / "labels" / f"{rid}.npy", s.labels.astype(np.int8))
        if s.usable is not None:
            (out_dir / "usable").mkdir(exist_ok=True)
            np.save(out_dir / "usable" / f"{rid}.npy", s.usable)
        if ev.status == SCORED:
            write_csv_bi(out_dir / "ref" / f"{rid}.csv_bi", s.reference, bname=rid)
            write_csv_bi(out_dir / "hyp" / f"{rid}.csv_bi", hypothesis(s.events, s.duration_s), bname=rid)
            ref_lines.append(f"ref/{rid}.csv_bi")
            hyp_lines.append(f"hyp/{rid}.csv_bi")
            bids = layout[rid]
            write_events_tsv(out_dir / "bids" / "ref" / bids, s.reference)
            write_events_tsv(out_dir / "bids" / "hyp" / bids, hypothesis(s.events, s.duration_s))
            tsv_lines.append(bids.as_posix())
        index.append({
            "recording_id": rid, "path": str(ev.recording.path), "patient": ev.recording.patient,
            "split": ev.recording.split, "duration_s": s.duration_s, "rate_hz": s.rate_hz,
            "ref_events": [[e.start_s, e.stop_s] for e in s.ref_events],
            "events": [_event_dict(e) for e in s.events],
            "quality_events": ev.quality_events, "rerun_matches_daemon": ev.rerun_matches,
            "status": ev.status, "reason": ev.reason, "signal_s": ev.signal_s, "first_prob_s": ev.first_prob_s,
            "unusable_s": ev.unusable_s, "held_samples": ev.held_samples,
            "bids_events": layout[rid].as_posix() if rid in layout else None,
        })
    (out_dir / "ref.list").write_text("\n".join(ref_lines) + "\n", encoding="utf-8")
    (out_dir / "hyp.list").write_text("\n".join(hyp_lines) + "\n", encoding="utf-8")
    (out_dir / "ref_tsv.list").write_text("".join(f"bids/ref/{x}\n" for x in tsv_lines), encoding="utf-8")
    (out_dir / "hyp_tsv.list").write_text("".join(f"bids/hyp/{x}\n" for x in tsv_lines), encoding="utf-8")
    (out_dir / "recordings.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return {"ref_list": out_dir / "ref.list", "hyp_list": out_dir / "hyp.list",
            "ref_tsv_list": out_dir / "ref_tsv.list", "hyp_tsv_list": out_dir / "hyp_tsv.list",
            "recordings": out_dir / "recordings.json"}


def load_scored(eval_dir: Path | str) -> list[ScoredRecording]:
    """Read back the recordings an evaluation stored (for ``ictal tune --from-eval``).

    Parameters
    ----------
    eval_dir : path
        An ``ictal evaluate --out`` folder.

    Returns
    -------
    list of ScoredRecording
        The scored recordings (entries whose ``status`` is not ``scored`` are left out, as in the
        report); events carry ``window_end_s`` when it was stored.

    Raises
    ------
    EvaluationError
        If ``recordings.json`` or a probability/label file is missing or their lengths differ.
    """
    eval_dir = Path(eval_dir)
    index_path = eval_dir / "recordings.json"
    if not index_path.is_file():
        raise EvaluationError(f"{index_path} not found (expected the output folder of `ictal evaluate`)")
    out = []
    for entry in json.loads(index_path.read_text(encoding="utf-8")):
        if entry.get("status", SCORED) != SCORED:
            continue
        rid = entry["recording_id"]
        try:
            probs = np.load(eval_dir / "probs" / f"{rid}.npy")
            labels = np.load(eval_dir / "labels" / f"{rid}.npy")
        except OSError as exc:
            raise EvaluationError(f"{eval_dir}: stored arrays of {rid} unreadable ({exc})") from exc
        if probs.shape != labels.shape:
            raise EvaluationError(
                f"{eval_dir}: {rid} has {probs.shape} probabilities but {labels.shape} labels, expected equal shapes"
            )
        events = [DaemonEvent(e["onset_s"], e["offset_s"], e["peak"], e["mean"],
                              float("nan") if e["raised_s"] is None else e["raised_s"], e["end_reason"],
                              float("nan") if e.get("window_end_s") is None else e["window_end_s"])
                  for e in entry["events"]]
        usable_path = eval_dir / "usable" / f"{rid}.npy"
        usable = np.load(usable_path) if usable_path.is_file() else None
        out.append(ScoredRecording(rid, float(entry["duration_s"]), probs, labels,
                                   [Event(a, b, "seiz") for a, b in entry["ref_events"]],
                                   float(entry["rate_hz"]), events, usable))
    return out


def resolve_thresholds(thresholds_file: Path | str | None, checkpoint: Path | str) -> tuple[AlarmThresholds, str]:
    """The thresholds of an evaluation, in the daemon's order (``alarms.thresholds.thresholds_in_force``).

    The file given, else the checkpoint's tuned ones, else the defaults of ``AlarmThresholds``: what
    ``ictal serve`` with the default config and this checkpoint would run.

    Returns
    -------
    thresholds : AlarmThresholds
    source : str
        Where they came from (for the report).

    Raises
    ------
    alarms.thresholds.ThresholdsFileError
        If the file given does not validate, or was tuned for another checkpoint
        (``ThresholdsMismatchError``, naming both ids).
    """
    from ictal.alarms.config import AlarmsConfig
    from ictal.alarms.thresholds import thresholds_in_force

    config = AlarmsConfig(thresholds_file=Path(thresholds_file) if thresholds_file is not None else None)
    metadata = checkpoint_metadata(checkpoint)
    # a thresholds file tuned for another checkpoint is refused here as by `ictal serve`
    thresholds, source = thresholds_in_force(config, metadata.get("thresholds"), metadata.get("checkpoint_id"))
    if source.kind == "checkpoint":
        return thresholds, f"{checkpoint}/metadata.json"
    if source.kind == "config":
        return thresholds, "defaults (alarms.config.AlarmThresholds)"
    return thresholds, str(thresholds_file)


def checkpoint_metadata(checkpoint: Path | str) -> dict:
    """The checkpoint's ``metadata.json`` (read as JSON; never unpickles).

    Raises
    ------
    EvaluationError
        If the file is missing or not JSON.
    """
    path = Path(checkpoint) / "metadata.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: cannot read checkpoint metadata ({exc})") from exc


def checkpoint_thresholds(checkpoint: Path | str) -> AlarmThresholds | None:
    """Thresholds stored in the checkpoint metadata (``thresholds`` key) by ``ictal tune``, or None."""
    meta = checkpoint_metadata(checkpoint)
    stored = meta.get("thresholds")
    if not stored:
        return None
    return AlarmThresholds.model_validate(stored.get("thresholds", stored))


def checkpoint_id(checkpoint: Path | str) -> str:
    """A short id of the checkpoint: its metadata ``model_id``/``checkpoint_id`` if any, else the folder name."""
    try:
        meta = checkpoint_metadata(checkpoint)
    except EvaluationError:
        meta = {}
    for key in ("model_id", "checkpoint_id", "id"):
        if isinstance(meta.get(key), str):
            return meta[key]
    return Path(checkpoint).resolve().name


def provenance_check(checkpoint: Path | str, recording_ids: Sequence[str], purpose: str = "evaluate") -> dict:
    """Compare recording ids with the checkpoint's provenance (:mod:`ictal.training.provenance`).

    Parameters
    ----------
    checkpoint : path
        Checkpoint directory (its ``metadata.json`` is read).
    recording_ids : sequence of str
        The recordings about to be scored (``"evaluate"``) or tuned on (``"tune"``).
    purpose : {"evaluate", "tune"}

    Returns
    -------
    provenance : dict
        :meth:`ictal.training.provenance.Overlap.to_dict` plus ``warning`` (the one line, or None).

    Raises
    ------
    EvaluationError
        If the metadata is unreadable or its provenance is malformed.
    """
    from ictal.training.provenance import checkpoint_warning

    meta = checkpoint_metadata(checkpoint)
    meta.setdefault("checkpoint_id", checkpoint_id(checkpoint))
    try:
        result, line = checkpoint_warning(meta, recording_ids, purpose)  # type: ignore[arg-type]
    except ValueError as exc:
        raise EvaluationError(f"{Path(checkpoint) / 'metadata.json'}: {exc}") from exc
    return {**result.to_dict(), "warning": line}


def evaluate(checkpoint: Path | str | None, data: Path | str, out_dir: Path | str, *, hop_s: float | None = None,
             thresholds_file: Path | str | None = None, min_history_s: float | None = None,
             data_format: str | None = None, include: Sequence[str] = (), split: str | None = None,
             device: str = "auto", backend: str = "auto", plots: bool = True,
             runner: Runner | None = None, progress: Callable[[str], None] | None = None,
             warn: Callable[[str], None] | None = None, mode: str | None = None,
             hypotheses: Path | str | None = None, probs_rate_hz: float | None = None,
             detector_name: str | None = None, progress_bar: bool = False):
    """Evaluate a checkpoint (or another detector's stored output) on a dataset and write the report.

    Parameters
    ----------
    checkpoint : path or None
        Checkpoint directory; None with ``hypotheses``.
    data : path
        Dataset folder (layout guessed by :func:`dataset_config` unless ``data_format`` is given).
    out_dir : path
        Output folder (see the module docstring).
    hop_s : float, optional
        Seconds between scored windows; default the daemon's (``SchedulerConfig().hop_s``).
    thresholds_file : path, optional
        Thresholds file (``alarms.thresholds``); default the checkpoint's tuned thresholds, else the
        defaults.
    min_history_s : float, optional
        Score a left-padded window once this much history exists; default the daemon's
        (``SchedulerConfig().min_history_s``, 10 s). The same for every recording (module docstring).
    data_format, include, split
        See :func:`dataset_config` and :func:`select_recordings`.
    device, backend : str
        Detector device and stack backend.
    plots : bool
        Write the PNG plots.
    runner : Runner, optional
        Replaces :class:`DaemonPathRunner` (tests).
    progress : callable, optional
        Receives progress lines.
    warn : callable, optional
        Receives the provenance warning line (see the module docstring) before scoring starts; it
        is in ``report.meta["provenance"]["warning"]`` either way.
    mode : {"window", "stream"}, optional
        The daemon's ``detector.mode`` to run; default the checkpoint's natural mode (``stream`` for a
        causal checkpoint, ``window`` otherwise: :func:`natural_mode`). Written as ``report.meta["mode"]``.
    hypotheses : path, optional
        Score another detector's output instead of a checkpoint: a folder of events (and optionally
        probabilities) per recording (:mod:`ictal.training.hypotheses`). Every selected recording must have
        one. ``meta.mode`` is then ``hypotheses``, ``meta.checkpoint`` null.
    probs_rate_hz : float, optional
        Rate of the probability files of ``hypotheses``.
    detector_name : str, optional
        Name of the evaluated detector in the report (``meta.checkpoint_id``); default the checkpoint's
        id, or the hypotheses folder's name.
    progress_bar : bool
        Show a tqdm bar on stderr (recordings done / selected, ETA); ``progress`` lines are then written
        above it.

    Returns
    -------
    report : training.evaluate_report.EvaluationReport
        Also written as ``report.json`` and ``report.md``.

    Raises
    ------
    EvaluationError
        If the dataset holds nothing to evaluate, no recording could be scored (each one's reason is
        given), the checkpoint metadata is unreadable, or its provenance is malformed; with
        ``hypotheses``, if a selected recording has no events file or a file is malformed (the message
        names the recording and the file), or both or neither of ``checkpoint`` and ``hypotheses`` are given.
    """
    from ictal.streaming.config import SchedulerConfig
    from ictal.training.evaluate_report import build_report, write_report

    out_dir = Path(out_dir)
    started = time.perf_counter()
    if (checkpoint is None) == (hypotheses is None):
        raise EvaluationError("give a checkpoint or a hypotheses folder (found "
                              + ("both" if checkpoint is not None else "neither") + ")")
    hop_s = SchedulerConfig().hop_s if hop_s is None else float(hop_s)
    if min_history_s is None:
        min_history_s = SchedulerConfig().min_history_s
    config = dataset_config(data, data_format)
    recordings, skipped = select_recordings(config, include, split)
    skipped = list(skipped)
    if hypotheses is not None:
        try:
            runner = HypothesesRunner(hypotheses, probs_rate_hz)
            runner.check(recordings)
        except HypothesesError as exc:
            raise EvaluationError(str(exc)) from exc
        thresholds, th_source = _hypotheses_thresholds(thresholds_file)
        provenance = None
        name = detector_name or Path(hypotheses).resolve().name
    else:
        thresholds, th_source = resolve_thresholds(thresholds_file, checkpoint)
        provenance = provenance_check(checkpoint, [r.recording_id for r in recordings], "evaluate")
        if provenance["warning"] is not None and warn is not None:
            warn(provenance["warning"])
        name = detector_name or checkpoint_id(checkpoint)
    if runner is None:
        runner = DaemonPathRunner.from_checkpoint(checkpoint, thresholds, hop_s, min_history_s, device, backend,
                                                  mode=mode)
    # an injected runner runs with its own history and lookahead: report those
    if getattr(runner, "min_history_s", None) is not None:
        min_history_s = float(runner.min_history_s)
    lookahead_s = float(getattr(runner, "lookahead_s", 0.0))
    discovery_skipped = list(skipped)
    failed: list[NotEvaluated] = []
    bar = None
    if progress_bar:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=len(recordings), desc="ictal evaluate", unit="recording", file=sys.stderr)
        lines = progress

        def progress(line: str) -> None:  # called once per recording by run_dataset
            if lines is not None:
                bar.write(line, file=sys.stderr)
            bar.update(1)
    try:
        evaluated = run_dataset(recordings, runner, thresholds, progress, skipped, min_history_s, failed)
    except HypothesesError as exc:
        raise EvaluationError(str(exc)) from exc
    finally:
        if bar is not None:
            bar.close()
    if not any(ev.status == SCORED for ev in evaluated):
        reasons = [f"{ev.scored.recording_id}: {ev.reason}" for ev in evaluated]
        reasons += [f"{x.recording_id}: {x.reason}" for x in failed]
        raise EvaluationError(f"none of the {len(reasons)} recordings was scored (min_history_s {min_history_s:g} s, "
                              f"hop_s {hop_s:g} s): " + "; ".join(reasons))
    paths = write_recordings(out_dir, evaluated)
    report = build_report(
        evaluated, thresholds, out_dir=out_dir, checkpoint=None if checkpoint is None else str(checkpoint),
        checkpoint_id=name,
        dataset=str(config.root), data_format=config.format, hop_s=hop_s, min_history_s=min_history_s,
        thresholds_source=th_source, skipped=discovery_skipped, ref_list=paths["ref_list"],
        hyp_list=paths["hyp_list"], plots=plots, not_evaluated=failed, lookahead_s=lookahead_s,
        provenance=provenance,
    )
    report.meta["elapsed_s"] = round(time.perf_counter() - started, 2)
    report.meta["mode"] = str(getattr(runner, "mode", mode or "window"))
    report.meta["hypotheses"] = None if hypotheses is None else {
        "folder": str(hypotheses), "probabilities": bool(getattr(runner, "has_probabilities", False)),
        "probs_rate_hz": probs_rate_hz}
    report.meta["bids"] = {"ref_list": str(paths["ref_tsv_list"]), "hyp_list": str(paths["hyp_tsv_list"])}
    report.meta["out_dir"] = str(out_dir)
    write_report(out_dir, report)
    return report


def _hypotheses_thresholds(thresholds_file: Path | str | None) -> tuple[AlarmThresholds, str]:
    """The rules of the post-processor sweep over another detector's probabilities: the file given
    (validated as ``ictal serve`` would, without a checkpoint to match), else the defaults."""
    from ictal.alarms.thresholds import load_thresholds

    if thresholds_file is None:
        return AlarmThresholds(), ("defaults (alarms.config.AlarmThresholds); used only for the tau_on sweep over "
                                   "the detector's probabilities, its events are its own")
    return load_thresholds(Path(thresholds_file)), str(thresholds_file)
