"""The live feed: a real daemon replaying a real recording fills the hub from its own seams (no browser)."""

from __future__ import annotations

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.streaming.daemon import Daemon
from ictal.streaming.notify import SystemdNotifier
from ictal.streaming.view.config import ViewConfig
from ictal.streaming.view.live import start_live_view
from tests.streaming.daemon_helpers import LineLengthScorer, daemon_config, wait_for

EDF = "labelled/hms_1628180742.edf"


def test_the_hub_holds_the_daemons_eeg_probabilities_events_and_state(shared_data, tmp_path):
    # a low tau_on: line length on this seizure recording raises an alarm
    config = daemon_config(tmp_path, {"bed-1": shared_data / EDF}, speed=20.0, queue_windows=16,
                           thresholds=AlarmThresholds(tau_on=0.3, tau_off=0.2, min_duration_s=5.0))
    daemon = Daemon(config, LineLengthScorer(), notifier=SystemdNotifier(socket_path=""))
    scored = []
    daemon.scoring.on_scored = lambda bed, pending, result: scored.append(bed)  # kept by the view
    view = start_live_view(daemon, ViewConfig(port=0))
    daemon.start()
    try:
        assert wait_for(lambda: any(e["kind"] == "offset" for e in view.hub.snapshot("bed-1")["events"]), 30), \
            "the alarm's offset never reached the hub"
        assert wait_for(lambda: view.hub.snapshot("bed-1")["eeg_end_s"] > 89.0, 10)
        journal = [e for e in daemon.journal.since(0) if e.bed_id == "bed-1"]
        view.feed.poll()
        snap = view.hub.snapshot("bed-1")
    finally:
        daemon.shutdown()
        view.close()
    assert scored, "an observer set before the view was replaced instead of chained"
    assert [e["event_id"] for e in snap["events"]] == [str(e.event_id) for e in journal
                                                       if e.kind in ("onset", "offset", "signal_quality")]
    last_state = [e for e in journal if e.kind == "signal_quality" and e.reason in ("monitored", "not_monitored")][-1]
    assert snap["state"]["state"] == last_state.detail.split(":")[0]
    assert snap["eeg_start_s"] < 0.1 and len(snap["trend"]["t_s"]) > 70
    assert np.isfinite(snap["trend"]["p"]).all()
    assert snap["csa"]["t_s"][-1] > 80
