"""The ZeroMQ publisher and subscriber on loopback: live + catch-up, restarts, bad requests, CURVE."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time

import pytest
import zmq
import zmq.auth

from ictal.alarms.config import CurveConfig
from ictal.alarms.metrics import IctalMetrics
from ictal.alarms.publisher import (
    MAX_FRAME_BYTES,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_DEPTH,
    AlarmPublisher,
    PublisherError,
)
from ictal.alarms.schema import AlarmEvent
from ictal.alarms.subscriber import AlarmSubscriber, CatchupError, ClientCurve
from tests.alarms.helpers import onset, open_publisher, publisher_config


class Collector:
    """Runs a subscriber in a thread and collects what it yields."""

    def __init__(self, subscriber: AlarmSubscriber) -> None:
        self.subscriber = subscriber
        self.events: list[AlarmEvent] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for event in self.subscriber.iter_events(self.stop):
            self.events.append(event)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[AlarmEvent]:
        deadline = time.monotonic() + timeout_s
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.subscriber.close()


def test_no_lost_or_duplicated_events_across_a_publisher_restart(tmp_path):
    config = publisher_config(heartbeat_s=0.1)
    journal, publisher = open_publisher(tmp_path, config)
    for i in range(10):
        publisher.publish(onset("bed1", float(i)))  # before anyone listens: caught up from the journal
    notices: list[str] = []
    collector = Collector(AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, heartbeat_timeout_s=0.5,
                                          on_notice=notices.append))
    try:
        assert len(collector.wait_for(10)) == 10
        for i in range(10):
            publisher.publish(onset("bed2", float(i)))  # live
        collector.wait_for(20)
        publisher.close()
        time.sleep(1.0)  # silent daemon: the heartbeat is reported lost
        for i in range(5):
            journal.append(onset("bed3", float(i)))  # journaled while down, never sent live
        publisher = AlarmPublisher(config, journal)  # restart on the same endpoints
        for i in range(10):
            publisher.publish(onset("bed1", 100.0 + i))
        events = collector.wait_for(35)
        time.sleep(0.3)  # anything extra (a duplicate) would arrive now
    finally:
        collector.close()
        publisher.close()
    assert [e.journal_seq for e in collector.events] == list(range(1, 36))
    assert len({e.event_id for e in events}) == 35
    assert any("heartbeat lost" in n for n in notices)
    assert any("heartbeat back" in n for n in notices)
    stored = journal.since(0)
    assert stored == collector.events
    journal.close()


def test_late_subscriber_gets_events_after_since(tmp_path):
    config = publisher_config()
    journal, publisher = open_publisher(tmp_path, config)
    try:
        for i in range(12):
            publisher.publish(onset("bed1", float(i)))
        with AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, since=9) as sub:
            assert [e.journal_seq for e in sub.catch_up()] == [10, 11, 12]
            assert sub.catch_up() == []
    finally:
        publisher.close()
        journal.close()


def test_catchup_pages_through_more_than_one_batch(tmp_path):
    config = publisher_config()
    journal, _ = open_publisher(tmp_path, config)
    _.close()
    publisher = AlarmPublisher(config, journal, max_batch=7)
    try:
        journal.append_many([onset("b", float(i)) for i in range(30)])
        with AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint) as sub:
            assert [e.journal_seq for e in sub.catch_up()] == list(range(1, 31))
    finally:
        publisher.close()
        journal.close()


def test_heartbeats_carry_the_journal_head(tmp_path):
    config = publisher_config(heartbeat_s=0.05)
    journal, publisher = open_publisher(tmp_path, config)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat")
    sub.connect(config.pub_endpoint)
    try:
        publisher.publish(onset())
        publisher.publish(onset())
        heads = []
        deadline = time.monotonic() + 5
        while (not heads or heads[-1] < 2) and time.monotonic() < deadline:
            if sub.poll(100):
                topic, payload = sub.recv_multipart()
                assert topic == b"heartbeat"
                heads.append(AlarmEvent.model_validate_json(payload).journal_head)
        assert heads and heads[-1] == 2
    finally:
        sub.close(linger=0)
        ctx.term()
        publisher.close()
        journal.close()


@pytest.mark.parametrize("frames, message", [
    ([b"not json"], "not JSON"),
    ([b"[1, 2]"], "JSON object"),
    ([b'{"since": -1}'], "'since' must be an integer >= 0"),
    ([b'{"since": "0"}'], "'since' must be an integer >= 0"),
    ([b'{"since": 0, "limit": 0}'], "'limit' must be an integer from 1"),
    ([b'{"since": 0, "bed": "x"}'], "unknown request keys"),
    ([b'{"since": 0}', b"extra"], "one frame"),
])
def test_malformed_catchup_requests_get_an_error_reply_and_the_thread_lives(tmp_path, frames, message):
    config = publisher_config()
    metrics = IctalMetrics()
    journal, publisher = open_publisher(tmp_path, config, metrics=metrics)
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(config.catchup_endpoint)
    try:
        publisher.publish(onset())
        req.send_multipart(frames)
        assert req.poll(5000)
        reply = json.loads(req.recv())
        assert reply["ok"] is False and message in reply["error"]
        req.send(b'{"since": 0}')
        assert req.poll(5000)
        good = json.loads(req.recv())
        assert good["ok"] is True and good["journal_head"] == 1 and len(good["events"]) == 1
        assert metrics.registry.get_sample_value("ictal_catchup_requests_total", {"result": "error"}) == 1
    finally:
        req.close(linger=0)
        ctx.term()
        publisher.close()
        journal.close()


def test_journal_failure_still_publishes_live_and_raises_a_daemon_event(tmp_path):
    config = publisher_config()
    metrics = IctalMetrics()
    journal, publisher = open_publisher(tmp_path, config, metrics=metrics)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(config.pub_endpoint)
    try:
        time.sleep(0.3)  # let the SUB connect
        journal._conn.execute("PRAGMA query_only=ON")  # the journal now refuses writes (as a full disk would)
        event = onset("bed9")
        sent = publisher.publish(event)
        assert sent.journal_seq is None and sent.event_id == event.event_id
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            if sub.poll(100):
                topic, payload = sub.recv_multipart()
                if topic != b"heartbeat":
                    got.append((topic, AlarmEvent.model_validate_json(payload)))
        assert got[0][0] == b"alarm.bed9" and got[0][1].event_id == event.event_id
        assert got[1][0] == b"daemon" and got[1][1].reason == "journal_error"
        assert str(event.event_id) in got[1][1].detail
        assert metrics.registry.get_sample_value("ictal_journal_errors_total") == 1
    finally:
        sub.close(linger=0)
        ctx.term()
        publisher.close()
        journal.close()


def test_binding_a_busy_endpoint_names_it(tmp_path):
    config = publisher_config()
    journal, publisher = open_publisher(tmp_path, config)
    try:
        with pytest.raises(PublisherError, match=config.pub_endpoint.replace(".", r"\.")):
            AlarmPublisher(config, journal)
    finally:
        publisher.close()
        journal.close()


def test_curve_round_trip_and_unauthorized_client_is_refused(tmp_path):
    for name in ("server", "client", "intruder", "authorized"):
        (tmp_path / name).mkdir()
    server_public, server_secret = zmq.auth.create_certificates(tmp_path / "server", "server")
    client_public, client_secret = zmq.auth.create_certificates(tmp_path / "client", "client")
    _, intruder_secret = zmq.auth.create_certificates(tmp_path / "intruder", "intruder")
    shutil.copy(client_public, tmp_path / "authorized")  # the server knows the client's public key only
    curve = CurveConfig(server_secret_file=server_secret, authorized_clients_dir=tmp_path / "authorized")
    config = publisher_config(curve=curve)
    journal, publisher = open_publisher(tmp_path, config)
    good = None
    try:
        publisher.publish(onset("bed1"))
        good = Collector(AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint,
                                         curve=ClientCurve(server_public, client_secret)))
        assert [e.journal_seq for e in good.wait_for(1)] == [1]  # catch-up over CURVE
        time.sleep(0.3)
        publisher.publish(onset("bed1"))
        assert [e.journal_seq for e in good.wait_for(2)] == [1, 2]  # live over CURVE
        with AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, request_timeout_s=0.5,
                             curve=ClientCurve(server_public, intruder_secret)) as intruder:
            with pytest.raises(CatchupError, match="no catch-up reply"):
                intruder.catch_up()
        with AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, request_timeout_s=0.5) as plain:
            with pytest.raises(CatchupError, match="no catch-up reply"):
                plain.catch_up()
    finally:
        if good is not None:
            good.close()
        publisher.close()
        journal.close()


def test_curve_client_key_must_hold_a_secret(tmp_path):
    server_public, _ = zmq.auth.create_certificates(tmp_path, "server")
    with pytest.raises(ValueError, match="holds no secret key"):
        AlarmSubscriber("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", curve=ClientCurve(server_public, server_public))
    with pytest.raises(ValueError, match="cannot read CURVE certificate"):
        AlarmSubscriber("tcp://127.0.0.1:1", "tcp://127.0.0.1:2",
                        curve=ClientCurve(server_public, tmp_path / "missing.key_secret"))


@pytest.fixture()
def served(tmp_path):
    """A publisher on free loopback ports over a journal holding one onset, and a client context."""
    config = publisher_config()
    journal, publisher = open_publisher(tmp_path, config)
    publisher.publish(onset())
    ctx = zmq.Context()
    yield publisher, ctx
    ctx.destroy(linger=0)
    publisher.close()
    journal.close()


def _ask(ctx: zmq.Context, endpoint: str, frames: list[bytes], timeout_ms: int = 3000) -> dict | None:
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(endpoint)
    try:
        req.send_multipart(frames)
        return json.loads(req.recv()) if req.poll(timeout_ms) else None
    finally:
        req.close(linger=0)


def _assert_serving(publisher: AlarmPublisher, ctx: zmq.Context) -> None:
    reply = _ask(ctx, publisher.catchup_endpoint, [b'{"since": 0}'])
    assert reply is not None, "the catch-up endpoint no longer answers a good request"
    assert reply["ok"] is True and [e["journal_seq"] for e in reply["events"]] == [1]


@pytest.mark.parametrize("payload, message", [
    (json.dumps({"since": 2**63}).encode(), "'since' must be an integer >= 0 and <= 9223372036854775807"),
    (json.dumps({"since": 0, "limit": 2**63}).encode(), "'limit' must be an integer from 1"),
    (b"9" * 5000, f"request is 5000 bytes (expected at most {MAX_REQUEST_BYTES})"),
    (b"[" * 2000 + b"]" * 2000, f"nested more than {MAX_REQUEST_DEPTH} deep"),
    (b"[" * 4000, f"nested more than {MAX_REQUEST_DEPTH} deep"),
    (b'{"since": "' + b"[" * 3000 + b'"}', "'since' must be an integer"),  # brackets in a string are no nesting
    (b'{"since": 0, "x": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', "unknown request keys"),
    (b'{"since": \xff}', "not UTF-8"),
    (b'{"since": ' + b"1" * 4000 + b"}", "'since' must be an integer"),
])
def test_out_of_range_oversize_and_deep_requests_get_an_error_reply(served, payload, message):
    publisher, ctx = served
    reply = json.loads(publisher.handle_request(payload))
    assert reply["ok"] is False and message in reply["error"], reply
    assert len(reply["error"]) < 400, "an error reply quotes at most an excerpt of the request"
    reply = _ask(ctx, publisher.catchup_endpoint, [payload])
    assert reply is not None and reply["ok"] is False and message in reply["error"], reply
    _assert_serving(publisher, ctx)


def test_an_unexpected_failure_is_logged_answered_and_the_thread_keeps_serving(served, monkeypatch, caplog):
    publisher, ctx = served
    real = publisher.journal.snapshot
    calls = []

    def broken_once(seq, limit=None):
        calls.append(seq)
        if len(calls) == 1:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(seq, limit)

    monkeypatch.setattr(publisher.journal, "snapshot", broken_once)
    with caplog.at_level(logging.ERROR, logger="ictal.alarms"):
        reply = _ask(ctx, publisher.catchup_endpoint, [b'{"since": 0, "limit": 5}'])
    assert reply is not None and reply["ok"] is False
    assert "internal error" in reply["error"] and "OverflowError" in reply["error"]
    logged = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert logged and "since" in logged[0].getMessage() and logged[0].exc_info is not None
    _assert_serving(publisher, ctx)


def test_the_socket_loop_answers_even_if_handle_request_raises(served, monkeypatch, caplog):
    publisher, ctx = served
    real = publisher.handle_request
    monkeypatch.setattr(publisher, "handle_request", lambda payload: 1 / 0 if b"boom" in payload else real(payload))
    with caplog.at_level(logging.ERROR, logger="ictal.alarms"):
        reply = _ask(ctx, publisher.catchup_endpoint, [b'{"boom": 1}'])
    assert reply == {"ok": False, "error": "internal error while answering the request (logged by the daemon)"}
    assert any("boom" in r.getMessage() and r.exc_info for r in caplog.records)
    _assert_serving(publisher, ctx)


def test_a_frame_over_the_socket_limit_drops_that_peer_only(served):
    publisher, ctx = served
    assert _ask(ctx, publisher.catchup_endpoint, [b" " * (MAX_FRAME_BYTES + 1)], timeout_ms=500) is None
    _assert_serving(publisher, ctx)


def test_a_request_without_envelope_does_not_block_the_catchup_thread(served):
    publisher, ctx = served
    dealer = ctx.socket(zmq.DEALER)  # no empty delimiter: the REP socket drops it after poll said readable
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(publisher.catchup_endpoint)
    dealer.send(b'{"since": 0}')
    time.sleep(0.3)
    _assert_serving(publisher, ctx)
    dealer.send(b'{"since": 0}')
    time.sleep(0.3)
    dealer.close(linger=0)
    start = time.monotonic()  # a thread blocked in a receive would hold close() for its 5 s join timeout
    publisher.close()
    assert time.monotonic() - start < 2.0, "the catch-up thread was blocked in a receive"


def test_max_batch_out_of_range_is_refused_before_binding(tmp_path):
    config = publisher_config()
    journal, publisher = open_publisher(tmp_path, config)
    publisher.close()
    try:
        for bad in (0, 2**63 - 1, 1.5, True):
            with pytest.raises(ValueError, match=r"max_batch must be an integer from 1 to \d+ \(found"):
                AlarmPublisher(config, journal, max_batch=bad)
    finally:
        journal.close()
