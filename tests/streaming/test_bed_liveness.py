"""No bed silently dead: a bed's monitored state is published, no exception ends a bed, an outage of any
length is scored again without a restart, and no window queued before a loss raises an alarm after it."""

from __future__ import annotations

import threading
import time

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.metrics import IctalMetrics
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed_worker import BedWorker, PendingWindow
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import BedConfig, LslSourceConfig, SchedulerConfig
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.scoring import ScoringLoop
from ictal.streaming.sources.base import Source
from tests.streaming.daemon_helpers import wait_for

FS = 256.0
CHUNK = 64  # 0.25 s


class OutageSource(Source):
    """Noise in 0.25 s chunks, delivered as fast as read; scripted faults.

    ``lose()`` makes the stream lost (``connected`` False, reads return None); ``come_back(gap_s)``
    reconnects with the sample index advanced by ``gap_s`` (what an LSL source reports after an outage);
    ``fail_next`` makes the next read raise that exception (a bug in a lower layer); ``not_found`` makes
    ``open`` raise ConnectionError (a stream that does not exist).
    """

    def __init__(self, *, not_found: bool = False, pace_s: float = 0.0) -> None:
        self.index = 0
        self.connected = False
        self.not_found = not_found
        self.fail_next: Exception | None = None
        self.pace_s = pace_s
        self.opens = 0
        self.reads = 0
        self.rng = np.random.default_rng(1)
        self._lock = threading.Lock()

    @property
    def fs(self) -> float:
        return FS

    def open(self) -> None:
        self.opens += 1
        if self.not_found:
            raise ConnectionError("no LSL stream named 'nowhere' of type 'EEG' found within 0.1 s")
        self.connected = True

    def close(self) -> None:
        self.connected = False

    def lose(self) -> None:
        with self._lock:
            self.connected = False

    def come_back(self, gap_s: float) -> None:
        with self._lock:
            self.index += int(gap_s * FS)
            self.connected = True

    def read(self, timeout_s: float) -> Chunk | None:
        self.reads += 1
        time.sleep(self.pace_s or 0.001)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        with self._lock:
            if not self.connected:
                return None
            data = self.rng.normal(0.0, 20.0, (19, CHUNK)).astype(np.float32)
            chunk = Chunk(data, self.index, self.index / FS, FS)
            self.index += CHUNK
            return chunk


class ConstantScorer:
    """Every sample of every window gets ``probability``."""

    max_batch = 8

    def __init__(self, probability: float) -> None:
        self.probability = probability

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[-1]), self.probability, dtype=np.float32)


class Bed:
    """One BedWorker, optionally with a scoring loop, recording every event published."""

    def __init__(self, source: OutageSource, *, probability: float | None = None, no_data_s: float = 5.0) -> None:
        self.events: list = []
        self.metrics = IctalMetrics()
        self.daemon_metrics = DaemonMetrics(self.metrics.registry)
        thresholds = AlarmThresholds(tau_on=0.8, tau_off=0.5, min_duration_s=2.0, max_duration_s=3600.0)
        self.worker = BedWorker(
            BedConfig(bed_id="bed-l", source=LslSourceConfig(name="x")), source, FrontendConfig(),
            SchedulerConfig(hop_s=2.0, min_history_s=4.0), thresholds, self.events.append, self.metrics,
            daemon_metrics=self.daemon_metrics, no_data_s=no_data_s)
        self.scoring = None
        if probability is not None:
            self.scoring = ScoringLoop(ConstantScorer(probability), lambda: [self.worker], self.events.append,
                                       self.metrics, self.daemon_metrics, max_batch=8)
            self.worker.on_window = self.scoring.wake

    def start(self) -> Bed:
        if self.scoring is not None:
            self.scoring.start()
        self.worker.start()
        return self

    def stop(self) -> None:
        assert self.worker.stop(timeout_s=5.0)
        if self.scoring is not None:
            assert self.scoring.stop(5.0)

    def states(self) -> list[str]:
        return [e.detail for e in list(self.events) if e.reason in ("monitored", "not_monitored")]

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, {"bed": "bed-l", **labels})


def test_a_bed_says_connecting_at_once_then_monitored_once_scored_with_usable_input():
    bed = Bed(OutageSource(pace_s=0.002), probability=0.1)
    bed.start()
    try:
        assert bed.states() and bed.states()[0].startswith("connecting"), bed.states()
        assert bed.gauge("ictal_bed_state", state="connecting") == 1.0
        assert wait_for(lambda: bed.worker.status().state == "monitored", 20.0), bed.states()
    finally:
        bed.stop()
    assert bed.gauge("ictal_bed_monitored") == 1.0
    assert bed.gauge("ictal_bed_state", state="monitored") == 1.0
    assert bed.gauge("ictal_bed_state", state="not_monitored") == 0.0
    monitored = [e for e in bed.events if e.reason == "monitored"]
    assert len(monitored) == 1 and monitored[0].kind == "signal_quality" and monitored[0].bed_id == "bed-l"


