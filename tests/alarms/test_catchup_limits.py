"""The catch-up endpoint under greedy peers (issue 15, item 10): pipelined requests, idle connections.

Real sockets: a DEALER that pipelines requests and never reads, raw TCP connections that never speak.
Memory and descriptor figures are measured by ``ictal bench alarms --flood`` (no timed asserts here).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import datetime, timezone

import zmq

from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import Journal
from ictal.alarms.metrics import IctalMetrics
from ictal.alarms.publisher import MAX_REPLY_BYTES, AlarmPublisher
from ictal.alarms.schema import AlarmEvent, BedStatus
from ictal.commands.alarms import bed_changes, format_event
from tests.alarms.helpers import onset, publisher_config
from tests.alarms.test_journal_faults import Listener


def _ask(endpoint: str, request: dict, timeout_s: float = 5.0) -> dict | None:
    """One request from a fresh REQ socket, as `ictal alarms watch` sends it; None without a reply.

    The reply's size in bytes is added as ``"_bytes"``."""
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(endpoint)
    try:
        req.send(json.dumps(request).encode())
        if not req.poll(int(timeout_s * 1000)):
            return None
        payload = req.recv()
        return json.loads(payload) | {"_bytes": len(payload)}
    finally:
        req.close(linger=0)
        ctx.term()


def _big_journal(tmp_path, n: int) -> Journal:
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    journal.append_many([onset(f"bed{i % 8}", float(i)) for i in range(n)])
    return journal


def test_a_reply_is_capped_in_bytes_and_names_its_journal(tmp_path):
    journal = _big_journal(tmp_path, 6000)
    publisher = AlarmPublisher(publisher_config(), journal)
    try:
        reply = _ask(publisher.catchup_endpoint, {"since": 0})
    finally:
        publisher.close()
        journal.close()
    assert reply["ok"] and reply["more"] and 0 < len(reply["events"]) < 6000
    assert MAX_REPLY_BYTES - 2000 < reply["_bytes"] <= MAX_REPLY_BYTES + 200  # events up to the cap + header
    assert reply["journal_id"] == str(journal.journal_id)
    assert [e["journal_seq"] for e in reply["events"]] == list(range(1, len(reply["events"]) + 1))


def test_pipelined_requests_from_a_peer_that_never_reads_are_dropped_and_others_are_served(tmp_path):
    journal = _big_journal(tmp_path, 3000)
    metrics = IctalMetrics()
    publisher = AlarmPublisher(publisher_config(), journal, metrics=metrics)
    ctx = zmq.Context()
    greedy = ctx.socket(zmq.DEALER)
    greedy.setsockopt(zmq.LINGER, 0)
    greedy.setsockopt(zmq.RCVHWM, 1)
    greedy.setsockopt(zmq.RCVBUF, 4096)  # the greedy peer's kernel buffer stays small: it does not read
    greedy.connect(publisher.catchup_endpoint)
    try:
        for _ in range(400):
            greedy.send_multipart([b"", b'{"since": 0}'])
        deadline = time.monotonic() + 20.0
        while metrics.catchup_requests.labels(result="dropped")._value.get() < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        dropped = metrics.catchup_requests.labels(result="dropped")._value.get()
        polite = _ask(publisher.catchup_endpoint, {"since": 2990}, timeout_s=10.0)
    finally:
        greedy.close(linger=0)
        ctx.term()
        publisher.close()
        journal.close()
    assert dropped >= 100  # not queued in the daemon: replies beyond the one waiting are dropped
    assert polite is not None and [e["journal_seq"] for e in polite["events"]] == list(range(2991, 3001))


