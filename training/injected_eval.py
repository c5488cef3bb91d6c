"""`ictal bench injected`: detection of simulated seizures injected into held-out healthy EEG.

The lookahead trade-off (a later output position gives the model more future signal and leaves the
alarm later) is measured here where the onset is known to the sample: simulated evolving seizures
(:mod:`ictal.training.seizure_synthesis`) are added to real seizure-free EEG that no checkpoint of the demo
recipe was trained on (EEGMAT Subject08-11, ``data.eval_recordings`` of ``configs/train/demo.yaml``),
and every copy runs through the daemon's own per-bed path (:func:`ictal.streaming.bed.run_recording`) with
the checkpoint's own thresholds. Nothing is tuned here. Prints a table; asserts nothing.

What is injected
----------------
For each recording and each ``k < seizures_per_recording``, one copy of the recording with one
seizure (:func:`ictal.training.seizure_synthesis.inject_seizure`):

- duration uniform in :data:`SEIZURE_DURATION_S` (15-60 s);
- plateau amplitude uniform in the training range ``AugmentConfig.synthetic_seizure_amplitude_ratio``
  (1.5-5 x the channel's background SD; ``configs/train/demo.yaml`` uses the same range), the other
  parameters (frequencies, focus, spread, post-ictal attenuation) from ``SeizureSynthesisConfig``;
- onset uniform (whole samples at the file's rate) such that at least ``clean_before_s`` (default
  :data:`CLEAN_BEFORE_S`, 60 s: the first full window holds only clean signal, so the seizure meets
  the model in the full windows the daemon runs on, not the warm-up windows) of clean signal precede
  it and at least :data:`KEEP_AFTER_S` (30 s) of recording follow its offset;
- a recording too short for that (the 62 s EEGMAT arithmetic files) hosts no seizure and serves the
  false-alarm count only.

Draws come from ``numpy.random.SeedSequence([seed, crc32(recording_id), k])``: a recording's seizures
do not depend on the checkpoint or on which other recordings are included.

Figures (per checkpoint)
------------------------
- Sensitivity (OVERLAP): a seizure is detected when an alarm event ``[onset_s, offset_s)`` of its copy
  overlaps ``[onset, offset)``; Wilson score 95% interval.
- Alarm latency = ``window_end_s`` of the first onset event overlapping the seizure - the true onset
  (s): the signal time at which the alarm leaves the daemon (``streaming.bed``), the front-end's
  group delay and the post-processor's minimum duration included, compute time excluded. Every window
  that raises an alarm because of the seizure ends after the onset, so this latency is >= 0; p50 and
  p90 (linear interpolation) over the detected seizures. An overlapping alarm decided *before* the
  true onset was decided on clean signal only (the copy equals the clean recording there, so the
  clean run counts it as a false alarm too): it counts as a hit for OVERLAP sensitivity, is reported
  as ``pre_onset``, and gives no latency.
- Earliest ``onset_s`` error = min over those alarms of the event's ``onset_s`` (first tau_on
  crossing) - the true onset. The output-position contract (``detector.output_position``) bounds it
  below by ``-(lookahead_s + hop_s)``: a window ending at ``t`` yields ``[t - lookahead - hop,
  t - lookahead)``, so a seizure seen first at its newest samples can mark at most that far back.
- False alarms: onset events on the clean recordings; FA/24h = false alarms / clean hours x 24 (the
  NEDC definition, hours = the recordings' durations).
- Sample AUROC: probabilities of the seizure samples ``[onset, offset)`` of the injected copies
  (positives) against every sample of the clean recordings (negatives), where a probability exists
  (``training.evaluate_metrics.auroc_auprc``, ties counted half).

Cost
----
Every window of a copy that ends before the seizure's effect reaches it is bit-identical to the clean
recording's (the front-end is causal and the copy equals the clean signal before the onset), so
:class:`CachedScorer` scores it once (keyed by a hash of the window's bytes; exact, not approximate).
Each copy is cut ``min_duration_s + lookahead_s + 2 hop_s + 1`` s after the seizure's offset (the
latest an alarm whose tau_on crossing lies inside the seizure can leave); the cut changes nothing
before it (streaming is causal). What is scored per checkpoint: every window of the clean recordings
plus about ``(duration + cut) / hop_s`` windows per seizure.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.detector import FS_HZ
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import Scorer, run_recording
from ictal.streaming.edf import CanonicalRecording
from ictal.training.config import AugmentConfig
from ictal.training.evaluate_metrics import auroc_auprc
from ictal.training.seizure_synthesis import SeizureSynthesisConfig, inject_seizure

DEFAULT_INCLUDE: tuple[str, ...] = tuple(f"background__eegmat__Subject{n:02d}_*" for n in (8, 9, 10, 11))
"""The demo recipe's held-out healthy EEG (``data.eval_recordings`` of ``configs/train/demo.yaml``)."""

