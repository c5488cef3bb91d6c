"""`ictal alarms watch` as a subprocess against a running publisher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from alarms.schema import AlarmEvent
from tests.alarms.helpers import onset, open_publisher, publisher_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def watch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ictal", "alarms", "watch", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_watch_json_catches_up_then_follows_live(tmp_path):
    config = publisher_config(heartbeat_s=0.2)
    journal, publisher = open_publisher(tmp_path, config)
    proc = None
    try:
        for i in range(3):
            publisher.publish(onset("bed1", float(i)))
        proc = watch("--endpoint", config.pub_endpoint, "--catchup-endpoint", config.catchup_endpoint,
                     "--since", "1", "--json", "--count", "6")
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # the catch-up: seq 2 and 3
        for i in range(4):
            publisher.publish(onset("bed2", float(i)))
            time.sleep(0.05)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        publisher.close()
    lines += out.splitlines()
    assert proc.returncode == 0, err
    events = [AlarmEvent.model_validate(json.loads(line)) for line in lines]
    assert [e.journal_seq for e in events] == [2, 3, 4, 5, 6, 7]
    assert events == journal.since(1)
    journal.close()


def test_watch_prints_one_readable_line_per_event(tmp_path):
    config = publisher_config()
    journal, publisher = open_publisher(tmp_path, config)
    try:
        publisher.publish(onset("icu7", 50.0))
        proc = watch("--endpoint", config.pub_endpoint, "--catchup-endpoint", config.catchup_endpoint,
                     "--count", "1")
        out, err = proc.communicate(timeout=20)
    finally:
        publisher.close()
        journal.close()
    assert proc.returncode == 0, err
    line, = out.splitlines()
    assert "#1 icu7/1 ONSET onset 50.00 s, raised 60.00 s (latency 10.00 s)" in line
    assert "p peak 0.970 mean 0.900" in line


def test_watch_rejects_half_curve_options():
    proc = watch("--server-key", "x")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "needs both --server-key and --client-key" in err
