"""`ViewHub`: what the EEG page shows of each bed, kept apart from the scoring path.

The hub is an observer: the bed threads hand it raw chunks (:meth:`ViewHub.on_chunk`), the scoring
thread hands it stitched probabilities (:meth:`ViewHub.on_scored`), and the events and monitored
states come from the daemon's journal and ``Daemon.bed_states()`` (:meth:`ViewHub.on_event`,
:meth:`ViewHub.on_state`). Each call copies a few numbers under the bed's own lock and returns: no
I/O, no encoding, nothing that waits on a page. The web server (``streaming.view.server``) reads
snapshots under the same lock from its own thread.

Time base
---------
Everything is in stream time (``streaming.bed``: seconds since the bed's first sample, the sample
index at the source rate divided by that rate), the time base of ``AlarmEvent.onset_s`` and
``offset_s``, so an alarm's onset is a position in the traces.

What is kept per bed (the last ``minutes``)
-------------------------------------------
- EEG: the 19 referential channels in microvolts, resampled to :data:`DISPLAY_FS_HZ` by
  ``detector.resample.StreamingResampler`` (anti-aliased, causal; its group delay is subtracted from
  the time stamps, so a trace lines up with the probabilities). Montage (referential or double
  banana), gain and display filters are applied by the page.
- Trend: per :data:`TREND_BIN_S` bin of stream time, the highest stitched probability and whether
  the bin's probabilities reached the post-processor (``ScoreResult.usable``). Bins the input made
  unusable are the page's signal-quality spans; bins without a probability (gaps, warm-up) are absent.
- Compressed spectral array (CSA): per :data:`CSA_EPOCH_S` epoch of display EEG, the power spectrum
  (Hann window, FFT) averaged over the 19 channels, in dB re 1 uV^2/Hz, from :data:`CSA_FMIN_HZ` to
  :data:`CSA_FMAX_HZ`.
- Events: onset/offset events (the alarm list: an onset and its offset form one alarm) and
  ``signal_quality`` events (the last :data:`MAX_EVENTS`).
- State: the bed's monitored state (``alarms.schema.BedStatus``).

No patient identifier is held: a bed id, and a recording name only when the config allows it
(``ViewConfig.allow_patient_id``, decided by the caller).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ictal.alarms.schema import AlarmEvent, BedStatus
from ictal.detector import CANONICAL_CHANNELS, FS_HZ
from ictal.detector.resample import StreamingResampler
from ictal.streaming.bed import ScoreResult
from ictal.streaming.chunk import Chunk

DISPLAY_FS_HZ: int = 128
"""Rate of the EEG sent to the page: content to 64 Hz, above the 35-70 Hz low-pass of clinical EEG
review, at half the detector's samples (a 10 s page of 19 channels is 24,320 numbers)."""

TREND_BIN_S: float = 1.0
"""Seconds per point of the probability trend (the maximum of the bin, so a peak is never hidden)."""

CSA_EPOCH_S: float = 2.0
"""Seconds per column of the spectral array (0.5 Hz resolution, the usual CSA epoch)."""

CSA_FMIN_HZ: float = 0.5
CSA_FMAX_HZ: float = 30.0
"""Frequency rows of the spectral array: delta to beta, where seizure rhythms evolve."""

MAX_EVENTS: int = 500
"""Events kept per bed (the oldest are dropped first); far above the alarms of one bed in an hour."""


@dataclass
class _BedView:
    """One bed's display data; every field is guarded by ``lock``."""

    bed_id: str
    keep_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    fs_in: float | None = None
    resampler: StreamingResampler | None = None
    next_in_index: int = -1  # source-rate index the next chunk should start at (else: gap, restart)
    eeg_first_index: int = 0  # display-rate index of eeg_blocks[0][:, 0]
    eeg_blocks: deque = field(default_factory=deque)  # (19, n) float32 blocks at DISPLAY_FS_HZ
    eeg_samples: int = 0
    eeg_origin_s: float = 0.0  # stream time of display index 0
    csa_pending: list = field(default_factory=list)
    trend: dict[int, tuple[float, bool]] = field(default_factory=dict)  # bin -> (max p, usable)
    trend_changed: dict[int, int] = field(default_factory=dict)  # bin -> version of its last change
    csa: dict[int, np.ndarray] = field(default_factory=dict)  # epoch -> power dB per frequency row
    csa_changed: dict[int, int] = field(default_factory=dict)  # epoch -> version of its last change
    events: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    event_ids: set = field(default_factory=set)
    state: BedStatus | None = None
    version: int = 0  # bumped at every change (the live updates send what changed)

    @property
    def eeg_end_s(self) -> float:
        return self.eeg_origin_s + (self.eeg_first_index + self.eeg_samples) / DISPLAY_FS_HZ