def test_a_stream_that_is_never_found_makes_the_bed_not_monitored_and_it_keeps_looking():
    source = OutageSource(not_found=True)
    bed = Bed(source)
    t0 = time.monotonic()
    bed.start()
    try:
        assert wait_for(lambda: bed.worker.status().state == "not_monitored", 5.0), bed.states()
        waited = time.monotonic() - t0
        assert waited < 2.0, waited  # the first failed attempt, not a later retry
        assert "stream not found" in bed.worker.status().reason
        assert bed.gauge("ictal_bed_monitored") == 0.0 and bed.gauge("ictal_signal_usable") == 0.0
        source.not_found = False  # the amplifier is plugged in: found at the next attempt
        assert wait_for(lambda: bed.worker.connected, 12.0)
    finally:
        bed.stop()
    assert source.opens >= 2
    not_found = [d for d in bed.states() if "stream not found" in d]
    assert len(not_found) == 1, bed.states()  # said once, not at every attempt


def test_an_exception_in_a_bed_is_reported_and_the_bed_comes_back_by_itself():
    source = OutageSource(pace_s=0.002)
    bed = Bed(source, probability=0.1).start()
    try:
        assert wait_for(lambda: bed.worker.status().state == "monitored", 20.0), bed.states()
        source.fail_next = IndexError("RingBuffer.read [5120, 20480) outside the samples held [5183, 35903)")
        assert wait_for(lambda: bed.worker.n_failures == 1, 5.0)
        assert wait_for(lambda: bed.worker.status().state == "not_monitored"
                        or bed.worker.status().state == "connecting", 5.0)
        assert wait_for(lambda: bed.worker.status().state == "monitored", 20.0), bed.states()
    finally:
        bed.stop()
    failed = [e for e in bed.events if e.reason == "source_error" and "bed failed" in (e.detail or "")]
    assert len(failed) == 1 and "IndexError" in failed[0].detail
    assert any("bed failed" in d for d in bed.states()), bed.states()
    assert bed.gauge("ictal_bed_failures_total") == 1.0
    assert bed.worker.alive is False and source.opens == 2  # reopened once, stopped by the test only


def test_a_120_s_outage_and_return_is_scored_again_without_a_restart():
    source = OutageSource(pace_s=0.002)
    bed = Bed(source, probability=0.1).start()
    try:
        assert wait_for(lambda: bed.worker.status().state == "monitored", 20.0)
        assert wait_for(lambda: source.index > 80 * FS, 30.0)  # past the first full 60 s window
        source.lose()
        assert wait_for(lambda: bed.worker.status().state == "not_monitored", 5.0), bed.states()
        scored_before = bed.scoring.windows_scored
        source.come_back(gap_s=120.0)
        assert wait_for(lambda: bed.worker.status().state == "monitored", 20.0), bed.states()
        assert wait_for(lambda: bed.scoring.windows_scored > scored_before + 5, 20.0)
    finally:
        bed.stop()
    assert bed.worker.n_failures == 0 and bed.scoring.error is None
    reasons = [e.reason for e in bed.events if e.kind == "signal_quality"]
    assert "stream_lost" in reasons and "gap" in reasons, reasons
    gap = next(e for e in bed.events if e.reason == "gap")
    assert "30720 samples" in gap.detail, gap.detail  # the 120 s are accounted as lost samples
    states = bed.states()
    assert [s.split(":")[0] for s in states][-3:] == ["not_monitored", "connecting", "monitored"], states


def test_windows_queued_before_a_loss_are_not_scored_after_it():
    source = OutageSource(pace_s=0.001)
    bed = Bed(source)  # no scoring loop yet: windows pile up in the queue
    scoring = ScoringLoop(ConstantScorer(0.95), lambda: [bed.worker], bed.events.append, bed.metrics,
                          bed.daemon_metrics, max_batch=8)
    bed.worker.start()
    try:
        assert wait_for(lambda: len(bed.worker.pending) >= 2, 20.0)
        source.lose()
        assert wait_for(lambda: bed.worker.status().state == "not_monitored", 5.0)
    finally:
        assert bed.worker.stop(timeout_s=5.0)
    queued = len(bed.worker.pending)
    assert queued == 0  # dropped at the loss
    # a window already taken by the scoring loop when the stream was lost: scored late, it is dropped too
    stale = bed.worker.generation - 1
    bed.worker.pending.append(PendingWindow(_a_window(bed.worker), time.monotonic(), stale))
    assert scoring.iterate()
    assert scoring.windows_dropped == 1 and scoring.windows_scored == 0
    assert not [e for e in bed.events if e.kind == "onset"], "an onset raised from a window queued before the loss"


def _a_window(worker: BedWorker):
    """A real window of this bed's session (pushed through a fresh pipeline of the same config)."""
    from ictal.streaming.bed import BedSession

    session = BedSession("bed-l", FrontendConfig(), FS, AlarmThresholds(), hop_s=2.0, min_history_s=4.0)
    rng = np.random.default_rng(2)
    windows = []
    for k in range(0, int(10 * FS), CHUNK):
        data = rng.normal(0.0, 20.0, (19, CHUNK)).astype(np.float32)
        windows += session.push(Chunk(data, k, k / FS, FS))[0]
    return windows[-1]
