"""The read-only HTTP endpoint of the metrics: GET /metrics, bounded in connections, time and bytes.

Why not prometheus_client's ``start_http_server``: it is a ``ThreadingHTTPServer`` (one thread per
connection, no timeout, no limit), so a local client that opens connections and never finishes a
request holds a thread and a descriptor each, forever; about a thousand of them exhaust the daemon's
descriptors (1024 by default under systemd) and stall the catch-up endpoint as well.

Contract (what a client sees)
-----------------------------
- ``GET /metrics`` (``HEAD`` too; a query string is allowed, ``name[]=`` filters as in
  prometheus_client): 200, the exposition of the registry in the format chosen from ``Accept`` by
  ``prometheus_client.exposition.choose_encoder`` (text 0.0.4 or OpenMetrics), ``Connection: close``.
- Any other path: 404; without the configured credentials (basic auth on): 401; any other method on ``/metrics``: 405 with ``Allow: GET, HEAD``; a request line
  and headers over ``max_request_bytes`` (default 8 KiB): 431; a request that is not HTTP/1.x: 400.
  No request body is read, nothing is written, no file is served.
- One request per connection: the server closes the connection after the answer.
- A connection must deliver its whole request head within ``read_timeout_s`` (default 5 s) of being
  accepted, and take the answer within ``write_timeout_s``; otherwise it is dropped.
- At most ``max_connections`` (default 64) connections are open at once. When a new one arrives at
  the cap, the oldest connection that is still sending its request is dropped to make room (a client
  that has not finished a request after some time is the likely flooder; a scrape sends its request
  at once and is answered within milliseconds); if every open connection is already being answered,
  the new one is closed at once. Drops are counted and logged in one line
  (``event=metrics_connections_dropped``) at most once per ``log_interval_s`` (default 60 s): the
  first drop is logged at once, later ones are added up and logged with the next drop after the
  interval.

TLS and basic auth (required off loopback: :class:`ictal.alarms.config.MetricsConfig`)
---------------------------------------------------------------------------------
- With ``ssl_context`` (:func:`tls_context`) the endpoint speaks HTTPS only; the handshake must end
  within ``read_timeout_s`` (asyncio's ``ssl_handshake_timeout``), and the request-head deadline starts
  after it. A connection in its handshake is not yet counted in ``max_connections`` (asyncio hands it to
  the server only once the handshake is done); the handshake deadline bounds how long it holds a
  descriptor.
- With ``basic_auth`` (:class:`ictal.alarms.metrics_auth.BasicAuth`) a request to ``/metrics`` without the
  configured user and password is answered 401 with ``WWW-Authenticate: Basic realm="ictal metrics"``
  (counted in ``rejected[401]``); nothing of the registry is rendered for it. A header accepted before is
  checked in the loop (a hash compare); a new one is verified in a thread of its own (the slow key
  derivation), so wrong passwords do not delay the rendering of scrapes.
- Why not prometheus-client's own TLS (``start_http_server(certfile=, keyfile=, client_cafile=,
  client_auth_required=)``): it comes with the thread-per-connection server refused above, and the
  helper that builds its context (``exposition._get_ssl_ctx``) is private. :func:`tls_context` builds the
  same context from the same parameters (names kept: ``certfile``, ``keyfile``, ``client_cafile``,
  ``client_auth_required``), with TLS 1.2 as the floor. prometheus-client has no basic auth on the server
  side (the "web config" with bcrypt users is the Go exporters' toolkit), hence
  :mod:`ictal.alarms.metrics_auth`, whose bcrypt format matches that web config.
- Off loopback, the server refuses to start without both (``ValueError``), whatever the caller's config.

Linux specifics: the listening socket has ``TCP_DEFER_ACCEPT`` (a silent connection is handed to the
loop only once it sends, or after ``read_timeout_s``) and a backlog of 4096, so a scrape is neither
queued behind nor dropped by a flood of silent connections that the loop has not accepted yet.

Resources: one thread runs an asyncio loop for every connection (a waiting client costs a descriptor
and a few hundred bytes, no thread), and one worker thread renders the exposition (so a slow collector
does not stop the loop from accepting and timing out). Open connections never exceed
``max_connections``; in a burst asyncio may accept sockets faster than they are handed over and
evicted, up to the process's descriptor limit: it then pauses accepting for 1 s (logged as
``event=metrics_accept_paused``, at most once per ``log_interval_s``), and the daemon's other work goes
on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ictal.alarms.config import MetricsTLSConfig, _host_is_loopback
from ictal.alarms.metrics_auth import BasicAuth

log = logging.getLogger("ictal.alarms")

CLOSE_TIMEOUT_S = 10.0
"""Seconds :meth:`MetricsHTTPServer.close` waits for the loop to close its connections (a loaded
2-core machine took 3-4 s after a flood of 1,100 connections)."""

# Prometheus sends its request head in one packet right after connecting; 5 s leaves room for a loaded
# machine and still drops a half-sent request (a slowloris) long before descriptors run short.
READ_TIMEOUT_S = 5.0
# The exposition is tens of kB: a reader that has not taken it in 5 s is not a scraper.
WRITE_TIMEOUT_S = 5.0
# Prometheus, a node exporter proxy and an operator's curl need a handful; 64 leaves room for bursts
# and keeps the endpoint's descriptors far below the process limit (1024 under systemd by default).
MAX_CONNECTIONS = 64
# A scrape's request head is a few hundred bytes; 8 KiB is http.server's and nginx's default line cap.
MAX_REQUEST_BYTES = 8192
# One line per minute at most while a flood lasts: the journal is not flooded in turn.
LOG_INTERVAL_S = 60.0
# Listen backlog (the kernel caps it at net.core.somaxconn, 4096 by default since Linux 5.4). A full
# accept queue drops a connection's handshake ACK and the client, which believes it is connected,
# waits on SYN-ACK retransmissions (1 s, 2 s, 4 s ...): a scrape behind a flood of 1,000 idle
# connections then stalled past 5 s while the loop, sharing the GIL with the scoring threads, was
# still accepting the flood (tests/ictal/test_systemd_sandbox.py, with a backlog of 512).
LISTEN_BACKLOG = 4096


def tls_context(config: MetricsTLSConfig) -> ssl.SSLContext:
    """The server TLS context of the metrics endpoint (TLS 1.2 or later).

    Parameters
    ----------
    config : MetricsTLSConfig
        Certificate chain and key; optionally the CA of client certificates and whether one is required.

    Returns
    -------
    context : ssl.SSLContext

    Raises
    ------
    OSError
        If a file cannot be read or the key does not match the certificate (the message names the files).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(config.certfile), keyfile=str(config.keyfile))
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"metrics tls: cannot load certfile {config.certfile} with keyfile {config.keyfile}: "
                      f"{exc}") from exc
    if config.client_cafile is not None:
        try:
            context.load_verify_locations(cafile=str(config.client_cafile))
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"metrics tls: cannot load client_cafile {config.client_cafile}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED if config.client_auth_required else ssl.CERT_OPTIONAL
    return context


