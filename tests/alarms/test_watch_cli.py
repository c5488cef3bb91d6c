"""`ictal alarms watch` as a subprocess against a running publisher."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import Journal
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent
from ictal.alarms.subscriber import catchup_endpoint_for
from ictal.commands import alarms as alarms_command
from tests.alarms.helpers import onset, open_publisher, publisher_config
from tests.alarms.test_latency import FakeClock, journal_with_raw_rows
from tests.alarms.test_schema import V1_ONSET_JSON

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


def run_in_process(*args: str) -> int:
    """Parse with the `alarms` subcommand alone (building the whole `ictal` parser imports every bench)."""
    parser = argparse.ArgumentParser(prog="ictal")
    alarms_command.register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["alarms", "watch", *args])
    return parsed.func(parsed)


def test_watch_prints_one_readable_line_per_event(tmp_path, capsys):
    config = publisher_config()
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    published = datetime(2026, 1, 1, 10, 1, 2, 500000, tzinfo=timezone.utc)
    publisher = AlarmPublisher(config, journal, wall_clock=FakeClock(published.timestamp()))
    event = onset("icu7", 50.0).model_copy(update={
        "onset_wall_time": datetime(2026, 1, 1, 10, 0, 0, tzinfo=timezone.utc),
        "min_duration_wall_time": datetime(2026, 1, 1, 10, 0, 10, 250000, tzinfo=timezone.utc)})
    try:
        publisher.publish(event)
        code = run_in_process("--endpoint", config.pub_endpoint, "--catchup-endpoint", config.catchup_endpoint,
                              "--count", "1")
    finally:
        publisher.close()
        journal.close()
    assert code == 0
    line, = capsys.readouterr().out.splitlines()
    assert line.startswith("2026-01-01T10:01:02.500Z #1 icu7/1 ONSET ")
    assert ("onset 50.00 s = 2026-01-01T10:00:00.000Z, min duration done 60.00 s = 2026-01-01T10:00:10.250Z, "
            "published 2026-01-01T10:01:02.500Z, latency 62.50 s (published - onset)") in line
    assert "p peak 0.970 mean 0.900" in line


def _watch_one_journaled_row(tmp_path, row: str) -> int:
    """`ictal alarms watch --count 1` against a publisher whose journal holds ``row`` as stored JSON."""
    config = publisher_config()
    journal_with_raw_rows(tmp_path / "journal.sqlite3", [row])
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(config, journal)
    try:
        return run_in_process("--endpoint", config.pub_endpoint, "--catchup-endpoint", config.catchup_endpoint,
                              "--count", "1")
    finally:
        publisher.close()
        journal.close()


def test_watch_reads_a_version_1_event_and_says_its_latency_is_unknown(tmp_path, capsys):
    code = _watch_one_journaled_row(tmp_path, V1_ONSET_JSON)
    assert code == 0
    line, = capsys.readouterr().out.splitlines()
    assert ("#1 icu-3/1 ONSET onset 100.00 s = ?, min duration done 110.00 s = ?, published "
            "2025-11-03T08:15:02.250Z, latency unknown (a version-1 event: no onset wall time)") in line


def test_watch_refuses_an_event_of_a_newer_schema_version_with_exit_code_1(tmp_path, capsys):
    newer = json.loads(V1_ONSET_JSON) | {"schema_version": 4}
    code = _watch_one_journaled_row(tmp_path, json.dumps(newer))
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "schema_version 4; this ictal reads versions 1, 2, 3" in captured.err


def test_watch_rejects_half_curve_options(capsys):
    assert run_in_process("--server-key", "x") == 2
    assert "needs both --server-key and --client-key" in capsys.readouterr().err


def test_watch_derives_the_catchup_endpoint_from_the_pub_endpoint():
    assert catchup_endpoint_for("tcp://127.0.0.1:5556") == "tcp://127.0.0.1:5557"
    with pytest.raises(ValueError, match="expected tcp://host:port"):
        catchup_endpoint_for("ipc:///tmp/alarms")
