"""End to end with real processes: `ictal replay` (LSL) -> `ictal serve` -> ZeroMQ subscriber and Prometheus.

A real EDF file of ../shared/data is published as an LSL stream by ``python -m ictal replay``; the
daemon (``python -m ictal serve``) scores it with a small randomly initialised checkpoint saved by
the test; a ZeroMQ subscriber receives the events, the metrics endpoint is scraped, a fake systemd
notify socket checks READY/WATCHDOG, SIGHUP reloads the thresholds, SIGTERM stops the daemon with
exit code 0, and a restart continues the journal's sequence numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
import zmq

from tests.reliability.daemon_harness import LiveSubscriber, scrape
from tests.reliability.helpers import free_port
from tests.streaming.daemon_helpers import NotifySocket, wait_for

REPO = Path(__file__).resolve().parents[2]
BED = "bed-e2e"


def micro_checkpoint(path: Path) -> Path:
    """A small randomly initialised checkpoint (seconds per window on a CPU, not minutes)."""
    import torch

    from ictal.detector.checkpoint import save_checkpoint
    from ictal.detector.config import FrontendConfig, ModelConfig, StackConfig
    from ictal.detector.model import build_model

    torch.manual_seed(0)
    config = ModelConfig(
        name="micro-test", tcn_widths=[8, 8, 8, 8], tcn_dilations=[1, 2], d_electrode=4, similarity_heads=1,
        node_stack=StackConfig(n_layers=1, d_model=8, d_state=4, n_heads=1, expand=1),
        edge_stack=StackConfig(n_layers=1, d_model=4, d_state=4, n_heads=1, expand=1),
        top_k=2, lpe_k=2, gnn_hidden=4, decoder_widths=[4, 4, 4, 4], dropout=0.0, backend="reference",
    )
    save_checkpoint(path, build_model(config), config, FrontendConfig())
    return path


def catch_up(endpoint: str, since: int) -> dict:
    """One catch-up request to the daemon's REP socket (see alarms.publisher)."""
    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(json.dumps({"since": since}).encode())
        return json.loads(sock.recv())
    finally:
        sock.close()
        context.term()


def _serve(config: Path, cwd: Path, notify: Path) -> subprocess.Popen:
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="1000000", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "ictal", "serve", "--config", str(config)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen, timeout_s: float = 15.0) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return -1, time.monotonic() - t0, out
    return proc.returncode, time.monotonic() - t0, out


