"""`BedSession`: one bed's scoring path, from source chunks to alarm events (daemon and evaluation).

The daemon (``streaming.daemon``) and offline evaluation (:func:`run_recording`, used by
``ictal evaluate``) drive the same :class:`BedSession`, so a recording gives the same alarm events in
both. Every decision is taken in stream time (sample indices); the wall clock only stamps events.

Flow of one bed::

    chunk (19, n) uV at fs_in --push--> BedPipeline (front-end, ring buffer, scheduler)
        --> windows (19, 15360) normalised --(caller scores them, any batch)--> probabilities (15360,)
        --score--> stitched per-sample probabilities --> signal quality gate --> PostProcessor
        --> AlarmEvents (onset / offset / signal_quality)

Stream time
-----------
Stream time is the sample index at 256 Hz divided by 256 (seconds since the bed's first sample;
for an EDF file, seconds since the start of the file). Post-processor transitions, event times and
quality events all use it.

Signal quality and suppression
------------------------------
Each scored window is judged usable or not (:meth:`BedSession.assess`): the front-end's
``detector.quality.assess_window`` report, plus channels with more than
:data:`MAX_NONFINITE_FRACTION` of non-finite input samples (replaced by the front-end), plus the
share of the window that is stream gap (more than :data:`MAX_GAP_FRACTION` makes it unusable), plus
the input faults the source reported (:meth:`BedSession.set_input_fault`, e.g. a stream whose
timestamps run at another rate than the announced one): a window holding samples received while such
a fault lasted is unusable. A ``signal_quality`` event is emitted whenever the state (usable or not,
and the set of bad channels) changes; the state starts as "usable, no bad channel", so a clean recording emits none. While the
input is unusable the window's probabilities are not given to the post-processor: on the first
unusable window the post-processor is closed (an open alarm gets its offset with reason
``signal_unusable``; a candidate onset is dropped) and it starts afresh on the first usable window.
Alarms are thus suppressed exactly while the input is unusable.

Gaps
----
A chunk that starts after the end of the previous one (``Chunk.gap_samples``, or an index jump)
emits a ``signal_quality`` event with reason ``gap``. Stitched probabilities never cover gap filler
(only valid runs are fed), and the post-processor closes an open event at a gap (reason ``gap``).

Output positions
----------------
Every window, padded or full, yields the probabilities of its served span only,
``[end - lookahead - hop, end - lookahead)`` (``detector.output_position``; ``lookahead_s`` is the
checkpoint's). An alarm decided on a window's span leaves the session when that window is scored:
its *decision time* is the window's end (``AlarmEvent.window_end_s``), ``lookahead`` to
``lookahead + hop`` after the samples that completed the minimum duration.

Padded windows (``min_history_s`` < 60): what a bed sees in its first minute
-----------------------------------------------------------------------------
Before the first full window exists, a window is scored every hop from ``min_history_s`` of history
on (ends at ``origin + min_history + k * hop`` samples, while short of 60 s). The history part is
normalised alone (``Frontend.prepare_window`` on the filtered samples actually held) and placed at
the right end of the (19, 15360) input; the padding on the left is zeros *after* normalisation (the
normalised value of a channel's median). Training draws such windows too (``training.sampler``,
``optim.warmup_fraction``), so the model has seen them. The quality of a padded window is assessed on
its history part only. With ``min_history_s = 60`` no padded window is made. The first probability
of the stream is at ``origin + min_history - lookahead - hop`` (earlier samples get none), and the
first alarm can leave ``min_history_s`` after connecting plus the minimum duration. Windows end on
the hop grid, so the samples of a finite recording after its last grid point's span are not scored
(the resampler also holds back a few samples: a 50 s file at 200 Hz yields 49.9 s at 256 Hz).

Long gaps and reconnections
---------------------------
A gap of :data:`RESTART_GAP_S` or more (an amplifier unplugged, a stream lost and found again)
restarts the warm-up at the first sample after it (``BedPipeline.restart_gap_s``): the bed is scored
again ``min_history_s`` after the signal returns, from padded windows that hold no pre-gap signal,
instead of waiting for a full minute of windows whose gap share makes them unusable.

Stream mode
-----------
With ``mode="stream"`` (``detector.mode: stream``, a causal checkpoint with ``running``
normalisation and ``lookahead_s`` 0) :meth:`BedSession.push` returns
:class:`ictal.streaming.pipeline.StreamHop` s instead of windows, ending on the same grid (``min_history_s``
after the origin, every hop, and the first full window's end), and the session holds the bed's model
state (:attr:`BedSession.stream_state`, written by the scorer with :meth:`BedSession.keep_stream_state`).
A warm hop carries its new samples of the per-sample normalised stream; the model steps the state
over them. The state is *rebuilt* at a cold hop: the model starts from ``init_state`` and steps over
the 60 s input window mode would score at the same end (the ring buffer's normalised samples since
``max(origin, end - 60 s)``, left-padded with zeros like a warm-up window), so that the rebuilt state,
the probabilities and the events are window mode's whenever the model forgets within 60 s, and the
model sees at a rebuild the left-padded warm-up input it was trained on, never a cold state on a
few seconds of signal. Rebuild reasons (:attr:`BedSession.stream_rebuilds`): ``start`` (the first hop
after connecting, or after the warm-up restarts at a gap of :data:`RESTART_GAP_S`), ``gap`` (the hop's
new samples hold gap filler or follow a front-end reset), ``signal_quality`` (the first usable hop
after unusable ones: while the input is unusable the state steps on and its probabilities are not
used), ``reconnect`` (:meth:`BedSession.invalidate_stream_state`, called by the bed's thread at every
new generation: a reconnection, samples arriving again after ``no_data``), ``discontinuous`` (a queued
hop was skipped and its samples are no longer in the ring buffer). A skipped warm hop costs no
rebuild: the next hop steps the state over the skipped samples and its own
(:meth:`BedSession.extend_hop`), so a scorer that fell behind catches up with work proportional to the
new signal; a skipped cold hop passes its rebuild to the next one. Each hop's signal quality is
judged on the span window mode would judge at the same end, so alarms are suppressed alike.

Skipping to the newest window
-----------------------------
A caller that falls behind may :meth:`BedSession.discard` windows it will not score. The next
scored window then also gives the probabilities of the discarded windows' newest hops (from its own
samples, as far back as its 60 s reach), so the per-sample output and the post-processor stay
continuous; only latency suffers. Discarded spans older than the window's start stay unscored (a
gap for the post-processor).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import PostProcessor, Transition
from ictal.alarms.schema import AlarmEvent, ModelInfo, Probability
from ictal.detector import FS_HZ, WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.detector.output_position import seconds_to_samples, served_span
from ictal.detector.quality import DEFAULT_THRESHOLDS, QualityThresholds, assess_window
from ictal.streaming.chunk import Chunk
from ictal.streaming.edf import BLOCK_S, CanonicalRecording, CanonicalStream, open_canonical
from ictal.streaming.pipeline import BedPipeline, StreamHop, Window
from ictal.streaming.sources.base import Source
from ictal.streaming.stream_step import HopOutput, HopTask, step_hops

MAX_GAP_FRACTION: float = 0.1
"""A window with more than this fraction of gap filler (6 s of 60 s) is unusable: the model would
score mostly zeros."""

RESTART_GAP_S: float = MAX_GAP_FRACTION * WINDOW_SAMPLES / FS_HZ
"""A gap at least this long (6 s) restarts the warm-up: every full window reaching back across it
would be unusable (more than :data:`MAX_GAP_FRACTION` filler) for the next minute."""

MAX_NONFINITE_FRACTION: float = 0.01
"""A channel with more than this fraction of non-finite input samples in a window (replaced by the
front-end's sample-and-hold) counts as a bad channel."""


class Scorer(Protocol):
    """What scores windows: ``detector.inference.Detector`` or any object with the same ``predict``."""

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(B, 19, 15360) normalised windows -> (B, 15360) probabilities in [0, 1]."""
        ...


@dataclass(frozen=True)
class PaddedWindow(Window):
    """A window scored before 60 s of history exist (see the module docstring).

    Attributes
    ----------
    padding_samples : int
        Samples of zero padding at the left of ``data`` (``valid`` is False there).
    """

    padding_samples: int = 0


@dataclass(frozen=True)
class QualityState:
    """Usability of a bed's input as judged on its latest scored window.

    Attributes
    ----------
    usable : bool
        Whether alarms may be raised from the window.
    bad_channels : tuple of str
        Channels with a problem, in canonical order.
    problems : tuple of str
        One line per problem, e.g. ``"T5: flat (std 0.02 uV)"`` or ``"stream gap: 12.0 s of the window"``.
    """

    usable: bool = True
    bad_channels: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[bool, tuple[str, ...]]:
        """What a change of state is judged on (the problem texts carry measured values that vary)."""
        return (self.usable, self.bad_channels)


@dataclass
class ScoreResult:
    """What scoring one window produced.

    Attributes
    ----------
    events : list of AlarmEvent
        Onset/offset and signal_quality events, in stream-time order.
    segments : list of (first_index, probs)
        Stitched per-sample probabilities: absolute index at 256 Hz of the first one and a float32
        array; several segments when the stitched span crosses gap filler.
    usable : bool
        Whether the segments were given to the post-processor.
    """

    events: list[AlarmEvent] = field(default_factory=list)
    segments: list[tuple[int, np.ndarray]] = field(default_factory=list)
    usable: bool = True


class BedSession:
    """One bed's pipeline, signal-quality state and post-processor.

    Parameters
    ----------
    bed_id : str
        Bed identifier (``^[A-Za-z0-9_-]{1,64}$``), used in events.
    frontend_config : FrontendConfig
        The front-end (the checkpoint's).
    fs_in : float
        Rate of the incoming chunks in Hz.
    thresholds : AlarmThresholds
        Post-processor thresholds.
    hop_s : float
        Seconds between scored windows (a whole number of samples at 256 Hz).
    ring_s : float, default 120
        Seconds kept in the ring buffer (>= 60).
    min_history_s : float, default 10
        History (s) from which windows are scored, left-padded, before 60 s exist (1 to 60), after
        connecting and after every gap of :data:`RESTART_GAP_S` or more. A window whose served span lies
        before the first sample yields nothing (``lookahead_s + hop_s`` > history).
    lookahead_s : float, default 0
        The checkpoint's lookahead (``detector.output_position``).
    model : ModelInfo, optional
        Model id and stack written into onset/offset events.
    quality_thresholds : QualityThresholds, optional
        Only ``max_bad_channels`` is read here (the window reports use the front-end's defaults).
    mode : {"window", "stream"}, default "window"
        ``stream``: :meth:`push` returns :class:`ictal.streaming.pipeline.StreamHop` s and the session holds
        the bed's model state (see "Stream mode" in the module docstring).
    stream_multiple_samples : int, default 1
        Stream mode: the checkpoint's ``Detector.stream_multiple_samples``.

    Attributes
    ----------
    stream_state : StreamState or None
        Stream mode: the bed's model state after its newest scored hop; None until the first hop is
        scored and after :meth:`invalidate_stream_state`. Read and written by the scorer
        (``streaming.stream_step.step_hops``) with the bed's lock held.
    stream_state_end : int or None
        Absolute index (256 Hz) one past the last sample ``stream_state`` has consumed.
    stream_rebuilds : dict of str to int
        Stream mode: rebuilds of the state per reason (``start``, ``gap``, ``signal_quality``,
        ``reconnect``, ``discontinuous``).

    Raises
    ------
    ValueError
        If ``hop_s``, ``ring_s``, ``fs_in``, ``lookahead_s`` or ``min_history_s`` is out of range, or
        stream mode is refused (``streaming.pipeline.stream_mode_problems``).
    """

    def __init__(
        self,
        bed_id: str,
        frontend_config: FrontendConfig,
        fs_in: float,
        thresholds: AlarmThresholds,
        *,
        hop_s: float,
        ring_s: float = 120.0,
        min_history_s: float = 10.0,
        lookahead_s: float = 0.0,
        model: ModelInfo | None = None,
        quality_thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
        mode: str = "window",
        stream_multiple_samples: int = 1,
    ) -> None:
        if not 1.0 <= min_history_s <= 60.0:
            raise ValueError(f"min_history_s must lie in [1, 60] s (found {min_history_s})")
        lookahead_samples = seconds_to_samples(lookahead_s, "lookahead_s")
        self.bed_id = bed_id
        self.pipeline = BedPipeline(frontend_config, fs_in, hop_s, ring_s, lookahead_s=lookahead_s,
                                    restart_gap_s=RESTART_GAP_S, mode=mode, min_history_s=min_history_s,
                                    stream_multiple_samples=stream_multiple_samples)
        self.mode = mode
        self.stream_state: object | None = None
        self.stream_state_end: int | None = None
        self.stream_rebuilds: dict[str, int] = {}
        self._cold_reason: str | None = None  # stream mode: why the next hop must rebuild the state
        self._unusable_seen = False  # stream mode: a hop since the last rebuild had unusable input
        self.lookahead_samples = lookahead_samples
        self.thresholds = thresholds
        self.model = model
        self.quality_thresholds = quality_thresholds
        self.min_history_samples = int(round(min_history_s * FS_HZ))
        self.postprocessor = PostProcessor(thresholds)
        self.quality = QualityState()
        self.n_gaps = 0
        self.samples_lost = 0
        self.windows_scored = 0
        self.windows_discarded = 0
        self._next_in: int | None = None  # expected first_index of the next chunk (fs_in)
        self._next_out = 0  # first absolute index (256 Hz) not yet given to the output
        self._resume_from: int | None = None  # stitch_from of the oldest discarded window
        self._next_padded_end: int | None = None
        self._padded_origin: int | None = None
        self._window_end: int | None = None  # end index of the window being scored (decision time)
        self._faults: dict[str, tuple[str, int, int | None]] = {}  # key -> (problem, first, end) at 256 Hz

    # -- input ------------------------------------------------------------------------------------

    @property
    def fs_in(self) -> float:
        """Rate of the incoming chunks in Hz."""
        return self.pipeline.fs_in

    @property
    def hop_samples(self) -> int:
        """Samples at 256 Hz between scored windows."""
        return self.pipeline.hop_samples

    def push(self, chunk: Chunk) -> tuple[list[Window], list[AlarmEvent]]:
        """Process the next chunk: windows now due and gap events.

        Parameters
        ----------
        chunk : Chunk
            Next samples of the bed, ``data`` (19, n) in uV at ``fs_in``.

        Returns
        -------
        windows : list of Window
            Windows to score, oldest first (padded windows are :class:`PaddedWindow`).
        events : list of AlarmEvent
            A ``signal_quality`` event (reason ``gap``) when samples were lost before this chunk.

        Raises
        ------
        ValueError
            As ``BedPipeline.push`` (wrong rate, overlapping or out-of-order chunk).
        """
        events: list[AlarmEvent] = []
        lost = 0
        if self._next_in is not None and chunk.first_index > self._next_in:
            lost = chunk.first_index - self._next_in
        windows = self.pipeline.push(chunk)
        self._next_in = chunk.end_index
        if lost:
            self.n_gaps += 1
            self.samples_lost += lost
            events.append(self._quality_event(
                chunk.first_index / self.fs_in, "gap",
                f"{lost} samples ({lost / self.fs_in:.3f} s) lost before input sample {chunk.first_index}",
            ))
        if self.mode == "stream":
            windows = [self._mark_cold(hop) for hop in windows if isinstance(hop, StreamHop)]
        elif self.min_history_samples < WINDOW_SAMPLES and self.pipeline.scheduler.warming_up:
            windows = self._padded_windows() + windows
        return windows, events

    # -- stream mode ------------------------------------------------------------------------------

    def invalidate_stream_state(self, reason: str) -> None:
        """Drop the bed's model state: the next hop rebuilds it from its warm-up span (stream mode).

        Parameters
        ----------
        reason : str
            Recorded as the next hop's ``cold_reason`` (e.g. ``"reconnect"``).
        """
        self.stream_state = None
        self.stream_state_end = None
        if self._cold_reason is None:
            self._cold_reason = reason

    def _mark_cold(self, hop: StreamHop) -> StreamHop:
        """Apply the session's pending rebuild reason to a new hop. While the input is unusable the state
        steps on (its probabilities are not used); the first usable hop after unusable ones rebuilds it
        (the state absorbed input the model should not have seen)."""
        usable = self.assess(hop).usable
        reason = self._cold_reason
        if reason is None and usable and self._unusable_seen:
            reason = "signal_quality"
        if reason is not None:
            hop = self.pipeline.cold_hop(hop, reason)  # a hop already cold (start, gap) keeps its reason
        if hop.cold:
            self._cold_reason = None
            self._unusable_seen = not usable
        elif not usable:
            self._unusable_seen = True
        return hop

    def cold_hop(self, hop: StreamHop, reason: str) -> StreamHop:
        """A queued hop made cold (its 60 s rebuild input read from the ring buffer)."""
        return self.pipeline.cold_hop(hop, reason)

    def extend_hop(self, hop: StreamHop, skipped: StreamHop) -> StreamHop:
        """The hop after a skipped one, stepping over the skipped samples too
        (:meth:`ictal.streaming.pipeline.BedPipeline.extend_hop`): the bed's thread calls it for the oldest
        queued hop when an older one was discarded."""
        return self.pipeline.extend_hop(hop, skipped)

    def keep_stream_state(self, hop: StreamHop, output: HopOutput) -> None:
        """Keep the state a hop was scored into (the scorer calls it before :meth:`score`, bed lock held).

        Parameters
        ----------
        hop : StreamHop
            The hop scored.
        output : HopOutput
            ``streaming.stream_step.step_hops``'s output for it; a rebuild is counted per reason in
            :attr:`stream_rebuilds`.
        """
        self.stream_state = output.state
        self.stream_state_end = hop.end_index
        if output.rebuilt is not None:
            self.stream_rebuilds[output.rebuilt] = self.stream_rebuilds.get(output.rebuilt, 0) + 1

    def _padded_windows(self) -> list[Window]:
        ring = self.pipeline.ring
        origin = self.pipeline.scheduler.origin
        if ring.empty or origin is None:
            return []
        if self._next_padded_end is None or self._padded_origin != origin:  # connected, or restarted
            self._padded_origin = origin
            self._next_padded_end = origin + self.min_history_samples
        out: list[Window] = []
        full_end = origin + WINDOW_SAMPLES
        while self._next_padded_end < full_end and self._next_padded_end <= ring.end_index:
            end = self._next_padded_end
            self._next_padded_end += self.hop_samples
            window = self._make_padded(origin, end)
            if window is not None:
                out.append(window)
        return out

    def _make_padded(self, origin: int, end: int) -> PaddedWindow | None:
        ring = self.pipeline.ring
        frontend = self.pipeline.frontend
        start = max(origin, ring.start_index)
        lo, hi = served_span(end, self.hop_samples, self.lookahead_samples)
        lo = max(lo, start)
        if hi <= lo:
            return None
        filtered, valid = ring.read(start, end)
        if not valid[lo - start:hi - start].any():
            return None
        end_in_frontend = frontend.n_out - (ring.end_index - end)
        if frontend.running is not None and end_in_frontend < 1:
            return None
        history = end - start
        data = np.zeros((len(self.pipeline.channels), WINDOW_SAMPLES), dtype=np.float32)
        data[:, WINDOW_SAMPLES - history:] = self.pipeline.normalised(filtered, start, end, end_in_frontend)
        full_valid = np.zeros(WINDOW_SAMPLES, dtype=bool)
        full_valid[WINDOW_SAMPLES - history:] = valid
        # BedPipeline keeps the per-chunk counts of replaced non-finite samples (no public accessor yet)
        nonfinite = self.pipeline._nonfinite_between(start, end)
        return PaddedWindow(
            data=data, end_index=end, valid=full_valid,
            quality=assess_window(filtered, FS_HZ, self.pipeline.channels, rails=self.pipeline.rails_between(start, end)),
            stitch_from=lo, end_clock_s=self.pipeline.clock_at(end - 1), nonfinite_replaced=nonfinite,
            padding_samples=WINDOW_SAMPLES - history, stitch_to=hi,
        )

    # -- quality ----------------------------------------------------------------------------------

    def set_input_fault(self, key: str, problem: str) -> None:
        """Declare the input unusable from now on for a reason the windows cannot show (source-level).

        Every window scored while the fault lasts is unusable, including the windows already in the
        ring buffer (the fault concerns the stream, e.g. a wrong sampling rate, so the samples held
        are as wrong as the next ones). Setting a key again replaces its problem text.

        Parameters
        ----------
        key : str
            Identifies the fault (e.g. ``"rate"``) for :meth:`clear_input_fault`.
        problem : str
            The problem line written into the quality state and its ``signal_unusable`` event.
        """
        old = self._faults.get(key)
        first = old[1] if old is not None and old[2] is None else 0
        self._faults[key] = (problem, first, None)

    def clear_input_fault(self, key: str, end_index: int) -> None:
        """End a fault set by :meth:`set_input_fault`: windows holding input samples before
        ``end_index`` stay unusable, later ones are judged on their own.

        Parameters
        ----------
        key : str
            The fault's key; an unknown or already cleared key is ignored.
        end_index : int
            Absolute input index (at ``fs_in``) of the first sample received after the fault ended.
        """
        old = self._faults.get(key)
        if old is not None and old[2] is None:
            self._faults[key] = (old[0], old[1], self.pipeline.out_index(end_index))
        ring = self.pipeline.ring
        oldest = 0 if ring.empty else ring.start_index
        self._faults = {k: v for k, v in self._faults.items() if v[2] is None or v[2] > oldest}

    def assess(self, window: Window) -> QualityState:
        """Judge whether a window's input is usable (see the module docstring).

        Parameters
        ----------
        window : Window
            A window returned by :meth:`push`.

        Returns
        -------
        state : QualityState
        """
        bad = set(window.quality.bad_channels)
        problems = list(window.quality.problems)
        if isinstance(window, StreamHop):  # judged on the span window mode would judge (quality_start..end)
            n_real = window.quality_valid.size
            gap_samples = n_real - int(np.count_nonzero(window.quality_valid))
            real_start = window.quality_start
        else:
            padding = getattr(window, "padding_samples", 0)
            n_real = window.data.shape[1] - padding
            gap_samples = window.gap_samples - padding
            real_start = window.start_index + padding
        for i, count in enumerate(np.asarray(window.nonfinite_replaced)):
            if count > MAX_NONFINITE_FRACTION * n_real:
                name = self.pipeline.channels[i]
                bad.add(name)
                problems.append(f"{name}: {int(count)} non-finite input samples replaced")
        gap_fraction = gap_samples / n_real
        usable = len(bad) <= self.quality_thresholds.max_bad_channels
        for problem, first, end in self._faults.values():
            if first < window.end_index and (end is None or end > real_start):
                usable = False
                problems.append(problem)
        if gap_fraction > MAX_GAP_FRACTION:
            usable = False
            problems.append(f"stream gap: {gap_samples / FS_HZ:.1f} s of the window missing")
        if len(bad) > self.quality_thresholds.max_bad_channels:
            problems.append(f"{len(bad)} bad channels (at most {self.quality_thresholds.max_bad_channels} "
                            "tolerated)")
        ordered = tuple(c for c in self.pipeline.channels if c in bad)
        return QualityState(usable=usable, bad_channels=ordered, problems=tuple(problems))

    # -- scoring ----------------------------------------------------------------------------------

    def discard(self, window: Window) -> None:
        """Record that ``window`` will not be scored (the caller skips to a newer one)."""
        self.windows_discarded += 1
        if self._resume_from is None:
            self._resume_from = max(window.stitch_from, self._next_out)

    def score(self, window: Window, probs: np.ndarray) -> ScoreResult:
        """Take a window's probabilities: stitch, gate on signal quality, run the post-processor.

        Parameters
        ----------
        window : Window
            A window (or stream-mode hop) returned by :meth:`push`, scored in push order (older windows
            scored or :meth:`discard`-ed first).
        probs : ndarray, shape (15360,) or, for a StreamHop, (n,) with 1 <= n <= hop.warmup_samples
            The model's probabilities, in [0, 1], of the samples ``[end_index - n, end_index)``: a whole
            window's, or a hop's new samples (a step of the carried state) or its warm-up span (a rebuild).

        Returns
        -------
        result : ScoreResult
            Events, stitched probability segments, and whether they reached the post-processor.

        Raises
        ------
        ValueError
            If ``probs`` does not have that shape, or ``window`` ends before a window already scored.
        """
        probs = np.asarray(probs, dtype=np.float32)
        n_data = window.data.shape[1]
        if isinstance(window, StreamHop):
            if probs.ndim != 1 or not 1 <= probs.size <= n_data:
                raise ValueError(f"probabilities of a stream hop must have shape (n,) with 1 <= n <= {n_data} "
                                 f"(found {probs.shape})")
        elif probs.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"probabilities must have shape ({WINDOW_SAMPLES},) (found {probs.shape})")
        first = window.end_index - probs.size  # absolute index of probs[0]
        if window.stitch_end <= self._next_out and self.windows_scored:
            raise ValueError(
                f"window ending at sample {window.end_index} is older than the output already produced "
                f"(up to {self._next_out}); score windows in push order"
            )
        self.windows_scored += 1
        lo = window.stitch_from
        # windows discarded while an older one was being scored are newer than it: keep the mark
        if self._resume_from is not None and self._resume_from < window.stitch_from:
            lo = max(self._resume_from, first)
            self._resume_from = None
        lo = max(lo, self._next_out, first)
        offset = lo - first
        stop = max(window.stitch_end - first, offset)
        valid = window.valid[n_data - probs.size:][offset:stop]
        span = probs[offset:stop]
        segments = [(lo + int(a), span[a:b].copy()) for a, b in _true_runs(valid)]
        self._next_out = max(self._next_out, window.stitch_end)
        self._window_end = window.end_index

        result = ScoreResult(segments=segments)
        state = self.assess(window)
        if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
            state = QualityState(False, state.bad_channels, state.problems + (
                f"model returned probabilities outside [0, 1] or non-finite "
                f"({int((~np.isfinite(probs)).sum())} non-finite)",))
        result.events.extend(self._update_quality(state, window.end_index / FS_HZ, lo / FS_HZ))
        result.usable = state.usable
        if state.usable:
            for first, seg in segments:
                transitions = self.postprocessor.feed(first / FS_HZ, seg, float(FS_HZ))
                result.events.extend(self._alarm_event(t) for t in transitions)
        return result

    def _update_quality(self, state: QualityState, stream_time_s: float, stop_s: float) -> list[AlarmEvent]:
        previous = self.quality
        self.quality = state
        if state.key == previous.key:
            return []
        events: list[AlarmEvent] = []
        if previous.usable and not state.usable:
            events.extend(self.close("signal_unusable", end_time_s=stop_s))
            reason, what = "signal_unusable", "input unusable: alarms suppressed"
        elif state.usable and not previous.usable:
            reason, what = "signal_usable", "input usable again: alarms resumed"
        else:
            reason = "bad_channels"
            what = ("bad channels: " + ", ".join(state.bad_channels)) if state.bad_channels else "all channels good"
        detail = what if not state.problems else f"{what} ({'; '.join(state.problems)})"
        events.append(self._quality_event(stream_time_s, reason, detail, list(state.problems)))
        return events

    def close(self, reason: str, end_time_s: float | None = None) -> list[AlarmEvent]:
        """Close the post-processor: an open alarm gets its offset now, a pending onset is dropped.

        Parameters
        ----------
        reason : str
            Written as the offset's ``reason`` (e.g. ``"signal_unusable"``, ``"end_of_data"``,
            ``"shutdown"``, ``"bed_removed"``, ``"thresholds_reloaded"``, ``"stream_lost"``).
        end_time_s : float, optional
            Stream time (s) of the offset's emission; default the end of the probabilities fed.

        Returns
        -------
        events : list of AlarmEvent
            The offset event, if an alarm was open.
        """
        transitions = self.postprocessor.finish(end_time_s)
        return [self._alarm_event(t, reason=reason) for t in transitions]

    def set_thresholds(self, thresholds: AlarmThresholds) -> list[AlarmEvent]:
        """Use new thresholds from now on (a reload); an open alarm is closed (reason
        ``thresholds_reloaded``) and the post-processor starts afresh. No-op when unchanged."""
        if thresholds == self.thresholds:
            return []
        events = self.close("thresholds_reloaded")
        self.thresholds = thresholds
        self.postprocessor = PostProcessor(thresholds)
        return events

    def finish(self) -> list[AlarmEvent]:
        """End of the recording: close an open alarm (reason ``end_of_data``)."""
        return self.close("end_of_data")

    # -- events -----------------------------------------------------------------------------------

    def _alarm_event(self, t: Transition, reason: str | None = None) -> AlarmEvent:
        return AlarmEvent(
            bed_id=self.bed_id, kind=t.kind, stream_time_s=t.time_s, onset_s=t.onset_s, offset_s=t.offset_s,
            window_end_s=None if self._window_end is None else max(self._window_end / FS_HZ, t.time_s),
            probability=Probability(peak=min(max(t.peak, 0.0), 1.0), mean=min(max(t.mean, 0.0), 1.0)),
            model=self.model, thresholds=self.thresholds, reason=reason if reason is not None else t.reason,
        )

    def _quality_event(self, stream_time_s: float, reason: str, detail: str,
                       problems: list[str] | None = None) -> AlarmEvent:
        return AlarmEvent(bed_id=self.bed_id, kind="signal_quality", stream_time_s=stream_time_s,
                          reason=reason, detail=detail, problems=problems or [])

    def quality_event(self, stream_time_s: float, reason: str, detail: str) -> AlarmEvent:
        """A ``signal_quality`` event of this bed (for the daemon's stream and scoring notices)."""
        return self._quality_event(stream_time_s, reason, detail)


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of True in a 1-D boolean array."""
    padded = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


# -- offline: one recording as fast as possible ---------------------------------------------------


@dataclass
class RecordingResult:
    """Per-sample output and events of one recording run through :class:`BedSession`.

    Attributes
    ----------
    probabilities : ndarray of float32, shape (n,)
        Stitched probability per sample at 256 Hz, starting at ``first_index``; NaN where none was
        produced (gaps, or the tail after the last scored window).
    first_index : int
        Absolute index at 256 Hz of ``probabilities[0]`` (0 for a file scored from its start with
        ``min_history_s`` <= its length).
    usable : ndarray of bool, shape (n,)
        True where the samples reached the post-processor (input usable); False where alarms were
        suppressed or no probability exists.
    events : list of AlarmEvent
        Onset and offset events in order (the last open alarm closed with reason ``end_of_data``).
    quality_events : list of AlarmEvent
        ``signal_quality`` events (quality changes, gaps) in order.
    duration_s : float
        Duration of the input in seconds.
    fs : int
        Rate of ``probabilities`` (256 Hz).
    """

    probabilities: np.ndarray
    first_index: int
    usable: np.ndarray
    events: list[AlarmEvent]
    quality_events: list[AlarmEvent]
    duration_s: float
    fs: int = FS_HZ

    @property
    def times_s(self) -> np.ndarray:
        """Stream time (s) of every sample of ``probabilities``, shape (n,)."""
        return (self.first_index + np.arange(self.probabilities.size)) / self.fs


def _chunks_of(recording: CanonicalRecording, chunk_samples: int) -> Iterable[Chunk]:
    data = recording.data
    for start in range(0, data.shape[1], chunk_samples):
        block = np.ascontiguousarray(data[:, start:start + chunk_samples])
        yield Chunk(data=block, first_index=start, clock_s=start / recording.fs, fs=recording.fs)


def _chunks_from_source(source: Source) -> Iterable[Chunk]:
    while not source.exhausted:
        chunk = source.read(0.0)
        if chunk is not None:
            yield chunk


def run_recording(
    path_or_source: str | Path | CanonicalRecording | CanonicalStream | Source,
    detector: Scorer,
    frontend_config: FrontendConfig,
    thresholds: AlarmThresholds,
    hop_s: float,
    chunk_samples: int | None = None,
    *,
    min_history_s: float = 10.0,
    lookahead_s: float | None = None,
    ring_s: float = 120.0,
    bed_id: str = "offline",
    model: ModelInfo | None = None,
    max_batch: int | None = None,
    from_start_samples: int | None = None,
    mode: str = "window",
) -> RecordingResult:
    """Run one recording through a :class:`BedSession` as fast as possible (offline evaluation).

    Parameters
    ----------
    path_or_source : path, CanonicalRecording, CanonicalStream or Source
        An EDF/EDF+ file (opened with ``streaming.edf.open_canonical`` and read in blocks of
        ``streaming.edf.BLOCK_S`` seconds, so memory does not grow with its length; closed on return),
        an already loaded recording, an open block reader (``streaming.edf.CanonicalStream``, read from
        its first sample, left open), or a finite opened-or-not ``Source`` (e.g. ``EdfReplaySource`` at
        speed 0). A file, its ``CanonicalStream`` and its ``load_canonical`` recording give the same
        chunks, hence the same result.
    detector : Scorer
        ``detector.inference.Detector`` (or anything with ``predict((B, 19, 15360)) -> (B, 15360)``).
    frontend_config : FrontendConfig
        The checkpoint's front-end.
    thresholds : AlarmThresholds
        Post-processor thresholds.
    hop_s : float
        Seconds between scored windows.
    chunk_samples : int, optional
        Input samples (at the file's rate) per chunk for a file, stream or recording; default
        ``round(0.25 * fs)``, the chunking of the daemon's EDF source (``EdfSourceConfig.chunk_s``).
        Events do not depend on it beyond the front-end's float rounding.
    min_history_s : float, default 10
        See :class:`BedSession`.
    lookahead_s : float, optional
        The output position (``detector.output_position``); default the detector's ``lookahead_s``
        (the checkpoint's), or 0 for a scorer that declares none.
    ring_s : float, default 120
    bed_id : str, default "offline"
    model : ModelInfo, optional
        Written into the events; default from the detector's ``model_id``/``stack``/``backend``
        attributes when it has them.
    max_batch : int, optional
        Windows per ``predict`` call; default the detector's ``max_batch`` or 32.
    from_start_samples : int, optional
        Lay the probabilities over the whole stream instead: ``first_index`` 0 (NaN and not usable
        before the first scored sample) and at least this many samples (NaN after the last scored
        one). ``ictal evaluate`` passes the recording's length at 256 Hz, so that its per-sample array
        is this one (no copy: 5 bytes per sample, 110 MB for 24 h, held once).
    mode : {"window", "stream"}, default "window"
        ``stream``: the daemon's stream mode (``detector.mode: stream``): hops scored in order with
        the bed's state carried (``streaming.stream_step.step_hops``, batch of one); ``detector``
        must then be a causal ``Detector`` (``init_state``, ``step``, ``stream_multiple_samples``).

    Returns
    -------
    result : RecordingResult
        The per-sample probabilities are written into one array as windows are scored (no list of
        segments), sized from the recording's duration when it is known.

    Raises
    ------
    FileNotFoundError, ValueError, detector.montage.MontageError
        As ``streaming.edf.load_canonical`` for a file (raised before any sample is read);
        ValueError for a ``chunk_samples`` < 1.
    """
    if isinstance(path_or_source, (str, Path)):
        with open_canonical(path_or_source, frontend_config) as stream:
            return run_recording(stream, detector, frontend_config, thresholds, hop_s, chunk_samples,
                                 min_history_s=min_history_s, lookahead_s=lookahead_s, ring_s=ring_s,
                                 bed_id=bed_id, model=model, max_batch=max_batch,
                                 from_start_samples=from_start_samples, mode=mode)
    if isinstance(path_or_source, (CanonicalRecording, CanonicalStream)):
        recording = path_or_source
        fs_in = recording.fs
        if chunk_samples is None:
            chunk_samples = max(1, round(0.25 * fs_in))
        if chunk_samples < 1:
            raise ValueError(f"chunk_samples must be >= 1 (found {chunk_samples})")
        chunks: Iterable[Chunk] = (_chunks_of(recording, chunk_samples) if isinstance(recording, CanonicalRecording)
                                   else _chunks_of_stream(recording, chunk_samples))
        duration_s = recording.duration_s
    else:
        source = path_or_source
        try:
            fs_in = source.fs
        except RuntimeError:
            source.open()
            fs_in = source.fs
        chunks = _chunks_from_source(source)
        duration_s = float("nan")
    if model is None and hasattr(detector, "model_id"):
        model = ModelInfo(model_id=str(detector.model_id), stack=str(getattr(detector, "stack", "unknown")),
                          backend=getattr(detector, "backend", None))
    batch_size = max_batch or int(getattr(detector, "max_batch", 32))
    if lookahead_s is None:
        lookahead_s = float(getattr(detector, "lookahead_s", 0.0))
    multiple = 1
    if mode == "stream":
        if not callable(getattr(detector, "step", None)) or not callable(getattr(detector, "init_state", None)):
            raise ValueError(f"stream mode needs a causal Detector with init_state and step "
                             f"({type(detector).__name__} has none)")
        direction = getattr(detector, "direction", "causal")
        if direction != "causal":
            raise ValueError(f"stream mode needs a causal checkpoint (found direction {direction!r}); "
                             "use mode 'window'")
        multiple = int(detector.stream_multiple_samples)
    session = BedSession(bed_id, frontend_config, fs_in, thresholds, hop_s=hop_s, ring_s=ring_s,
                         min_history_s=min_history_s, lookahead_s=lookahead_s, model=model, mode=mode,
                         stream_multiple_samples=multiple)
    events: list[AlarmEvent] = []
    quality: list[AlarmEvent] = []
    expected = int(math.ceil(duration_s * FS_HZ)) + 1 if math.isfinite(duration_s) else 3600 * FS_HZ
    stitched = _StitchedOutput(max(expected, from_start_samples or 0), 0 if from_start_samples is not None else None)
    pending: list[Window] = []
    n_in = 0

    def take(window: Window, p: np.ndarray) -> None:
        result = session.score(window, p)
        for event in result.events:
            (quality if event.kind == "signal_quality" else events).append(event)
        for first, seg in result.segments:
            stitched.add(first, seg, result.usable)

    def score_pending() -> None:
        if not pending:
            return
        if mode == "stream":  # hops depend on each other: one at a time, in order
            for hop in pending:
                assert isinstance(hop, StreamHop)
                (out,), _ = step_hops(detector, [HopTask(hop, session.stream_state, session.stream_state_end)])
                session.keep_stream_state(hop, out)
                take(hop, out.probs)
            pending.clear()
            return
        probs = np.asarray(detector.predict(np.stack([w.data for w in pending])))
        for window, p in zip(pending, probs, strict=True):
            take(window, p)
        pending.clear()

    for chunk in chunks:
        n_in = chunk.end_index
        windows, gap_events = session.push(chunk)
        if gap_events:
            score_pending()  # keep the events in stream order
            quality.extend(gap_events)
        pending.extend(windows)
        if len(pending) >= batch_size:
            score_pending()
    score_pending()
    events.extend(session.finish())
    if not math.isfinite(duration_s):
        duration_s = n_in / fs_in
    first_index, probabilities, usable = stitched.arrays(from_start_samples or 0)
    return RecordingResult(probabilities=probabilities, first_index=first_index, usable=usable, events=events,
                           quality_events=quality, duration_s=duration_s)


class _StitchedOutput:
    """Per-sample probabilities and usable flags of a run, written in place as segments arrive.

    Parameters
    ----------
    capacity : int
        Samples allocated at first (the array doubles when a segment reaches past it).
    origin : int or None
        Stream index of element 0; None: the first segment's first index (``RecordingResult``'s
        ``first_index``).
    """

    def __init__(self, capacity: int, origin: int | None) -> None:
        self.origin = origin
        self.values = np.full(max(1, capacity), np.nan, dtype=np.float32)
        self.usable = np.zeros(max(1, capacity), dtype=bool)
        self.end = 0  # one past the last written element

    def add(self, first: int, seg: np.ndarray, usable: bool) -> None:
        """Write a stitched segment (later segments overwrite earlier ones where they overlap)."""
        if self.origin is None:
            self.origin = first
        start = first - self.origin
        if start < 0:
            raise ValueError(f"stitched segment at stream sample {first} precedes the output's first sample "
                             f"{self.origin}; expected segments in stream order")
        stop = start + seg.size
        if stop > self.values.size:
            size = max(stop, 2 * self.values.size)
            values = np.full(size, np.nan, dtype=np.float32)
            values[:self.values.size] = self.values
            flags = np.zeros(size, dtype=bool)
            flags[:self.usable.size] = self.usable
            self.values, self.usable = values, flags
        self.values[start:stop] = seg
        self.usable[start:stop] = usable
        self.end = max(self.end, stop)

    def arrays(self, min_samples: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
        """``(first_index, probabilities, usable)``: views of the written part (at least ``min_samples``)."""
        n = max(self.end, min_samples)
        if n > self.values.size:
            self.add((self.origin or 0) + n - 1, np.full(1, np.nan, dtype=np.float32), False)
        return self.origin or 0, self.values[:n], self.usable[:n]


def _chunks_of_stream(stream: CanonicalStream, chunk_samples: int) -> Iterable[Chunk]:
    """The chunks ``_chunks_of`` gives for ``load_canonical``'s recording, read block by block.

    Blocks hold a whole number of chunks (about ``BLOCK_S`` seconds), so every chunk has the same
    first index and samples as in ``_chunks_of``.
    """
    block = chunk_samples * max(1, round(BLOCK_S * stream.fs / chunk_samples))
    for first, data in stream.blocks(block):
        for start in range(0, data.shape[1], chunk_samples):
            piece = np.ascontiguousarray(data[:, start:start + chunk_samples])
            yield Chunk(data=piece, first_index=first + start, clock_s=(first + start) / stream.fs, fs=stream.fs)