@dataclass
class EndpointStats:
    """Counters of one endpoint since it started (read with :meth:`MetricsHTTPServer.stats`)."""

    open_connections: int = 0
    served: int = 0
    timed_out: int = 0
    evicted: int = 0
    refused: int = 0
    rejected: dict[int, int] = field(default_factory=dict)  # HTTP status -> count (401, 404, 405, 431, 400)


class _Connection:
    """Book-keeping for one accepted connection (loop thread only)."""

    __slots__ = ("accepted", "reading", "transport_writer", "task")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.accepted = time.monotonic()
        self.reading = True
        self.transport_writer = writer
        self.task: asyncio.Task | None = None


class MetricsHTTPServer:
    """Serve a Prometheus registry on ``GET /metrics`` with bounded connections, time and bytes.

    Parameters
    ----------
    registry : CollectorRegistry
        The registry to expose.
    host : str
        Bind address (IPv4 or IPv6 literal, or a name).
    port : int
        TCP port; 0 = any free port (read the bound one from :attr:`port`).
    max_connections : int, default 64
        Connections open at once (see the module docstring for what happens at the cap).
    read_timeout_s : float, default 5.0
        Seconds a connection has, from accept, to deliver its whole request head.
    write_timeout_s : float, default 5.0
        Seconds a client has to take the answer.
    max_request_bytes : int, default 8192
        Largest request line plus headers; a larger one is answered 431.
    log_interval_s : float, default 60.0
        Least seconds between two ``metrics_connections_dropped`` log lines.
    ssl_context : ssl.SSLContext, optional
        Serve HTTPS with it (:func:`tls_context`).
    basic_auth : BasicAuth, optional
        Require these credentials on ``/metrics``.

    Raises
    ------
    ValueError
        If a limit is not positive, or ``host`` is not loopback and TLS or basic auth is missing.
    OSError
        From :meth:`start`, if ``host:port`` cannot be bound (the message names both).
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int, *,
                 max_connections: int = MAX_CONNECTIONS, read_timeout_s: float = READ_TIMEOUT_S,
                 write_timeout_s: float = WRITE_TIMEOUT_S, max_request_bytes: int = MAX_REQUEST_BYTES,
                 log_interval_s: float = LOG_INTERVAL_S, ssl_context: ssl.SSLContext | None = None,
                 basic_auth: BasicAuth | None = None) -> None:
        if not _host_is_loopback(host) and (ssl_context is None or basic_auth is None):
            missing = " and ".join(n for n, v in [("TLS", ssl_context), ("basic auth", basic_auth)] if v is None)
            raise ValueError(f"metrics endpoint {host}:{port} is not loopback and has no {missing} (expected both "
                             "off loopback)")
        for name, value in [("max_connections", max_connections), ("read_timeout_s", read_timeout_s),
                            ("write_timeout_s", write_timeout_s), ("max_request_bytes", max_request_bytes)]:
            if value <= 0:
                raise ValueError(f"metrics endpoint {name} is {value}, expected > 0")
        self.registry = registry
        self.host = host
        self.port = port
        self.max_connections = int(max_connections)
        self.read_timeout_s = float(read_timeout_s)
        self.write_timeout_s = float(write_timeout_s)
        self.max_request_bytes = int(max_request_bytes)
        self.log_interval_s = float(log_interval_s)
        self.ssl_context = ssl_context
        self.basic_auth = basic_auth
        self._stats = EndpointStats()
        self._stats_lock = threading.Lock()
        self._connections: dict[int, _Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._render = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-render")
        self._auth = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-auth")
        self._last_log = -float("inf")
        self._dropped_since_log = {"timed_out": 0, "evicted": 0, "refused": 0}
        self._closing = False
        self._accept_pauses = 0  # asyncio's accept out of descriptors, since the last log line
        self._last_pause_log = -float("inf")

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and start serving in a thread of its own.

        Raises
        ------
        OSError
            If ``host:port`` cannot be bound.
        """
        sock = self._bind()
        self.port = int(sock.getsockname()[1])
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            loop.set_exception_handler(self._loop_exception)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._accept, sock=sock, backlog=LISTEN_BACKLOG,
                                         limit=self.max_request_bytes + 1, ssl=self.ssl_context,
                                         ssl_handshake_timeout=self.read_timeout_s if self.ssl_context else None))
            except BaseException as exc:  # noqa: BLE001 - handed to start() and raised there
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"metrics-http-{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            sock.close()
            raise failure[0]

    def _bind(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "TCP_DEFER_ACCEPT"):
                # Linux: a connection reaches accept() once its first bytes arrive (or after this many
                # seconds): silent connections cost the loop nothing and a scrape does not queue behind
                # them (scrape behind 1,100 idle connections in the daemon: 0.1-0.2 s, 0.6 s without).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, max(1, round(self.read_timeout_s)))
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}") from exc
        return sock

    def close(self) -> None:
        """Stop serving: close the listening socket and every open connection, end the threads."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            self._render.shutdown(wait=False)
            self._auth.shutdown(wait=False)
            return

        async def shutdown() -> None:
            self._closing = True
            if self._server is not None:
                self._server.close()
            for conn in list(self._connections.values()):
                conn.transport_writer.transport.abort()
            # every other task: the connections' and those asyncio started for sockets it accepted but
            # had not handed over yet (after a burst), so that none is destroyed pending with the loop
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._server is not None:
                await self._server.wait_closed()

        future = asyncio.run_coroutine_threadsafe(shutdown(), loop)
        try:
            future.result(timeout=CLOSE_TIMEOUT_S)
        except TimeoutError:
            # a stop must not fail on the metrics endpoint: its thread is a daemon thread
            log.warning("event=metrics_close_slow endpoint=%s:%d timeout_s=%.0f detail=\"the endpoint's "
                        "connections did not close in time; its loop is stopped with them open\"", self.host,
                        self.port, CLOSE_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT_S)
        self._render.shutdown(wait=False)
        self._auth.shutdown(wait=False)

    @property
    def thread(self) -> threading.Thread:
        """The thread running the loop.

        Raises
        ------
        RuntimeError
            Before :meth:`start`.
        """
        if self._thread is None:
            raise RuntimeError(f"metrics endpoint {self.host}:{self.port} not started")
        return self._thread

    def stats(self) -> EndpointStats:
        """A copy of the counters (any thread)."""
        with self._stats_lock:
            return EndpointStats(open_connections=len(self._connections), served=self._stats.served,
                                 timed_out=self._stats.timed_out, evicted=self._stats.evicted,
                                 refused=self._stats.refused, rejected=dict(self._stats.rejected))

    # -- connections (loop thread) ----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections and not self._evict_oldest_reader():
            self._count("refused")
            writer.transport.abort()
            return
        conn = _Connection(writer)
        key = id(conn)
        conn.task = asyncio.current_task()
        self._connections[key] = conn
        try:
            await self._handle(reader, writer, conn)
        except asyncio.CancelledError:
            pass  # evicted or closing: the transport is already aborted
        except (ConnectionError, OSError):
            pass  # the client went away mid-answer; nothing to tell it
        finally:
            self._connections.pop(key, None)
            if conn.reading:
                writer.transport.abort()  # no lingering on a half-sent request
            else:
                writer.close()  # the answer is flushed before the FIN

    def _evict_oldest_reader(self) -> bool:
        readers = [c for c in self._connections.values() if c.reading]
        if not readers:
            return False
        oldest = min(readers, key=lambda c: c.accepted)
        oldest.transport_writer.transport.abort()
        if oldest.task is not None:
            oldest.task.cancel()
        self._connections.pop(id(oldest), None)
        self._count("evicted")
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout_s)
        except asyncio.TimeoutError:
            self._count("timed_out")
            return
        except asyncio.LimitOverrunError:
            conn.reading = False
            await self._answer(writer, 431, b"request header fields too large\n")
            return
        except asyncio.IncompleteReadError:
            return  # closed before a full request
        conn.reading = False
        if len(head) > self.max_request_bytes:
            await self._answer(writer, 431, b"request header fields too large\n")
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._answer(writer, 400, b"bad request\n")
            return
        method, target, _ = parts
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        if url.path != "/metrics":
            await self._answer(writer, 404, b"not found: only GET /metrics is served\n")
            return
        if method not in ("GET", "HEAD"):
            await self._answer(writer, 405, b"method not allowed: only GET /metrics is served\n",
                               extra=[("Allow", "GET, HEAD")])
            return
        loop = asyncio.get_running_loop()
        if self.basic_auth is not None:
            header = headers.get("authorization")
            allowed = self.basic_auth.known(header) or await loop.run_in_executor(
                self._auth, self.basic_auth.check, header)
            if not allowed:
                await self._answer(writer, 401, b"unauthorized: basic auth required\n",
                                   extra=[("WWW-Authenticate", 'Basic realm="ictal metrics", charset="UTF-8"')])
                return
        names = parse_qs(url.query).get("name[]", [])
        body, content_type = await loop.run_in_executor(self._render, self._exposition,
                                                        headers.get("accept", ""), names)
        await self._answer(writer, 200, body, content_type=content_type, head_only=method == "HEAD")
        with self._stats_lock:
            self._stats.served += 1

    def _exposition(self, accept: str, names: list[str]) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        registry = self.registry.restricted_registry(names) if names else self.registry
        return encoder(registry), content_type

    async def _answer(self, writer: asyncio.StreamWriter, status: int, body: bytes, *,
                      content_type: str = "text/plain; charset=utf-8", head_only: bool = False,
                      extra: list[tuple[str, str]] | None = None) -> None:
        if status != 200:
            with self._stats_lock:
                self._stats.rejected[status] = self._stats.rejected.get(status, 0) + 1
        reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
                   431: "Request Header Fields Too Large"}
        lines = [f"HTTP/1.1 {status} {reasons[status]}", f"Content-Type: {content_type}",
                 f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in extra or []]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(body)
        try:
            await asyncio.wait_for(writer.drain(), self.write_timeout_s)
        except asyncio.TimeoutError:
            self._count("timed_out")
            writer.transport.abort()

    # -- the loop's own errors --------------------------------------------------------------------

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """asyncio's exception handler for the endpoint's loop (loop thread).

        Out of descriptors (EMFILE/ENFILE under a connection flood), asyncio stops accepting for 1 s and
        reports it with a traceback at each attempt (thousands of error lines in a flood): here it is
        one warning line per ``log_interval_s`` with the count. A retry that asyncio scheduled before
        :meth:`close` and that finds the listening socket closed is expected and not reported. Anything
        else goes to asyncio's default handler.
        """
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            self._accept_pauses += 1
            now = time.monotonic()
            if now - self._last_pause_log >= self.log_interval_s:
                log.warning("event=metrics_accept_paused endpoint=%s:%d pauses=%d open=%d detail=\"out of "
                            "descriptors (%s): asyncio pauses accepting for 1 s each time; a scrape may wait "
                            "that long\"", self.host, self.port, self._accept_pauses, len(self._connections),
                            context.get("exception"))
                self._accept_pauses = 0
                self._last_pause_log = now
            return
        if self._closing and isinstance(context.get("exception"), (ValueError, OSError)):
            log.debug("metrics endpoint %s:%d closing: %s", self.host, self.port, message)
            return
        loop.default_exception_handler(context)

    # -- drop accounting --------------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        with self._stats_lock:
            setattr(self._stats, kind, getattr(self._stats, kind) + 1)
        self._dropped_since_log[kind] += 1
        now = time.monotonic()
        if now - self._last_log >= self.log_interval_s:
            since = self._dropped_since_log
            log.warning("event=metrics_connections_dropped endpoint=%s:%d timed_out=%d evicted=%d refused=%d "
                        "open=%d max_connections=%d detail=\"slow, idle or excess connections to /metrics "
                        "dropped since the last such line\"", self.host, self.port, since["timed_out"],
                        since["evicted"], since["refused"], len(self._connections), self.max_connections)
            self._last_log = now
            self._dropped_since_log = {"timed_out": 0, "evicted": 0, "refused": 0}
