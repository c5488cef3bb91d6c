"""`ViewServer`: the EEG page over HTTP(S), an ASGI app (starlette) under uvicorn in its own thread.

Routes (all JSON is UTF-8; times are stream seconds, see ``streaming.view.hub``)
-------------------------------------------------------------------------------
- ``GET /``: the page (``static/index.html``); ``GET /static/<file>``: its script, uPlot and CSS.
- ``GET /api/meta``: ``ViewHub.meta()`` (mode, beds, channels, display rate, thresholds, CSA rows,
  minutes kept, recording name or null).
- ``GET /api/beds/<bed>/snapshot[?since_version=V]``: ``ViewHub.snapshot`` (404 for an unknown bed).
- ``GET /api/beds/<bed>/eeg?start_s=S&duration_s=D``: ``ViewHub.eeg``; D at most
  :data:`MAX_PAGE_S` (400 beyond, or for a missing/non-numeric parameter).
- ``GET /api/updates``: server-sent events. Every :data:`UPDATE_PERIOD_S` one ``data:`` line
  ``{"beds": {bed: {"version", "state", "eeg_end_s", "trend", "csa", "events"}}, "beds_list": [...]}``
  for the beds that changed since the previous message of this connection, with only the trend points
  and CSA columns changed since then (``since_version``; the page merges them by time), the full
  event list and the state.
  A comment line ``: keep-alive`` when nothing changed.

Responses over 2 kB are gzip-compressed for a client that accepts it (not the event stream).

Cost to the daemon: the server thread only reads the hub (a lock held for a copy of a few thousand
numbers); encoding and sending happen in this thread, never in a bed or the scoring thread.

Security: the page shows patient EEG. The bind follows ``ViewConfig`` (loopback by default; off
loopback refused without TLS and a token). With a token, every request (page, static files, API)
needs it, as the HTTP Basic password (any user name; the browser asks) or ``Authorization: Bearer``;
otherwise 401. Patient identifiers: see ``ViewConfig.allow_patient_id``.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hmac
import json
import logging
import math
import socket
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ictal.streaming.ports import describe_port_holder
from ictal.streaming.view.config import ViewConfig
from ictal.streaming.view.hub import ViewHub

log = logging.getLogger("ictal.view")

STATIC_DIR = Path(__file__).with_name("static")

MAX_PAGE_S: float = 120.0
"""Longest EEG span one request returns (120 s of 19 channels at 128 Hz: about 2 MB of JSON)."""

UPDATE_PERIOD_S: float = 1.0
"""Period of the live updates: the trend has one point a second and the hop is seconds long."""

START_TIMEOUT_S: float = 10.0
"""Longest wait for uvicorn to bind its socket before :meth:`ViewServer.start` gives up."""


def _json(data: object, status: int = 200) -> Response:
    return Response(json.dumps(data, allow_nan=False, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def build_app(hub: ViewHub, token: str | None = None, stop: threading.Event | None = None) -> Starlette:
    """The ASGI app serving ``hub`` (see the module docstring for the routes).

    Parameters
    ----------
    hub : ViewHub
    token : str, optional
        When given, every request must carry it (401 otherwise).
    stop : threading.Event, optional
        Set at shutdown: open update streams end.
    """
    stop = stop or threading.Event()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def meta(request: Request) -> Response:
        return _json(hub.meta())

    async def snapshot(request: Request) -> Response:
        bed = request.path_params["bed"]
        since = request.query_params.get("since_version")
        try:
            since_version = int(since) if since is not None else None
        except ValueError:
            return _json({"error": f"since_version must be an integer (found {since!r})"}, 400)
        try:
            return _json(hub.snapshot(bed, since_version))
        except KeyError:
            return _json({"error": f"no bed {bed!r} (beds: {', '.join(hub.bed_ids()) or 'none'})"}, 404)

    async def eeg(request: Request) -> Response:
        bed = request.path_params["bed"]
        try:
            start_s = float(request.query_params["start_s"])
            duration_s = float(request.query_params["duration_s"])
        except (KeyError, ValueError):
            return _json({"error": "start_s and duration_s are required numbers (found "
                          f"{dict(request.query_params)})"}, 400)
        if not (math.isfinite(duration_s) and 0 <= duration_s <= MAX_PAGE_S and math.isfinite(start_s)):
            return _json({"error": f"duration_s must be in [0, {MAX_PAGE_S:g}] and start_s finite (found "
                          f"start_s={start_s}, duration_s={duration_s})"}, 400)
        try:
            return _json(hub.eeg(bed, start_s, duration_s))
        except KeyError:
            return _json({"error": f"no bed {bed!r} (beds: {', '.join(hub.bed_ids()) or 'none'})"}, 404)

    async def updates(request: Request) -> Response:
        async def stream():
            sent_version: dict[str, int] = {}
            yield "retry: 2000\n\n"
            while not stop.is_set():
                if await request.is_disconnected():
                    return
                changed = {}
                for bed in hub.bed_ids():
                    version = hub.version(bed)
                    if version == sent_version.get(bed):
                        continue
                    snap = hub.snapshot(bed, sent_version.get(bed))
                    sent_version[bed] = snap["version"]
                    changed[bed] = snap
                if changed:
                    payload = {"beds": changed, "beds_list": hub.bed_ids(), "thresholds": hub.thresholds}
                    yield "data: " + json.dumps(payload, allow_nan=False, separators=(",", ":")) + "\n\n"
                else:
                    yield ": keep-alive\n\n"
                await asyncio.sleep(UPDATE_PERIOD_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # gzip for the EEG pages and snapshots (numbers as text shrink about 3x); level 4: most of the gain of
    # level 9 for a fraction of its CPU (the server thread shares the cores with scoring)
    app = Starlette(middleware=[Middleware(GZipMiddleware, minimum_size=2048, compresslevel=4)], routes=[
        Route("/", index),
        Route("/api/meta", meta),
        Route("/api/beds/{bed}/snapshot", snapshot),
        Route("/api/beds/{bed}/eeg", eeg),
        Route("/api/updates", updates),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ])
    if token is None:
        return app
    return _TokenGate(app, token)


class _TokenGate:
    """ASGI middleware: 401 unless the request carries the token (Basic password or Bearer)."""

    def __init__(self, app: Starlette, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _allowed(self, header: bytes | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(b" ")
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(value.strip(), self.token)
        if scheme.lower() == b"basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except ValueError:
                return False
            return hmac.compare_digest(decoded.partition(b":")[2], self.token)
        return False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            header = dict(scope.get("headers") or []).get(b"authorization")
            if not self._allowed(header):
                response = JSONResponse({"error": "authentication required (view auth_token_file)"}, 401,
                                        headers={"WWW-Authenticate": 'Basic realm="ictal view"'})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ViewServer:
    """The page server in a thread: :meth:`start`, :attr:`url`, :meth:`close`.

    Parameters
    ----------
    hub : ViewHub
    config : ViewConfig
        Bind address, port (0: any free port), TLS files and token file.

    Raises
    ------
    OSError
        From :meth:`start` when the port cannot be bound (the message names host and port).
    ValueError
        For an empty token file.
    """

    def __init__(self, hub: ViewHub, config: ViewConfig) -> None:
        self.hub = hub
        self.config = config
        self._stop = threading.Event()
        self.app = build_app(hub, config.read_token(), self._stop)
        ssl = {}
        if config.tls_certfile is not None:
            ssl = {"ssl_certfile": str(config.tls_certfile), "ssl_keyfile": str(config.tls_keyfile)}
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host=config.host, port=config.port, log_level="warning", access_log=False,
            timeout_graceful_shutdown=1, lifespan="off", **ssl))
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="ictal-view", daemon=True)
        self.port: int | None = None

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    @property
    def url(self) -> str:
        """``http(s)://host:port/`` once started."""
        scheme = "https" if self.config.tls_certfile is not None else "http"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.port}/"

    def start(self) -> ViewServer:
        """Bind and serve in the background; returns once the socket listens.

        Raises
        ------
        OSError
            The address or port cannot be bound (a port in use names the process holding it,
            ``streaming.ports``), or the server did not start within :data:`START_TIMEOUT_S`.
        """
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            holder = describe_port_holder(self.config.port) if exc.errno == errno.EADDRINUSE else str(exc)
            raise OSError(exc.errno, f"view server cannot listen on {self.config.host}:{self.config.port}: "
                          f"{holder}") from exc
        sock.set_inheritable(True)
        self._socket = sock
        self._thread.start()
        deadline = START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and deadline > 0:
            self._stop.wait(0.02)
            deadline -= 0.02
        if not self._server.started:
            self.close()
            raise OSError(f"view server on {self.config.host}:{self.config.port} did not start within "
                          f"{START_TIMEOUT_S:g} s (see the log above)")
        self.port = sock.getsockname()[1]
        log.info("view_listening url=%s", self.url)
        return self

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop serving (open update streams end); idempotent."""
        self._stop.set()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()
