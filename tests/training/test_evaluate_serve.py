"""``ictal evaluate`` and ``ictal serve`` raise the same events for the same file, checkpoint,
thresholds and hop.

A tiny randomly initialised checkpoint is saved; ``python -m ictal serve`` replays
``labelled/hms_1628180742.edf`` (90 s, HMS, Kaggle CC BY-NC 4.0) from an EDF source into one bed and
its onset/offset events are collected over ZeroMQ (catch-up + live) and from its journal; ``ictal
evaluate`` runs the same file. An untrained model's probabilities sit in a narrow band, so tau_on is
set below it and the maximum duration to 20 s: the daemon path then announces the alarm every 20 s
(five events over the 90 s), and each event's peak and mean probability compare the stitched
probabilities of both runs sample by sample.

The replay is paced (a window every ~3 s of wall time) so that the daemon scores every window: when
scoring falls behind, the daemon skips to the newest window by design (``streaming.scoring``), which
would change its probabilities; the test checks that no ``scoring_behind`` notice was raised.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from ictal.alarms.config import AlarmThresholds, JournalConfig
from ictal.alarms.thresholds import save_thresholds
from ictal.cli import main

HOP_S = 15.0
SPEED = 5.0
THRESHOLDS = AlarmThresholds(tau_on=0.02, tau_off=0.01, min_duration_s=1.0, merge_gap_s=1.0, max_duration_s=20.0,
                             refractory_s=0.0)


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, repo_root):
    import torch

    from ictal.detector.checkpoint import save_checkpoint
    from ictal.detector.config import FrontendConfig, ModelConfig
    from ictal.detector.model import build_model

    torch.manual_seed(1234)
    config = ModelConfig.model_validate(yaml.safe_load((repo_root / "configs/model/tiny_bimamba2.yaml").read_text()))
    path = tmp_path_factory.mktemp("ckpt") / "tiny_random"
    save_checkpoint(path, build_model(config).eval(), config, FrontendConfig())
    return path


def _serve(tmp_path, checkpoint, edf, thresholds_file):
    pub, catchup, metrics = _free_ports(3)
    config = {
        "kind": "daemon",
        "beds": [{"bed_id": "bed-eval", "source": {"type": "edf", "path": str(edf), "speed": SPEED}}],
        "scheduler": {"hop_s": HOP_S},
        "detector": {"checkpoint": str(checkpoint), "device": "cpu", "queue_windows": 16},
        "alarms": {
            "thresholds_file": str(thresholds_file),
            "journal": {"path": str(tmp_path / "journal.sqlite3")},
            "publisher": {"pub_endpoint": f"tcp://127.0.0.1:{pub}", "catchup_endpoint": f"tcp://127.0.0.1:{catchup}",
                          "heartbeat_s": 1.0},
            "metrics": {"port": metrics},
        },
    }
    config_path = tmp_path / "daemon.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ictal", "serve", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    return proc, config["alarms"]["publisher"]


def test_evaluate_and_serve_raise_the_same_events(shared_data, tmp_path, checkpoint):
    from ictal.alarms.journal import Journal
    from ictal.alarms.subscriber import AlarmSubscriber, CatchupError

    edf = shared_data / "labelled" / "hms_1628180742.edf"
    th_file = save_thresholds(tmp_path / "thresholds.json", THRESHOLDS, target_fa_per_24h=1.0, dataset="test",
                              checkpoint_id=json.loads((checkpoint / "metadata.json").read_text())["checkpoint_id"])
    proc, publisher = _serve(tmp_path, checkpoint, edf, th_file)
    received = []
    stop = threading.Event()
    try:
        with AlarmSubscriber(publisher["pub_endpoint"], publisher["catchup_endpoint"], request_timeout_s=2.0) as sub:
            def follow():
                deadline = time.monotonic() + 120
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        for event in sub.iter_events(stop=stop):
                            received.append(event)
                            if event.kind == "signal_quality" and event.reason == "end_of_stream":
                                return
                    except CatchupError:  # the daemon is not up yet: try again until the deadline
                        time.sleep(0.5)

            # meanwhile, evaluate the same file in this process
            follower = threading.Thread(target=follow, daemon=True)
            follower.start()
            out = tmp_path / "eval"
            assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(shared_data), "--out", str(out),
                         "--include", "labelled__hms_1628180742", "--hop-s", str(HOP_S), "--thresholds", str(th_file),
                         "--device", "cpu", "--no-plots", "--quiet"]) == 0
            follower.join(timeout=150)
            assert not follower.is_alive(), "the daemon did not reach the end of the file in time"
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            log, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
    assert proc.returncode == 0, log.decode(errors="replace")[-3000:]
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    served = [e for e in journal.since(0) if e.bed_id == "bed-eval"]
    journal.close()
    assert not [e for e in served if e.kind == "signal_quality" and e.reason == "scoring_behind"], \
        "the daemon skipped windows: its probabilities are not comparable"
    live = [e for e in received if e.kind in ("onset", "offset")]
    served_alarms = [e for e in served if e.kind in ("onset", "offset")]
    assert [e.event_id for e in live] == [e.event_id for e in served_alarms[:len(live)]]

    served_pairs = [(e.onset_s, e.offset_s, e.probability.peak, e.probability.mean)
                    for e in served_alarms if e.kind == "offset"]
    served_onsets = [(e.onset_s, e.stream_time_s) for e in served_alarms if e.kind == "onset"]
    evaluated = json.loads((out / "recordings.json").read_text())[0]["events"]
    assert len(evaluated) >= 4, "the thresholds must make the random model raise several events"
    assert len(served_pairs) == len(evaluated) and len(served_onsets) == len(evaluated)
    for (onset, offset, peak, mean), (o2, raised), ev in zip(served_pairs, served_onsets, evaluated, strict=True):
        assert onset == pytest.approx(ev["onset_s"], abs=1e-6) and o2 == onset
        assert offset == pytest.approx(ev["offset_s"], abs=1e-6)
        assert raised == pytest.approx(ev["raised_s"], abs=1e-6)
        assert peak == pytest.approx(ev["peak"], abs=1e-5) and mean == pytest.approx(ev["mean"], abs=1e-5)
