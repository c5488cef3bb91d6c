"""The page server over real sockets: routes, live updates, the bind rule and the token gate."""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from pydantic import ValidationError

from ictal.alarms.schema import AlarmEvent, BedStatus
from ictal.streaming.chunk import Chunk
from ictal.streaming.sources.base import Source
from ictal.streaming.view.config import ViewConfig
from ictal.streaming.view.hub import ViewHub
from ictal.streaming.view.live import TappedSource
from ictal.streaming.view.server import ViewServer


def _hub() -> ViewHub:
    hub = ViewHub(minutes=1, thresholds={"tau_on": 0.8, "tau_off": 0.5})
    data = np.zeros((19, 256 * 12), np.float32)
    hub.on_chunk("bed-1", Chunk(data=data, first_index=0, clock_s=0.0, fs=256.0))
    hub.add_probabilities("bed-1", [(0, np.full(256 * 12, 0.3, np.float32))], True)
    hub.on_state("bed-1", BedStatus(state="monitored", reason="windows scored; input usable"))
    return hub


def _get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def server():
    srv = ViewServer(_hub(), ViewConfig(port=0)).start()
    yield srv
    srv.close()


def test_page_static_files_and_api_are_served(server):
    status, html = _get(server.url)
    assert status == 200 and "uPlot.iife.min.js" in html and "view.js" in html
    assert _get(server.url + "static/uPlot.iife.min.js")[0] == 200
    assert _get(server.url + "static/uPlot.LICENSE")[1].startswith("The MIT License")
    meta = json.loads(_get(server.url + "api/meta")[1])
    assert meta["beds"] == ["bed-1"] and meta["thresholds"] == {"tau_on": 0.8, "tau_off": 0.5}
    assert meta["recording"] is None
    snap = json.loads(_get(server.url + "api/beds/bed-1/snapshot")[1])
    assert snap["state"]["state"] == "monitored" and len(snap["trend"]["t_s"]) == 12
    page = json.loads(_get(server.url + "api/beds/bed-1/eeg?start_s=2&duration_s=3")[1])
    assert len(page["data"]) == 19 and len(page["data"][0]) == 3 * 128


def test_bad_requests_name_what_was_expected(server):
    status, body = _get(server.url + "api/beds/nobody/snapshot")
    assert status == 404 and "bed-1" in body
    status, body = _get(server.url + "api/beds/bed-1/eeg?start_s=0")
    assert status == 400 and "duration_s" in body
    status, body = _get(server.url + "api/beds/bed-1/eeg?start_s=0&duration_s=1000")
    assert status == 400 and "duration_s must be in" in body


def test_live_updates_stream_what_changed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/updates HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        received = b""
        while received.count(b"data: ") < 1:
            received += sock.recv(65536)
        first = json.loads(received.split(b"data: ", 1)[1].split(b"\n\n", 1)[0])
        assert first["beds"]["bed-1"]["state"]["state"] == "monitored"
        assert len(first["beds"]["bed-1"]["trend"]["t_s"]) == 12
        # an alarm arrives: the next message carries it and no trend point (none changed)
        server.hub.on_event(AlarmEvent(bed_id="bed-1", kind="onset", stream_time_s=11.0, onset_s=6.0,
                                       reason="min_duration"))
        rest = received.split(b"data: ", 1)[1].split(b"\n\n", 1)[1]
        while b"data: " not in rest or not rest.rstrip().endswith(b"}"):
            rest += sock.recv(65536)
        update = json.loads(rest.split(b"data: ", 1)[1].split(b"\n\n", 1)[0])
        bed = update["beds"]["bed-1"]
        assert [e["kind"] for e in bed["events"]] == ["onset"] and bed["trend"]["t_s"] == []


def test_a_token_is_required_when_configured(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    srv = ViewServer(_hub(), ViewConfig(port=0, auth_token_file=token_file)).start()
    try:
        status, _ = _get(srv.url + "api/meta")
        assert status == 401
        assert _get(srv.url, {"Authorization": "Bearer wrong"})[0] == 401
        assert _get(srv.url + "api/meta", {"Authorization": "Bearer s3cret"})[0] == 200
        basic = base64.b64encode(b"nurse:s3cret").decode()
        assert _get(srv.url + "static/view.js", {"Authorization": f"Basic {basic}"})[0] == 200
    finally:
        srv.close()


def test_off_loopback_needs_tls_and_a_token(tmp_path):
    with pytest.raises(ValidationError, match="not a loopback address.*tls_certfile/tls_keyfile and auth_token_file"):
        ViewConfig(host="0.0.0.0")
    with pytest.raises(ValidationError, match="auth_token_file"):
        ViewConfig(host="10.1.2.3", tls_certfile=tmp_path / "c.pem", tls_keyfile=tmp_path / "k.pem")
    with pytest.raises(ValidationError, match="go together"):
        ViewConfig(tls_certfile=tmp_path / "c.pem")
    ok = ViewConfig(host="10.1.2.3", tls_certfile=tmp_path / "c.pem", tls_keyfile=tmp_path / "k.pem",
                    auth_token_file=tmp_path / "t")
    assert ok.host == "10.1.2.3"
    assert ViewConfig(host="localhost").port == 9110


def test_a_port_in_use_is_an_error_naming_it():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            ViewServer(_hub(), ViewConfig(port=port)).start()


class _ListSource(Source):
    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.connected = "yes"

    @property
    def fs(self) -> float:
        return 256.0

    def open(self) -> None:
        pass

    def read(self, timeout_s: float):
        return self.chunks.pop(0) if self.chunks else None

    def close(self) -> None:
        pass

    @property
    def exhausted(self) -> bool:
        return not self.chunks


def test_a_tapped_source_hands_each_chunk_to_the_hub_unchanged():
    chunk = Chunk(data=np.ones((19, 256), np.float32), first_index=0, clock_s=0.0, fs=256.0)
    hub = ViewHub(minutes=1)
    source = TappedSource(_ListSource([chunk]), "bed-9", hub)
    assert source.read(0.0) is chunk
    assert source.read(0.0) is None and source.exhausted
    assert source.connected == "yes"  # source-specific attributes pass through
    assert hub.snapshot("bed-9")["eeg_end_s"] > 0.8


def test_eeg_pages_are_gzipped_for_a_browser(server):
    import gzip

    request = urllib.request.Request(server.url + "api/beds/bed-1/eeg?start_s=0&duration_s=10",
                                     headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.headers["Content-Encoding"] == "gzip"
        page = json.loads(gzip.decompress(reply.read()))
    assert len(page["data"][0]) == 10 * 128
