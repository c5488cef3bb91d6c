"""`ScoringLoop`: the one thread that scores the due windows of every bed with the one model, in batches.

Each iteration takes the pending windows of every bed (each bed's queue holds at most
``queue_windows``: when scoring falls behind, the bed's thread discards the oldest, so the loop
skips to the newest windows rather than lagging or growing memory), orders them by how long they
have waited, scores up to ``max_batch`` in one ``predict`` call and hands each bed its
probabilities in order (``BedSession.score``: stitching, signal quality, post-processor); the
resulting events are published. Windows left over go back to the front of their queue for the next
iteration. An iteration with nothing to score waits up to ``IDLE_WAIT_S`` for a new window.

Falling behind is said three ways: ``ictal_windows_skipped_total{bed}``, a warning log line, and a
``signal_quality`` event (reason ``scoring_behind``, then ``scoring_caught_up`` once a window is
scored with none skipped before it).

Onset and offset events get their UTC wall-clock times from the bed (:meth:`BedWorker.stamp`, the
source's clock mapping) right before they are published; the publisher stamps the publish time and
observes ``ictal_alarm_latency_seconds`` = ``AlarmEvent.latency_s`` (publish wall time - onset wall
time: one definition, see ``alarms.schema``).

``progress`` counts iterations, idle ones included: the daemon's watchdog keep-alive is sent only
while it moves, so a hung ``predict`` stops the keep-alives.

Stream mode (``detector.mode: stream``, a causal checkpoint): the queued items are
:class:`ictal.streaming.pipeline.StreamHop` s. The iteration takes up to ``max_batch`` of them as in window
mode and scores them in *rounds*: round k holds the k-th taken hop of every bed (a bed's hops depend
on each other), and each round is one :func:`ictal.streaming.stream_step.step_hops` call: the beds' states
(read under each bed's lock) are stacked, stepped once per distinct hop length (the rebuilds of
cold hops, 60 s each from ``init_state``, in one more call) and split back; each bed keeps its new state
(``BedSession.keep_stream_state``) under its lock unless its generation changed meanwhile (a
reconnection: the hop is dropped as in window mode and the next hop rebuilds the state). A bed with
nothing due is not in the round: beds join and leave freely. Metrics are those of window mode, counted
per hop: ``ictal_windows_scored_total{bed}`` counts hops scored, ``ictal_inference_latency_seconds``
observes each round's step time, ``ictal_batch_size`` each round's hops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from ictal.alarms.metrics import IctalMetrics
from ictal.alarms.schema import AlarmEvent
from ictal.detector import FS_HZ
from ictal.streaming.bed import Scorer, ScoreResult
from ictal.streaming.bed_worker import BedWorker, PendingWindow
from ictal.streaming.capacity import CapacityMonitor
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.logfmt import kv
from ictal.streaming.pipeline import StreamHop
from ictal.streaming.stream_step import HopOutput, HopTask, step_hops

log = logging.getLogger("ictal.scoring")

IDLE_WAIT_S = 0.2
"""Longest idle wait of one iteration (s); also the keep-alive granularity of an idle daemon."""


class ScoringLoop:
    """Batch scoring of all beds' windows on one model.

    Parameters
    ----------
    detector : Scorer
        ``predict((B, 19, 15360)) -> (B, 15360)``.
    workers : callable
        Returns the current list of :class:`BedWorker` (the bed list may change on reload).
    publish : callable
        ``publish(event)``: the daemon's publisher (journal, send, latency metric).
    metrics : IctalMetrics
    daemon_metrics : DaemonMetrics
    max_batch : int
        Most windows per ``predict`` call (stream mode: most hops per iteration).
    mode : {"window", "stream"}, default "window"
        ``stream``: score :class:`StreamHop` s with ``detector.step`` (see the module docstring).

    Attributes
    ----------
    progress : int
        Iterations completed (idle ones included).
    windows_scored : int
        Windows scored since the start.
    capacity : CapacityMonitor
        Every batch's inference time and every skip, for the daemon's capacity check.
    windows_dropped : int
        Windows not scored because their bed lost its stream (or restarted) after they were queued
        (``streaming.bed_worker``: generations).
    on_scored : callable or None
        ``on_scored(bed_id, pending, result)`` after each window is scored (tests, benchmarks).
    """

    def __init__(self, detector: Scorer, workers: Callable[[], list[BedWorker]],
                 publish: Callable[..., object], metrics: IctalMetrics, daemon_metrics: DaemonMetrics,
                 max_batch: int, mode: str = "window") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (found {max_batch})")
        if mode not in ("window", "stream"):
            raise ValueError(f"mode must be 'window' or 'stream' (found {mode!r})")
        self.mode = mode
        self.detector = detector
        self.workers = workers
        self.publish = publish
        self.metrics = metrics
        self.daemon_metrics = daemon_metrics
        self.max_batch = max_batch
        self.progress = 0
        self.windows_scored = 0
        self.windows_dropped = 0
        self.capacity = CapacityMonitor()
        self.error: BaseException | None = None
        self.on_scored: Callable[[str, PendingWindow, ScoreResult], None] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ictal-scoring", daemon=True)

    def start(self) -> None:
        """Start the scoring thread."""
        self._thread.start()

    def wake(self) -> None:
        """A window was queued: end an idle wait now."""
        self._wake.set()

    def stop(self, timeout_s: float) -> bool:
        """Score what is pending once more, then stop; True when the thread ended within ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the scoring thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.iterate():
                    self._wake.wait(IDLE_WAIT_S)
                    self._wake.clear()
            self.iterate()  # drain: the newest queued window of each bed (up to max_batch) is scored
        except BaseException as exc:
            self.error = exc
            log.exception(kv("scoring_loop_failed", error=str(exc)))
            raise

    def iterate(self) -> bool:
        """One iteration: score up to ``max_batch`` pending windows; False when there was none."""
        batch: list[tuple[BedWorker, PendingWindow, int, bool]] = []
        waiting = 0
        for worker in self.workers():
            if worker.session is None:
                continue
            with worker.lock:
                items, discarded = worker.take()
            for i, item in enumerate(items):  # the first carries the skips; alone: no backlog
                batch.append((worker, item, discarded if i == 0 else 0, len(items) == 1))
            if not items and worker.finished and not worker.closed:
                self._finish(worker)
        batch.sort(key=lambda entry: entry[1].arrived_mono)  # stable: a bed's windows stay in order
        later, batch = batch[self.max_batch:], batch[: self.max_batch]
        for worker, item, discarded, _ in reversed(later):  # back to the front of their queues, in order
            with worker.lock:
                worker.discarded_since_scored += discarded
                worker.pending.appendleft(item)
            waiting += 1
        self.daemon_metrics.queue_windows.set(waiting)
        self.progress += 1
        self.daemon_metrics.loop_iterations.inc()
        if not batch:
            return False
        if self.mode == "stream":
            self._score_rounds(batch)
            self.progress += 1
            return True
        data = np.stack([item.window.data for _, item, _, _ in batch])
        t0 = time.monotonic()
        probs = np.asarray(self.detector.predict(data))
        inference_s = time.monotonic() - t0
        self.capacity.record_batch(inference_s, len(batch))
        self.daemon_metrics.batch_size.observe(len(batch))
        for (worker, item, discarded, alone), p in zip(batch, probs, strict=True):
            self._deliver(worker, item, discarded, alone, p, inference_s)
        self.progress += 1
        return True

    def _score_rounds(self, batch: list[tuple[BedWorker, PendingWindow, int, bool]]) -> None:
        """Stream mode: score the taken hops, round k = the k-th hop of every bed (see the module docstring)."""
        rounds: list[list[tuple[BedWorker, PendingWindow, int, bool]]] = []
        seen: dict[int, int] = {}
        for entry in batch:  # batch is in arrival order, a bed's hops in order
            k = seen.get(id(entry[0]), 0)
            seen[id(entry[0])] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(entry)
        for entries in rounds:
            tasks = []
            for worker, item, _, _ in entries:
                if not isinstance(item.window, StreamHop):
                    raise TypeError(f"stream-mode scoring got a {type(item.window).__name__} from bed "
                                    f"{worker.bed_id!r}; expected StreamHop (bed not in stream mode)")
                with worker.lock:
                    session = worker.session
                    state = None if session is None else session.stream_state
                    end = None if session is None else session.stream_state_end
                tasks.append(HopTask(item.window, state, end))
            t0 = time.monotonic()
            outputs, _ = step_hops(self.detector, tasks)
            inference_s = time.monotonic() - t0
            self.capacity.record_batch(inference_s, len(entries))
            self.daemon_metrics.batch_size.observe(len(entries))
            for (worker, item, discarded, alone), out in zip(entries, outputs, strict=True):
                if out.rebuilt is not None:
                    log.debug(kv("stream_state_rebuilt", bed=worker.bed_id, reason=out.rebuilt,
                                 stream_s=item.window.end_index / FS_HZ))
                self._deliver(worker, item, discarded, alone, out.probs, inference_s, stream_out=out)

    def _deliver(self, worker: BedWorker, item: PendingWindow, discarded: int, alone: bool, probs: np.ndarray,
                 inference_s: float, stream_out: HopOutput | None = None) -> None:
        bed = worker.bed_id
        stream_s = item.window.end_index / FS_HZ
        events: list[AlarmEvent] = []
        with worker.lock:
            session = worker.session
            if session is None or item.generation != worker.generation:
                # queued before the stream was lost (or the bed restarted): its alarm state was closed
                self.windows_dropped += 1
                log.info(kv("window_dropped", bed=bed, stream_s=stream_s,
                            detail="queued before a loss of the stream; not scored after it"))
                return
            if stream_out is not None:
                assert isinstance(item.window, StreamHop)
                session.keep_stream_state(item.window, stream_out)
            if discarded > 0:
                self.capacity.record_skips(discarded)
            if discarded > 0 and not worker.behind:
                worker.behind = True
                detail = (f"scoring fell behind: {discarded} window(s) skipped, scored the newest (ending at "
                          f"{stream_s:.1f} s)")
                log.warning(kv("scoring_behind", bed=bed, skipped=discarded, stream_s=stream_s))
                events.append(session.quality_event(stream_s, "scoring_behind", detail))
            result = session.score(item.window, probs)
            quality = session.quality
            caught_up = discarded == 0 and alone and worker.behind and not worker.pending
            if caught_up:
                worker.behind = False
                events.append(session.quality_event(stream_s, "scoring_caught_up", "scoring keeps up again"))
        latency = time.monotonic() - item.arrived_mono
        self.windows_scored += 1
        self.metrics.windows_scored.labels(bed=bed).inc()
        self.metrics.inference_latency.labels(bed=bed).observe(inference_s)
        if result.usable and result.segments:
            self.metrics.set_probability(bed, float(result.segments[-1][1][-1]))
        self.daemon_metrics.scoring_latency.labels(bed=bed).observe(latency)
        bad = set(quality.bad_channels)
        self.metrics.set_channel_quality(bed, {c: c not in bad for c in session.pipeline.channels})
        self.metrics.signal_usable.labels(bed=bed).set(1.0 if quality.usable else 0.0)
        events.extend(result.events)
        if worker.finished:
            state = None  # a window scored after the end of the stream: the bed stays as its end left it
        elif quality.usable:
            state = worker.set_state("monitored", "windows scored; input usable")
        else:
            why = f"bad channels {', '.join(quality.bad_channels)}" if quality.bad_channels else "input fault"
            state = worker.set_state("not_monitored", f"signal unusable ({why}); alarms suppressed")
        if state is not None:
            events.append(state)
        if self.on_scored is not None:
            self.on_scored(bed, item, result)
        if caught_up:
            log.info(kv("scoring_caught_up", bed=bed, stream_s=stream_s))
        for event in events:
            if event.kind in ("onset", "offset"):
                log.warning(kv(f"alarm_{event.kind}", bed=bed, onset_s=event.onset_s, offset_s=event.offset_s,
                               reason=event.reason))
            elif event.kind == "signal_quality":
                log.info(kv("signal_quality", bed=bed, reason=event.reason, detail=event.detail))
            self.publish(worker.stamp(event))

    def _finish(self, worker: BedWorker) -> None:
        """A finite source ended and its last window was scored: close the bed's alarm state."""
        with worker.lock:
            if worker.session is None:
                return
            worker.closed = True
            events = worker.session.finish()
        for event in events:
            self.publish(worker.stamp(event))
