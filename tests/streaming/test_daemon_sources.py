"""A bed whose stream drops (and comes back after a gap) keeps the other beds running; it says so."""

from __future__ import annotations

import threading
import time

import numpy as np

from ictal.alarms.journal import Journal
from ictal.detector.config import FrontendConfig
from ictal.streaming.chunk import Chunk
from ictal.streaming.daemon import Daemon, make_source
from ictal.streaming.edf import load_canonical
from ictal.streaming.notify import SystemdNotifier
from ictal.streaming.sources.base import Source
from tests.streaming.daemon_helpers import LineLengthScorer, daemon_config, wait_for


class DroppingSource(Source):
    """Real EEG, fast; disconnected for ``down_s`` after ``drop_at_s`` of signal, then back after a gap."""

    def __init__(self, path, drop_at_s: float, down_s: float, lost_s: float) -> None:
        self.recording = load_canonical(path, FrontendConfig())
        self.drop_at = int(drop_at_s * self.recording.fs)
        self.lost = int(lost_s * self.recording.fs)
        self.down_s = down_s
        self.index = 0
        self.position = 0
        self.down_until: float | None = None
        self.dropped = False
        self.n = int(0.25 * self.recording.fs)
        self.go = threading.Event()  # set by the test once the other bed runs

    @property
    def fs(self) -> float:
        return self.recording.fs

    @property
    def connected(self) -> bool:
        return self.down_until is None or time.monotonic() >= self.down_until

    @property
    def exhausted(self) -> bool:
        return self.position + self.n > self.recording.data.shape[1]

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def read(self, timeout_s: float) -> Chunk | None:
        if not self.go.wait(timeout_s):
            return None
        if not self.dropped and self.index >= self.drop_at:
            self.dropped = True
            self.down_until = time.monotonic() + self.down_s
            self.index += self.lost
            self.position += self.lost
        if not self.connected or self.exhausted:
            time.sleep(min(timeout_s, 0.05))
            return None
        time.sleep(0.25 / 20)  # 20x real time
        data = np.ascontiguousarray(self.recording.data[:, self.position:self.position + self.n])
        gap = self.lost if self.dropped and self.index == self.drop_at + self.lost else 0
        chunk = Chunk(data=data, first_index=self.index, clock_s=self.index / self.fs, fs=self.fs, gap_samples=gap)
        self.index += self.n
        self.position += self.n
        return chunk


def test_a_dropped_stream_is_reported_and_the_other_beds_keep_being_scored(tmp_path, shared_data):
    eegmat = shared_data / "background" / "eegmat"
    beds = {"bed-steady": eegmat / "Subject09_1.edf", "bed-drops": eegmat / "Subject10_1.edf"}
    config = daemon_config(tmp_path, beds, speed=0.0, queue_windows=16)

    dropping_source = DroppingSource(beds["bed-drops"], drop_at_s=150.0, down_s=2.0, lost_s=3.0)

    def sources(bed, frontend):
        if bed.bed_id == "bed-drops":
            return dropping_source
        return make_source(bed.model_copy(update={"source": bed.source.model_copy(update={"speed": 10.0})}),
                           frontend)

    daemon = Daemon(config, LineLengthScorer(), notifier=SystemdNotifier(socket_path=""), source_factory=sources)
    steady_scored_while_down = []
    daemon.start()
    try:
        dropping, steady = daemon.workers["bed-drops"], daemon.workers["bed-steady"]
        assert wait_for(lambda: steady.session is not None, 30.0)
        dropping_source.go.set()
        assert wait_for(lambda: dropping_source.dropped and not dropping.connected, 30.0)
        before = steady.session.windows_scored
        assert wait_for(lambda: dropping.connected, 10.0)
        steady_scored_while_down.append(steady.session.windows_scored - before)
        assert wait_for(lambda: dropping.closed and steady.closed, 60.0)
        lost = daemon.metrics.samples_lost.labels(bed="bed-drops")._value.get()
        connected_gauge = daemon.metrics.stream_connected.labels(bed="bed-steady")._value.get()
    finally:
        daemon.shutdown()
    assert steady_scored_while_down[0] >= 1
    assert lost == 3 * 500
    assert connected_gauge == 0.0  # its EDF replay ended
    journal = Journal(config.alarms.journal)
    events = [(e.bed_id, e.reason) for e in journal.since(0) if e.kind == "signal_quality"]
    journal.close()
    drops = [reason for bed, reason in events if bed == "bed-drops"]
    assert drops.index("stream_lost") < drops.index("stream_connected", drops.index("stream_lost")) < drops.index("gap")
    assert ("bed-steady", "stream_lost") not in events
    assert ("bed-steady", "end_of_stream") in events and ("bed-drops", "end_of_stream") in events
    assert dropping.session.windows_scored >= 25 and steady.session.windows_scored >= 25