SEIZURE_DURATION_S: tuple[float, float] = (15.0, 60.0)
"""Range of the injected durations (s, uniform): the training range starts at 15 s
(``AugmentConfig.synthetic_seizure_duration_s``); 60 s (instead of training's 90 s) keeps the number of
scored windows small and lets a whole seizure fit in a 182 s EEGMAT rest recording after
:data:`CLEAN_BEFORE_S` and :data:`KEEP_AFTER_S`."""

AMPLITUDE_RATIO: tuple[float, float] = tuple(AugmentConfig().synthetic_seizure_amplitude_ratio)
"""Plateau amplitude range, x the channel's background SD: the training range (1.5-5)."""

CLEAN_BEFORE_S: float = 60.0
"""Default clean signal before each onset (s): one full window, so the first windows that see the
seizure are full windows, as in a bed monitored for more than a minute."""

KEEP_AFTER_S: float = 30.0
"""Recording kept after each seizure's offset when placing it (s): room for an alarm whose crossing
lies inside the seizure to be raised (min duration 10 s + lookahead 10 s + 2 hops of 4 s < 30 s)."""

WILSON_Z: float = 1.959963984540054
"""Two-sided 95% normal quantile for the Wilson score interval."""


class InjectedEvalError(ValueError):
    """The evaluation cannot run as asked (no recording long enough, bad option); the message says why."""


