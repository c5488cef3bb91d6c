"""The ZeroMQ alarm publisher: journal first, then PUB; heartbeats; catch-up (ROUTER, REQ/REP wire format).

Wire format
-----------
PUB socket (default ``tcp://127.0.0.1:5556``): two-frame messages ``[topic, json]``, both UTF-8.
Topics: ``alarm.<bed>`` (onset, offset), ``quality.<bed>`` (signal_quality), ``heartbeat`` and
``daemon``. The JSON is an :class:`ictal.alarms.schema.AlarmEvent` (JSON Schema in
``alarms/alarm_event.schema.json``). ZeroMQ subscriptions match topic *prefixes*: subscribing to
``alarm.bed1`` also receives ``alarm.bed10``; compare the topic exactly when that matters.

Catch-up socket (default ``tcp://127.0.0.1:5557``; a ROUTER socket that a REQ client talks to as to a
REP socket): one-frame JSON request ``{"since": <journal_seq>, "limit": <n, optional>}`` (``since`` an
integer from 0 to 2**63 - 1, the largest SQLite integer; ``limit`` from 1 to ``max_batch``, default
``max_batch``); reply ``{"ok": true, "journal_id": <uuid of the journal>, "journal_head": <newest
journal_seq>, "first_seq": <oldest retained journal_seq or null>, "more": <bool>, "events": [<event>,
...]}`` with the events of ``journal_seq > since`` in order (at most ``limit`` and at most
:data:`MAX_REPLY_BYTES` of events, always at least one when there is one; ``more`` says there are
others: ask again from the last one). ``journal_id`` names the journal the ``journal_seq`` numbers
belong to (see "Journal identity" in :mod:`ictal.alarms.schema`). A malformed request gets
``{"ok": false, "error": "<what was wrong>"}``: not UTF-8, longer than :data:`MAX_REQUEST_BYTES`, nested
deeper than :data:`MAX_REQUEST_DEPTH` (both checked before parsing), not JSON, or not the object above.
An unexpected failure while answering one request is logged with the request's first bytes and
answered with an error too; the catch-up thread never dies on a request.

Hostile or greedy peers: at most one reply waits per catch-up peer (``SNDHWM`` 1 and
``ROUTER_MANDATORY``: a reply to a peer that has not read its previous one is dropped, counted as
``ictal_catchup_requests_total{result="dropped"}``, so pipelined requests cannot grow the daemon's
memory); a peer's unread requests queue in its own TCP connection (``RCVHWM`` 4), not in the daemon.
Each socket accepts at most ``max_connections`` peers (a socket monitor counts them; one beyond is
shut down at once and counted in ``ictal_alarm_connections_refused_total``); a connection that has not
finished its handshake in ``handshake_timeout_s`` is closed; TCP keepalive finds dead peers.
Both sockets set ``ZAP_DOMAIN`` (:data:`ZAP_DOMAIN`), which makes libzmq refuse
unversioned ZMTP 1.0 peers (random bytes on a raw TCP connection would otherwise be read as ZMTP 1.0
frames and corrupt the REP socket's request/reply state), and ``MAXMSGSIZE``
(:data:`MAX_FRAME_BYTES`): a peer that announces a larger frame is disconnected before anything is
allocated for it, without a reply. The catch-up thread receives without blocking after a poll, so a
message that libzmq drops (a request without a routing envelope) cannot block it.

Heartbeats (topic ``heartbeat``, every ``heartbeat_s``) carry ``journal_head`` and ``journal_id``: a
subscriber whose last ``journal_seq`` is lower lost messages and catches up; one that knew another
journal id resynchronises on the new journal. They also carry ``beds`` (each configured bed's
:class:`ictal.alarms.schema.BedStatus`) when the publisher was given a ``bed_states`` callable.

Publish time and alarm latency
------------------------------
:meth:`AlarmPublisher.publish` sets the event's ``wall_time`` to the moment it takes the event (under
the send lock, right before the journal append; the fsync and the send follow within milliseconds),
so the journaled and the sent event carry the same publish time, however long ago the event object
was built. For an onset it then observes ``ictal_alarm_latency_seconds`` with exactly the event's
``latency_s`` (publish wall time - onset wall time, see :mod:`ictal.alarms.schema`).

Failure of the journal
----------------------
If the journal append fails (disk full, read-only file), the event is still published live (with
``journal_seq`` None), then a ``daemon`` event (reason ``journal_error``) says so,
``ictal_journal_errors_total`` is incremented, and the error is logged. An alarm is never held back
because the disk is full.

Appends run in one journal-writer thread; an event waits at most ``journal_timeout_s`` for its append.
When the disk hangs, the event is published live (``journal_seq`` None) with a ``daemon`` event
(reason ``journal_stalled``), ``ictal_journal_faults_total{fault="stalled"}`` and an ERROR log; while
the append is still stuck, later events do not wait at all (they are queued behind it and journaled
when the disk comes back: a subscriber then catches them up and recognises them by ``event_id``).

The journal's file is checked before every append and at every heartbeat
(:meth:`ictal.alarms.journal.Journal.check`). When it was deleted, replaced or became unwritable, the
publisher saves it aside and opens a new journal (:meth:`ictal.alarms.journal.Journal.recreate`), logs at
ERROR, counts ``ictal_journal_faults_total{fault}`` and ``ictal_journal_errors_total``, and publishes
a ``daemon`` event (reason ``journal_recreated``, journaled as the first event of the new journal)
whose detail names the fault, where the old contents went and the old and new ``journal_id``.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from ictal.alarms.config import CurveConfig, PublisherConfig
from ictal.alarms.journal import Journal, JournalError, JournalFaultError
from ictal.alarms.metrics import IctalMetrics
from ictal.alarms.schema import AlarmEvent, BedStatus

log = logging.getLogger("ictal.alarms")

PRUNE_INTERVAL_S = 3600.0

ZAP_DOMAIN = b"ictal"
"""ZAP domain of both sockets: with one set, libzmq refuses unversioned ZMTP 1.0 peers (and CURVE
clients are authenticated against the certificates configured for this domain)."""

MAX_SEQ = 2**63 - 1
"""Largest ``since`` (SQLite integers are signed 64-bit)."""

MAX_REQUEST_BYTES = 4096
"""Longest catch-up request answered (a real one is under 60 bytes); longer ones get an error reply."""

MAX_REQUEST_DEPTH = 32
"""Deepest ``[``/``{`` nesting parsed (a real request has depth 1); deeper ones get an error reply
without being parsed (``json.loads`` recurses once per level and raises RecursionError near 1000)."""

MAX_FRAME_BYTES = 4 * 1024 * 1024
"""``MAXMSGSIZE`` of both sockets: libzmq disconnects a peer that sends a larger frame (no reply)."""

MAX_REPLY_BYTES = 2 * 1024 * 1024
"""Most bytes of events in one catch-up reply (about 3,000 events of 700 bytes): with one reply
waiting per peer, a peer costs the daemon at most about twice this."""

REFUSED_LOG_INTERVAL_S = 10.0
"""Connections refused for max_connections are logged at most this often per socket (a flood of them
must not flood the log; the metric counts each)."""

CATCHUP_RCVHWM = 4
"""Requests libzmq queues per catch-up peer; further ones wait in that peer's TCP connection."""

T = TypeVar("T")


class JournalStalledError(JournalError):
    """A journal call did not finish within ``journal_timeout_s`` (or an earlier one is still stuck)."""


class _JournalWriter:
    """Runs journal calls in one thread, so a caller stops waiting after ``timeout_s`` (hung disk).

    A call that times out keeps running; until it finishes, later calls are queued behind it and
    :meth:`call` raises :class:`JournalStalledError` at once instead of waiting again.
    """

    def __init__(self, journal: Journal, timeout_s: float) -> None:
        self.journal = journal
        self.timeout_s = timeout_s
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                               thread_name_prefix="ictal-journal-writer")
        self._stuck: concurrent.futures.Future | None = None
        self.stalled_since: float | None = None

    @property
    def stalled(self) -> bool:
        """Whether a call that timed out is still running."""
        if self._stuck is not None and self._stuck.done():
            self._stuck = None
            self.stalled_since = None
        return self._stuck is not None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the writer thread, waiting at most ``timeout_s``.

        Raises
        ------
        JournalStalledError
            If it did not finish in time (it goes on in the background), or an earlier call is stuck.
        """
        if self.stalled:
            future = self._executor.submit(fn, *args)
            future.add_done_callback(self._report_late)
            raise JournalStalledError(
                f"alarm journal {self.journal.path} has been stuck for "
                f"{time.monotonic() - (self.stalled_since or time.monotonic()):.1f} s (disk hung?); the call "
                "is queued behind it")
        future = self._executor.submit(fn, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            self._stuck = future
            self.stalled_since = time.monotonic()
            future.add_done_callback(self._report_late)
            raise JournalStalledError(f"alarm journal {self.journal.path}: the call did not finish in "
                                      f"{self.timeout_s} s (disk hung?); it goes on in the background") from None

    def _report_late(self, future: concurrent.futures.Future) -> None:
        exc = future.exception()
        if exc is not None:
            log.error("a journal call that had timed out failed when it finished: %s", exc)
        else:
            log.warning("a journal call that had timed out finished late (journal %s)", self.journal.path)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _shutdown_fd(fd: int, port: int) -> bool:
    """Shut down the TCP connection on ``fd`` if it is one to local ``port`` (libzmq then closes it).

    The fd is duplicated, so libzmq's own descriptor stays valid; only a connection whose local port is
    ``port`` is touched (the number could have been reused by the time the monitor event is read).
    """
    try:
        dup = os.dup(fd)
    except OSError:
        return False
    try:
        sock = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return False
    with sock:
        try:
            if sock.type != socket.SOCK_STREAM or sock.getsockname()[1] != port:
                return False
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return False
    return True

_INTERNAL_ERROR_REPLY = json.dumps({"ok": False, "error": "internal error while answering the request "
                                   "(logged by the daemon)"}).encode()

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _excerpt(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (error replies and logs stay short)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _nesting_depth(text: str, stop_above: int) -> int:
    """Deepest nesting of ``[``/``{`` in ``text`` outside JSON strings (counting stops past ``stop_above``)."""
    depth = deepest = 0
    for char in _JSON_STRING.sub("", text):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        elif char in "]}" and depth:  # a stray closer is a syntax error; never let it hide deeper nesting
            depth -= 1
    return deepest


class PublisherError(OSError):
    """A socket could not be set up (endpoint in use, bad CURVE key file)."""


def load_server_keys(curve: CurveConfig) -> tuple[bytes, bytes]:
    """Public and secret key of the server from ``curve.server_secret_file``.

    Raises
    ------
    PublisherError
        If the file cannot be read or holds no secret key.
    """
    path = Path(curve.server_secret_file)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise PublisherError(f"cannot read CURVE server certificate {path}: {exc}") from exc
    if not secret:
        raise PublisherError(f"CURVE server certificate {path} holds no secret key (a .key_secret file is "
                             "expected, as written by zmq.auth.create_certificates)")
    return public, secret


class AlarmPublisher:
    """Publishes alarm events: journal (fsync) first, then the PUB socket.

    Construction binds both sockets and starts the heartbeat and catch-up threads; :meth:`close`
    stops them. Safe to call :meth:`publish` from several threads.

    Parameters
    ----------
    config : PublisherConfig
        Endpoints (``tcp://host:*`` binds any free port; see :attr:`pub_endpoint`), heartbeat period,
        journal timeout, connection limits, optional CURVE keys.
    journal : Journal
        Where every event is appended before it is sent.
    metrics : IctalMetrics, optional
        Events published, journal errors, faults and size, catch-up requests, refused connections,
        alarm latency and rate.
    context : zmq.Context, optional
        Default a private context, terminated by :meth:`close`.
    max_batch : int, default 10000
        Most events in one catch-up reply, from 1 to ``2**63 - 2`` (:data:`MAX_REPLY_BYTES` also applies).
    wall_clock : callable, default time.time
        Unix time (s) now; stamps each event's publish time (``wall_time``). Injectable for tests.
    bed_states : callable, optional
        Returns each configured bed's :class:`ictal.alarms.schema.BedStatus` by bed id; called for every
        heartbeat (its ``beds``). If it raises or returns something invalid, the error is logged and
        that heartbeat goes without ``beds``.

    Raises
    ------
    PublisherError
        If an endpoint cannot be bound or the CURVE keys cannot be loaded.
    ValueError
        If ``max_batch`` is not an integer in range.
    """

    def __init__(self, config: PublisherConfig, journal: Journal, metrics: IctalMetrics | None = None,
                 context: zmq.Context | None = None, max_batch: int = 10000,
                 wall_clock: Callable[[], float] = time.time,
                 bed_states: Callable[[], Mapping[str, BedStatus]] | None = None) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch < MAX_SEQ:
            raise ValueError(f"max_batch must be an integer from 1 to {MAX_SEQ - 1} (found {max_batch!r})")
        self.config = config
        self.journal = journal
        self.metrics = metrics
        self.max_batch = max_batch
        self.wall_clock = wall_clock
        self.bed_states = bed_states
        self._own_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._auth: ThreadAuthenticator | None = None
        self._closed = False
        self._writer = _JournalWriter(journal, config.journal_timeout_s)
        self._monitors: dict[zmq.Socket, tuple[str, int, set[int]]] = {}
        self._refused: dict[str, int] = {}
        self._refused_logged: dict[str, float] = {}
        try:
            self._pub = self._bind(zmq.PUB, config.pub_endpoint)
            self._rep = self._bind(zmq.ROUTER, config.catchup_endpoint)
            self._watch_connections(self._pub, "pub")
            self._watch_connections(self._rep, "catchup")
        except BaseException:
            self._teardown_sockets()
            raise
        self.pub_endpoint = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.catchup_endpoint = self._rep.getsockopt_string(zmq.LAST_ENDPOINT)
        if metrics is not None:
            metrics.bind_journal_size(journal.size_bytes)
        self._rep_thread = threading.Thread(target=self._serve_catchup, name="ictal-alarms-catchup", daemon=True)
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name="ictal-alarms-heartbeat", daemon=True)
        self._rep_thread.start()
        self._hb_thread.start()

    def _bind(self, kind: int, endpoint: str) -> zmq.Socket:
        sock = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)  # refuse unversioned ZMTP 1.0 peers (raw TCP garbage)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        sock.setsockopt(zmq.HANDSHAKE_IVL, int(self.config.handshake_timeout_s * 1000))
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 60)
        sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 10)
        sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.SNDHWM, 1)  # one reply waits per peer; more is dropped (ROUTER_MANDATORY)
            sock.setsockopt(zmq.RCVHWM, CATCHUP_RCVHWM)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self.config.curve is not None:
            if self._auth is None and self.config.curve.authorized_clients_dir is not None:
                clients = Path(self.config.curve.authorized_clients_dir)
                if not clients.is_dir():
                    sock.close()
                    raise PublisherError(f"CURVE authorized_clients_dir {clients} is not a directory")
                self._auth = ThreadAuthenticator(self._context)
                self._auth.start()
                self._auth.configure_curve(domain=ZAP_DOMAIN.decode(), location=str(clients))
            public, secret = load_server_keys(self.config.curve)
            sock.curve_publickey = public
            sock.curve_secretkey = secret
            sock.curve_server = True
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            raise PublisherError(f"cannot bind {endpoint}: {exc}") from exc
        return sock

    def _watch_connections(self, sock: zmq.Socket, name: str) -> None:
        """Count ``sock``'s TCP peers with a socket monitor (read by the catch-up thread)."""
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if not endpoint.startswith("tcp://"):
            return
        port = int(endpoint.rpartition(":")[2])
        monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._monitors[monitor] = (name, port, set())

    def _on_monitor_event(self, monitor: zmq.Socket) -> None:
        name, port, peers = self._monitors[monitor]
        try:
            message = recv_monitor_message(monitor, zmq.NOBLOCK)
        except zmq.Again:
            return
        fd = int(message["value"])
        if message["event"] == zmq.EVENT_DISCONNECTED:
            peers.discard(fd)
            return
        if len(peers) < self.config.max_connections:
            peers.add(fd)
            return
        if _shutdown_fd(fd, port):
            self._refused[name] = self._refused.get(name, 0) + 1
            now = time.monotonic()
            if now - self._refused_logged.get(name, -REFUSED_LOG_INTERVAL_S) >= REFUSED_LOG_INTERVAL_S:
                self._refused_logged[name] = now
                log.warning("alarm socket %s (port %d) has %d peers (max_connections): closed a new connection "
                            "(%d refused so far; logged at most every %.0f s)", name, port, len(peers),
                            self._refused[name], REFUSED_LOG_INTERVAL_S)
            if self.metrics is not None:
                self.metrics.connections_refused.labels(socket=name).inc()

    def connection_counts(self) -> dict[str, int]:
        """Peers connected now to each socket (``pub``, ``catchup``), as the monitors counted them."""
        return {name: len(peers) for name, _, peers in self._monitors.values()}

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, event: AlarmEvent) -> AlarmEvent:
        """Stamp the publish time, journal ``event`` (fsync), then send it as ``[topic, json]``.

        Parameters
        ----------
        event : AlarmEvent
            Any kind but ``heartbeat`` (heartbeats are the publisher's own). Its ``wall_time`` is
            replaced by the publish time.

        Returns
        -------
        event : AlarmEvent
            As sent: ``wall_time`` the publish time, ``journal_seq``/``bed_seq``/``journal_id`` set
            (None when the journal failed or stalled). For an onset with ``onset_wall_time``,
            ``ictal_alarm_latency_seconds`` observed exactly its ``latency_s``.

        Raises
        ------
        ValueError
            If ``event`` is a heartbeat, or :class:`ictal.alarms.journal.DuplicateEventError` if it was
            already journaled (then nothing is sent).
        RuntimeError
            If the publisher is closed.
        """
        if event.kind == "heartbeat":
            raise ValueError("heartbeats are sent by the publisher's own thread; publish() takes other kinds")
        failure: JournalError | None = None
        with self._send_lock:
            if self._closed:
                raise RuntimeError("AlarmPublisher is closed; cannot publish")
            event = event.model_copy(update={"wall_time": datetime.fromtimestamp(self.wall_clock(), timezone.utc)})
            try:
                sent = self._append(event)
            except JournalError as exc:
                failure, sent = exc, event
            self._send(sent)
            if failure is not None:
                stalled = isinstance(failure, JournalStalledError)
                self._send(AlarmEvent(
                    kind="daemon", bed_id=event.bed_id, reason="journal_stalled" if stalled else "journal_error",
                    detail=f"journal append {'stalled' if stalled else 'failed'}: {failure}; event "
                    f"{event.event_id} ({event.kind}) was published live only"
                    + (" (it will be journaled when the disk answers)" if stalled else " and cannot be caught up"),
                ))
        if failure is not None:
            log.error("alarm journal append %s, event %s published live only: %s",
                      "stalled" if isinstance(failure, JournalStalledError) else "failed", event.event_id, failure)
        if self.metrics is not None:
            if failure is not None:
                self.metrics.journal_errors.inc()
                if isinstance(failure, JournalStalledError):
                    self.metrics.journal_faults.labels(fault="stalled").inc()
            if event.kind == "onset" and event.bed_id is not None:
                self.metrics.record_alarm(event.bed_id)
            elif event.kind == "offset" and event.bed_id is not None:
                self.metrics.record_offset(event.bed_id)
            latency_s = sent.latency_s
            if latency_s is not None and event.bed_id is not None:
                self.metrics.alarm_latency.labels(bed=event.bed_id).observe(latency_s)
        return sent

    def _append(self, event: AlarmEvent) -> AlarmEvent:
        """Journal ``event`` through the writer thread; on a file fault, recreate the journal and retry once.

        Call with the send lock held. Raises :class:`JournalError` (or :class:`JournalStalledError`).
        """
        try:
            return self._writer.call(self.journal.append, event)
        except JournalFaultError as fault:
            self._recreate(fault.fault)
        return self._writer.call(self.journal.append, event)

    def _recreate(self, fault: str) -> None:
        """Open a new journal after a file fault and announce it (send lock held).

        Raises
        ------
        JournalError
            If no new journal could be opened (the caller treats it as a failed append).
        """
        if self.metrics is not None:
            self.metrics.journal_faults.labels(fault=fault).inc()
            self.metrics.journal_errors.inc()
        try:
            detail = self._writer.call(self.journal.recreate, fault)
        except JournalError as exc:
            log.error("alarm journal %s %s and no new journal could be opened: %s", self.journal.path, fault, exc)
            raise
        log.error("%s", detail)
        notice = AlarmEvent(kind="daemon", reason="journal_recreated", detail=detail)
        try:
            notice = self._writer.call(self.journal.append, notice)
        except JournalError as exc:
            log.error("the journal_recreated event could not be journaled: %s", exc)
        self._send(notice)

    def _send(self, event: AlarmEvent) -> None:
        self._pub.send_multipart([event.topic.encode(), event.model_dump_json().encode()])
        if self.metrics is not None:
            self.metrics.events_published.labels(kind=event.kind).inc()

    def _beds(self) -> dict[str, BedStatus] | None:
        if self.bed_states is None:
            return None
        try:
            beds = dict(self.bed_states())
            for bed, status in beds.items():
                if not isinstance(status, BedStatus):
                    raise TypeError(f"bed_states()[{bed!r}] is a {type(status).__name__} (expected BedStatus)")
            AlarmEvent(kind="heartbeat", beds=beds)  # validate the bed ids here, not in the heartbeat
        except Exception:  # the callback is the daemon's; a heartbeat must go out whatever it does
            log.exception("bed_states() failed; this heartbeat goes without bed states")
            return None
        return beds

    def heartbeat(self) -> AlarmEvent:
        """Check the journal's file, then send a heartbeat (the heartbeat thread calls this every ``heartbeat_s``).

        A journal file that was deleted, replaced or became unwritable is recreated first (see the
        module docstring); a stalled journal is not waited for (the heartbeat goes out regardless).
        """
        beds = self._beds()
        with self._send_lock:
            if self._closed:
                raise RuntimeError("AlarmPublisher is closed; cannot send a heartbeat")
            if not self._writer.stalled:  # a stuck append was already said; the heartbeat does not wait
                try:
                    fault = self._writer.call(self.journal.check)
                    if fault is not None:
                        self._recreate(fault)
                except JournalError as exc:
                    log.error("alarm journal check at heartbeat: %s", exc)
            event = AlarmEvent(kind="heartbeat", journal_head=self.journal.last_seq,
                               journal_id=self.journal.journal_id, beds=beds)
            self._send(event)
        return event

    def _heartbeat_loop(self) -> None:
        last_prune = time.monotonic()
        while True:
            try:
                self.heartbeat()
            except RuntimeError:
                return  # closed
            if self._stop.wait(self.config.heartbeat_s):
                return
            if time.monotonic() - last_prune >= PRUNE_INTERVAL_S and not self._writer.stalled:
                last_prune = time.monotonic()
                try:
                    self._writer.call(self.journal.prune)
                except JournalError as exc:
                    log.error("alarm journal pruning failed: %s", exc)

    # -- catch-up -----------------------------------------------------------------------------------

    def handle_request(self, payload: bytes) -> bytes:
        """Answer one catch-up request (see the module docstring for the format); never raises.

        Parameters
        ----------
        payload : bytes
            The request frame as received.

        Returns
        -------
        reply : bytes
            The UTF-8 JSON reply: the events, or ``{"ok": false, "error": ...}`` when the request is
            malformed or answering it failed (an unexpected failure is also logged, with the
            request's first bytes).
        """
        try:
            return self._answer(payload)
        except Exception as exc:  # one request's failure must not end the catch-up thread
            log.exception("catch-up request %s (%d bytes) failed unexpectedly; answered with an error",
                          _excerpt(bytes(payload[:80])), len(payload))
            return self._error(f"internal error while answering the request: {type(exc).__name__}: "
                               f"{str(exc)[:200]} (logged by the daemon)")

    def _answer(self, payload: bytes) -> bytes:
        if len(payload) > MAX_REQUEST_BYTES:
            return self._error(f"request is {len(payload)} bytes (expected at most {MAX_REQUEST_BYTES})")
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._error(f"request is not UTF-8: {exc}")
        depth = _nesting_depth(text, MAX_REQUEST_DEPTH)
        if depth > MAX_REQUEST_DEPTH:
            return self._error(f"request is nested more than {MAX_REQUEST_DEPTH} deep (expected a flat "
                               "JSON object)")
        try:
            request = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer over the digit limit
            return self._error(f"request is not JSON: {exc}")
        if not isinstance(request, dict):
            return self._error(f"request must be a JSON object (found {type(request).__name__})")
        unknown = sorted(set(request) - {"since", "limit"})
        if unknown:
            return self._error(f"unknown request keys {_excerpt(unknown)} (expected 'since' and optional "
                               "'limit')")
        since = request.get("since")
        if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= MAX_SEQ:
            return self._error(f"'since' must be an integer >= 0 and <= {MAX_SEQ} (found {_excerpt(since)})")
        limit = request.get("limit", self.max_batch)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= self.max_batch:
            return self._error(f"'limit' must be an integer from 1 to {self.max_batch} (found {_excerpt(limit)})")
        try:
            journal_id, head, first, rows = self.journal.snapshot(since, limit + 1)
        except JournalError as exc:
            log.error("catch-up request failed: %s", exc)
            return self._error(str(exc))
        more = len(rows) > limit
        rows = rows[:limit]
        size = 0
        for n, row in enumerate(rows):
            size += len(row) + 1
            if size > MAX_REPLY_BYTES and n > 0:
                rows, more = rows[:n], True
                break
        if self.metrics is not None:
            self.metrics.catchup_requests.labels(result="ok").inc()
        header = json.dumps({"ok": True, "journal_id": str(journal_id), "journal_head": head, "first_seq": first,
                             "more": more})
        return (header[:-1] + ', "events": [' + ",".join(rows) + "]}").encode()

    def _error(self, message: str) -> bytes:
        if self.metrics is not None:
            self.metrics.catchup_requests.labels(result="error").inc()
        return json.dumps({"ok": False, "error": message}).encode()

    def _serve_catchup(self) -> None:
        poller = zmq.Poller()
        poller.register(self._rep, zmq.POLLIN)
        for monitor in self._monitors:
            poller.register(monitor, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                try:
                    self._serve_one(poller)
                except zmq.ContextTerminated:
                    return
                except zmq.ZMQError as exc:
                    log.error("catch-up socket %s failed: %s (errno %d); still serving", self.catchup_endpoint,
                              exc, exc.errno)
                    self._stop.wait(0.1)  # no busy loop if the error persists
        finally:
            if not self._stop.is_set():
                log.critical("the catch-up thread of %s ended while the publisher is open: subscribers can no "
                             "longer catch up until the daemon restarts", self.catchup_endpoint)
            for monitor in self._monitors:
                monitor.close(linger=0)
            self._rep.close(linger=0)

    def _serve_one(self, poller: zmq.Poller) -> None:
        """Handle what arrived within 100 ms: connection events, then at most one request."""
        ready = dict(poller.poll(100))
        for monitor in self._monitors:
            if monitor in ready:
                self._on_monitor_event(monitor)
        if self._rep not in ready:
            return
        try:
            frames = self._rep.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        # [peer id, (envelope..., b""), request]: a REQ client sends one empty delimiter before its frame
        peer, rest = frames[0], frames[1:]
        envelope: list[bytes] = []
        if b"" in rest:
            cut = rest.index(b"") + 1
            envelope, rest = rest[:cut], rest[cut:]
        try:
            if len(rest) != 1:
                reply = self._error(f"request must be one frame (found {len(rest)})")
            else:
                reply = self.handle_request(rest[0])
        except Exception:  # handle_request never raises; still, the peer owes a reply whatever happens
            log.exception("catch-up request %s (%d frames) failed unexpectedly; answered with an error",
                          _excerpt(rest[0][:80] if rest else b""), len(rest))
            reply = _INTERNAL_ERROR_REPLY
        try:
            self._rep.send_multipart([peer, *envelope, reply], zmq.NOBLOCK)
        except zmq.Again:
            # the peer has not read its previous reply (pipelined requests): drop, never queue more
            if self.metrics is not None:
                self.metrics.catchup_requests.labels(result="dropped").inc()
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:  # the peer left before its reply
                raise

    # -- lifetime -----------------------------------------------------------------------------------

    def _teardown_sockets(self) -> None:
        for monitor in self._monitors:
            monitor.close(linger=0)
        for name in ("_pub", "_rep"):
            sock = getattr(self, name, None)
            if sock is not None and not sock.closed:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._writer.close()
        if self._own_context:
            self._context.term()

    def close(self) -> None:
        """Stop the threads, close the sockets (and the private context); the journal stays open."""
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._hb_thread.join(timeout=5.0)
        self._rep_thread.join(timeout=5.0)
        self._pub.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._writer.close()
        if self._own_context:
            self._context.term()

    def __enter__(self) -> AlarmPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