def _connections(port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        out.append(s)
    return out


def _closed_by_peer(sock: socket.socket, wait_s: float) -> bool:
    sock.settimeout(wait_s)
    try:
        while True:
            data = sock.recv(4096)  # a ZMTP greeting may come first
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_connections_beyond_max_connections_are_closed_and_the_endpoint_keeps_serving(tmp_path):
    journal = _big_journal(tmp_path, 10)
    metrics = IctalMetrics()
    config = publisher_config().model_copy(update={"max_connections": 5, "handshake_timeout_s": 60.0})
    publisher = AlarmPublisher(config, journal, metrics=metrics)
    port = int(publisher.catchup_endpoint.rpartition(":")[2])
    idle = _connections(port, 25)
    try:
        time.sleep(0.5)
        closed = [_closed_by_peer(s, 0.3) for s in idle]
        counts = publisher.connection_counts()
        for s in idle:
            s.close()
        time.sleep(0.3)
        reply = _ask(publisher.catchup_endpoint, {"since": 5})
    finally:
        publisher.close()
        journal.close()
    assert sum(closed) == 20 and not any(closed[:5])  # the first five stay, the rest are closed at once
    assert counts["catchup"] == 5
    assert metrics.connections_refused.labels(socket="catchup")._value.get() == 20
    assert reply is not None and [e["journal_seq"] for e in reply["events"]] == [6, 7, 8, 9, 10]


def test_a_connection_that_never_completes_the_handshake_is_closed(tmp_path):
    journal = _big_journal(tmp_path, 1)
    config = publisher_config().model_copy(update={"handshake_timeout_s": 0.5})
    publisher = AlarmPublisher(config, journal)
    port = int(publisher.pub_endpoint.rpartition(":")[2])
    idle, = _connections(port, 1)
    try:
        closed = _closed_by_peer(idle, 5.0)
    finally:
        idle.close()
        publisher.close()
        journal.close()
    assert closed


T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=timezone.utc)


def test_heartbeats_carry_the_journal_id_and_each_beds_state(tmp_path):
    journal = _big_journal(tmp_path, 2)
    states = {"icu1": BedStatus(state="monitored", since=T0),
              "icu2": BedStatus(state="not_monitored", reason="stream not found", since=T0)}
    publisher = AlarmPublisher(publisher_config(heartbeat_s=0.1), journal, bed_states=lambda: states)
    listener = Listener(publisher.pub_endpoint)
    try:
        events = listener.drain(lambda ev: any(e.kind == "heartbeat" for e in ev))
    finally:
        listener.close()
        publisher.close()
        journal.close()
    beat = next(e for e in events if e.kind == "heartbeat")
    assert beat.beds == states and beat.journal_id == journal.journal_id and beat.journal_head == 2


def test_a_failing_bed_states_callback_is_logged_and_heartbeats_go_on_without_beds(tmp_path, caplog):
    journal = _big_journal(tmp_path, 1)
    calls = []

    def broken():
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("worker table locked")
        return {"bad bed id": BedStatus(state="monitored")}  # invalid id: refused the same way

    publisher = AlarmPublisher(publisher_config(heartbeat_s=0.05), journal, bed_states=broken)
    listener = Listener(publisher.pub_endpoint)
    try:
        with caplog.at_level(logging.ERROR, logger="ictal.alarms"):
            beats = [e for e in listener.drain(lambda ev: sum(e.kind == "heartbeat" for e in ev) >= 4)
                     if e.kind == "heartbeat"]
    finally:
        listener.close()
        publisher.close()
        journal.close()
    assert len(beats) >= 4 and all(b.beds is None and b.journal_id == journal.journal_id for b in beats)
    messages = [r.getMessage() for r in caplog.records]
    assert any("bed_states() failed" in m for m in messages)
    assert any(r.exc_info and "worker table locked" in str(r.exc_info[1]) for r in caplog.records)


def test_watch_says_which_beds_changed_state_between_heartbeats():
    first = AlarmEvent(kind="heartbeat", wall_time=T0, beds={
        "icu1": BedStatus(state="monitored", since=T0),
        "icu2": BedStatus(state="connecting", since=T0)})
    second = AlarmEvent(kind="heartbeat", wall_time=T0, beds={
        "icu1": BedStatus(state="monitored", since=T0),
        "icu2": BedStatus(state="not_monitored", reason="no_data", since=T0),
        "icu3": BedStatus(state="monitored", since=T0)})
    third = AlarmEvent(kind="heartbeat", wall_time=T0, beds={"icu1": BedStatus(state="monitored", since=T0)})
    assert len(bed_changes(None, first)) == 2  # the first heartbeat: every bed
    lines = bed_changes(first.beds, second)
    assert lines == [
        "2026-03-01T08:00:00.000Z BED icu2 NOT MONITORED (no_data) since 2026-03-01T08:00:00.000Z: no alarm can "
        "be raised for this bed, was connecting",
        "2026-03-01T08:00:00.000Z BED icu3 MONITORED since 2026-03-01T08:00:00.000Z"]
    assert [line.split()[2:4] for line in bed_changes(second.beds, third)] == [["icu2", "REMOVED"],
                                                                               ["icu3", "REMOVED"]]
    assert bed_changes(third.beds, third) == []
    quiet = AlarmEvent(kind="signal_quality", bed_id="icu2", reason="not_monitored", detail="stream not found")
    assert "NOT MONITORED: no alarm can be raised for this bed" in format_event(quiet)