# -- placements -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where and how one simulated seizure goes into one copy of a recording.

    Attributes
    ----------
    recording_id : str
        The host recording.
    copy_index : int
        ``k`` of the copy (0-based).
    onset_sample : int
        Onset at the recording's own rate ``fs``.
    duration_s : float
        Drawn duration in seconds.
    fs : float
        Rate of the recording in Hz.
    synthesis_seed : int
        Seed of the generator handed to ``inject_seizure`` (focus, frequencies, amplitude, ...).
    """

    recording_id: str
    copy_index: int
    onset_sample: int
    duration_s: float
    fs: float
    synthesis_seed: int

    @property
    def onset_s(self) -> float:
        """True onset in stream seconds (seconds from the start of the recording)."""
        return self.onset_sample / self.fs


def plan_placements(recording_id: str, n_samples: int, fs: float, n_seizures: int, seed: int, *,
                    clean_before_s: float = CLEAN_BEFORE_S, keep_after_s: float = KEEP_AFTER_S,
                    duration_range_s: tuple[float, float] = SEIZURE_DURATION_S) -> list[Placement]:
    """Draw the onsets and durations of the seizures injected into copies of one recording.

    Parameters
    ----------
    recording_id : str
        Id of the recording (part of the seed, so placements do not depend on the other recordings).
    n_samples : int
        Length of the recording at ``fs``.
    fs : float
        Rate of the recording in Hz.
    n_seizures : int
        Copies to make (one seizure each), >= 0.
    seed : int
        The run's seed.
    clean_before_s, keep_after_s : float
        Clean signal required before each onset and recording required after each offset (s).
    duration_range_s : (float, float)
        Range of the durations (s); the upper end shrinks to what the recording leaves room for.

    Returns
    -------
    placements : list of Placement
        ``n_seizures`` placements, or none when the recording is shorter than
        ``clean_before_s + duration_range_s[0] + keep_after_s``.

    Raises
    ------
    InjectedEvalError
        If ``n_seizures`` < 0 or the duration range is empty or not positive.
    """
    if n_seizures < 0:
        raise InjectedEvalError(f"seizures per recording must be >= 0 (found {n_seizures})")
    low, high = duration_range_s
    if not 0 < low <= high:
        raise InjectedEvalError(f"seizure duration range must satisfy 0 < low <= high (found {duration_range_s})")
    length_s = n_samples / fs
    room_s = length_s - clean_before_s - keep_after_s
    if room_s < low:
        return []
    out = []
    for k in range(n_seizures):
        rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(recording_id.encode()), k]))
        duration = float(rng.uniform(low, min(high, room_s)))
        onset_s = float(rng.uniform(clean_before_s, clean_before_s + room_s - duration))
        out.append(Placement(recording_id, k, int(round(onset_s * fs)), duration, fs,
                             int(rng.integers(2**63 - 1))))
    return out


def inject_copy(recording: CanonicalRecording, placement: Placement, *, cut_after_s: float | None = None,
                amplitude_ratio: tuple[float, float] = AMPLITUDE_RATIO):
    """A copy of ``recording`` with the seizure of ``placement`` added.

    Parameters
    ----------
    recording : CanonicalRecording
        Clean EEG, data (19, n_samples) in uV at ``placement.fs``.
    placement : Placement
    cut_after_s : float, optional
        Keep only this many seconds after the seizure's offset (the copy's end); None keeps all.
    amplitude_ratio : (float, float)
        Plateau amplitude range, x background SD.

    Returns
    -------
    copy : CanonicalRecording
        Same fields, data (19, n_kept) with the seizure.
    seizure : training.seizure_synthesis.InjectedSeizure
        What was injected; ``onset_sample``/``offset_sample`` at ``recording.fs``.

    Raises
    ------
    InjectedEvalError
        If the placement was made for a recording of another rate.
    """
    if abs(recording.fs - placement.fs) > 1e-9:
        raise InjectedEvalError(f"placement for {placement.recording_id} was drawn at {placement.fs} Hz, "
                                f"the recording is at {recording.fs} Hz (expected equal)")
    config = SeizureSynthesisConfig(duration_s=(placement.duration_s, placement.duration_s),
                                    amplitude_ratio=tuple(amplitude_ratio))
    data, _, seizure = inject_seizure(recording.data, recording.fs, placement.onset_sample,
                                      np.random.default_rng(placement.synthesis_seed), config)
    if cut_after_s is not None:
        data = data[:, :min(data.shape[1], seizure.offset_sample + int(math.ceil(cut_after_s * recording.fs)))]
    return dataclasses.replace(recording, data=np.ascontiguousarray(data)), seizure


# -- scoring --------------------------------------------------------------------------------------


class CachedScorer:
    """A scorer that scores each distinct window once (keyed by a hash of its bytes).

    The windows of an injected copy that end before the seizure reaches them are bit-identical to the
    clean recording's; this returns the stored probabilities for them instead of scoring them again.
    The result is the scorer's own output for the same bytes (batch composition aside).

    Parameters
    ----------
    scorer : Scorer
        Anything with ``predict((B, 19, 15360)) -> (B, 15360)``.

    Attributes
    ----------
    windows_scored, windows_reused : int
        Windows passed to ``scorer`` and windows answered from the store.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.max_batch = int(getattr(scorer, "max_batch", 32))
        self.windows_scored = 0
        self.windows_reused = 0
        self._store: dict[bytes, np.ndarray] = {}

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(B, 19, 15360) normalised windows -> (B, 15360) probabilities (see ``streaming.bed.Scorer``)."""
        windows = np.asarray(windows)
        keys = [hashlib.blake2b(np.ascontiguousarray(w).tobytes(), digest_size=16).digest() for w in windows]
        missing: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._store and key not in missing:
                missing[key] = i
        if missing:
            probs = np.asarray(self.scorer.predict(windows[list(missing.values())]), dtype=np.float32)
            for key, p in zip(missing, probs, strict=True):
                self._store[key] = p
        self.windows_scored += len(missing)
        self.windows_reused += len(keys) - len(missing)
        return np.stack([self._store[key] for key in keys])

    def forget(self) -> None:
        """Drop the stored probabilities (between recordings: no window is shared across them)."""
        self._store.clear()


@dataclass(frozen=True)
class SeizureOutcome:
    """How the daemon path did on one injected seizure.

    Attributes
    ----------
    recording_id : str
    copy_index : int
    onset_s, offset_s : float
        True onset and offset in stream seconds.
    detected : bool
        An alarm event overlaps ``[onset_s, offset_s)`` (OVERLAP).
    pre_onset : bool
        The first overlapping alarm was decided (``window_end_s``) before the true onset, on clean
        signal; no latency is taken from it.
    latency_s : float or None
        ``window_end_s`` of the first overlapping onset event - ``onset_s``; None when not detected or
        ``pre_onset``.
    onset_error_s : float or None
        That event's ``onset_s`` (first tau_on crossing) - ``onset_s``.
    focus : str or None
        Electrode where the discharge started (None: generalised).
    """

    recording_id: str
    copy_index: int
    onset_s: float
    offset_s: float
    detected: bool
    pre_onset: bool
    latency_s: float | None
    onset_error_s: float | None
    focus: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


def alarm_intervals(events: Sequence[Any]) -> list[tuple[Any, float]]:
    """Pair each onset ``AlarmEvent`` with the end of its event.

    Parameters
    ----------
    events : sequence of alarms.schema.AlarmEvent
        Onset and offset events in order (other kinds are ignored).

    Returns
    -------
    list of (onset event, offset_s)
        ``offset_s`` from the matching offset event (same ``onset_s``), +inf when none follows.
    """
    out: list[tuple[Any, float]] = []
    open_index: dict[float, int] = {}
    for ev in events:
        if ev.kind == "onset":
            open_index[float(ev.onset_s)] = len(out)
            out.append((ev, math.inf))
        elif ev.kind == "offset":
            i = open_index.pop(float(ev.onset_s), None)
            if i is not None:
                out[i] = (out[i][0], float(ev.offset_s))
    return out


def seizure_outcome(events: Sequence[Any], onset_s: float, offset_s: float, *, recording_id: str = "",
                    copy_index: int = 0, focus: str | None = None) -> SeizureOutcome:
    """Score the alarm events of one injected copy against its seizure (definitions: module docstring).

    Parameters
    ----------
    events : sequence of alarms.schema.AlarmEvent
        Onset/offset events of the copy's run, in order.
    onset_s, offset_s : float
        The injected seizure in stream seconds.
    recording_id, copy_index, focus
        Copied into the outcome.

    Returns
    -------
    SeizureOutcome
    """
    for onset_event, end_s in alarm_intervals(events):
        start_s = float(onset_event.onset_s)
        if start_s < offset_s and end_s > onset_s:
            decided_s = onset_event.window_end_s
            decided_s = float(onset_event.stream_time_s if decided_s is None else decided_s)
            if decided_s < onset_s:
                return SeizureOutcome(recording_id, copy_index, onset_s, offset_s, True, True, None,
                                      start_s - onset_s, focus)
            return SeizureOutcome(recording_id, copy_index, onset_s, offset_s, True, False, decided_s - onset_s,
                                  start_s - onset_s, focus)
    return SeizureOutcome(recording_id, copy_index, onset_s, offset_s, False, False, None, None, focus)


def wilson_interval(hits: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a proportion ``hits / n`` (95% by default); (nan, nan) for n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class InjectedResult:
    """Figures of one scorer on the injected seizures and the clean recordings.

    Attributes
    ----------
    lookahead_s, hop_s, min_history_s : float
        The run's output position and scheduling.
    seizures : list of SeizureOutcome
    false_alarms : int
        Onset events on the clean recordings.
    clean_duration_s : float
        Total duration of the clean recordings (s).
    auroc : float
        Sample AUROC (NaN when a class is empty).
    n_positive, n_negative : int
        Samples behind the AUROC.
    n_recordings, n_hosts : int
        Clean recordings, and those long enough to host seizures.
    windows_scored, windows_reused : int
        Windows the model scored, and windows answered from :class:`CachedScorer`.
    wall_s : float
        Wall time of the run (s).
    """

    lookahead_s: float
    hop_s: float
    min_history_s: float
    seizures: list[SeizureOutcome] = field(default_factory=list)
    false_alarms: int = 0
    clean_duration_s: float = 0.0
    auroc: float = float("nan")
    n_positive: int = 0
    n_negative: int = 0
    n_recordings: int = 0
    n_hosts: int = 0
    windows_scored: int = 0
    windows_reused: int = 0
    wall_s: float = 0.0

    @property
    def hits(self) -> int:
        """Seizures overlapped by an alarm."""
        return sum(s.detected for s in self.seizures)

    @property
    def sensitivity(self) -> float:
        """hits / seizures (NaN without seizures)."""
        return self.hits / len(self.seizures) if self.seizures else float("nan")

    @property
    def latencies_s(self) -> np.ndarray:
        """Alarm latencies (s) of the seizures detected after their onset, shape (n,)."""
        return np.array([s.latency_s for s in self.seizures if s.latency_s is not None], dtype=np.float64)

    def latency_quantile_s(self, q: float) -> float:
        """Quantile ``q`` in [0, 1] of :attr:`latencies_s` (linear interpolation; NaN when empty)."""
        lat = self.latencies_s
        return float(np.quantile(lat, q)) if lat.size else float("nan")

    @property
    def earliest_onset_error_s(self) -> float:
        """Smallest ``onset_s`` error over the seizures detected after their onset (NaN when none)."""
        errors = [s.onset_error_s for s in self.seizures if s.latency_s is not None]
        return float(min(errors)) if errors else float("nan")

    @property
    def onset_error_bound_s(self) -> float:
        """``-(lookahead_s + hop_s)``: the contract's lower bound on the ``onset_s`` error."""
        return -(self.lookahead_s + self.hop_s)

    @property
    def fa_per_24h(self) -> float:
        """False alarms per 24 h of clean recording (NaN for none)."""
        return self.false_alarms / self.clean_duration_s * 86400.0 if self.clean_duration_s > 0 else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN as None)."""
        low, high = wilson_interval(self.hits, len(self.seizures))
        figures = dict(
            lookahead_s=self.lookahead_s, hop_s=self.hop_s, min_history_s=self.min_history_s,
            n_seizures=len(self.seizures), hits=self.hits, sensitivity=self.sensitivity,
            sensitivity_ci95=[low, high], pre_onset_hits=sum(s.pre_onset for s in self.seizures),
            latency_p50_s=self.latency_quantile_s(0.5), latency_p90_s=self.latency_quantile_s(0.9),
            latency_min_s=float(self.latencies_s.min()) if self.latencies_s.size else float("nan"),
            n_latency=int(self.latencies_s.size), earliest_onset_error_s=self.earliest_onset_error_s,
            onset_error_bound_s=self.onset_error_bound_s, false_alarms=self.false_alarms,
            clean_hours=self.clean_duration_s / 3600.0, fa_per_24h=self.fa_per_24h, auroc=self.auroc,
            n_positive=self.n_positive, n_negative=self.n_negative, n_recordings=self.n_recordings,
            n_hosts=self.n_hosts, windows_scored=self.windows_scored, windows_reused=self.windows_reused,
            wall_s=self.wall_s,
        )
        out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in figures.items()}
        out["sensitivity_ci95"] = [None if not math.isfinite(v) else v for v in (low, high)]
        out["seizures"] = [s.to_dict() for s in self.seizures]
        return out


def evaluate_injected(
    scorer: Scorer,
    recordings: Sequence[tuple[str, CanonicalRecording]],
    frontend_config: FrontendConfig,
    thresholds: AlarmThresholds,
    *,
    hop_s: float = 4.0,
    min_history_s: float = 10.0,
    seizures_per_recording: int = 3,
    seed: int = 0,
    lookahead_s: float | None = None,
    clean_before_s: float = CLEAN_BEFORE_S,
    duration_range_s: tuple[float, float] = SEIZURE_DURATION_S,
    amplitude_ratio: tuple[float, float] = AMPLITUDE_RATIO,
    progress: Callable[[str], None] | None = None,
) -> InjectedResult:
    """Run clean recordings and their injected copies through the daemon path and score them.

    Parameters
    ----------
    scorer : Scorer
        ``detector.inference.Detector`` or anything with ``predict((B, 19, 15360)) -> (B, 15360)``.
    recordings : sequence of (recording_id, CanonicalRecording)
        Seizure-free recordings, data (19, n_samples) in uV at their own rate.
    frontend_config : FrontendConfig
        The scorer's front-end.
    thresholds : AlarmThresholds
        Post-processor thresholds (the checkpoint's; nothing is tuned here).
    hop_s, min_history_s : float
        Scheduling of the per-bed path (s).
    seizures_per_recording : int
        Injected copies per recording long enough to host one.
    seed : int
        Seed of the placements and of the synthesis.
    lookahead_s : float, optional
        Output position; default the scorer's ``lookahead_s`` (0 when it declares none).
    clean_before_s : float
        Clean signal before each onset (s), >= ``min_history_s + hop_s``.
    duration_range_s, amplitude_ratio : (float, float)
        Seizure durations (s) and plateau amplitudes (x background SD).
    progress : callable, optional
        Receives one line per recording.

    Returns
    -------
    InjectedResult

    Raises
    ------
    InjectedEvalError
        If ``clean_before_s`` is shorter than ``min_history_s + hop_s`` or no recording is given.
    ValueError
        As :func:`ictal.streaming.bed.run_recording` (hop, min history or lookahead out of range).
    """
    if not recordings:
        raise InjectedEvalError("no recording to evaluate (expected at least one seizure-free recording)")
    if clean_before_s < min_history_s + hop_s:
        raise InjectedEvalError(f"clean_before_s must be >= min_history_s + hop_s = {min_history_s + hop_s} s "
                                f"(found {clean_before_s} s): the seizure would start before the first scored span")
    if lookahead_s is None:
        lookahead_s = float(getattr(scorer, "lookahead_s", 0.0))
    t0 = time.perf_counter()
    cached = CachedScorer(scorer)
    result = InjectedResult(lookahead_s=lookahead_s, hop_s=hop_s, min_history_s=min_history_s)
    cut_after_s = thresholds.min_duration_s + lookahead_s + 2 * hop_s + 1.0
    positives: list[np.ndarray] = []
    negatives: list[np.ndarray] = []

    def run(recording: CanonicalRecording):
        return run_recording(recording, cached, frontend_config, thresholds, hop_s,
                             min_history_s=min_history_s, lookahead_s=lookahead_s)

    for recording_id, recording in recordings:
        cached.forget()
        clean = run(recording)
        n_fa = sum(ev.kind == "onset" for ev in clean.events)
        result.false_alarms += n_fa
        result.clean_duration_s += recording.duration_s
        result.n_recordings += 1
        negatives.append(clean.probabilities[np.isfinite(clean.probabilities)])
        placements = plan_placements(recording_id, recording.data.shape[1], recording.fs, seizures_per_recording,
                                     seed, clean_before_s=clean_before_s, duration_range_s=duration_range_s)
        result.n_hosts += bool(placements)
        found = []
        for placement in placements:
            copy, seizure = inject_copy(recording, placement, cut_after_s=cut_after_s, amplitude_ratio=amplitude_ratio)
            onset_s, offset_s = seizure.onset_sample / recording.fs, seizure.offset_sample / recording.fs
            injected = run(copy)
            outcome = seizure_outcome(injected.events, onset_s, offset_s, recording_id=recording_id,
                                      copy_index=placement.copy_index, focus=seizure.focus)
            result.seizures.append(outcome)
            lo = int(math.ceil(onset_s * FS_HZ)) - injected.first_index
            hi = int(math.ceil(offset_s * FS_HZ)) - injected.first_index
            p = injected.probabilities[max(0, lo):max(0, hi)]
            positives.append(p[np.isfinite(p)])
            found.append("missed" if not outcome.detected else "pre-onset alarm" if outcome.pre_onset
                         else f"{outcome.latency_s:.1f} s")
        if progress is not None:
            seizures = f"; seizures: {', '.join(found)}" if found else "; too short to host a seizure"
            progress(f"  {recording_id}: {recording.duration_s:.0f} s, {n_fa} FA{seizures}")
    pos = np.concatenate(positives) if positives else np.zeros(0, dtype=np.float32)
    neg = np.concatenate(negatives)
    result.auroc, _ = auroc_auprc(np.concatenate([pos, neg]),
                                  np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)]))
    result.n_positive, result.n_negative = int(pos.size), int(neg.size)
    result.windows_scored, result.windows_reused = cached.windows_scored, cached.windows_reused
    result.wall_s = time.perf_counter() - t0
    return result


# -- the bench command ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ictal bench injected``."""
    default_data = os.environ.get("ICTAL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--checkpoint", action="append", required=True, type=Path, metavar="DIR",
                        help="checkpoint directory (repeatable: one table row each)")
    parser.add_argument("--data", type=Path, default=Path(default_data),
                        help="shared data folder (default: %(default)s)")
    parser.add_argument("--include", action="append", default=None, metavar="PATTERN",
                        help="recording-id shell pattern, repeatable (default: the demo recipe's held-out "
                        "healthy EEG, " + " ".join(DEFAULT_INCLUDE) + ")")
    parser.add_argument("--seizures-per-recording", type=int, default=3,
                        help="injected copies per recording long enough to host one (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of placements and synthesis (default: %(default)s)")
    parser.add_argument("--hop-s", type=float, default=4.0, help="seconds between scored windows (default: %(default)s)")
    parser.add_argument("--min-history-s", type=float, default=10.0,
                        help="history before the first (padded) window, s (default: %(default)s)")
    parser.add_argument("--clean-before-s", type=float, default=CLEAN_BEFORE_S,
                        help="clean signal before each onset, s (default: %(default)s)")
    parser.add_argument("--thresholds", type=Path, default=None, metavar="FILE",
                        help="a thresholds file (ictal tune's format) used for every checkpoint instead of its "
                        "own: one fixed operating point to compare checkpoints at (default: each checkpoint's)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")


def _machine() -> str:
    import torch

    from ictal.detector.machine import cpu_model

    text = f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.1f} at the end"
    return text


