"""Capacity honesty: a daemon that cannot score its beds in real time says so at start and while running."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ictal.streaming.capacity import CapacityMonitor, measure_start
from ictal.streaming.daemon import Daemon
from ictal.streaming.notify import SystemdNotifier
from tests.streaming.daemon_helpers import daemon_config

EEGMAT = "background/eegmat/Subject{:02d}_1.edf"


class PerWindowScorer:
    """Takes ``seconds_per_window`` per window of a batch (a model that does not batch for free)."""

    max_batch = 8

    def __init__(self, seconds_per_window: float) -> None:
        self.seconds_per_window = seconds_per_window
        self.model_id, self.stack, self.backend, self.device = "slow", "none", "numpy", "cpu"

    def predict(self, windows: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds_per_window * windows.shape[0])
        return np.full((windows.shape[0], windows.shape[-1]), 0.1, dtype=np.float32)


def test_the_start_measurement_compares_the_beds_need_with_the_models_throughput():
    estimate, _ = measure_start(PerWindowScorer(0.02).predict, n_beds=4, hop_s=0.5, max_batch=8)
    assert estimate.need_windows_per_s == pytest.approx(8.0)
    assert 30.0 < estimate.windows_per_s <= 50.0  # 4 windows in >= 0.08 s
    assert estimate.load_ratio < 1.0 and estimate.beds_in_real_time >= 15


def test_the_running_check_reports_over_capacity_once_and_recovery_once():
    monitor = CapacityMonitor(span_s=10.0)
    t0 = monitor.started
    for k in range(10):  # busy 100 % of 10 s, 2 windows/s scored while 4 beds at hop 1 s need 4
        monitor.record_batch(1.0, 2, now=t0 + k + 1)
    transition, detail = monitor.judge(n_beds=4, hop_s=1.0, now=t0 + 10)
    assert transition == "over_capacity" and "load ratio 2.00" in detail, detail
    assert monitor.judge(n_beds=4, hop_s=1.0, now=t0 + 10.5)[0] is None  # said once
    for k in range(20):  # then 0.1 s per batch of 4: busy 10 %, no skips
        monitor.record_batch(0.1, 4, now=t0 + 11 + k)
        if k == 5:  # fine for 6 s only: not yet a whole span since it was last over
            assert monitor.judge(n_beds=4, hop_s=1.0, now=t0 + 17)[0] is None
    transition, detail = monitor.judge(n_beds=4, hop_s=1.0, now=t0 + 31)
    assert transition == "capacity_ok", detail
    monitor.record_skips(3, now=t0 + 32)
    assert monitor.judge(n_beds=4, hop_s=1.0, now=t0 + 32)[0] == "over_capacity"  # skipped windows: over


def test_capacity_is_not_said_to_be_fine_before_anything_was_scored():
    monitor = CapacityMonitor(span_s=10.0)
    monitor.mark_over(now=monitor.started)  # the start check found the beds too many
    assert monitor.judge(n_beds=64, hop_s=4.0, now=monitor.started + 30)[0] is None  # nothing scored yet
    assert monitor.over


def test_a_daemon_with_more_beds_than_it_can_score_says_so_before_ready(tmp_path, shared_data):
    files = {f"bed-{i}": shared_data / EEGMAT.format(i) for i in range(4)}
    config = daemon_config(tmp_path, files, speed=1.0)
    config = config.model_copy(update={"scheduler": config.scheduler.model_copy(update={"hop_s": 0.25})})
    daemon = Daemon(config, PerWindowScorer(0.1), notifier=SystemdNotifier(socket_path=""))
    daemon.start()  # 4 beds at hop 0.25 s need 16 windows/s; the model does 10/s
    try:
        events = daemon.journal.since(0)
        load = daemon.daemon_metrics.scoring_load._value.get()
    finally:
        daemon.shutdown()
    over = [e for e in events if e.kind == "daemon" and e.reason == "over_capacity"]
    started = next(i for i, e in enumerate(events) if e.reason == "started")
    first_bed = next(i for i, e in enumerate(events) if e.bed_id is not None)
    assert over and started < events.index(over[0]) < first_bed, [e.reason for e in events]  # before READY
    assert "4 bed(s) at hop 0.25 s need 16.00 windows/s" in over[0].detail, over[0].detail
    assert load == pytest.approx(1.6, rel=0.1), load


def test_a_daemon_that_keeps_up_says_nothing_about_capacity(tmp_path, shared_data):
    files = {"bed-0": shared_data / EEGMAT.format(0)}
    daemon = Daemon(daemon_config(tmp_path, files, speed=1.0), PerWindowScorer(0.001),
                    notifier=SystemdNotifier(socket_path=""))
    daemon.start()
    try:
        events = daemon.journal.since(0)
    finally:
        daemon.shutdown()
    assert not [e for e in events if e.reason == "over_capacity"]
    assert daemon.daemon_metrics.scoring_load._value.get() < 0.1


def test_a_daemon_without_beds_needs_nothing_and_says_so():
    estimate, _ = measure_start(PerWindowScorer(0.01).predict, n_beds=0, hop_s=4.0, max_batch=8)
    assert estimate.load_ratio == 0.0 and estimate.beds_in_real_time == 0
    assert "0 bed(s)" in estimate.describe()
