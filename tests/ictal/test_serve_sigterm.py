"""SIGTERM while a batch is inside PyTorch: `ictal serve` exits 0 with its journal closed, never SIGABRT.

The real daemon with the shipped demo checkpoint serves four beds replayed as fast as possible (the
scoring loop is always inside a forward pass) and gives the batch in flight 0.1 s at shutdown. Before the
fix, finalising the interpreter under the abandoned batch aborted the process ("terminate called without
an active exception", exit 134) in every run; 64 beds at real time did the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import Journal
from tests.reliability.helpers import free_port
from tests.streaming.daemon_helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
EDF = "background/eegmat/Subject00_1.edf"


def test_sigterm_with_a_batch_in_flight_exits_0_with_the_journal_closed(tmp_path, shared_data):
    beds = [{"bed_id": f"bed-{i}", "source": {"type": "edf", "path": str(shared_data / EDF), "speed": 0.0,
                                              "loop": True}} for i in range(4)]
    config = {
        "kind": "daemon", "beds": beds, "shutdown_timeout_s": 0.1,
        "detector": {"checkpoint": str(REPO / "checkpoints" / "demo"), "device": "cpu", "max_batch": 4},
        "alarms": {"journal": {"path": str(tmp_path / "journal.sqlite3")},
                   "publisher": {"pub_endpoint": f"tcp://127.0.0.1:{free_port()}",
                                 "catchup_endpoint": f"tcp://127.0.0.1:{free_port()}"},
                   "metrics": {"port": free_port()}},
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ictal", "serve", "--config", str(path)], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # two beds scored: the scoring loop is busy with the next batch when the signal comes
        assert wait_for(lambda: log.read_text().count("state=monitored") >= 2, 120.0, 0.5), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 0, f"exit {code}:\n{text[-3000:]}"
    assert "terminate called" not in text
    assert "event=daemon_stopped" in text
    with Journal(JournalConfig(path=tmp_path / "journal.sqlite3")) as journal:
        events = journal.since(0)
    assert events[-1].kind == "daemon" and events[-1].reason == "stopped", events[-1]
