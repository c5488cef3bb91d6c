"""Stream mode plumbing (``detector.mode: stream``) with a fake causal scorer: hops on the window-mode
grid, the same probabilities as window mode when the model forgets within 60 s, chunking invariance,
the state rebuilt after a gap / a quality fault / a skipped hop / a reconnection, and the scoring loop
batching the due hops of several beds in one step. The same behaviours with a real causal checkpoint:
``test_stream_mode_model.py``."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.metrics import IctalMetrics
from ictal.detector import FS_HZ
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import BedSession, run_recording
from ictal.streaming.bed_worker import BedWorker
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import BedConfig, DaemonConfig, LslSourceConfig, SchedulerConfig
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.edf import load_canonical
from ictal.streaming.pipeline import StreamHop, stream_mode_problems
from ictal.streaming.scoring import ScoringLoop
from ictal.streaming.sources.base import Source
from ictal.streaming.stream_step import HopTask, step_hops
from tests.streaming.daemon_helpers import wait_for
from tests.streaming.stream_doubles import FakeCausalScorer

RUNNING = FrontendConfig(normalisation="running")
THRESHOLDS = AlarmThresholds(tau_on=0.6, tau_off=0.5, min_duration_s=4.0, merge_gap_s=0.0, refractory_s=0.0)


@pytest.fixture(scope="module")
def eegmat(shared_data):
    return load_canonical(shared_data / "background" / "eegmat" / "Subject00_1.edf", RUNNING)


def _chunks(data: np.ndarray, fs: float, chunk: int, skip: tuple[int, int] | None = None):
    for start in range(0, data.shape[1], chunk):
        if skip is not None and skip[0] <= start < skip[1]:
            continue
        stop = min(start + chunk, data.shape[1])
        yield Chunk(data=np.ascontiguousarray(data[:, start:stop]), first_index=start, clock_s=start / fs, fs=fs)


def _drive(session: BedSession, chunks, scorer) -> list[StreamHop]:
    """Push chunks, score every hop in order with step_hops (one bed); returns the hops scored."""
    scored = []
    for chunk in chunks:
        hops, _ = session.push(chunk)
        for hop in hops:
            (out,), _ = step_hops(scorer, [HopTask(hop, session.stream_state, session.stream_state_end)])
            session.keep_stream_state(hop, out)
            session.score(hop, out.probs)
            scored.append(hop)
    return scored


def test_stream_mode_gives_window_mode_probabilities_when_the_model_forgets_within_a_window(eegmat):
    fake = FakeCausalScorer()
    kw = dict(min_history_s=10.0, chunk_samples=125)
    probe = run_recording(eegmat, fake, RUNNING, THRESHOLDS, 4.0, mode="window", **kw).probabilities
    median = float(np.nanmedian(probe))  # thresholds around the median: events on this background EEG
    thresholds = AlarmThresholds(tau_on=float(np.nanquantile(probe, 0.7)), tau_off=median, min_duration_s=0.5,
                                 merge_gap_s=0.0, refractory_s=0.0)
    fake.step_batches.clear()
    window = run_recording(eegmat, fake, RUNNING, thresholds, 4.0, mode="window", **kw)
    stream = run_recording(eegmat, fake, RUNNING, thresholds, 4.0, mode="stream", **kw)
    assert stream.first_index == window.first_index == 10 * FS_HZ - 4 * FS_HZ  # first hop's served span
    assert stream.probabilities.size == window.probabilities.size > 150 * FS_HZ
    assert np.array_equal(np.isnan(stream.probabilities), np.isnan(window.probabilities))
    ok = ~np.isnan(window.probabilities)
    assert np.abs(stream.probabilities[ok] - window.probabilities[ok]).max() < 1e-5
    assert len(window.events) > 0  # thresholds that give events: the comparison is not empty
    assert [(e.kind, e.onset_s) for e in stream.events] == [(e.kind, e.onset_s) for e in window.events]
    # the stream mode stepped hop by hop: one rebuild (the start: the 60 s warm-up window), then steps of one
    # hop (and the 2 s up to the first full window's end)
    steps = [n for _, n in fake.step_batches]
    assert steps.count(60 * FS_HZ) == 1 and set(steps) == {60 * FS_HZ, 4 * FS_HZ, 2 * FS_HZ}


def test_stream_mode_probabilities_do_not_depend_on_the_chunk_sizes(eegmat):
    fake = FakeCausalScorer()
    runs = [run_recording(eegmat, fake, RUNNING, THRESHOLDS, 4.0, chunk_samples=round(c * eegmat.fs), mode="stream")
            for c in (0.25, 0.37, 3.1)]
    for other in runs[1:]:
        assert other.first_index == runs[0].first_index
        assert np.array_equal(np.isnan(other.probabilities), np.isnan(runs[0].probabilities))
        ok = ~np.isnan(runs[0].probabilities)
        assert np.abs(other.probabilities[ok] - runs[0].probabilities[ok]).max() <= 1e-4


def test_a_gap_rebuilds_the_state_from_the_ring_then_steps_resume(eegmat):
    session = BedSession("bed", RUNNING, eegmat.fs, THRESHOLDS, hop_s=4.0, mode="stream", stream_multiple_samples=16)
    fs = int(eegmat.fs)
    hops = _drive(session, _chunks(eegmat.data, fs, 125, skip=(80 * fs, 81 * fs)), FakeCausalScorer())  # 1 s lost
    assert session.stream_rebuilds == {"start": 1, "gap": 1}
    cold = [h for h in hops if h.cold]
    assert [h.cold_reason for h in cold] == ["start", "gap"]
    assert cold[1].step_start <= 81 * FS_HZ < cold[1].end_index  # the hop whose new samples follow the gap
    assert cold[1].data.shape[1] == 60 * FS_HZ and cold[1].padding_samples == 0  # the last 60 s of the ring
    assert not cold[1].valid.all()  # which hold the gap
    after = hops[[h is cold[1] for h in hops].index(True) + 1:]
    assert after and not any(h.cold for h in after)  # warm steps again


def test_a_signal_quality_fault_rebuilds_the_state_after_it(eegmat):
    data = eegmat.data.copy()
    fs = int(eegmat.fs)
    data[:5, 70 * fs:72 * fs] = np.nan  # 5 channels of NaN for 2 s: more than max_bad_channels, input unusable
    session = BedSession("bed", RUNNING, eegmat.fs, THRESHOLDS, hop_s=4.0, mode="stream", stream_multiple_samples=16)
    hops = _drive(session, _chunks(data, fs, 125), FakeCausalScorer())
    assert session.stream_rebuilds.get("signal_quality", 0) >= 1
    first = next(h for h in hops if h.cold_reason == "signal_quality")
    previous = hops[[h is first for h in hops].index(True) - 1]
    assert not session.assess(previous).usable  # rebuilt because the hop before fed the state bad input
    assert previous.end_index > 70 * FS_HZ




def test_stream_mode_is_refused_with_the_reason():
    problems = stream_mode_problems("window_robust", 0, 4 * FS_HZ, 10 * FS_HZ, 256)
    assert len(problems) == 1 and "'running'" in problems[0]
    problems = stream_mode_problems("running", 0, 1000, 10 * FS_HZ, 256)
    assert len(problems) == 1 and "scheduler.hop_s is 1000 samples" in problems[0] and "multiples of 256" in problems[0]
    problems = stream_mode_problems("running", 128, 4 * FS_HZ, 10 * FS_HZ, 256)
    assert problems == ["the checkpoint's lookahead_s is 0.5 s; stream mode needs 0"]
    assert stream_mode_problems("running", 0, 4 * FS_HZ, 10 * FS_HZ, 256) == []
    with pytest.raises(ValueError, match="stream mode refused: the checkpoint's front-end normalisation"):
        BedSession("bed", FrontendConfig(), 256.0, THRESHOLDS, hop_s=4.0, mode="stream")
    assert DaemonConfig.model_validate({"detector": {"mode": "stream"}}).detector.mode == "stream"
    with pytest.raises(ValueError, match="mode"):
        DaemonConfig.model_validate({"detector": {"mode": "streaming"}})


# -- the scoring loop: beds batched in one step; reconnection --------------------------------------------


class NoiseSource(Source):
    """256 Hz noise in 0.25 s chunks; contiguous indices; ``drop_at``: reads at which the stream is lost
    for two reads (then back, indices continuing: only the reconnection tells the bed)."""

    def __init__(self, seed: int, drop_at: int | None = None, limit: int = 10**9, before_drop=None) -> None:
        self.rng = np.random.default_rng(seed)
        self.index = 0
        self.reads = 0
        self.drop_at = drop_at
        self.limit = limit
        self.before_drop = before_drop  # the loss waits (no chunk) until this says the hops so far are scored
        self.connected = True

    @property
    def fs(self) -> float:
        return 256.0

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, timeout_s: float) -> Chunk | None:
        if self.reads + 1 == self.drop_at and self.before_drop is not None and not self.before_drop():
            time.sleep(0.01)
            return None
        self.reads += 1
        time.sleep(0.001)
        if self.drop_at is not None and self.drop_at <= self.reads < self.drop_at + 2:
            self.connected = False
            return None
        self.connected = True
        if self.index >= self.limit:
            time.sleep(0.01)
            return None
        data = self.rng.normal(0.0, 20.0, (19, 64)).astype(np.float32)
        chunk = Chunk(data, self.index, self.index / 256.0, 256.0)
        self.index += 64
        return chunk


def _stream_worker(bed_id: str, source: Source, events: list, metrics: IctalMetrics) -> BedWorker:
    return BedWorker(BedConfig(bed_id=bed_id, source=LslSourceConfig(name=bed_id)), source, RUNNING,
                     SchedulerConfig(hop_s=2.0, min_history_s=4.0), THRESHOLDS,
                     lambda event, **_: events.append(event), metrics, queue_windows=8, mode="stream",
                     stream_multiple_samples=16)


def test_the_scoring_loop_steps_the_due_hops_of_all_beds_in_one_call_and_beds_leave_freely():
    metrics = IctalMetrics()
    daemon_metrics = DaemonMetrics(metrics.registry)
    events: list = []
    fake = FakeCausalScorer()
    workers = [_stream_worker(f"bed-{i}", NoiseSource(i), events, metrics) for i in range(3)]
    active = list(workers)
    loop = ScoringLoop(fake, lambda: active, lambda e: events.append(e), metrics, daemon_metrics, 16, mode="stream")
    for w in workers:
        w._make_session()
    now = time.monotonic()

    def feed(ws, seconds: float) -> None:
        for _ in range(int(seconds * 4)):
            for w in ws:
                w._handle(w.source.read(0.0), now, time.time())

    feed(workers, 6.0)  # 4 s warm-up + one 2 s hop: every bed has a cold hop and a warm one queued
    assert loop.iterate()
    assert fake.step_batches == [(3, 60 * FS_HZ), (3, 2 * FS_HZ)]  # round 1: 3 rebuilds, round 2: 3 steps
    assert all(w.session.stream_state_end == 6 * FS_HZ for w in workers)
    active.remove(workers[1])  # bed removed: it leaves the batch
    feed(workers, 2.0)
    fake.step_batches.clear()
    assert loop.iterate()
    assert fake.step_batches == [(2, 2 * FS_HZ)]
    assert workers[1].session.stream_state_end == 6 * FS_HZ  # untouched
    active.append(workers[1])  # back: its state ends at 6 s, its queued hop starts at 6 s: a plain step
    feed(workers, 2.0)
    fake.step_batches.clear()
    assert loop.iterate()
    assert sorted(fake.step_batches) == [(1, 2 * FS_HZ), (3, 2 * FS_HZ)]  # bed-1's two hops: 2 rounds
    assert all(w.session.stream_rebuilds == {"start": 1} for w in workers)
    scored = sum(metrics.registry.get_sample_value("ictal_windows_scored_total", {"bed": w.bed_id}) for w in workers)
    assert scored == 3 * 2 + 2 + 3 + 1  # hops counted as windows scored


def test_a_reconnection_rebuilds_the_bed_state_even_with_contiguous_samples():
    metrics = IctalMetrics()
    daemon_metrics = DaemonMetrics(metrics.registry)
    events: list = []
    fake = FakeCausalScorer()
    holder: list[BedWorker] = []
    source = NoiseSource(0, drop_at=60, limit=30 * 256,  # lost after 59 reads (14.75 s), back 2 reads later
                         before_drop=lambda: holder[0].session.stream_state_end == 14 * FS_HZ)
    worker = _stream_worker("bed-r", source, events, metrics)
    holder.append(worker)
    loop = ScoringLoop(fake, lambda: [worker], lambda e: events.append(e), metrics, daemon_metrics, 16, mode="stream")
    loop.start()
    worker.start()
    try:
        assert wait_for(lambda: worker.session is not None and worker.session.stream_state_end == 30 * FS_HZ, 30.0)
    finally:
        worker.stop()
        loop.stop(5.0)
    reasons = [e.reason for e in events if e.kind == "signal_quality"]
    assert "stream_lost" in reasons and reasons.count("stream_connected") >= 1, reasons
    assert worker.session.stream_rebuilds == {"start": 1, "reconnect": 1}
    assert loop.error is None


def test_a_skipped_hop_is_stepped_over_by_the_next_one_and_a_skipped_rebuild_moves_to_the_next():
    metrics = IctalMetrics()
    daemon_metrics = DaemonMetrics(metrics.registry)
    events: list = []
    fake = FakeCausalScorer()
    worker = BedWorker(BedConfig(bed_id="bed-s", source=LslSourceConfig(name="bed-s")), NoiseSource(3), RUNNING,
                       SchedulerConfig(hop_s=2.0, min_history_s=4.0), THRESHOLDS,
                       lambda event, **_: events.append(event), metrics, queue_windows=2, mode="stream",
                       stream_multiple_samples=16, daemon_metrics=daemon_metrics)
    loop = ScoringLoop(fake, lambda: [worker], lambda e: events.append(e), metrics, daemon_metrics, 16, mode="stream")
    worker._make_session()
    for _ in range(4 * 8):  # 8 s: hops ending at 4 (cold), 6, 8 s; the queue holds 2: the first is skipped
        worker._handle(worker.source.read(0.0), time.monotonic(), time.time())
    # the skipped hop was the rebuild: the next one rebuilds instead, for the same reason
    assert [p.window.cold_reason for p in worker.pending] == ["start", None]
    assert loop.iterate()
    assert fake.step_batches == [(1, 60 * FS_HZ), (1, 2 * FS_HZ)]  # rebuilt, then a plain step
    assert worker.session.stream_rebuilds == {"start": 1} and worker.session.stream_state_end == 8 * FS_HZ
    # 8 -> 14 s unscored: hops ending at 10, 12, 14 s; the one ending at 10 s is skipped (warm)
    for _ in range(4 * 6):
        worker._handle(worker.source.read(0.0), time.monotonic(), time.time())
    assert [(p.window.cold, p.window.step_start, p.window.end_index) for p in worker.pending] == [
        (False, 8 * FS_HZ, 12 * FS_HZ), (False, 12 * FS_HZ, 14 * FS_HZ)]  # 12 s steps over 8-12 s
    fake.step_batches.clear()
    assert loop.iterate()
    assert fake.step_batches == [(1, 4 * FS_HZ), (1, 2 * FS_HZ)]  # no rebuild: work for the new samples only
    assert worker.session.stream_rebuilds == {"start": 1} and worker.session.stream_state_end == 14 * FS_HZ
    assert worker.session.windows_discarded == 2


class ChunkListSource(Source):
    """A finite source replaying a list of chunks (gaps included)."""

    def __init__(self, chunks: list[Chunk], fs: float) -> None:
        self.chunks = list(chunks)
        self._fs = fs

    @property
    def fs(self) -> float:
        return self._fs

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, timeout_s: float) -> Chunk | None:
        return self.chunks.pop(0) if self.chunks else None

    @property
    def exhausted(self) -> bool:
        return not self.chunks


def test_across_a_gap_stream_mode_still_gives_window_mode_probabilities(eegmat):
    fs = int(eegmat.fs)
    chunks = list(_chunks(eegmat.data, fs, 125, skip=(80 * fs, 81 * fs)))  # 1 s lost: front-end reset at 81 s
    fake = FakeCausalScorer()
    window = run_recording(ChunkListSource(chunks, eegmat.fs), fake, RUNNING, THRESHOLDS, 4.0, mode="window")
    stream = run_recording(ChunkListSource(chunks, eegmat.fs), fake, RUNNING, THRESHOLDS, 4.0, mode="stream")
    assert np.array_equal(np.isnan(stream.probabilities), np.isnan(window.probabilities))
    assert np.isnan(window.probabilities[(80 * FS_HZ + 8) - window.first_index])  # no probability in the gap
    ok = ~np.isnan(window.probabilities)
    assert np.abs(stream.probabilities[ok] - window.probabilities[ok]).max() < 1e-5
    assert [e.reason for e in stream.quality_events] == [e.reason for e in window.quality_events]


def test_the_daemon_in_stream_mode_gives_each_bed_the_probabilities_of_its_recording_alone(tmp_path, shared_data):
    from ictal.streaming.daemon import Daemon
    from ictal.streaming.notify import SystemdNotifier
    from tests.streaming.daemon_helpers import daemon_config

    files = {f"bed-{i}": shared_data / f"background/eegmat/Subject{i:02d}_2.edf" for i in range(3)}  # 62 s each
    config = daemon_config(tmp_path, files, speed=20.0, queue_windows=16, max_batch=3)
    config = config.model_copy(update={"frontend": RUNNING,
                                       "detector": config.detector.model_copy(update={"mode": "stream"})})
    fake = FakeCausalScorer()
    daemon = Daemon(config, fake, notifier=SystemdNotifier(socket_path=""))
    scored: dict[str, list] = {}
    daemon.scoring.on_scored = lambda bed, item, result: scored.setdefault(bed, []).append(result)
    daemon.start()
    try:
        assert wait_for(lambda: all(w.closed for w in daemon.workers.values()), 60.0)
        workers = dict(daemon.workers)
    finally:
        daemon.shutdown()
    assert max(b for b, _ in fake.step_batches) >= 2, fake.step_batches  # beds met in one step
    for bed, path in files.items():
        session = workers[bed].session
        assert session.windows_discarded == 0 and session.stream_rebuilds == {"start": 1}
        alone = run_recording(path, FakeCausalScorer(), RUNNING, config.alarms.thresholds, 4.0, mode="stream")
        segments = [seg for r in scored[bed] for seg in r.segments]
        assert segments[0][0] == alone.first_index
        probs = np.concatenate([s for _, s in segments])
        np.testing.assert_allclose(probs, alone.probabilities[:probs.size], atol=1e-6)
        assert probs.size == alone.probabilities.size


def test_evaluate_runs_a_causal_scorer_in_stream_mode_by_default_and_window_mode_on_request(shared_data):
    from ictal.cli import build_parser
    from ictal.training.datasets import Recording
    from ictal.training.evaluate import DaemonPathRunner, natural_mode

    path = shared_data / "background/eegmat/Subject00_2.edf"
    fake = FakeCausalScorer()
    assert natural_mode(fake) == "stream" and natural_mode(object()) == "window"
    runner = DaemonPathRunner(fake, RUNNING, THRESHOLDS, 4.0)
    assert runner.mode == "stream"
    rec = Recording(recording_id="s00", path=path, patient="s00", split=None, annotations=[])
    out = runner(rec)
    fake.step_batches.clear()
    alone = run_recording(path, fake, RUNNING, THRESHOLDS, 4.0, mode="stream")
    assert fake.step_batches  # run_recording in stream mode steps the model
    ok = ~np.isnan(alone.probabilities)
    np.testing.assert_array_equal(out.probs[alone.first_index:][:ok.size][ok], alone.probabilities[ok])
    assert DaemonPathRunner(fake, RUNNING, THRESHOLDS, 4.0, mode="window").mode == "window"
    args = build_parser().parse_args(["evaluate", "--checkpoint", "c", "--data", "d", "--out", "o", "--mode", "window"])
    assert args.mode == "window"
    assert build_parser().parse_args(["evaluate", "--checkpoint", "c", "--data", "d", "--out", "o"]).mode is None
