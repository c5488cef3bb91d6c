"""The daemon in-process: batching across beds, skipping to the newest window, reload, watchdog, signals."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.journal import Journal
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import run_recording
from ictal.streaming.config import BedConfig, EdfSourceConfig
from ictal.streaming.daemon import Daemon, DaemonError, frontend_differences, load_detector
from ictal.streaming.notify import SystemdNotifier
from tests.streaming.daemon_helpers import (
    BlockingScorer,
    LineLengthScorer,
    NotifySocket,
    daemon_config,
    wait_for,
)

EEGMAT = "background/eegmat/Subject{:02d}_1.edf"


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def _collect(daemon: Daemon) -> dict[str, list]:
    scored: dict[str, list] = {}
    daemon.scoring.on_scored = lambda bed, item, result: scored.setdefault(bed, []).append(result)
    return scored


def _stitched(results) -> tuple[int, np.ndarray]:
    segments = [seg for r in results for seg in r.segments]
    first = segments[0][0]
    assert all(a[0] + a[1].size == b[0] for a, b in zip(segments, segments[1:], strict=False)), "holes"
    return first, np.concatenate([s for _, s in segments])


def test_beds_scored_in_batches_get_the_probabilities_of_one_bed_at_a_time(tmp_path, shared_data):
    files = {f"bed-{i}": shared_data / EEGMAT.format(i) for i in range(3)}
    config = daemon_config(tmp_path, files, speed=20.0, queue_windows=16, max_batch=3)
    scorer = LineLengthScorer(delay_s=0.1)  # slow enough that the three beds' windows meet in batches
    daemon = Daemon(config, scorer, notifier=SystemdNotifier(socket_path=""))
    scored = _collect(daemon)
    daemon.start()
    try:
        assert wait_for(lambda: all(w.closed for w in daemon.workers.values()), 60.0)
        skipped = sum(w.session.windows_discarded for w in daemon.workers.values())
    finally:
        daemon.shutdown()
    assert skipped == 0
    assert max(scorer.batch_sizes) >= 2, scorer.batch_sizes
    for bed, path in files.items():
        alone = run_recording(path, LineLengthScorer(), FrontendConfig(), AlarmThresholds(), 4.0, max_batch=1)
        first, probs = _stitched(scored[bed])
        assert first == alone.first_index
        np.testing.assert_array_equal(probs, alone.probabilities)


def test_scoring_behind_skips_to_the_newest_window_and_says_so(tmp_path, shared_data):
    config = daemon_config(tmp_path, {"bed-slow": shared_data / EEGMAT.format(3)}, speed=0.0, queue_windows=2)
    daemon = Daemon(config, LineLengthScorer(delay_s=0.4), notifier=SystemdNotifier(socket_path=""))
    scored = _collect(daemon)
    worst_queue = []
    daemon.start()
    try:
        worker = daemon.workers["bed-slow"]
        assert wait_for(lambda: worker.closed or (worst_queue.append(len(worker.pending)) and False), 60.0)
    finally:
        daemon.shutdown()
    session = worker.session
    assert session.windows_discarded > 0
    # 182 s at hop 4: padded warm-up windows ending 10, 14, ..., 58 s, then full windows 60 ... 180 s
    assert session.windows_scored + session.windows_discarded == 13 + 31
    assert max(worst_queue) <= 2
    skipped = daemon.daemon_metrics.windows_skipped.labels(bed="bed-slow")._value.get()
    assert skipped == session.windows_discarded
    journal = Journal(config.alarms.journal)
    reasons = [e.reason for e in journal.since(0) if e.kind == "signal_quality"]
    journal.close()
    assert "scoring_behind" in reasons
    # each scored window also covers the hops of the windows skipped just before it (within its 60 s);
    # without that the windows scored would cover 4 s each, less the 2 s the 58 s and 60 s spans share
    covered = sum(seg.size for r in scored["bed-slow"] for _, seg in r.segments)
    assert covered > 256 * (4 * session.windows_scored - 2)


def test_reload_adds_and_removes_beds_and_applies_thresholds_without_touching_the_others(tmp_path, shared_data):
    beds = {"bed-keep": shared_data / EEGMAT.format(4), "bed-drop": shared_data / EEGMAT.format(5)}
    config = daemon_config(tmp_path, beds, speed=4.0)
    daemon = Daemon(config, LineLengthScorer(), notifier=SystemdNotifier(socket_path=""))
    daemon.start()
    try:
        kept = daemon.workers["bed-keep"]
        new_thresholds = AlarmThresholds(tau_on=0.9, tau_off=0.6)
        new = config.model_copy(update={
            "beds": [config.beds[0], BedConfig(bed_id="bed-new", source=EdfSourceConfig(
                path=shared_data / EEGMAT.format(6), speed=4.0))],
            "alarms": config.alarms.model_copy(update={"thresholds": new_thresholds}),
        })
        assert daemon.reload(new)
        assert set(daemon.workers) == {"bed-keep", "bed-new"}
        assert daemon.workers["bed-keep"] is kept and kept.alive
        assert kept.thresholds == new_thresholds
        assert wait_for(lambda: daemon.workers["bed-new"].connected, 10.0)
        assert daemon.metrics.tau_on.labels(bed="bed-keep")._value.get() == 0.9
        assert daemon.daemon_metrics.beds._value.get() == 2
    finally:
        daemon.shutdown()
    journal = Journal(config.alarms.journal)
    daemon_events = [e for e in journal.since(0) if e.kind == "daemon"]
    journal.close()
    assert [e.reason for e in daemon_events] == ["started", "reloaded", "stopped"]
    assert "bed-new" in daemon_events[1].detail and "bed-drop" in daemon_events[1].detail


def test_watchdog_keepalives_stop_while_the_scoring_loop_hangs(tmp_path, shared_data, notify):
    config = daemon_config(tmp_path, {"bed-h": shared_data / EEGMAT.format(7)}, speed=0.0)
    scorer = BlockingScorer()
    notifier = SystemdNotifier(socket_path=str(notify.path), watchdog_usec=300_000)
    scorer.hang.set()
    daemon = Daemon(config, scorer, notifier=notifier)
    daemon.start()
    try:
        assert wait_for(lambda: notify.lines(), 5.0)
        assert notify.lines()[0] == "READY=1"
        assert scorer.entered.wait(30.0)  # the first window is being scored, and hangs
        hung_at = time.monotonic()
        time.sleep(1.5)
        during = [t for t in notify.times_of("WATCHDOG=1") if t > hung_at + 0.35]
        scorer.hang.clear()
        scorer.release.set()
        released = time.monotonic()
        assert wait_for(lambda: any(t > released for t in notify.times_of("WATCHDOG=1")), 3.0)
    finally:
        daemon.shutdown()
    assert during == []
    assert "STOPPING=1" in notify.lines()


def test_signals_reload_then_stop_the_daemon(tmp_path, shared_data, notify):
    config = daemon_config(tmp_path, {"bed-s": shared_data / EEGMAT.format(8)}, speed=4.0)
    path = tmp_path / "daemon.yaml"
    import yaml

    data = config.model_dump(mode="json")
    data["alarms"]["thresholds"]["tau_on"] = 0.95
    path.write_text(yaml.safe_dump(data))
    daemon = Daemon(config, LineLengthScorer(), config_path=path,
                    notifier=SystemdNotifier(socket_path=str(notify.path)))

    def send_signals() -> None:
        wait_for(lambda: "READY=1" in notify.lines(), 10.0)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: daemon.thresholds.tau_on == 0.95, 5.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_signals, daemon=True).start()
    t0 = time.monotonic()
    code = daemon.run()  # main thread: it installs the handlers
    assert code == 0
    assert time.monotonic() - t0 < 20.0
    assert daemon.thresholds.tau_on == 0.95
    lines = notify.lines()
    assert lines.index("RELOADING=1") > lines.index("READY=1")
    assert "STOPPING=1" in lines


def test_checkpoint_with_another_frontend_is_refused(tmp_path):
    trained = FrontendConfig(notch_hz=50.0)
    assert frontend_differences(trained, FrontendConfig()) == ["notch_hz: checkpoint 50.0, daemon config 60.0"]
    config = daemon_config(tmp_path, {})
    with pytest.raises(DaemonError, match="does not exist"):
        load_detector(config)