class ViewHub:
    """Display data of every bed, fed by the daemon's threads, read by the page server.

    Parameters
    ----------
    minutes : float
        Minutes of data kept per bed (``ViewConfig.minutes``).
    thresholds : dict, optional
        ``{"tau_on": float, "tau_off": float}`` drawn on the trend; updated by :meth:`set_thresholds`.
    recording : str, optional
        A recording name shown on the page (only when ``ViewConfig.allow_patient_id``).
    mode : str
        ``"live"`` (the daemon's beds) or ``"offline"`` (a scored file).
    channels : sequence of str
        Row names of the served montage, in order (default: the 19 referential electrodes; the 18
        double-banana derivations for a bipolar checkpoint, ``detector.montage.montage_channels``).
    """

    def __init__(self, minutes: float = 10.0, thresholds: dict[str, float] | None = None,
                 recording: str | None = None, mode: str = "live",
                 channels: tuple[str, ...] | list[str] = CANONICAL_CHANNELS) -> None:
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0 (found {minutes})")
        self.channels = list(channels)  # the rows of the served montage: electrodes or derivations
        self.keep_s = float(minutes) * 60.0
        self.thresholds = dict(thresholds or {})
        self.recording = recording
        self.mode = mode
        self._beds: dict[str, _BedView] = {}
        self._beds_lock = threading.Lock()
        self.csa_freqs_hz = self._csa_freqs()

    # -- feeding (daemon threads) ---------------------------------------------------------------

    def bed(self, bed_id: str) -> _BedView:
        """The bed's display data, created at first use."""
        with self._beds_lock:
            view = self._beds.get(bed_id)
            if view is None:
                view = self._beds[bed_id] = _BedView(bed_id, self.keep_s)
            return view

    def bed_ids(self) -> list[str]:
        """Ids of the beds seen so far, sorted."""
        with self._beds_lock:
            return sorted(self._beds)

    def set_thresholds(self, tau_on: float, tau_off: float) -> None:
        """The thresholds drawn on the trend (the daemon's, at start and after a reload)."""
        self.thresholds = {"tau_on": float(tau_on), "tau_off": float(tau_off)}

    def on_chunk(self, bed_id: str, chunk: Chunk) -> None:
        """A chunk of raw EEG as the bed's source delivered it (bed thread).

        Parameters
        ----------
        bed_id : str
        chunk : Chunk
            ``data`` of shape (n_rows, n) float32 in uV (19 electrodes or 18 derivations) at ``chunk.fs``; ``first_index`` at that rate. A
            change of rate or an index jump (gap, reconnection) restarts the display resampler at the
            chunk's stream time; the EEG held is kept and the gap is missing samples (NaN here, null
            on the page) when the chunk is later than what is held, else (the stream went back in
            time) the held EEG is dropped.
        """
        view = self.bed(bed_id)
        with view.lock:
            if view.resampler is None or view.fs_in != chunk.fs or view.next_in_index != chunk.first_index:
                self._restart_eeg(view, chunk)
            view.next_in_index = chunk.first_index + chunk.data.shape[1]
            out = view.resampler.process(np.asarray(chunk.data, dtype=np.float64))
            if out.shape[1]:
                self._append_eeg(view, out.astype(np.float32))
            view.version += 1

    def on_scored(self, bed_id: str, pending: object, result: ScoreResult) -> None:
        """A window's stitched probabilities (scoring thread; ``ScoringLoop.on_scored`` signature).

        Parameters
        ----------
        bed_id : str
        pending : object
            The scored window (unused: the probabilities carry their own sample indices).
        result : ScoreResult
            ``segments`` (first index at 256 Hz, float32 probabilities) and ``usable``.
        """
        self.add_probabilities(bed_id, result.segments, result.usable)

    def add_probabilities(self, bed_id: str, segments: list[tuple[int, np.ndarray]], usable: bool | np.ndarray) -> None:
        """Fold per-sample probabilities at 256 Hz into the trend bins.

        Parameters
        ----------
        segments : list of (first_index, ndarray of float, shape (n,))
            Probabilities at 256 Hz from absolute sample ``first_index``; NaN samples are skipped.
        usable : bool or ndarray of bool
            Whether they reached the post-processor: one flag, or one per sample of the concatenated
            segments.
        """
        view = self.bed(bed_id)
        per_bin = int(round(TREND_BIN_S * FS_HZ))
        offset = 0
        with view.lock:
            for first, seg in segments:
                seg = np.asarray(seg, dtype=np.float64)
                flags = (np.full(seg.size, bool(usable)) if np.ndim(usable) == 0
                         else np.asarray(usable[offset:offset + seg.size], dtype=bool))
                offset += seg.size
                bins = (first + np.arange(seg.size)) // per_bin
                finite = np.isfinite(seg)
                for b in np.unique(bins[finite]):
                    sel = finite & (bins == b)
                    p, ok = float(seg[sel].max()), bool(flags[sel].all())
                    old = view.trend.get(int(b))
                    new = (p, ok) if old is None else (max(old[0], p), old[1] and ok)
                    if new != old:
                        view.trend[int(b)] = new
                        view.trend_changed[int(b)] = view.version + 1
            self._trim(view)
            view.version += 1

    def on_event(self, event: AlarmEvent) -> None:
        """An event of the journal (onset, offset, signal_quality); others are ignored. Idempotent."""
        if event.bed_id is None or event.kind not in ("onset", "offset", "signal_quality"):
            return
        view = self.bed(event.bed_id)
        with view.lock:
            if str(event.event_id) in view.event_ids:
                return
            view.event_ids.add(str(event.event_id))
            if len(view.events) == view.events.maxlen:
                view.event_ids.discard(view.events[0]["event_id"])
            view.events.append(_event_row(event))
            view.version += 1

    def on_state(self, bed_id: str, status: BedStatus) -> None:
        """The bed's monitored state (``Daemon.bed_states()``)."""
        view = self.bed(bed_id)
        with view.lock:
            if view.state != status:
                view.state = status
                view.version += 1

    # -- reading (server thread) ------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """What the page needs once: beds, channels, rates, thresholds, CSA rows, mode."""
        return {
            "mode": self.mode, "beds": self.bed_ids(), "channels": list(self.channels),
            "display_fs_hz": DISPLAY_FS_HZ, "trend_bin_s": TREND_BIN_S, "csa_epoch_s": CSA_EPOCH_S,
            "csa_freqs_hz": self.csa_freqs_hz.tolist(), "thresholds": self.thresholds,
            "minutes": self.keep_s / 60.0, "recording": self.recording,
        }

    def version(self, bed_id: str) -> int:
        """The bed's change counter (-1 for an unknown bed)."""
        with self._beds_lock:
            view = self._beds.get(bed_id)
        if view is None:
            return -1
        with view.lock:
            return view.version

    def snapshot(self, bed_id: str, since_version: int | None = None) -> dict[str, Any]:
        """The bed's trend, spectral array, events and state (JSON-ready).

        Parameters
        ----------
        bed_id : str
        since_version : int, optional
            Only the trend points and CSA columns changed after this ``version`` of the bed (live
            updates: a late window, e.g. after the scoring fell behind, changes bins far back).

        Returns
        -------
        snapshot : dict
            ``trend`` {``t_s``, ``p``, ``usable``} (bin starts), ``csa`` {``t_s``, ``power_db``: one row
            of ``len(csa_freqs_hz)`` values per column}, ``events`` (see :func:`_event_row`),
            ``state`` ({``state``, ``reason``, ``since``} or None), ``eeg_start_s``/``eeg_end_s``
            (the EEG held), ``version``.

        Raises
        ------
        KeyError
            For a bed the hub has never seen.
        """
        with self._beds_lock:
            view = self._beds[bed_id]
        with view.lock:
            trend_bins = sorted(b for b in view.trend if since_version is None or view.trend_changed[b] > since_version)
            csa_epochs = sorted(e for e in view.csa if since_version is None or view.csa_changed[e] > since_version)
            state = None if view.state is None else {
                "state": view.state.state, "reason": view.state.reason,
                "since": None if view.state.since is None else view.state.since.isoformat()}
            return {
                "bed_id": bed_id,
                "trend": {"t_s": [b * TREND_BIN_S for b in trend_bins],
                          "p": [round(view.trend[b][0], 4) for b in trend_bins],
                          "usable": [view.trend[b][1] for b in trend_bins]},
                "csa": {"t_s": [e * CSA_EPOCH_S for e in csa_epochs],
                        "power_db": [np.round(view.csa[e], 1).tolist() for e in csa_epochs]},
                "events": list(view.events),
                "state": state,
                "eeg_start_s": view.eeg_origin_s + view.eeg_first_index / DISPLAY_FS_HZ,
                "eeg_end_s": view.eeg_end_s,
                "version": view.version,
            }

    def eeg(self, bed_id: str, start_s: float, duration_s: float) -> dict[str, Any]:
        """Referential EEG of ``[start_s, start_s + duration_s)`` at the display rate.

        Returns
        -------
        page : dict
            ``t0_s`` (stream time of the first sample returned; the span is clipped to what is held),
            ``fs_hz``, ``channels`` and ``data``: 19 lists of uV rounded to 0.1 (JSON-ready), empty when
            nothing of the span is held.

        Raises
        ------
        KeyError
            For a bed the hub has never seen.
        ValueError
            For a negative or non-finite duration.
        """
        if not (math.isfinite(duration_s) and duration_s >= 0 and math.isfinite(start_s)):
            raise ValueError(f"an EEG page needs a finite start and duration >= 0 (found start {start_s}, "
                             f"duration {duration_s})")
        with self._beds_lock:
            view = self._beds[bed_id]
        with view.lock:
            held_first = view.eeg_first_index
            held_end = view.eeg_first_index + view.eeg_samples
            first = max(held_first, int(math.floor((start_s - view.eeg_origin_s) * DISPLAY_FS_HZ)))
            stop = min(held_end, int(math.ceil((start_s + duration_s - view.eeg_origin_s) * DISPLAY_FS_HZ)))
            data = self._eeg_slice(view, first, stop) if stop > first else np.zeros((19, 0), np.float32)
            t0 = view.eeg_origin_s + max(first, held_first) / DISPLAY_FS_HZ
        rows = np.round(data, 1).tolist()
        if np.isnan(data).any():  # a gap: null in JSON
            rows = [[None if v != v else v for v in row] for row in rows]
        return {"t0_s": t0, "fs_hz": DISPLAY_FS_HZ, "channels": list(self.channels), "data": rows}

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _csa_freqs() -> np.ndarray:
        n = int(round(CSA_EPOCH_S * DISPLAY_FS_HZ))
        freqs = np.fft.rfftfreq(n, 1.0 / DISPLAY_FS_HZ)
        return freqs[(freqs >= CSA_FMIN_HZ) & (freqs <= CSA_FMAX_HZ)]

    def _restart_eeg(self, view: _BedView, chunk: Chunk) -> None:
        view.fs_in = float(chunk.fs)
        view.resampler = StreamingResampler(chunk.fs, DISPLAY_FS_HZ, n_channels=chunk.data.shape[0])
        view.csa_pending = []
        start_s = chunk.first_index / chunk.fs - view.resampler.group_delay_s
        if view.eeg_samples:
            held_end = view.eeg_first_index + view.eeg_samples
            new_first = int(round((start_s - view.eeg_origin_s) * DISPLAY_FS_HZ))
            if held_end <= new_first < held_end + int(self.keep_s * DISPLAY_FS_HZ):
                if new_first > held_end:
                    self._append_eeg(view, np.full((chunk.data.shape[0], new_first - held_end), np.nan, np.float32),
                                     csa=False)
                return
        view.eeg_blocks.clear()
        view.eeg_samples = 0
        view.eeg_first_index = 0
        # display index 0 is the chunk's first sample, delayed by the resampler's group delay
        view.eeg_origin_s = chunk.first_index / chunk.fs - view.resampler.group_delay_s

    def _append_eeg(self, view: _BedView, block: np.ndarray, csa: bool = True) -> None:
        start = view.eeg_first_index + view.eeg_samples
        view.eeg_blocks.append(block)
        view.eeg_samples += block.shape[1]
        if csa:
            self._update_csa(view, start, block)
        self._trim(view)

    def _update_csa(self, view: _BedView, start: int, block: np.ndarray) -> None:
        n = int(round(CSA_EPOCH_S * DISPLAY_FS_HZ))
        view.csa_pending.append(block)
        held = sum(b.shape[1] for b in view.csa_pending)
        pending_start = start + block.shape[1] - held
        if held < n:
            return
        data = np.concatenate(view.csa_pending, axis=1)
        window = np.hanning(n)
        keep = (np.fft.rfftfreq(n, 1.0 / DISPLAY_FS_HZ) >= CSA_FMIN_HZ) & (
            np.fft.rfftfreq(n, 1.0 / DISPLAY_FS_HZ) <= CSA_FMAX_HZ)
        # epochs on the stream-time grid of CSA_EPOCH_S
        pos = 0
        while data.shape[1] - pos >= n:
            abs_first = pending_start + pos
            t = view.eeg_origin_s + abs_first / DISPLAY_FS_HZ
            epoch = int(math.floor(t / CSA_EPOCH_S + 1e-9))
            seg = data[:, pos:pos + n].astype(np.float64)
            seg = seg - seg.mean(axis=1, keepdims=True)
            spec = np.abs(np.fft.rfft(seg * window, axis=1)) ** 2 / (DISPLAY_FS_HZ * (window ** 2).sum())
            power = spec[:, keep].mean(axis=0)
            view.csa[epoch] = (10.0 * np.log10(np.maximum(power, 1e-6))).astype(np.float32)
            view.csa_changed[epoch] = view.version + 1
            pos += n
        view.csa_pending = [data[:, pos:]] if pos < data.shape[1] else []

    def _eeg_slice(self, view: _BedView, first: int, stop: int) -> np.ndarray:
        parts, at = [], view.eeg_first_index
        for block in view.eeg_blocks:
            end = at + block.shape[1]
            if end > first and at < stop:
                parts.append(block[:, max(first, at) - at:min(stop, end) - at])
            if end >= stop:
                break
            at = end
        return np.concatenate(parts, axis=1) if parts else np.zeros((19, 0), np.float32)

    def _trim(self, view: _BedView) -> None:
        """Drop what is older than ``keep_s`` before the newest sample or probability."""
        newest = max(view.eeg_end_s, (max(view.trend) + 1) * TREND_BIN_S if view.trend else 0.0)
        oldest = newest - self.keep_s
        keep_samples = int(self.keep_s * DISPLAY_FS_HZ)
        while view.eeg_blocks and view.eeg_samples - view.eeg_blocks[0].shape[1] >= keep_samples:
            dropped = view.eeg_blocks.popleft()
            view.eeg_first_index += dropped.shape[1]
            view.eeg_samples -= dropped.shape[1]
        for b in [b for b in view.trend if (b + 1) * TREND_BIN_S < oldest]:
            del view.trend[b], view.trend_changed[b]
        for e in [e for e in view.csa if (e + 1) * CSA_EPOCH_S < oldest]:
            del view.csa[e], view.csa_changed[e]


def _event_row(event: AlarmEvent) -> dict[str, Any]:
    """The page's row of an event: kind, stream times, peak probability, reason, sequence numbers."""
    return {
        "event_id": str(event.event_id), "kind": event.kind, "journal_seq": event.journal_seq,
        "stream_time_s": event.stream_time_s, "onset_s": event.onset_s, "offset_s": event.offset_s,
        "peak": None if event.probability is None else event.probability.peak,
        "reason": event.reason, "detail": event.detail,
        "wall_time": event.wall_time.isoformat() if event.wall_time else None,
    }
