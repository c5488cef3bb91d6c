"""BedWorker: a stream that comes back unusable is refused, reported once per distinct problem (counted at
every attempt) and served again once usable; source notices (clock jump back, rate mismatch) become quality events, metrics and suppression."""

from __future__ import annotations

import time

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.metrics import IctalMetrics
from ictal.detector.config import FrontendConfig
from ictal.detector.montage import MontageError
from ictal.streaming.bed_worker import BedWorker
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import BedConfig, LslSourceConfig, SchedulerConfig
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.sources.base import Source
from ictal.streaming.sources.lsl import SourceNotice
from tests.streaming.daemon_helpers import wait_for

FS = 200.0


class ScriptedSource(Source):
    """Noise chunks of 0.1 s; ``refuse`` reads raise a MontageError in between (a stream back without T5)."""

    def __init__(self, refuse_from: int, refuse_n: int) -> None:
        self.reads = 0
        self.index = 0
        self.refuse_from, self.refuse_n = refuse_from, refuse_n
        self.connected = True
        self.notices: list[SourceNotice] = []
        self.effective_fs: float | None = None
        self.rng = np.random.default_rng(0)

    @property
    def fs(self) -> float:
        return FS

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take_notices(self) -> list[SourceNotice]:
        out, self.notices = self.notices, []
        return out

    def read(self, timeout_s: float) -> Chunk | None:
        self.reads += 1
        time.sleep(0.002)
        if self.refuse_from <= self.reads < self.refuse_from + self.refuse_n:
            self.connected = False
            raise MontageError("LSL stream 'x': 1 of the 19 canonical channels missing: T5")
        self.connected = True
        n = int(FS / 10)
        data = self.rng.normal(0.0, 20.0, (19, n)).astype(np.float32)
        chunk = Chunk(data, self.index, self.index / FS, FS)
        self.index += n
        return chunk


def _worker(source: ScriptedSource, events: list):
    metrics = IctalMetrics()
    daemon_metrics = DaemonMetrics(metrics.registry)
    worker = BedWorker(BedConfig(bed_id="bed-w", source=LslSourceConfig(name="x")), source, FrontendConfig(),
                       SchedulerConfig(hop_s=2.0, min_history_s=4.0), AlarmThresholds(),
                       lambda event, **_: events.append(event), metrics, daemon_metrics=daemon_metrics)
    return worker, metrics


def _value(metrics: IctalMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name, {"bed": "bed-w"}) or 0.0


def test_a_refused_stream_is_reported_once_counted_at_every_attempt_and_served_again():
    events: list = []
    source = ScriptedSource(refuse_from=20, refuse_n=3)
    worker, metrics = _worker(source, events)
    worker.start()
    try:
        assert wait_for(lambda: source.reads > 40, 20.0)
    finally:
        assert worker.stop()
    reasons = [e.reason for e in events if e.kind == "signal_quality"]
    refusals = [e for e in events if e.reason == "source_error"]
    assert len(refusals) == 1 and "T5" in refusals[0].detail, reasons  # not repeated at every retry
    assert reasons.count("stream_connected") == 2 and "stream_lost" in reasons, reasons
    assert _value(metrics, "ictal_source_refusals_total") == 3.0
    states = [e.detail for e in events if e.reason == "not_monitored"]
    assert states[0].startswith("connecting") and any("stream refused" in d and "T5" in d for d in states), states
    assert worker.status().state == "connecting"  # served again (no scoring loop here: warming up)
    assert worker.alive is False and source.index > 30 * int(FS / 10)


def test_source_notices_are_events_metrics_and_a_rate_mismatch_suppresses_alarms():
    events: list = []
    source = ScriptedSource(refuse_from=10**9, refuse_n=0)
    worker, metrics = _worker(source, events)
    source.notices = [SourceNotice("clock_jump_back", "timestamps went back by 10.000 s", 5, 10.0),
                      SourceNotice("rate_mismatch", "announces 256 Hz, timestamps at 200.0 Hz", 20, 200.0)]
    source.effective_fs = 200.0
    worker.start()
    try:
        assert wait_for(lambda: worker.session is not None and worker.pending, 20.0)
    finally:
        assert worker.stop()
    reasons = [e.reason for e in events]
    assert "clock_jump_back" in reasons and "rate_mismatch" in reasons, reasons
    assert _value(metrics, "ictal_clock_jumps_back_total") == 1.0
    assert _value(metrics, "ictal_clock_jump_back_seconds_total") == 10.0
    assert _value(metrics, "ictal_stream_rate_mismatch") == 1.0
    assert _value(metrics, "ictal_stream_effective_rate_hz") == 200.0
    window = worker.pending[-1].window
    state = worker.session.assess(window)
    assert not state.usable and any("stream rate" in p for p in state.problems), state
