"""Fuzzing the journal catch-up endpoint (``alarms.publisher`` REP socket) with hostile requests.

Contract (module docstring of alarms/publisher.py): any request gets a JSON reply, ``{"ok": false,
"error": ...}`` when malformed, and the catch-up thread never dies: the next good request is served.

Bugs found (all fixed in alarms/publisher.py; the tests below that found them now pass):
- ``{"since": 9223372036854775808}`` (>= 2**63) raises OverflowError from sqlite inside
  ``handle_request`` (only JournalError is caught), which ends the catch-up thread: every later
  catch-up request of every subscriber times out until the daemon restarts;
- a JSON number of more than 4300 digits raises ValueError from ``json.loads`` (only
  JSONDecodeError/UnicodeDecodeError are caught), with the same effect;
- JSON nested 10000 deep raises RecursionError from ``json.loads``: same effect;
- random bytes sent on a raw TCP connection to the catch-up port are parsed as legacy ZMTP 1.0
  frames; the REP socket then blocks the thread in ``recv_multipart`` forever (the thread is alive,
  no request is ever answered again). Setting ``zmq.ZAP_DOMAIN`` on the sockets makes libzmq refuse
  ZMTP 1.0 peers (checked by hand: 60 garbage connections, then a good request is answered).
"""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ictal.alarms.config import JournalConfig, PublisherConfig
from ictal.alarms.journal import Journal
from ictal.alarms.publisher import AlarmPublisher
from tests.alarms.helpers import onset
from tests.reliability.helpers import free_port

N_EVENTS = 7
REPLY_TIMEOUT_MS = 1500
"""A loopback reply takes milliseconds; 1.5 s without one means the endpoint stopped serving."""


@pytest.fixture()
def served(tmp_path: Path):
    """A publisher on two free loopback ports over a journal holding N_EVENTS onsets."""
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    config = PublisherConfig(pub_endpoint=f"tcp://127.0.0.1:{free_port()}",
                             catchup_endpoint=f"tcp://127.0.0.1:{free_port()}", heartbeat_s=0.5)
    publisher = AlarmPublisher(config, journal, max_batch=100)
    for i in range(N_EVENTS):
        publisher.publish(onset(f"bed{i % 3}", float(i)))
    context = zmq.Context()
    yield publisher, context
    context.destroy(linger=0)
    publisher.close()
    journal.close()


def _ask(context: zmq.Context, endpoint: str, frames: list[bytes], timeout_ms: int = REPLY_TIMEOUT_MS) -> dict | None:
    """Send ``frames`` on a fresh REQ socket; the decoded reply, or None when none came in time."""
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        try:
            return json.loads(sock.recv())
        except zmq.Again:
            return None
    finally:
        sock.close(linger=0)


def _assert_still_serving(publisher: AlarmPublisher, context: zmq.Context) -> None:
    reply = _ask(context, publisher.catchup_endpoint, [b'{"since": 0}'])
    assert reply is not None, "the catch-up endpoint no longer answers a good request"
    assert reply["ok"] and [e["journal_seq"] for e in reply["events"]] == list(range(1, N_EVENTS + 1))


def _check_reply(raw: bytes, request: bytes) -> dict:
    reply = json.loads(raw)
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"], reply
        return reply
    asked = json.loads(request)
    seqs = [e["journal_seq"] for e in reply["events"]]
    assert seqs == sorted(seqs) and all(s > asked["since"] for s in seqs), (request, seqs)
    assert seqs == list(range(asked["since"] + 1, min(N_EVENTS, asked["since"] + len(seqs)) + 1)), seqs
    return reply


INT64 = st.integers(-(2**63), 2**63 - 1)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), INT64, st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
REQUESTS = st.one_of(
    st.binary(max_size=512),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["since", "limit", "until", "SINCE", ""]), JSON_VALUES, max_size=3)
    .map(lambda d: json.dumps(d).encode()),
    st.tuples(st.integers(-3, N_EVENTS + 3), st.integers(-2, 120))
    .map(lambda sl: json.dumps({"since": sl[0], "limit": sl[1]}).encode()),
)
FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(request=REQUESTS)
def test_any_request_gets_a_json_reply_and_good_ones_the_right_events(served, request):
    publisher, _ = served
    _check_reply(publisher.handle_request(request), request)