def test_replay_serve_subscribe_scrape_stop_restart(tmp_path, shared_data):
    edf = shared_data / "labelled" / "hms_1628180742.edf"
    checkpoint = micro_checkpoint(tmp_path / "checkpoint")
    stream = f"ictal-e2e-{uuid.uuid4().hex[:8]}"
    pub, catchup, metrics_port = free_port(), free_port(), free_port()
    config = yaml.safe_load((REPO / "configs" / "daemon.yaml").read_text())
    config["beds"] = [{"bed_id": BED, "source": {"type": "lsl", "name": stream, "resolve_timeout_s": 2.0}}]
    config["detector"].update({"checkpoint": str(checkpoint), "device": "cpu", "max_batch": 4})
    config["alarms"]["journal"]["path"] = "state/journal.sqlite3"  # relative: resolves in the working dir
    config["alarms"]["publisher"].update({"pub_endpoint": f"tcp://127.0.0.1:{pub}",
                                          "catchup_endpoint": f"tcp://127.0.0.1:{catchup}", "heartbeat_s": 1.0})
    config["alarms"]["metrics"]["port"] = metrics_port
    config_path = tmp_path / "daemon.yaml"
    config_path.write_text(yaml.safe_dump(config))
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    notify = NotifySocket(tmp_path / "notify.sock")
    subscriber = LiveSubscriber(f"tcp://127.0.0.1:{pub}")
    replay = subprocess.Popen(
        [sys.executable, "-m", "ictal", "replay", str(edf), "--speed", "10", "--loop", "--name", stream,
         "--wait-consumer-s", "90"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    serve = _serve(config_path, tmp_path, notify.path)
    try:
        assert wait_for(lambda: "READY=1" in notify.lines() or serve.poll() is not None, 90.0)
        assert serve.poll() is None, serve.communicate()[0][-3000:]

        def scored() -> float:
            values = scrape(metrics_url)
            return values.get(("ictal_windows_scored_total", (("bed", BED),)), 0.0)

        assert wait_for(lambda: scored() >= 2, 90.0, interval_s=0.5), serve.poll()
        values = scrape(metrics_url)
        # two windows: the warm-up windows ending at min_history_s (10 s) and one hop later (14 s)
        assert values[("ictal_samples_received_total", (("bed", BED),))] > 13 * 200
        assert values[("ictal_stream_connected", (("bed", BED),))] == 1.0
        assert values[("ictal_threshold_tau_on", (("bed", BED),))] == 0.8
        assert wait_for(lambda: "WATCHDOG=1" in notify.lines(), 5.0)

        # SIGHUP: new thresholds without dropping the bed
        config["alarms"]["thresholds"] = {"tau_on": 0.9, "tau_off": 0.6}
        config_path.write_text(yaml.safe_dump(config))
        serve.send_signal(signal.SIGHUP)
        assert wait_for(lambda: scrape(metrics_url)[("ictal_threshold_tau_on", (("bed", BED),))] == 0.9, 10.0)
        assert scrape(metrics_url)[("ictal_stream_connected", (("bed", BED),))] == 1.0
        journaled: list[dict] = []

        def reloaded() -> bool:
            journaled[:] = catch_up(f"tcp://127.0.0.1:{catchup}", since=0)["events"]
            return [e["reason"] for e in journaled if e["kind"] == "daemon"] == ["started", "reloaded"]

        assert wait_for(reloaded, 10.0, interval_s=0.5), journaled

        code, seconds, out = _stop(serve)
        assert code == 0, out[-3000:]
        assert seconds < 10.0, out[-4000:]
        assert (tmp_path / "state" / "journal.sqlite3").exists()
        kinds = [event["kind"] for event in subscriber.of()]
        assert "heartbeat" in kinds and "daemon" in kinds, kinds
        live = [event for _, event in subscriber.events if event.get("journal_seq") is not None]
        assert [e["reason"] for e in live if e["kind"] == "daemon"][-1] == "stopped"
        head = max(e["journal_seq"] for e in live)
        assert head > max(e["journal_seq"] for e in journaled)
        assert "event=daemon_ready" in out and "level=info" in out  # structured log lines

        readies = notify.lines().count("READY=1")  # start, and again after the reload
        serve = _serve(config_path, tmp_path, notify.path)
        assert wait_for(lambda: notify.lines().count("READY=1") > readies or serve.poll() is not None, 90.0)
        assert serve.poll() is None, serve.communicate()[0][-3000:]
        # PUB/SUB drops what is sent before the subscriber has reconnected: ask the journal (catch-up REP)
        reply = catch_up(f"tcp://127.0.0.1:{catchup}", since=head)
        assert reply["ok"] and reply["events"], reply
        restarted = reply["events"][0]
        assert restarted["journal_seq"] == head + 1
        assert (restarted["kind"], restarted["reason"]) == ("daemon", "started")
        code, seconds, out = _stop(serve)
        assert code == 0, out[-3000:]
    finally:
        for proc in (serve, replay):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        subscriber.close()
        notify.close()


def test_serve_refuses_a_missing_checkpoint_with_a_clear_message(tmp_path):
    config = yaml.safe_load((REPO / "configs" / "daemon.yaml").read_text())
    config["detector"]["checkpoint"] = str(tmp_path / "checkpoint")
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "ictal", "serve", "--config", str(path)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"checkpoint {tmp_path / 'checkpoint'}" in result.stderr and "does not exist" in result.stderr


def test_a_checkpoint_trained_with_another_frontend_is_refused_before_start(tmp_path):
    from ictal.config import load_config
    from ictal.streaming.daemon import DaemonError, load_detector

    config = load_config(REPO / "configs" / "daemon.yaml", kind="daemon")
    config = config.model_copy(update={
        "frontend": config.frontend.model_copy(update={"notch_hz": 50.0}),
        "detector": config.detector.model_copy(update={"checkpoint": micro_checkpoint(tmp_path / "ck"),
                                                       "device": "cpu"}),
    })
    with pytest.raises(DaemonError, match=r"notch_hz: checkpoint 60.0, daemon config 50.0"):
        load_detector(config)
