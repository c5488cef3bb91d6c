"""A subscriber that misses nothing: SUB first, catch up from the journal, then follow live.

Order of operations (the classic "late joiner" fix): connect the SUB socket first so that live events
queue while catching up, ask the catch-up endpoint for every event after ``since`` (paging until
``more`` is false), then read the live stream. A hole in ``journal_seq`` (or a heartbeat whose
``journal_head`` is ahead) triggers a catch-up that fills it. Silence longer than
``heartbeat_timeout_s`` is reported as a lost heartbeat.

Position and identity: the subscriber's position is ``(journal_id, last_seq)``. Events are identified
by ``(journal_id, journal_seq)`` and by ``event_id`` (the last :data:`REMEMBERED_EVENT_IDS` delivered
are remembered), never by ``journal_seq`` alone. When an event, a heartbeat or a catch-up reply names
another ``journal_id`` than the one followed (the daemon's journal was recreated: its sequence starts
again at 1), the subscriber says so (a notice naming the old and the new id), sets its position to 0
of the new journal and catches up on it. A heartbeat whose ``journal_head`` is below the position
(a journal rolled back, or a version-2 daemon that lost its journal) resynchronises the same way.

Catch-up pages are delivered as they arrive and the position advances with each delivered event only:
when a later page times out, the events already delivered stay delivered and the next catch-up
resumes after the last one (nothing skipped, nothing delivered twice).

Gap detection uses the global ``journal_seq``, so the subscriber listens to every topic.

Schema versions: events of versions 1, 2 and 3 are delivered (a version-1 event, e.g. caught up from a
journal written before an upgrade, has ``latency_s`` None). An event of another version, live or in a
catch-up reply, ends the iteration with :class:`ictal.alarms.schema.UnsupportedSchemaVersionError` naming the
version found and the ones supported: a subscriber that skipped events it cannot read would miss
alarms without anyone knowing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from pydantic import BaseModel, ValidationError

from ictal.alarms.schema import AlarmEvent, parse_event, unsupported_version


class _CatchupReply(BaseModel):
    """A catch-up reply (see :mod:`ictal.alarms.publisher`); parsed from JSON in one pass."""

    ok: bool
    error: str | None = None
    journal_id: uuid.UUID | None = None
    journal_head: int | None = None
    first_seq: int | None = None
    more: bool = False
    events: list[AlarmEvent] = []


REMEMBERED_EVENT_IDS = 100_000
"""``event_id`` s remembered to deliver each event once (an event published live while the journal was
stalled comes again, journaled, in a catch-up); 100,000 is weeks of a ward's events, in a few MB."""


class CatchupError(RuntimeError):
    """The catch-up endpoint did not answer in time or answered with an error."""


@dataclass(frozen=True)
class ClientCurve:
    """CURVE keys of a subscriber.

    Attributes
    ----------
    server_public_file : Path
        The server's public certificate (``server.key``).
    client_secret_file : Path
        The client's secret certificate (``client.key_secret``), written by
        ``zmq.auth.create_certificates``; its public half must be in the server's authorized directory
        when the server restricts clients.
    """

    server_public_file: Path
    client_secret_file: Path

    def apply(self, sock: zmq.Socket) -> None:
        """Set the CURVE client options on ``sock`` (before connecting).

        Raises
        ------
        ValueError
            If a certificate file cannot be read or the client file has no secret key.
        """
        try:
            server_public, _ = zmq.auth.load_certificate(self.server_public_file)
            public, secret = zmq.auth.load_certificate(self.client_secret_file)
        except OSError as exc:
            raise ValueError(f"cannot read CURVE certificate: {exc}") from exc
        if not secret:
            raise ValueError(f"CURVE client certificate {self.client_secret_file} holds no secret key "
                             "(expected a .key_secret file)")
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret


def catchup_endpoint_for(pub_endpoint: str) -> str:
    """Default catch-up endpoint for a PUB endpoint: same host, port + 1 (5556 -> 5557).

    Raises
    ------
    ValueError
        If ``pub_endpoint`` is not ``tcp://host:port``.
    """
    head, sep, port = pub_endpoint.rpartition(":")
    if not pub_endpoint.startswith("tcp://") or not sep or not port.isdigit():
        raise ValueError(f"cannot derive a catch-up endpoint from {pub_endpoint!r} (expected tcp://host:port); "
                         "give it explicitly")
    return f"{head}:{int(port) + 1}"


class AlarmSubscriber:
    """Catch-up + live follower of an :class:`ictal.alarms.publisher.AlarmPublisher`.

    Parameters
    ----------
    pub_endpoint, catchup_endpoint : str
        The publisher's PUB and catch-up REP endpoints.
    since : int, default 0
        Deliver events with ``journal_seq > since`` (0: everything the journal retains).
    curve : ClientCurve, optional
        CURVE keys when the publisher requires them.
    heartbeat_timeout_s : float, default 15.0
        Silence after which the heartbeat is reported lost (3 default heartbeat periods).
    request_timeout_s : float, default 5.0
        Time to wait for a catch-up reply before giving up on that attempt.
    on_notice : callable, optional
        Receives one human-readable line per notable condition (heartbeat lost/back, gap filled,
        events pruned, catch-up failed, malformed message). Default: collected in ``notices``.
    context : zmq.Context, optional

    Attributes
    ----------
    last_seq : int
        Newest ``journal_seq`` delivered, of the journal :attr:`journal_id`.
    journal_id : uuid.UUID or None
        The journal followed (None until a reply, heartbeat or event of version 3 names it).
    duplicates : int
        Events dropped because already delivered.
    journal_changes : int
        Times the subscriber resynchronised on a new journal.
    """

    def __init__(self, pub_endpoint: str, catchup_endpoint: str, *, since: int = 0,
                 curve: ClientCurve | None = None, heartbeat_timeout_s: float = 15.0,
                 request_timeout_s: float = 5.0, on_notice: Callable[[str], None] | None = None,
                 context: zmq.Context | None = None) -> None:
        if since < 0:
            raise ValueError(f"since must be >= 0 (found {since})")
        self.pub_endpoint = pub_endpoint
        self.catchup_endpoint = catchup_endpoint
        self.last_seq = since
        self.curve = curve
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.request_timeout_s = request_timeout_s
        self.notices: list[str] = []
        self._on_notice = on_notice if on_notice is not None else self.notices.append
        self.duplicates = 0
        self.journal_id: uuid.UUID | None = None
        self.journal_changes = 0
        self._left_journals: set[uuid.UUID] = set()
        self._delivered: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._own_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._sub = self._context.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            try:
                curve.apply(self._sub)
            except ValueError:
                self._sub.close(linger=0)
                if self._own_context:
                    self._context.term()
                raise
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(pub_endpoint)
        self._req: zmq.Socket | None = None

    def _notice(self, text: str) -> None:
        self._on_notice(text)

    # -- catch-up ----------------------------------------------------------------------------------

    def _request(self, request: dict) -> _CatchupReply:
        if self._req is None:
            self._req = self._context.socket(zmq.REQ)
            self._req.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:
                self.curve.apply(self._req)
            self._req.connect(self.catchup_endpoint)
        self._req.send(json.dumps(request).encode())
        if not self._req.poll(int(self.request_timeout_s * 1000)):
            # lazy pirate: a REQ socket without a reply is stuck; drop it and start afresh next time
            self._req.close(linger=0)
            self._req = None
            raise CatchupError(f"no catch-up reply from {self.catchup_endpoint} in {self.request_timeout_s} s")
        payload = self._req.recv()
        try:
            reply = _CatchupReply.model_validate_json(payload)
        except ValidationError as exc:
            refused = unsupported_version(exc, f"from catch-up endpoint {self.catchup_endpoint}")
            if refused is not None:
                raise refused from None
            raise CatchupError(f"malformed catch-up reply from {self.catchup_endpoint}: {exc}") from exc
        if not reply.ok:
            raise CatchupError(f"catch-up endpoint {self.catchup_endpoint} answered: {reply.error}")
        return reply

    def catch_up(self) -> list[AlarmEvent]:
        """Fetch every journaled event after :attr:`last_seq` (paging) and advance :attr:`last_seq`.

        All or nothing: on an error the position is where it was (use :meth:`iter_events` to keep the
        pages that arrived before a failure).

        Returns
        -------
        events : list of AlarmEvent
            In ``journal_seq`` order, none already delivered (of a new journal, when the endpoint
            names another ``journal_id``: see the module docstring).

        Raises
        ------
        CatchupError
            If the endpoint does not answer in ``request_timeout_s`` or answers with an error.
        alarms.schema.UnsupportedSchemaVersionError
            If an event has a schema version this ictal does not read.
        """
        position = (self.journal_id, self.last_seq, self.journal_changes)
        delivered = self._delivered.copy()
        try:
            return list(self._catch_up_pages())
        except BaseException:
            self.journal_id, self.last_seq, self.journal_changes = position
            self._delivered = delivered
            raise

    def _catch_up_pages(self) -> Iterator[AlarmEvent]:
        """Yield the events after the position page by page, advancing it with each event yielded."""
        while True:
            reply = self._request({"since": self.last_seq})
            if reply.journal_id is not None and reply.journal_id != self.journal_id:
                if self.journal_id is not None:
                    self._journal_changed(reply.journal_id, f"catch-up endpoint {self.catchup_endpoint}")
                    continue  # ask the new journal from 0
                self.journal_id = reply.journal_id
            first = reply.first_seq
            if first is not None and first > self.last_seq + 1 and reply.events:
                self._notice(f"events {self.last_seq + 1}..{first - 1} were pruned from the journal "
                             "(older than its retention); they cannot be caught up")
            for event in reply.events:
                if event.journal_seq is not None and event.journal_seq > self.last_seq:
                    self.last_seq = event.journal_seq
                    if self._first_delivery(event):
                        yield event
            if not reply.more:
                return

    def _first_delivery(self, event: AlarmEvent) -> bool:
        """Remember ``event`` as delivered; False (and counted) when it already was."""
        if event.event_id in self._delivered:
            self.duplicates += 1
            return False
        self._delivered[event.event_id] = None
        if len(self._delivered) > REMEMBERED_EVENT_IDS:
            self._delivered.popitem(last=False)
        return True

    def _journal_changed(self, new_id: uuid.UUID | None, where: str, why: str = "") -> None:
        """Follow a new journal (or a rolled-back one when ``new_id`` is the same): position 0, say so."""
        old_id, old_seq = self.journal_id, self.last_seq
        if new_id is not None and new_id != old_id:
            if old_id is not None:
                self._left_journals.add(old_id)
            self.journal_id = new_id
        self.last_seq = 0
        self.journal_changes += 1
        cause = why or f"{where} names journal {new_id}"
        self._notice(f"the daemon's journal changed ({cause}; was journal {old_id} at journal_seq {old_seq}): "
                     "its sequence starts again; resynchronising from journal_seq 0 of the new journal")

    # -- live ---------------------------------------------------------------------------------------

    def iter_events(self, stop: threading.Event | None = None,
                    include_heartbeats: bool = False) -> Iterator[AlarmEvent]:
        """Yield events: first the catch-up, then live ones, without duplicates or gaps.

        Parameters
        ----------
        stop : threading.Event, optional
            Set it to end the iteration (checked every 0.2 s).
        include_heartbeats : bool, default False
            Also yield heartbeat events.

        Yields
        ------
        event : AlarmEvent
            Journaled events in ``journal_seq`` order; events that could not be journaled
            (``journal_seq`` None, e.g. the daemon's journal-failure notice) as they arrive.

        Raises
        ------
        alarms.schema.UnsupportedSchemaVersionError
            At the first event (live or caught up) of a schema version this ictal does not read.
        """
        stop = stop if stop is not None else threading.Event()
        yield from self._safe_catch_up("initial catch-up")
        last_message = time.monotonic()
        silent = False
        while not stop.is_set():
            if not self._sub.poll(200):
                quiet = time.monotonic() - last_message
                if not silent and quiet > self.heartbeat_timeout_s:
                    silent = True
                    self._notice(f"heartbeat lost: nothing from {self.pub_endpoint} for {quiet:.1f} s "
                                 "(daemon stopped, hung or unreachable)")
                continue
            frames = self._sub.recv_multipart()
            last_message = time.monotonic()
            if silent:
                silent = False
                self._notice(f"heartbeat back from {self.pub_endpoint}")
            if len(frames) != 2:
                self._notice(f"ignored a message of {len(frames)} frames (expected [topic, json])")
                continue
            try:
                event = parse_event(frames[1], where=f"on topic {frames[0].decode(errors='replace')!r} from "
                                    f"{self.pub_endpoint}")
            except ValidationError as exc:
                self._notice(f"ignored a malformed event on topic {frames[0]!r}: {exc.errors()[0]['msg']}")
                continue
            if event.kind == "heartbeat":
                if self._is_new_journal(event.journal_id):
                    self._journal_changed(event.journal_id, f"heartbeat from {self.pub_endpoint}")
                    yield from self._safe_catch_up("new journal")
                elif event.journal_head is not None and event.journal_head < self.last_seq:
                    self._journal_changed(event.journal_id, "", why=f"heartbeat says journal head "
                                          f"{event.journal_head}, below the last delivered {self.last_seq}")
                    yield from self._safe_catch_up("journal rolled back")
                elif event.journal_head is not None and event.journal_head > self.last_seq:
                    yield from self._safe_catch_up(f"heartbeat says journal head {event.journal_head}")
                if include_heartbeats:
                    yield event
                continue
            if event.journal_seq is None or (event.journal_id is not None and event.journal_id in self._left_journals):
                if self._first_delivery(event):  # live only (journal failed or stalled), or a stale one
                    yield event
            elif self._is_new_journal(event.journal_id):
                self._journal_changed(event.journal_id, f"event {event.event_id} on topic {event.topic}")
                yield from self._safe_catch_up("new journal")
            elif event.journal_seq <= self.last_seq:
                self.duplicates += 1
            elif event.journal_seq == self.last_seq + 1:
                self.last_seq = event.journal_seq
                if self.journal_id is None and event.journal_id is not None:
                    self.journal_id = event.journal_id
                if self._first_delivery(event):
                    yield event
            else:
                yield from self._safe_catch_up(
                    f"gap: received journal_seq {event.journal_seq} after {self.last_seq}")

    def _is_new_journal(self, journal_id: uuid.UUID | None) -> bool:
        """Whether ``journal_id`` names a journal other than the one followed (and not one left behind)."""
        return (journal_id is not None and self.journal_id is not None and journal_id != self.journal_id
                and journal_id not in self._left_journals)

    def _safe_catch_up(self, why: str) -> Iterator[AlarmEvent]:
        """Deliver a catch-up page by page; a failure keeps what was delivered and is said as a notice."""
        count = 0
        try:
            for event in self._catch_up_pages():
                count += 1
                yield event
        except CatchupError as exc:
            self._notice(f"catch-up failed ({why}) after {count} events, at journal_seq {self.last_seq}: {exc}; "
                         "will resume from there at the next event or heartbeat")
            return
        if count and why != "initial catch-up":
            self._notice(f"caught up {count} events ({why})")

    def close(self) -> None:
        """Close the sockets (and the private context)."""
        self._sub.close(linger=0)
        if self._req is not None:
            self._req.close(linger=0)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> AlarmSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
