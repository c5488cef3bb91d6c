"""A bed that is not monitored says so on the bus, with real LSL outlets and the real daemon process.

- a bed whose stream does not exist: its subscriber gets ``signal_quality`` / ``not_monitored`` naming
  the bed within ``resolve_timeout_s`` + 5 s of the start, and ``ictal_bed_monitored`` is 0;
- a bed whose amplifier goes away for 120 s (of its own clock: the outlet returns with its timestamps
  120 s on) is scored again without a restart: ``not_monitored`` at the loss, ``connecting`` at the
  return, ``monitored`` once scored, and a gap event of the outage's length.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.daemon_harness import (
    DaemonProcess,
    EegOutlet,
    LiveSubscriber,
    eeg_from,
    unique_name,
    wait_for,
)

SOURCE = "labelled/hms_1628180742.edf"
THRESHOLDS = {"tau_on": 0.8, "tau_off": 0.5, "min_duration_s": 2.0}
RESOLVE_TIMEOUT_S = 1.0  # DaemonProcess's LSL beds


def _states(subscriber: LiveSubscriber, bed: str) -> list[tuple[float, str]]:
    return [(t, e["detail"]) for t, e in subscriber.timed if e.get("bed_id") == bed
            and e["kind"] == "signal_quality" and e.get("reason") in ("monitored", "not_monitored")]


@pytest.fixture(scope="module")
def scenario(shared_data, tmp_path_factory):
    data, fs = eeg_from(shared_data / SOURCE)
    outlet = EegOutlet(unique_name("states"), data, fs).start()
    daemon = DaemonProcess(tmp_path_factory.mktemp("bed_states"),
                           {"bed-missing": unique_name("nowhere"), "bed-outage": outlet.name}, THRESHOLDS)
    subscriber = LiveSubscriber(daemon.pub_endpoint)
    time.sleep(0.5)  # the SUB socket connects before the daemon publishes anything
    record: dict = {}
    try:
        t0 = time.monotonic()
        daemon.start()
        assert wait_for(lambda: any("stream not found" in d for _, d in _states(subscriber, "bed-missing")),
                        RESOLVE_TIMEOUT_S + 15.0), daemon.log()[-3000:]
        record["missing"] = [(t - t0, d) for t, d in _states(subscriber, "bed-missing")]
        record["missing_gauge"] = daemon.metric("ictal_bed_monitored", bed="bed-missing")
        assert wait_for(lambda: daemon.metric("ictal_bed_monitored", bed="bed-outage") == 1.0, 60.0), \
            daemon.log()[-3000:]
        scored = daemon.metric("ictal_windows_scored_total", bed="bed-outage")
        outlet.die()
        assert wait_for(lambda: daemon.metric("ictal_bed_monitored", bed="bed-outage") == 0.0, 20.0)
        record["gauge_during"] = daemon.metric("ictal_bed_monitored", bed="bed-outage")
        outlet.timestamp_offset_s = 120.0  # the amplifier returns 120 s later on its own clock
        outlet.come_back()
        assert wait_for(lambda: daemon.metric("ictal_bed_monitored", bed="bed-outage") == 1.0, 60.0), \
            daemon.log()[-3000:]
        time.sleep(1.5)  # three heartbeats (0.5 s) while monitored again
        record["scored_again"] = daemon.metric("ictal_windows_scored_total", bed="bed-outage") - scored
        record["outage"] = [d for _, d in _states(subscriber, "bed-outage")]
        record["events"] = [e for _, e in subscriber.events if e.get("bed_id") == "bed-outage"]
        record["journal"] = daemon.catch_up(0)
        record["heartbeats"] = [e for _, e in subscriber.events if e["kind"] == "heartbeat"]
        record["alive"] = daemon.alive()
        record["n_starts"] = daemon.n_starts
    finally:
        daemon.stop()
        record["log"] = daemon.log()
        subscriber.close()
        outlet.close()
    return record


def test_a_bed_whose_stream_does_not_exist_is_not_monitored_within_resolve_timeout_plus_5_s(scenario):
    from datetime import datetime

    not_found = [(t, d) for t, d in scenario["missing"] if "stream not found" in d]
    assert len(not_found) == 1, scenario["missing"]  # received live, once: not at every resolve attempt
    journal = scenario["journal"]
    started = next(e for e in journal if e["kind"] == "daemon" and e["reason"] == "started")
    states = [e for e in journal if e.get("bed_id") == "bed-missing" and e.get("reason") == "not_monitored"]
    assert states[0]["detail"].startswith("connecting"), states  # journaled from the start, before READY
    found = next(e for e in states if "stream not found" in e["detail"])
    after_s = (datetime.fromisoformat(found["wall_time"]) - datetime.fromisoformat(started["wall_time"])).total_seconds()
    assert after_s <= RESOLVE_TIMEOUT_S + 5.0, after_s
    assert scenario["missing_gauge"] == 0.0
    last = scenario["heartbeats"][-1]["beds"]  # every heartbeat repeats each bed's state
    assert last["bed-missing"]["state"] == "not_monitored" and "not found" in last["bed-missing"]["reason"]
    seen = {hb["beds"]["bed-outage"]["state"] for hb in scenario["heartbeats"] if hb.get("beds")}
    assert {"monitored", "not_monitored", "connecting"} <= seen, seen  # the outage bed's states, as they came


def test_a_120_s_outage_and_return_is_scored_again_without_a_restart(scenario):
    assert scenario["alive"] and scenario["n_starts"] == 1
    assert scenario["gauge_during"] == 0.0
    assert scenario["scored_again"] >= 1
    kinds = [d.split(":")[0] for d in scenario["outage"]]
    # the state's changes (a further not_monitored, "stream not found; still looking", is the same state)
    kinds = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    lost = kinds.index("not_monitored", kinds.index("monitored"))
    assert kinds[lost:lost + 3] == ["not_monitored", "connecting", "monitored"], scenario["outage"]
    gaps = [e for e in scenario["events"] if e.get("reason") == "gap"]
    assert gaps, [e.get("reason") for e in scenario["events"]]
    lost_s = float(gaps[0]["detail"].split("(")[1].split(" s")[0])
    assert lost_s >= 120.0, gaps[0]["detail"]
    assert "bed_failed" not in scenario["log"]