def _fmt(value: float, spec: str, unit: str = "") -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:{spec}}{unit}"


def format_table(rows: Sequence[tuple[str, InjectedResult]]) -> str:
    """The per-checkpoint table (one row per (checkpoint id, result))."""
    header = ("checkpoint", "lookahead", "seizures", "sensitivity (95% CI)", "latency p50 / p90 (n)",
              "onset_s err min (bound)", "FA / hours", "FA/24h", "AUROC", "windows", "wall")
    lines = []
    for name, r in rows:
        low, high = wilson_interval(r.hits, len(r.seizures))
        pre = sum(s.pre_onset for s in r.seizures)
        sens = f"{r.hits}/{len(r.seizures)} = {_fmt(r.sensitivity, '.2f')} ({_fmt(low, '.2f')}-{_fmt(high, '.2f')})"
        if pre:
            sens += f" [{pre} pre-onset]"
        lines.append((
            name, f"{r.lookahead_s:g} s", str(len(r.seizures)), sens,
            f"{_fmt(r.latency_quantile_s(0.5), '.1f')} / {_fmt(r.latency_quantile_s(0.9), '.1f')} s "
            f"({r.latencies_s.size})",
            f"{_fmt(r.earliest_onset_error_s, '+.1f')} s ({r.onset_error_bound_s:+g} s)",
            f"{r.false_alarms} / {r.clean_duration_s / 3600:.2f} h", _fmt(r.fa_per_24h, '.0f'),
            _fmt(r.auroc, '.3f'), f"{r.windows_scored} (+{r.windows_reused} reused)", f"{r.wall_s:.0f} s",
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its table; returns 0 (2 when the data or a checkpoint is unusable)."""
    import logging

    from ictal.alarms.thresholds import ThresholdsFileError
    from ictal.detector.inference import Detector
    from ictal.detector.montage import MontageError
    from ictal.streaming.edf import load_canonical
    from ictal.training.evaluate import (
        EvaluationError,
        checkpoint_id,
        dataset_config,
        resolve_thresholds,
        select_recordings,
    )

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    include = args.include or list(DEFAULT_INCLUDE)
    try:
        recs, _ = select_recordings(dataset_config(args.data), include)
    except EvaluationError as exc:
        print(f"ictal bench injected: {exc}", file=sys.stderr)
        return 2
    recs = sorted(recs, key=lambda r: r.recording_id)
    print(f"ictal bench injected: simulated seizures (training.seizure_synthesis) injected into {len(recs)} "
          f"held-out seizure-free recordings of {args.data} ({', '.join(include)})")
    print(f"  per host recording {args.seizures_per_recording} copies with one seizure each: duration "
          f"{SEIZURE_DURATION_S[0]:g}-{SEIZURE_DURATION_S[1]:g} s, amplitude {AMPLITUDE_RATIO[0]:g}-"
          f"{AMPLITUDE_RATIO[1]:g} x background SD (training range), onset >= {args.clean_before_s:g} s after "
          f"the start and >= {KEEP_AFTER_S:g} s before the end; seed {args.seed}; hop {args.hop_s:g} s, "
          f"min history {args.min_history_s:g} s; "
          + (f"thresholds of {args.thresholds} for every checkpoint" if args.thresholds is not None
             else "the checkpoint's own thresholds") + " (nothing tuned here)")
    rows: list[tuple[str, InjectedResult]] = []
    report: dict[str, Any] = dict(
        data=str(args.data), include=include, seizures_per_recording=args.seizures_per_recording, seed=args.seed,
        hop_s=args.hop_s, min_history_s=args.min_history_s, clean_before_s=args.clean_before_s,
        keep_after_s=KEEP_AFTER_S, seizure_duration_s=list(SEIZURE_DURATION_S),
        amplitude_ratio=list(AMPLITUDE_RATIO), checkpoints=[],
    )
    notes = []
    for checkpoint in args.checkpoint:
        try:
            detector = Detector.from_checkpoint(checkpoint, device=args.device)
            thresholds, source = resolve_thresholds(args.thresholds, checkpoint)
            loaded = [(r.recording_id, load_canonical(r.path, detector.frontend_config)) for r in recs]
        except (EvaluationError, ThresholdsFileError, MontageError, FileNotFoundError, ValueError) as exc:
            print(f"ictal bench injected: {checkpoint}: {exc}", file=sys.stderr)
            return 2
        name = checkpoint_id(checkpoint)
        print(f"{name} ({checkpoint}): lookahead_s {detector.lookahead_s:g}, thresholds from {source}: "
              f"tau_on {thresholds.tau_on:g}, tau_off {thresholds.tau_off:g}, min duration "
              f"{thresholds.min_duration_s:g} s, merge gap {thresholds.merge_gap_s:g} s, refractory "
              f"{thresholds.refractory_s:g} s", file=sys.stderr, flush=True)
        result = evaluate_injected(
            detector, loaded, detector.frontend_config, thresholds, hop_s=args.hop_s,
            min_history_s=args.min_history_s, seizures_per_recording=args.seizures_per_recording, seed=args.seed,
            clean_before_s=args.clean_before_s,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        rows.append((name, result))
        notes.append(f"  {name}: thresholds from {source} (tau_on {thresholds.tau_on:g}, min duration "
                     f"{thresholds.min_duration_s:g} s)")
        report["checkpoints"].append(dict(checkpoint=str(checkpoint), checkpoint_id=name,
                                          thresholds=thresholds.model_dump(), thresholds_source=source,
                                          **result.to_dict()))
    print(format_table(rows))
    print("\n".join(notes))
    print("  latency = window_end_s of the first alarm overlapping the seizure - true onset (alarms decided before "
          "the onset, on clean signal, are hits for OVERLAP but give no latency: [pre-onset]); onset_s err = that "
          "alarm's first tau_on crossing - true onset, bounded below by -(lookahead + hop); FA on the clean "
          "recordings; AUROC = seizure samples of the copies vs all samples of the clean recordings")
    machine = _machine()
    print(f"  machine: {machine}; device {args.device}")
    if args.json is not None:
        report["machine"] = machine
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"  wrote {args.json}")
    return 0
