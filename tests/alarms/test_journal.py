"""The journal: durability, sequence numbers across restarts and kill -9, retention, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import DuplicateEventError, Journal, JournalError
from ictal.alarms.schema import AlarmEvent
from tests.alarms.helpers import free_port, onset

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_append_assigns_global_and_per_bed_sequences(tmp_path):
    with Journal(JournalConfig(path=tmp_path / "j.sqlite3")) as journal:
        stored = [journal.append(onset(bed)) for bed in ["a", "b", "a", "a", "b"]]
        daemon = journal.append(AlarmEvent(kind="daemon", detail="started"))
    assert [e.journal_seq for e in stored] == [1, 2, 3, 4, 5]
    assert [e.bed_seq for e in stored] == [1, 1, 2, 3, 2]
    assert daemon.journal_seq == 6 and daemon.bed_seq is None


def test_wal_synchronous_full_and_exclusive_locking_are_in_force(tmp_path):
    import sqlite3

    journal = Journal(JournalConfig(path=tmp_path / "j.sqlite3"))
    journal.append(onset())
    assert journal._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert journal._conn.execute("PRAGMA locking_mode").fetchone()[0] == "exclusive"
    assert not Path(f"{tmp_path / 'j.sqlite3'}-shm").exists()  # WAL index in heap memory: nothing mapped
    other = sqlite3.connect(tmp_path / "j.sqlite3", timeout=0.1)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("SELECT COUNT(*) FROM events").fetchone()
    other.close()
    journal.close()
    other = sqlite3.connect(tmp_path / "j.sqlite3")  # once closed, readable offline
    assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    other.close()


def test_sequences_continue_after_reopen_and_since_returns_what_was_stored(tmp_path):
    config = JournalConfig(path=tmp_path / "j.sqlite3")
    with Journal(config) as journal:
        first = [journal.append(onset("a")) for _ in range(3)]
    with Journal(config) as journal:
        assert journal.last_seq == 3
        nxt = journal.append(onset("a"))
        assert (nxt.journal_seq, nxt.bed_seq) == (4, 4)
        assert journal.since(1) == first[1:] + [nxt]
        assert [e.journal_seq for e in journal.since(0, limit=2)] == [1, 2]


def test_retention_prunes_old_events_but_never_reuses_sequence_numbers(tmp_path):
    config = JournalConfig(path=tmp_path / "j.sqlite3", retention_days=1.0)
    with Journal(config) as journal:
        for _ in range(3):
            journal.append(onset("a"))
        assert journal.prune(now=time.time() + 2 * 86400) == 3
        assert journal.since(0) == [] and journal.first_seq() is None
        again = journal.append(onset("a"))
        assert (again.journal_seq, again.bed_seq) == (4, 4)
        assert journal.prune() == 0


def test_the_same_event_cannot_be_appended_twice(tmp_path):
    with Journal(JournalConfig(path=tmp_path / "j.sqlite3")) as journal:
        event = journal.append(onset())
        with pytest.raises(DuplicateEventError, match="already in alarm journal .* as journal_seq 1"):
            journal.append(event)
        assert journal.last_seq == 1


def test_a_failed_write_raises_journal_error_and_consumes_no_sequence(tmp_path):
    with Journal(JournalConfig(path=tmp_path / "j.sqlite3")) as journal:
        journal.append(onset())
        journal._conn.execute("PRAGMA query_only=ON")  # the file now refuses writes, like a read-only disk
        with pytest.raises(JournalError, match="cannot append to alarm journal"):
            journal.append(onset())
        journal._conn.execute("PRAGMA query_only=OFF")
        assert journal.append(onset()).journal_seq == 2


def test_unopenable_journal_is_named(tmp_path):
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(JournalError, match="dir.sqlite3"):
        Journal(JournalConfig(path=tmp_path / "dir.sqlite3"))


def test_appends_from_several_threads_get_distinct_dense_sequences(tmp_path):
    with Journal(JournalConfig(path=tmp_path / "j.sqlite3")) as journal:
        def work(bed):
            for _ in range(20):
                journal.append(onset(bed))

        threads = [threading.Thread(target=work, args=(f"b{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        events = journal.since(0)
    assert [e.journal_seq for e in events] == list(range(1, 61))
    for bed in ("b0", "b1", "b2"):
        assert [e.bed_seq for e in events if e.bed_id == bed] == list(range(1, 21))


def test_every_published_event_survives_kill_9_and_sequences_continue(tmp_path):
    path = tmp_path / "journal.sqlite3"
    pub, rep = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"alarm.")
    sub.connect(pub)
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("journal_child.py")), str(path), pub,
                              rep], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    received: list[AlarmEvent] = []
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while len(received) < 200 and time.monotonic() < deadline:
            if sub.poll(100):
                received.append(AlarmEvent.model_validate_json(sub.recv_multipart()[1]))
        os.kill(child.pid, signal.SIGKILL)  # mid-write: the child appends and sends in a tight loop
        child.wait(timeout=10)
        while sub.poll(200):  # whatever was already in flight
            received.append(AlarmEvent.model_validate_json(sub.recv_multipart()[1]))
    finally:
        if child.poll() is None:
            child.kill()
        sub.close(linger=0)
        ctx.term()
    assert child.returncode == -signal.SIGKILL
    assert len(received) >= 200
    with Journal(JournalConfig(path=path)) as journal:
        stored = {e.journal_seq: e for e in journal.since(0)}
        for event in received:
            assert stored[event.journal_seq] == event
        assert sorted(stored) == list(range(1, journal.last_seq + 1))  # dense, no torn write
        last_bed0 = max(e.bed_seq for e in stored.values() if e.bed_id == "bed0")
        nxt = journal.append(onset("bed0"))
    assert nxt.journal_seq == max(stored) + 1
    assert nxt.bed_seq == last_bed0 + 1