@settings(FUZZ, max_examples=20)
@given(request=st.one_of(st.integers(2**63, 10**30).map(lambda n: json.dumps({"since": n}).encode()),
                         st.just(b"9" * 5000), st.just(b'{"since": ' + b"1" * 4400 + b"}")))
def test_huge_integers_get_an_error_reply(served, request):
    publisher, _ = served
    assert _check_reply(publisher.handle_request(request), request)["ok"] is False


def _hostile_payloads(seed: int, n: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    payloads: list[list[bytes]] = [
        [b""], [b"{}"], [b"null"], [b'{"since": -1}'], [b'{"since": "0"}'], [b'{"since": 0, "limit": 0}'],
        [b'{"since": 0, "limit": 1000000}'], [b'{"since": 0.5}'], [b'{"since": true}'], [b'{"since": NaN}'],
        [b'{"since": 0, "x": 1}'], [b"[" * 500 + b"]" * 500], [b'{"since": 0}', b"second frame"],
        [b"a", b"b", b"c"], [b"\x00" * 1_000_000], [("\ud800".encode("utf-8", "surrogatepass"))],
    ]
    while len(payloads) < n:
        payloads.append([rng.randbytes(rng.randrange(0, 300))])
    return payloads


def test_hostile_requests_on_the_socket_get_errors_and_the_endpoint_keeps_serving(served):
    publisher, context = served
    payloads = _hostile_payloads(seed=7, n=150)
    for frames in payloads:
        reply = _ask(context, publisher.catchup_endpoint, frames)
        assert reply is not None, f"no reply to {frames[0][:40]!r} ({len(frames)} frames)"
        assert reply["ok"] is False and reply["error"], (frames[0][:40], reply)
    _assert_still_serving(publisher, context)


def test_catchup_thread_survives_deeply_nested_json(served):
    publisher, context = served
    _ask(context, publisher.catchup_endpoint, [b"[" * 10000 + b"]" * 10000], timeout_ms=300)
    _assert_still_serving(publisher, context)


def test_catchup_thread_survives_an_out_of_range_since(served):
    publisher, context = served
    _ask(context, publisher.catchup_endpoint, [json.dumps({"since": 2**63}).encode()], timeout_ms=300)
    _assert_still_serving(publisher, context)


def test_raw_tcp_garbage_on_both_ports_does_not_stop_the_publisher(served):
    publisher, context = served
    rng = random.Random(11)
    for endpoint in (publisher.catchup_endpoint, publisher.pub_endpoint):
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        for _ in range(20):
            with socket.create_connection((host, int(port)), timeout=2) as raw:
                raw.sendall(rng.randbytes(rng.randrange(1, 4096)))
        with socket.create_connection((host, int(port)), timeout=2) as raw:  # a ZMTP-looking greeting, then junk
            raw.sendall(b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00NULL" + b"\x00" * 16 + rng.randbytes(2000))
    _assert_still_serving(publisher, context)


def test_a_client_that_leaves_before_its_reply_does_not_block_the_next(served):
    publisher, context = served
    for _ in range(5):
        quitter = context.socket(zmq.REQ)
        quitter.connect(publisher.catchup_endpoint)
        quitter.send(b'{"since": 0}')
        quitter.close(linger=0)
    time.sleep(0.2)
    _assert_still_serving(publisher, context)


def test_paged_catchup_returns_every_event_once_in_order(served):
    publisher, context = served
    since, seen = 0, []
    for _ in range(N_EVENTS + 2):
        reply = _ask(context, publisher.catchup_endpoint, [json.dumps({"since": since, "limit": 2}).encode()])
        assert reply is not None and reply["ok"], reply
        seen += [e["journal_seq"] for e in reply["events"]]
        if not reply["more"]:
            break
        since = seen[-1]
    assert seen == list(range(1, N_EVENTS + 1))
    assert reply["journal_head"] == N_EVENTS


@pytest.mark.slow
@settings(max_examples=10000, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=REQUESTS)
def test_long_fuzz_of_catchup_requests(served, request):
    publisher, _ = served
    _check_reply(publisher.handle_request(request), request)
