"""`BedWorker`: one bed's source thread: read chunks, run the front-end, queue windows for scoring.

Each bed runs in a thread of its own, so a bed whose stream stalls, drops or never appears keeps
the other beds running. The thread opens the source (retrying every ``RETRY_OPEN_S`` while it
cannot), reads chunks, pushes them through the bed's :class:`ictal.streaming.bed.BedSession` (front-end,
ring buffer, scheduler) and puts the due windows in the bed's bounded queue, from which the
scoring loop (``streaming.scoring``) takes them. When the queue is full the oldest window is
discarded (``BedSession.discard``): memory never grows and the scoring loop always gets the newest
window.

Stream state is reported as ``signal_quality`` events (reasons ``stream_connected``,
``stream_lost``, ``no_data``, ``end_of_stream``, ``source_error``, ``gap``, ``clock_jump_back``,
``rate_mismatch``, ``rate_ok``) and metrics (``ictal_stream_connected``, ``ictal_samples_received``,
``ictal_samples_lost``, ``ictal_stream_gap_seconds``, ``ictal_ring_buffer_fill_ratio``, and in
:class:`ictal.streaming.daemon_metrics.DaemonMetrics` ``ictal_source_refusals_total``,
``ictal_clock_jumps_back_total``, ``ictal_clock_jump_back_seconds_total``,
``ictal_stream_effective_rate_hz``, ``ictal_stream_rate_mismatch``). A lost stream closes an open
alarm (reason ``stream_lost``): no alarm stays up on data that no longer arrives.

Refused streams: a source that cannot be opened, or whose stream comes back unusable after a loss
(a missing channel, a unit or rate change: ``ValueError`` from ``Source.read``, MontageError
included), is reported as a ``source_error`` event naming the problem (once per distinct problem: the
bed's ``not_monitored`` state carries it from then on, in every heartbeat), counted at every refusal
(``ictal_source_refusals_total``), and tried again (``RETRY_OPEN_S`` before the first opening, the
source's ``reconnect_s`` after a loss); the bed is served again as soon as the stream is usable.

Source notices (``LslSource.take_notices``): timestamps going back within one connection
(``clock_jump_back``: the samples are kept, contiguous, see ``streaming.sources.lsl``) are reported
and counted; an effective rate that differs from the announced one (``rate_mismatch``) makes the
bed's input unusable (``BedSession.set_input_fault``: alarms suppressed, the front-end would resample
at the wrong ratio and shift every frequency) until the rate matches again (``rate_ok``) and the
windows no longer hold mis-rated samples.

Monitored state (one contract, in this one place)
------------------------------------------------
Every bed is in exactly one of three states, published as ``signal_quality`` events on the bed's topic
(reason ``not_monitored`` or ``monitored``; ``detail`` names the state and why), exported as
``ictal_bed_monitored{bed}`` (1 only while monitored) and ``ictal_bed_state{bed,state}`` (one-hot), and
repeated in every heartbeat (``BedWorker.status``):

- ``connecting``: the source is being opened or has just (re)connected, and no window of the new
  connection has been scored yet (the warm-up: the first window is due ``min_history_s`` after the
  connection). Published with reason ``not_monitored``: no probability covers the bed yet.
- ``monitored``: a window of the current connection was scored and its input was usable: alarms can be
  raised.
- ``not_monitored``: the stream is not found, lost, silent (``no_data``), refused, finished, its input is
  unusable (every window's quality says so: alarms suppressed), or the bed's thread failed and retries.

A state event is published at every change of state or of its reason (never repeated while nothing
changes); the first one, ``connecting``, as soon as the bed starts, so a subscriber knows of every
configured bed from the start. A stream that cannot be found makes the bed ``not_monitored`` after the
first failed attempt (within the source's ``resolve_timeout_s`` of the start), and the bed keeps trying.

Failures: no exception ends a bed. An unexpected exception in the bed's thread is logged with its
traceback, published (``source_error``, "bed failed: ..."), counted (``ictal_bed_failures_total``), makes
the bed ``not_monitored`` and is retried after a back-off (``FAILURE_BACKOFF_S``, doubling up to
``FAILURE_BACKOFF_MAX_S``) with a fresh source connection and a fresh session.

Connections and queued windows: each connection of the source (and each restart after a failure) is a
new *generation*; windows queued before a loss belong to the old one and are dropped, never scored after
the loss (their alarm state was closed by the loss: an onset raised from them would stay open on data
that no longer arrives).

Wall-clock times of alarms: every chunk is recorded as it arrives in the bed's
:class:`ictal.streaming.sources.wall_clock.SampleWallClock` with the source's clock mapping
(``Source.clock_offset_s``), and :meth:`BedWorker.stamp` gives each onset its ``onset_wall_time`` and
``min_duration_wall_time`` (each offset the ``onset_wall_time`` of its onset) before it is published;
the publisher sets ``wall_time`` when it sends, so ``AlarmEvent.latency_s`` is the true time to alarm.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.metrics import IctalMetrics
from ictal.alarms.schema import AlarmEvent, ModelInfo
from ictal.detector import FS_HZ
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import BedSession
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import BedConfig, SchedulerConfig
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.logfmt import kv
from ictal.streaming.pipeline import Window
from ictal.streaming.sources.base import Source
from ictal.streaming.sources.wall_clock import SampleWallClock

log = logging.getLogger("ictal.bed")

READ_TIMEOUT_S = 0.2
"""Longest wait of one ``Source.read``: the thread notices a stop request within this time."""

RETRY_OPEN_S = 5.0
"""Pause between attempts to open a source that failed to open."""

FAILURE_BACKOFF_S = 1.0
"""First pause before a failed bed is started again (s); doubled at each failure in a row."""

FAILURE_BACKOFF_MAX_S = 60.0
"""Longest pause between restarts of a failing bed (s): a bed is never given up."""

BED_STATES: tuple[str, ...] = ("connecting", "monitored", "not_monitored")
"""The states of a bed (see "Monitored state" above)."""

SEARCH_NOTICES: dict[str, str] = {
    "stream_not_found": "stream not found",
    "stream_identity_mismatch": "stream lost; another stream of the same name refused (not this bed's device)",
    "stream_ambiguous": "several streams match the bed's selector; none taken",
}
"""Source notices about looking for the stream (``streaming.sources.lsl``): each makes a bed that is not
connected ``not_monitored`` with this reason (and the notice's detail)."""

MAX_OPEN_ONSETS = 16
"""Onset wall times remembered for their offsets (one alarm is open at a time; a few spare)."""


@dataclass(frozen=True)
class PendingWindow:
    """A window waiting to be scored.

    Attributes
    ----------
    window : Window
    arrived_mono : float
        ``time.monotonic()`` when the chunk that completed the window was read from the source (s).
    """

    window: Window
    arrived_mono: float
    generation: int = 0


@dataclass(frozen=True)
class BedStatusSnapshot:
    """A bed's monitored state at one moment (see "Monitored state" in the module docstring).

    Attributes
    ----------
    state : str
        ``connecting``, ``monitored`` or ``not_monitored``.
    reason : str
        Why (e.g. ``"stream not found: ..."``, ``"stream lost"``, ``"signal unusable: ..."``).
    since : datetime
        UTC time of the last change of state or reason.
    """

    state: str
    reason: str
    since: datetime


class BedWorker:
    """The source thread of one bed and its queue of windows.

    Parameters
    ----------
    config : BedConfig
        Bed id and source.
    source : Source
        The bed's source (opened by the thread).
    frontend_config : FrontendConfig
    scheduler : SchedulerConfig
        ``hop_s``, ``ring_s``, ``min_history_s``.
    thresholds : AlarmThresholds
    publish : callable
        ``publish(event)``: where events go (the daemon's publisher).
    metrics : IctalMetrics
    model : ModelInfo, optional
        Written into alarm events.
    queue_windows : int, default 2
        Most windows waiting for scoring; beyond it the oldest is discarded.
    no_data_s : float, default 5
        Seconds without a chunk, while connected, before a ``no_data`` event.
    on_window : callable, optional
        Called (no argument) after a window is queued (wakes the scoring loop).
    daemon_metrics : DaemonMetrics, optional
        Counts discarded windows (``ictal_windows_skipped_total``).
    lookahead_s : float, default 0
        The checkpoint's output position (``detector.output_position``), given to the session.
    mode : {"window", "stream"}, default "window"
        ``detector.mode``, given to the session: ``stream`` queues :class:`ictal.streaming.pipeline.StreamHop` s
        and every new generation (a reconnection, samples arriving again after ``no_data``, a restart)
        drops the bed's model state (``BedSession.invalidate_stream_state("reconnect")``): the next hop
        rebuilds it from the ring buffer.
    stream_multiple_samples : int, default 1
        Stream mode: the checkpoint's ``Detector.stream_multiple_samples``.

    Attributes
    ----------
    session : BedSession or None
        Created when the source is first opened (its rate is known then).
    lock : threading.Lock
        Held while the session's scoring state (post-processor, quality) or the queue is used.
    wall_clock : SampleWallClock
        UTC times of the bed's samples, recorded as chunks arrive (see :meth:`stamp`).
    """

    def __init__(self, config: BedConfig, source: Source, frontend_config: FrontendConfig,
                 scheduler: SchedulerConfig, thresholds: AlarmThresholds,
                 publish: Callable[..., object], metrics: IctalMetrics, *, model: ModelInfo | None = None,
                 queue_windows: int = 2, no_data_s: float = 5.0,
                 on_window: Callable[[], None] | None = None,
                 daemon_metrics: DaemonMetrics | None = None, lookahead_s: float = 0.0, mode: str = "window",
                 stream_multiple_samples: int = 1) -> None:
        if queue_windows < 1:
            raise ValueError(f"queue_windows must be >= 1 (found {queue_windows})")
        self.config = config
        self.bed_id = config.bed_id
        self.source = source
        self.frontend_config = frontend_config
        self.scheduler = scheduler
        self.thresholds = thresholds
        self.publish = publish
        self.metrics = metrics
        self.model = model
        self.lookahead_s = float(lookahead_s)
        self.mode = mode
        self.stream_multiple_samples = int(stream_multiple_samples)
        self.queue_windows = queue_windows
        self.no_data_s = no_data_s
        self.on_window = on_window
        self.daemon_metrics = daemon_metrics
        self.closed = False
        self.session: BedSession | None = None
        self.lock = threading.Lock()
        self.pending: deque[PendingWindow] = deque()
        self.behind = False
        self.discarded_since_scored = 0
        self.connected = False
        self.finished = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ictal-bed-{self.bed_id}", daemon=True)
        self._last_chunk_mono: float | None = None
        self._no_data_reported = False
        self._last_stream_s = 0.0
        self.wall_clock = SampleWallClock()
        self._onset_walls: dict[float, datetime] = {}  # onset_s -> onset_wall_time of the open alarms
        self.generation = 0
        self.n_failures = 0
        self._state_lock = threading.Lock()
        self._status = BedStatusSnapshot("connecting", "starting", datetime.now(timezone.utc))
        self._last_refusal: str | None = None
        metrics.stream_connected.labels(bed=self.bed_id).set(0)
        metrics.signal_usable.labels(bed=self.bed_id).set(0)
        metrics.set_thresholds(self.bed_id, thresholds)
        self._export_state("connecting")

    # -- lifetime ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the source thread; the bed's first state event (``connecting``) is published first."""
        self._emit(self._state_event(self._status))
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Ask the thread to stop and wait for it; True when it ended within ``timeout_s``."""
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the source thread runs."""
        return self._thread.is_alive()

    # -- monitored state --------------------------------------------------------------------------

    def status(self) -> BedStatusSnapshot:
        """The bed's monitored state now (any thread; see "Monitored state" in the module docstring)."""
        with self._state_lock:
            return self._status

    def set_state(self, state: str, reason: str) -> AlarmEvent | None:
        """Change the bed's state; the ``signal_quality`` event to publish, or None when unchanged.

        Parameters
        ----------
        state : str
            One of :data:`BED_STATES`.
        reason : str
            Why; a change of reason alone is a change too (a bed not monitored for another reason).

        Returns
        -------
        event : AlarmEvent or None
            A ``signal_quality`` event, reason ``monitored`` or ``not_monitored`` (connecting is not
            monitored), for the caller to publish.

        Raises
        ------
        ValueError
            If ``state`` is not one of :data:`BED_STATES`.
        """
        if state not in BED_STATES:
            raise ValueError(f"bed state must be one of {', '.join(BED_STATES)} (found {state!r})")
        with self._state_lock:
            if (state, reason) == (self._status.state, self._status.reason):
                return None
            self._status = BedStatusSnapshot(state, reason, datetime.now(timezone.utc))
            status = self._status
        self._export_state(state)
        if state != "monitored":
            self.metrics.signal_usable.labels(bed=self.bed_id).set(0)
        log.log(logging.INFO if state != "not_monitored" else logging.WARNING,
                kv("bed_state", bed=self.bed_id, state=state, reason=reason))
        return self._state_event(status)

    def _change_state(self, state: str, reason: str) -> None:
        event = self.set_state(state, reason)
        if event is not None:
            self._emit(event)

    def _state_event(self, status: BedStatusSnapshot) -> AlarmEvent:
        return self._quality(self._last_stream_s, "monitored" if status.state == "monitored" else "not_monitored",
                             f"{status.state}: {status.reason}")

    def _export_state(self, state: str) -> None:
        if self.daemon_metrics is None:
            return
        self.daemon_metrics.bed_monitored.labels(bed=self.bed_id).set(1 if state == "monitored" else 0)
        for name in BED_STATES:
            self.daemon_metrics.bed_state.labels(bed=self.bed_id, state=name).set(1 if name == state else 0)

    # -- queue (called by the scoring loop) -------------------------------------------------------

    def take(self) -> tuple[list[PendingWindow], int]:
        """Every pending window, oldest first (call with :attr:`lock` held).

        Returns
        -------
        pending : list of PendingWindow
            At most ``queue_windows``; the queue is empty afterwards.
        discarded : int
            Windows discarded by the source thread (queue full) since the last call that returned
            windows.
        """
        items = list(self.pending)
        self.pending.clear()
        discarded = self.discarded_since_scored
        if items:
            self.discarded_since_scored = 0
        return items, discarded

    def oldest_arrival(self) -> float | None:
        """Arrival time (monotonic s) of the oldest pending window, or None."""
        return self.pending[0].arrived_mono if self.pending else None

    def _discard(self, item: PendingWindow) -> None:
        assert self.session is not None
        self.session.discard(item.window)
        self.discarded_since_scored += 1
        if self.daemon_metrics is not None:
            self.daemon_metrics.windows_skipped.labels(bed=self.bed_id).inc()

    # -- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff_s = FAILURE_BACKOFF_S
        while not self._stop.is_set():
            try:
                self._serve()
                return  # asked to stop, or a finite source ended
            except Exception as exc:  # noqa: BLE001 - no exception ends a bed: reported, retried
                self._failed(exc, backoff_s)
            finally:
                try:
                    self.source.close()
                except OSError as exc:
                    log.warning(kv("source_close_failed", bed=self.bed_id, error=str(exc)))
            if self._stop.wait(backoff_s):
                return
            backoff_s = min(2.0 * backoff_s, FAILURE_BACKOFF_MAX_S)

    def _failed(self, exc: Exception, backoff_s: float) -> None:
        """An unexpected exception in the bed's thread: report, close the bed's state, start afresh later."""
        self.n_failures += 1
        log.exception(kv("bed_failed", bed=self.bed_id, error=f"{type(exc).__name__}: {exc}", retry_s=backoff_s))
        if self.daemon_metrics is not None:
            self.daemon_metrics.bed_failures.labels(bed=self.bed_id).inc()
        events = self._new_generation("bed_failed")
        with self.lock:
            self.session = None  # a fresh session (front-end, ring, post-processor) at the restart
        self._set_connected(False)
        self._no_data_reported = False
        self._last_chunk_mono = None
        for event in events:
            self._emit(event)
        self._emit(self._quality(self._last_stream_s, "source_error",
                                 f"bed failed: {type(exc).__name__}: {exc}; restarting in {backoff_s:g} s"))
        self._change_state("not_monitored", f"bed failed ({type(exc).__name__}: {exc}); restarting in "
                           f"{backoff_s:g} s")

    def _new_generation(self, reason: str) -> list[AlarmEvent]:
        """Start a new generation: queued windows dropped, the open alarm closed (events returned)."""
        with self.lock:
            self._bump_generation()
            self.pending.clear()
            self.discarded_since_scored = 0
            self.behind = False
            return self.session.close(reason) if self.session is not None else []

    def _bump_generation(self) -> None:
        """A new generation (call with :attr:`lock` held): windows queued before it are dropped, and in
        stream mode the bed's model state is rebuilt at the next hop (reason ``reconnect``)."""
        self.generation += 1
        if self.session is not None and self.mode == "stream":
            self.session.invalidate_stream_state("reconnect")

    def _open(self) -> bool:
        try:
            if _can_open_unconnected(self.source):
                self.source.open(require_stream=False)  # keeps looking in the background; read() gives None
            else:
                self.source.open()
        except ConnectionError as exc:
            log.warning(kv("source_not_found", bed=self.bed_id, detail=str(exc), retry_s=RETRY_OPEN_S))
            self._take_notices()
            self._change_state("not_monitored", f"stream not found ({exc}); still looking")
            return False
        except (ValueError, OSError) as exc:  # montage, unit, rate or file problem: named, retried
            log.error(kv("source_error", bed=self.bed_id, detail=str(exc), retry_s=RETRY_OPEN_S))
            self._take_notices()
            self._refusal_event(str(exc), str(exc))
            self._change_state("not_monitored", f"source refused: {exc}")
            return False
        if self.daemon_metrics is not None:
            self.daemon_metrics.rate_mismatch.labels(bed=self.bed_id).set(0)
        if self._source_fs() is not None:
            self._make_session()  # before the notices: a rate mismatch becomes the session's input fault
        self._take_notices()
        log.info(kv("bed_opened", bed=self.bed_id, fs_hz=self._source_fs(), source=self.config.source.type,
                    connected=bool(getattr(self.source, "connected", True))))
        return True

    def _source_fs(self) -> float | None:
        """The source's rate, or None while it is unknown (an LSL stream not found yet)."""
        try:
            return self.source.fs
        except RuntimeError:
            return None

    def _make_session(self) -> None:
        if self.session is not None:
            return
        session = BedSession(
            self.bed_id, self.frontend_config, self.source.fs, self.thresholds, hop_s=self.scheduler.hop_s,
            ring_s=self.scheduler.ring_s, min_history_s=self.scheduler.min_history_s,
            lookahead_s=self.lookahead_s, model=self.model, mode=self.mode,
            stream_multiple_samples=self.stream_multiple_samples,
        )
        with self.lock:
            self.session = session

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self._open():
                break
            if self._stop.wait(RETRY_OPEN_S):
                return
        self._last_refusal = None
        while not self._stop.is_set():
            try:
                chunk = self.source.read(READ_TIMEOUT_S)
            except ValueError as exc:
                if getattr(self.source, "connected", True):
                    raise  # not a refused reconnection: a bug or a bad file (bed_failed, restarted)
                # the stream came back unusable (montage, unit, rate); the source retries after its pause
                self._track_connection(time.monotonic())
                self._refused(exc)
                continue
            now = time.monotonic()
            self._track_connection(now)
            if chunk is not None:
                self._handle(chunk, now, time.time())
            self._take_notices()
            if chunk is None and self.source.exhausted:
                self._end_of_stream()
                return

    def _refused(self, exc: ValueError) -> None:
        log.error(kv("source_error", bed=self.bed_id, detail=str(exc), retry="after the reconnect pause"))
        if self.daemon_metrics is not None:
            self.daemon_metrics.source_refusals.labels(bed=self.bed_id).inc()
        self._refusal_event(str(exc), f"stream refused: {exc}")
        self._change_state("not_monitored", f"stream refused: {exc}")

    def _refusal_event(self, problem: str, detail: str) -> None:
        """A ``source_error`` event, once per distinct problem in a row (the state carries it after)."""
        if problem == self._last_refusal:
            return
        self._last_refusal = problem
        self._emit(self._quality(self._last_stream_s, "source_error", detail))

    def _take_notices(self) -> None:
        take = getattr(self.source, "take_notices", None)
        if take is None:
            return
        bed, fs = self.bed_id, self._source_fs()
        dm = self.daemon_metrics
        effective = getattr(self.source, "effective_fs", None)
        if dm is not None and effective is not None:
            dm.effective_rate.labels(bed=bed).set(effective)
        for notice in take():
            log.warning(kv(notice.reason, bed=bed, detail=notice.detail))
            if notice.reason == "clock_jump_back":
                if dm is not None:
                    dm.clock_jumps_back.labels(bed=bed).inc()
                    dm.clock_jump_back_seconds.labels(bed=bed).inc(notice.value)
            elif notice.reason in ("rate_mismatch", "rate_ok"):
                mismatch = notice.reason == "rate_mismatch"
                if dm is not None:
                    dm.rate_mismatch.labels(bed=bed).set(1 if mismatch else 0)
                if self.session is not None:
                    with self.lock:
                        if mismatch:
                            self.session.set_input_fault("rate", f"stream rate: {notice.detail}")
                        else:
                            self.session.clear_input_fault("rate", notice.first_index)
            elif notice.reason in SEARCH_NOTICES and not self.connected:
                self._change_state("not_monitored", f"{SEARCH_NOTICES[notice.reason]}: {notice.detail}")
            stream_s = notice.first_index / fs if fs else self._last_stream_s
            self._emit(self._quality(stream_s, notice.reason, notice.detail))

    def _track_connection(self, now: float) -> None:
        connected = bool(getattr(self.source, "connected", True))
        if connected != self.connected:
            self._set_connected(connected)
            if connected:
                with self.lock:
                    self._bump_generation()  # windows of the new connection only
                self._last_refusal = None
                self._emit(self._quality(self._last_stream_s, "stream_connected", "stream connected"))
                log.info(kv("stream_connected", bed=self.bed_id))
                self._change_state("connecting", "stream connected; warming up")
            else:
                self._lost("stream_lost", "stream lost; reconnecting")
        elif connected and self._last_chunk_mono is not None and not self._no_data_reported:
            if now - self._last_chunk_mono > self.no_data_s:
                self._no_data_reported = True
                self._lost("no_data", f"no samples for {self.no_data_s:g} s")

    def _lost(self, reason: str, detail: str) -> None:
        log.warning(kv(reason, bed=self.bed_id, detail=detail))
        events = self._new_generation(reason) + [self._quality(self._last_stream_s, reason, detail)]
        for event in events:
            self._emit(event)
        self._change_state("not_monitored", detail)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.metrics.stream_connected.labels(bed=self.bed_id).set(1 if connected else 0)

    def _handle(self, chunk: Chunk, now_mono: float, now_wall: float) -> None:
        self._make_session()  # a source opened unconnected knows its rate from its first chunk
        if self._no_data_reported:
            self._no_data_reported = False
            with self.lock:
                self._bump_generation()
            self._emit(self._quality(chunk.first_index / chunk.fs, "stream_resumed", "samples arrive again"))
            self._change_state("connecting", "samples arrive again; warming up")
        self._last_chunk_mono = now_mono
        self.wall_clock.record(chunk, now_wall, self._clock_offset_s())
        bed = self.bed_id
        self.metrics.samples_received.labels(bed=bed).inc(chunk.n_samples)
        lost_before = self.session.samples_lost
        windows, events = self.session.push(chunk)
        lost = self.session.samples_lost - lost_before
        if lost:
            self.metrics.samples_lost.labels(bed=bed).inc(lost)
            self.metrics.gap_seconds.labels(bed=bed).inc(lost / chunk.fs)
        self._last_stream_s = chunk.end_index / chunk.fs
        ring = self.session.pipeline.ring
        if not ring.empty:
            held = ring.end_index - ring.start_index
            self.metrics.ring_buffer_fill.labels(bed=bed).set(held / ring.capacity)
        for event in events:
            log.warning(kv("stream_gap", bed=bed, detail=event.detail))
            self._emit(event)
        if windows:
            with self.lock:
                for window in windows:
                    if len(self.pending) >= self.queue_windows:
                        skipped = self.pending.popleft()
                        self._discard(skipped)
                        if self.mode == "stream":  # the hop after a skipped one steps over its samples too
                            if self.pending:
                                oldest = self.pending[0]
                                self.pending[0] = PendingWindow(
                                    self.session.extend_hop(oldest.window, skipped.window),
                                    oldest.arrived_mono, oldest.generation)
                            else:
                                window = self.session.extend_hop(window, skipped.window)
                    self.pending.append(PendingWindow(window, now_mono, self.generation))
            if self.on_window is not None:
                self.on_window()

    def _end_of_stream(self) -> None:
        log.info(kv("end_of_stream", bed=self.bed_id, stream_s=self._last_stream_s))
        self.finished = True
        self._set_connected(False)
        self._emit(self._quality(self._last_stream_s, "end_of_stream", "the source has no more samples"))
        self._change_state("not_monitored", "end of stream: the source has no more samples")

    # -- events -----------------------------------------------------------------------------------

    def _quality(self, stream_time_s: float, reason: str, detail: str) -> AlarmEvent:
        return AlarmEvent(bed_id=self.bed_id, kind="signal_quality", stream_time_s=stream_time_s, reason=reason,
                          detail=detail)

    def _clock_offset_s(self) -> float | None:
        offset = getattr(self.source, "clock_offset_s", None)  # duck-typed sources may lack it: no mapping
        return None if offset is None else offset()

    def stamp(self, event: AlarmEvent) -> AlarmEvent:
        """Add the UTC wall-clock times of an onset or offset from the bed's samples (others unchanged).

        Parameters
        ----------
        event : AlarmEvent
            From this bed's session.

        Returns
        -------
        event : AlarmEvent
            Onset: a copy with ``onset_wall_time`` (the sample at ``onset_s``) and
            ``min_duration_wall_time`` (the sample at ``stream_time_s``) from :attr:`wall_clock`; offset:
            with the ``onset_wall_time`` its onset got (looked up again if the onset was not stamped
            here). A time stays None when its sample is not recorded (older than the horizon).
        """
        if event.kind == "onset":
            onset_wall = self.wall_clock.utc_at(event.onset_s)
            if onset_wall is not None:
                self._onset_walls[event.onset_s] = onset_wall
                while len(self._onset_walls) > MAX_OPEN_ONSETS:  # offsets published elsewhere: forget the oldest
                    del self._onset_walls[next(iter(self._onset_walls))]
            return event.model_copy(update={"onset_wall_time": onset_wall,
                                            "min_duration_wall_time": self.wall_clock.utc_at(event.stream_time_s)})
        if event.kind == "offset":
            onset_wall = self._onset_walls.pop(event.onset_s, None) or self.wall_clock.utc_at(event.onset_s)
            return event.model_copy(update={"onset_wall_time": onset_wall})
        return event

    def _emit(self, event: AlarmEvent) -> None:
        self.publish(self.stamp(event))


def stream_time_s(window: Window) -> float:
    """Stream time (s) of a window's end."""
    return window.end_index / FS_HZ


def _can_open_unconnected(source: Source) -> bool:
    """Whether ``source.open`` takes ``require_stream`` (an LSL source that keeps looking in the background)."""
    try:
        return "require_stream" in inspect.signature(source.open).parameters
    except (TypeError, ValueError):
        return False
