"""The true time to alarm in the daemon: samples dated by the source's clock mapping, onsets stamped with
the onset's wall time, latency = publish wall time - onset wall time, in the event and in the metric."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds, JournalConfig
from ictal.alarms.journal import Journal
from ictal.alarms.metrics import IctalMetrics
from ictal.alarms.publisher import AlarmPublisher
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed_worker import BedWorker
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import BedConfig, LslSourceConfig, SchedulerConfig
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.scoring import ScoringLoop
from ictal.streaming.sources.base import Source
from ictal.streaming.sources.wall_clock import SampleWallClock
from tests.alarms.helpers import publisher_config
from tests.streaming.daemon_helpers import wait_for

FS = 200.0


def _chunk(first_index: int, clock_s: float, n: int = 20) -> Chunk:
    return Chunk(np.zeros((19, n), dtype=np.float32), first_index, clock_s, FS)


# -- SampleWallClock ----------------------------------------------------------------------------------------


def test_a_sample_is_dated_by_its_source_clock_plus_the_offset():
    clock = SampleWallClock()
    # chunk of stream 1.0-1.1 s; its first sample at source clock 500.0 s; UTC = clock + 1.7e9; received 0.3 s later
    clock.record(_chunk(200, 500.0), arrived_unix_s=1.7e9 + 500.4, offset_s=1.7e9)
    assert clock.unix_time_at(1.0) == pytest.approx(1.7e9 + 500.0, abs=1e-6)
    assert clock.unix_time_at(1.05) == pytest.approx(1.7e9 + 500.05, abs=1e-6)
    assert clock.utc_at(1.0) == datetime.fromtimestamp(1.7e9 + 500.0, timezone.utc)


def test_a_sample_is_never_dated_after_the_daemon_received_it():
    clock = SampleWallClock()
    # a replay sped up over LSL: timestamps in the stream's own time base, 30 s ahead of the wall clock
    clock.record(_chunk(0, 1030.0), arrived_unix_s=1.7e9 + 1000.0, offset_s=1.7e9)
    assert clock.unix_time_at(0.05) == 1.7e9 + 1000.0


def test_without_a_clock_mapping_a_sample_is_dated_by_its_arrival():
    clock = SampleWallClock()
    clock.record(_chunk(0, 3.0), arrived_unix_s=1.7e9, offset_s=None)
    clock.record(_chunk(20, 3.1), arrived_unix_s=1.7e9 + 0.5, offset_s=None)
    assert clock.unix_time_at(0.05) == 1.7e9 and clock.unix_time_at(0.12) == 1.7e9 + 0.5


def test_each_chunk_keeps_its_own_mapping_and_old_samples_are_forgotten():
    clock = SampleWallClock(horizon_s=10.0)
    clock.record(_chunk(0, 100.0), arrived_unix_s=2e9, offset_s=1e9)
    clock.record(_chunk(200, 50.0), arrived_unix_s=2e9, offset_s=1e9)  # the source clock jumped back 51 s
    assert clock.unix_time_at(0.0) == pytest.approx(1e9 + 100.0)
    assert clock.unix_time_at(1.0) == pytest.approx(1e9 + 50.0)
    assert clock.unix_time_at(-1.0) is None  # before the first recorded sample
    clock.record(_chunk(int(30 * FS), 80.0), arrived_unix_s=2e9, offset_s=1e9)
    assert clock.unix_time_at(0.0) is None and clock.unix_time_at(30.0) == pytest.approx(1e9 + 80.0)


# -- the daemon path: BedWorker -> ScoringLoop -> AlarmPublisher ---------------------------------------------


class DatedSource(Source):
    """Noise at 200 Hz read as fast as asked; the sample at stream time t is dated ``start - age_s + t``.

    Source clock: ``clock_s = index / fs`` (an arbitrary origin); its mapping to UTC
    (``clock_offset_s``) is ``start_unix - age_s``.
    """

    def __init__(self, seconds: float, age_s: float) -> None:
        self.n_total = int(seconds * FS)
        self.index = 0
        self.age_s = age_s
        self.start_unix = time.time()
        self.rng = np.random.default_rng(0)
        self.done = False

    @property
    def fs(self) -> float:
        return FS

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def clock_offset_s(self) -> float:
        return self.start_unix - self.age_s

    @property
    def exhausted(self) -> bool:
        return self.done

    def read(self, timeout_s: float) -> Chunk | None:
        if self.index >= self.n_total:
            self.done = True
            return None
        time.sleep(0.001)
        n = int(FS / 10)
        chunk = Chunk(self.rng.normal(0, 20, (19, n)).astype(np.float32), self.index, self.index / FS, FS)
        self.index += n
        return chunk

    def unix_of(self, stream_s: float) -> float:
        return self.clock_offset_s() + stream_s


class SeizureScorer:
    """Probability 0.99 everywhere: the first scored sample starts a seizure."""

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[2]), 0.99, dtype=np.float32)


def test_the_daemon_stamps_the_onset_wall_time_and_observes_the_true_latency(tmp_path):
    metrics = IctalMetrics()
    daemon_metrics = DaemonMetrics(metrics.registry)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(publisher_config(), journal, metrics=metrics)
    source = DatedSource(seconds=12.0, age_s=100.0)  # sample t acquired 100 - t s before the first read
    thresholds = AlarmThresholds(min_duration_s=1.0, merge_gap_s=0.0, refractory_s=0.0)
    worker = BedWorker(BedConfig(bed_id="bed-l", source=LslSourceConfig(name="x")), source, FrontendConfig(),
                       SchedulerConfig(hop_s=2.0, min_history_s=4.0), thresholds, publisher.publish, metrics,
                       daemon_metrics=daemon_metrics)
    loop = ScoringLoop(SeizureScorer(), lambda: [worker], publisher.publish, metrics, daemon_metrics, max_batch=4)
    worker.on_window = loop.wake
    try:
        worker.start()
        loop.start()
        assert wait_for(lambda: worker.closed, 30.0), "the bed's stream was not finished"
    finally:
        worker.stop()
        loop.stop(5.0)
        publisher.close()
    events = journal.since(0)
    journal.close()
    onset, = (e for e in events if e.kind == "onset")
    offset, = (e for e in events if e.kind == "offset")
    assert onset.onset_wall_time == datetime.fromtimestamp(source.unix_of(onset.onset_s), timezone.utc)
    assert onset.min_duration_wall_time == datetime.fromtimestamp(source.unix_of(onset.stream_time_s),
                                                                  timezone.utc)
    # published now; the onset sample was acquired 100 - onset_s s before the first read: the latency holds
    # that age, where a stream-time latency would say ~1 s (the minimum duration)
    assert onset.latency_s == (onset.wall_time - onset.onset_wall_time).total_seconds()
    age_s = source.start_unix - source.unix_of(onset.onset_s)
    assert age_s == pytest.approx(100.0 - onset.onset_s) and 80.0 < age_s
    assert age_s < onset.latency_s < age_s + 30.0
    assert onset.min_duration_delay_s == pytest.approx(1.0, abs=0.01)
    get = metrics.registry.get_sample_value
    assert get("ictal_alarm_latency_seconds_count", {"bed": "bed-l"}) == 1.0
    assert get("ictal_alarm_latency_seconds_sum", {"bed": "bed-l"}) == onset.latency_s
    # the offset (end of data) carries its onset's wall time and has no latency of its own
    assert offset.onset_s == onset.onset_s and offset.onset_wall_time == onset.onset_wall_time
    assert offset.latency_s is None and offset.min_duration_wall_time is None


# -- the sources' clock mappings ----------------------------------------------------------------------------


def test_each_source_names_its_clock_mapping(tmp_path):
    import pylsl

    from ictal.streaming.config import EdfSourceConfig
    from ictal.streaming.sources.edf_replay import EdfReplaySource
    from ictal.streaming.sources.lsl import LslSource

    lsl = LslSource(LslSourceConfig(name="x")).clock_offset_s()
    assert lsl == pytest.approx(time.time() - pylsl.local_clock(), abs=0.01)
    paced = EdfReplaySource(EdfSourceConfig(path=tmp_path / "x.edf", speed=4.0)).clock_offset_s()
    assert paced == pytest.approx(time.time() - time.monotonic(), abs=0.01)
    assert EdfReplaySource(EdfSourceConfig(path=tmp_path / "x.edf", speed=0.0)).clock_offset_s() is None
