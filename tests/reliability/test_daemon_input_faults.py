"""The daemon survives misbehaving inputs: real LSL amplifiers and a real daemon process on loopback.

One daemon (``stub_daemon.py``: the production daemon, constant-probability stand-in model) serves six
beds, each fed by its own LSL outlet streaming real EEG (``labelled/hms_1628180742.edf``, 200 Hz,
looped) in real time. After warm-up, each bed but the control gets one fault:

- ``bed-outage``: the amplifier dies and returns ``OUTAGE_S`` later (3 s here, 30 s in the slow test);
- ``bed-control``: nothing: it must not notice the others' faults;
- ``bed-artefacts``: a 2 s NaN/Inf burst on every channel, then a flat T5 and a clipped (saturated) O1;
- ``bed-channel-lost``: the amplifier restarts without T5, then again with all its channels;
- ``bed-jumps``: its timestamps jump 5 s forward, later 10 s backward;
- ``bed-wrong-rate``: announces 256 Hz but sends 200 samples a second.

The scenario runs once (module fixture); each test asserts one expected behaviour on what the
subscriber received, the journal (catch-up endpoint) and the metrics endpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ictal.detector import CANONICAL_CHANNELS
from tests.reliability.amplifier import ArtefactMutation
from tests.reliability.daemon_harness import (
    DaemonProcess,
    EegOutlet,
    LiveSubscriber,
    eeg_from,
    unique_name,
    wait_for,
)

SOURCE = "labelled/hms_1628180742.edf"
THRESHOLDS = {"tau_on": 0.8, "tau_off": 0.5, "min_duration_s": 2.0, "max_duration_s": 12.0, "merge_gap_s": 0.0,
              "refractory_s": 0.0}
BEDS = ("bed-outage", "bed-control", "bed-artefacts", "bed-channel-lost", "bed-jumps", "bed-wrong-rate")
WITHOUT_T5 = tuple(c for c in CANONICAL_CHANNELS if c != "T5")


@dataclass
class Record:
    """What one scenario run observed."""

    fs: float
    outage_s: float
    away_s: float = 0.0  # how long bed-outage's amplifier was really away (from the samples it never sent)
    events: list[tuple[str, dict]] = field(default_factory=list)
    journal: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    scored: dict[str, list[float]] = field(default_factory=dict)  # bed -> windows scored at checkpoints
    alive_at_end: bool = False
    log: str = ""

    def of(self, bed: str, kind: str | None = None, reason: str | None = None) -> list[dict]:
        return [e for _, e in self.events if e.get("bed_id") == bed and (kind is None or e["kind"] == kind)
                and (reason is None or e.get("reason") == reason)]

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def artefacts(fs: float, start: int | None) -> ArtefactMutation:
    """T5 flat from the start; from sample ``start`` O1 clipped at +-2500 uV and, 4 s later, a 2 s NaN/Inf
    burst on every channel (applied in the amplifier's process)."""
    return ArtefactMutation(fs, CANONICAL_CHANNELS.index("T5"), CANONICAL_CHANNELS.index("O1"), start)


def run_scenario(folder: Path, shared_data: Path, outage_s: float, settle_s: float) -> Record:
    data, fs = eeg_from(shared_data / SOURCE)
    names = {bed: unique_name(f"rel-{bed}") for bed in BEDS}
    outlets = {bed: EegOutlet(name, data, fs, announced_fs=256.0 if bed == "bed-wrong-rate" else None)
               for bed, name in names.items()}
    outlets["bed-artefacts"].mutate = artefacts(fs, None)
    for outlet in outlets.values():
        outlet.start()
    record = Record(fs=fs, outage_s=outage_s, scored={bed: [] for bed in BEDS})
    daemon = DaemonProcess(folder, names, THRESHOLDS)
    subscriber = LiveSubscriber(daemon.pub_endpoint)

    def checkpoint() -> None:
        metrics = daemon.metrics()
        for bed in BEDS:
            record.scored[bed].append(metrics.get(("ictal_windows_scored_total", (("bed", bed),)), 0.0))

    try:
        daemon.start()
        assert wait_for(lambda: all(daemon.metric("ictal_windows_scored_total", bed=b) >= 2 for b in BEDS), 60.0), \
            f"not every bed was scored twice:\n{daemon.log()[-3000:]}"
        checkpoint()  # 0: warm
        died_at = outlets["bed-outage"].die()
        outlets["bed-artefacts"].mutate = artefacts(fs, outlets["bed-artefacts"].index + int(fs))
        outlets["bed-channel-lost"].die()
        time.sleep(0.5)
        outlets["bed-channel-lost"].come_back(labels=WITHOUT_T5)
        outlets["bed-jumps"].timestamp_offset_s = 5.0
        time.sleep(outage_s)
        checkpoint()  # 1: end of the outage
        record.away_s = (outlets["bed-outage"].come_back() - died_at) / fs
        time.sleep(4.0)
        outlets["bed-jumps"].timestamp_offset_s = -5.0
        outlets["bed-channel-lost"].die()
        time.sleep(0.5)
        outlets["bed-channel-lost"].come_back(labels=CANONICAL_CHANNELS)
        wait_for(lambda: daemon.metric("ictal_windows_scored_total", bed="bed-outage") > record.scored[
            "bed-outage"][1] + 2, 30.0)
        time.sleep(settle_s)
        checkpoint()  # 2: end
        record.metrics = daemon.metrics()
        record.journal = daemon.catch_up(0)
        record.alive_at_end = daemon.alive()
    finally:
        record.events = list(subscriber.events)
        daemon.stop()
        record.log = daemon.log()
        subscriber.close()
        for outlet in outlets.values():
            outlet.close()
    return record


@pytest.fixture(scope="module")
def record(shared_data, tmp_path_factory) -> Record:
    return run_scenario(tmp_path_factory.mktemp("input_faults"), shared_data, outage_s=3.0, settle_s=8.0)


def test_the_daemon_survived_every_input_fault(record):
    assert record.alive_at_end, record.log[-3000:]
    for bed in BEDS:
        if bed != "bed-channel-lost":
            warm, _, end = record.scored[bed]
            assert end > warm, f"{bed} stopped being scored: {record.scored[bed]}"


def test_an_outage_is_a_stream_lost_then_a_gap_quality_event_with_its_length(record):
    reasons = [e["reason"] for e in record.of("bed-outage", "signal_quality")]
    assert "stream_lost" in reasons and "gap" in reasons, reasons
    assert reasons.index("stream_lost") < reasons.index("gap")
    assert reasons.index("stream_lost") < len(reasons) - 1 - reasons[::-1].index("stream_connected")
    lost_s = record.metric("ictal_samples_lost_total", bed="bed-outage") / record.fs
    gap_s = record.metric("ictal_stream_gap_seconds_total", bed="bed-outage")
    assert record.outage_s <= record.away_s < record.outage_s + 5.0, record.away_s
    assert record.away_s - 0.5 <= gap_s <= record.away_s + 2.0, (gap_s, record.away_s)
    assert lost_s == pytest.approx(gap_s, abs=0.01)
    assert record.metric("ictal_stream_connected", bed="bed-outage") == 1.0


def test_an_outage_closes_the_open_alarm_and_scoring_resumes_after_the_return(record):
    offsets = [e for e in record.of("bed-outage", "offset") if e.get("reason") == "stream_lost"]
    assert offsets, [(e["kind"], e.get("reason")) for e in record.of("bed-outage")]
    before, during, after = record.scored["bed-outage"]
    assert after > during + 1, record.scored["bed-outage"]


def test_the_control_bed_is_untouched_by_the_other_beds_faults(record):
    reasons = {e["reason"] for e in record.of("bed-control", "signal_quality")}
    assert reasons <= {"stream_connected", "not_monitored", "monitored"}, reasons
    states = [e["detail"] for e in record.of("bed-control", "signal_quality") if "monitored" in e["reason"]]
    assert states[-1].startswith("monitored") and sum(s.startswith("monitored") for s in states) == 1, states
    assert all(s.startswith("connecting") for s in states[:-1]), states  # never not monitored after it
    assert record.metric("ictal_samples_lost_total", bed="bed-control") == 0.0
    before, during, after = record.scored["bed-control"]
    assert during > before and after > during, record.scored["bed-control"]
    kinds = [e["kind"] for e in record.of("bed-control") if e["kind"] in ("onset", "offset")]
    assert kinds[:3] == ["onset", "offset", "onset"], kinds  # alarms re-announced every max_duration_s


def test_nan_inf_flat_and_saturated_leads_are_named_in_quality_events_and_metrics(record):
    events = record.of("bed-artefacts", "signal_quality")
    problems = " | ".join(p for e in events for p in e.get("problems", []))
    assert "T5: flat" in problems, problems
    assert "non-finite" in problems, problems
    assert "signal_unusable" in [e["reason"] for e in events], [e["reason"] for e in events]
    assert record.metric("ictal_signal_quality_ok", bed="bed-artefacts", channel="T5") == 0.0
    assert record.metric("ictal_signal_quality_ok", bed="bed-control", channel="T5") == 1.0


def test_a_clipped_lead_is_reported_as_saturated(record):
    problems = " | ".join(p for e in record.of("bed-artefacts", "signal_quality") for p in e.get("problems", []))
    assert "O1: saturated" in problems, problems


def test_no_onset_is_raised_while_a_bed_is_unusable(record):
    unusable = False
    for event in sorted(record.of("bed-artefacts"), key=lambda e: e.get("journal_seq") or 0):
        if event.get("reason") == "signal_unusable" and event["kind"] == "signal_quality":
            unusable = True
        elif event.get("reason") == "signal_usable":
            unusable = False
        elif event["kind"] == "onset":
            assert not unusable, f"onset {event} raised while the input was unusable"


def test_a_stream_that_returns_without_a_channel_is_refused_naming_it(record):
    events = record.of("bed-channel-lost", "signal_quality")
    named = [e for e in events if "T5" in str(e.get("detail")) and e["reason"] == "source_error"]
    assert named, [(e["reason"], e.get("detail")) for e in events]
    assert record.alive_at_end


def test_a_bed_whose_channel_returns_is_served_again(record):
    reasons = [e["reason"] for e in record.of("bed-channel-lost", "signal_quality")]
    assert reasons.count("stream_connected") >= 2, reasons
    warm, during, end = record.scored["bed-channel-lost"]
    assert end > during, record.scored["bed-channel-lost"]


def test_a_forward_timestamp_jump_is_a_gap_of_that_length(record):
    gaps = record.of("bed-jumps", "signal_quality", "gap")
    assert gaps, [e.get("reason") for e in record.of("bed-jumps")]
    lost_s = record.metric("ictal_samples_lost_total", bed="bed-jumps") / record.fs
    assert 4.5 <= lost_s <= 6.0, lost_s
    before, during, after = record.scored["bed-jumps"]
    assert after > during > before, record.scored["bed-jumps"]


def test_a_backward_timestamp_jump_is_reported_as_a_quality_event(record):
    reasons = [e["reason"] for e in record.of("bed-jumps", "signal_quality")]
    assert any(r not in ("stream_connected", "gap", "signal_unusable", "signal_usable") for r in reasons), reasons


def test_a_stream_whose_rate_differs_from_the_announced_one_is_reported(record):
    details = " | ".join(str(e.get("detail")) + " " + str(e.get("reason"))
                         for e in record.of("bed-wrong-rate", "signal_quality"))
    assert "rate" in details.lower(), details


def test_every_journaled_event_reached_the_live_subscriber_identically(record):
    live = {e["journal_seq"]: e for _, e in record.events if e.get("journal_seq") is not None}
    seqs = [e["journal_seq"] for e in record.journal]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "holes in the journal sequence"
    missing = [e for e in record.journal if e["journal_seq"] not in live]
    # the subscriber connects before the daemon starts; ZeroMQ may drop only what precedes the connection:
    # the start burst (the daemon's `started`, then each bed's first state, `connecting: starting`)
    burst = len(BEDS) + 1
    assert all(e["journal_seq"] < seqs[0] + burst for e in missing), f"journaled but never published live: {missing}"
    assert all(e["reason"] == "started" or e["detail"] == "connecting: starting" for e in missing), missing
    for event in record.journal:
        if event["journal_seq"] in live:
            assert live[event["journal_seq"]] == event


@pytest.mark.slow
def test_a_30_s_outage_is_survived_like_a_short_one(shared_data, tmp_path):
    rec = run_scenario(tmp_path, shared_data, outage_s=30.0, settle_s=70.0)  # > 60 s: the gap leaves the window
    assert rec.alive_at_end, rec.log[-3000:]
    gap_s = rec.metric("ictal_stream_gap_seconds_total", bed="bed-outage")
    assert rec.away_s - 0.5 <= gap_s <= rec.away_s + 2.0, (gap_s, rec.away_s)
    assert rec.metric("ictal_samples_lost_total", bed="bed-control") == 0.0
    reasons = [e["reason"] for e in rec.of("bed-outage", "signal_quality")]
    assert "monitored" in reasons[reasons.index("gap"):], reasons  # warm-up restarted after the gap, scored again
    before, during, after = rec.scored["bed-outage"]
    assert after > during + 3, rec.scored["bed-outage"]
