"""Faults of the journal's file under a running publisher: deleted, replaced, unwritable, hung, -shm.

Issue 15, item 6: deleting the journal went unnoticed (writes went to the unlinked file, lost at
restart); an immutable ``-shm`` killed the daemon with SIGBUS; a hung disk held every alarm back.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import Journal, JournalFaultError
from ictal.alarms.metrics import IctalMetrics
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent, parse_event
from tests.alarms.helpers import onset, publisher_config

REPO_ROOT = Path(__file__).resolve().parents[2]
CAN_CHATTR = os.geteuid() == 0 and shutil.which("chattr") is not None


def offline_events(path: Path) -> list[AlarmEvent]:
    """The events of a journal file (or a saved copy), read by a plain SQLite connection."""
    conn = sqlite3.connect(path)
    try:
        return [parse_event(r[0]) for r in conn.execute("SELECT json FROM events ORDER BY journal_seq")]
    finally:
        conn.close()


class Listener:
    """A SUB socket collecting every event the publisher sends."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.events: list[AlarmEvent] = []
        time.sleep(0.3)  # slow joiner

    def drain(self, until, timeout_s: float = 5.0) -> list[AlarmEvent]:
        deadline = time.monotonic() + timeout_s
        while not until(self.events) and time.monotonic() < deadline:
            if self.sock.poll(50):
                self.events.append(parse_event(self.sock.recv_multipart()[1]))
        return self.events

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def test_an_append_never_writes_to_a_deleted_journal(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal(JournalConfig(path=path))
    journal.append(onset())
    old_id = journal.journal_id
    os.remove(path)
    assert journal.check() == "deleted"
    with pytest.raises(JournalFaultError, match="was deleted") as info:
        journal.append(onset())
    assert info.value.fault == "deleted" and journal.last_seq == 1
    detail = journal.recreate("deleted")
    assert str(old_id) in detail and str(journal.journal_id) in detail and journal.journal_id != old_id
    assert journal.append(onset()).journal_seq == 1 and journal.check() is None
    journal.close()
    saved, = tmp_path.glob("journal.sqlite3.deleted-*[0-9]Z")
    assert [e.journal_id for e in offline_events(saved)] == [old_id]  # the deleted journal's contents kept
    reopened = Journal(JournalConfig(path=path))  # the restart finds what was written after the fault
    assert reopened.journal_id == journal.journal_id and reopened.last_seq == 1
    reopened.close()


def test_deleting_the_journal_under_the_publisher_opens_a_new_one_loudly_and_loses_nothing(tmp_path, caplog):
    path = tmp_path / "journal.sqlite3"
    config = publisher_config(heartbeat_s=30.0)
    metrics = IctalMetrics()
    journal = Journal(JournalConfig(path=path))
    publisher = AlarmPublisher(config, journal, metrics=metrics)
    listener = Listener(config.pub_endpoint)
    try:
        before = [publisher.publish(onset("bed1", float(i))) for i in range(3)]
        os.remove(path)
        after = [publisher.publish(onset("bed2", float(i))) for i in range(4)]
        events = listener.drain(lambda ev: len([e for e in ev if e.kind != "heartbeat"]) >= 8)
    finally:
        listener.close()
        publisher.close()
        journal.close()
    sent = [e for e in events if e.kind != "heartbeat"]
    notice = sent[3]
    assert notice.kind == "daemon" and notice.reason == "journal_recreated" and notice.journal_seq == 1
    assert "deleted" in notice.detail and str(before[0].journal_id) in notice.detail
    assert str(after[0].journal_id) in notice.detail
    assert [e.journal_seq for e in after] == [2, 3, 4, 5] and after[0].journal_id != before[0].journal_id
    assert metrics.journal_faults.labels(fault="deleted")._value.get() == 1
    assert any(r.levelname == "ERROR" and "deleted" in r.getMessage() for r in caplog.records)
    # after a restart the journal holds the notice and every event since the fault
    assert [e.event_id for e in offline_events(path)] == [notice.event_id] + [e.event_id for e in after]


def test_the_heartbeat_finds_a_replaced_journal_without_any_event_being_published(tmp_path):
    path = tmp_path / "journal.sqlite3"
    config = publisher_config(heartbeat_s=0.1)
    journal = Journal(JournalConfig(path=path))
    journal.append(onset())
    other = Journal(JournalConfig(path=tmp_path / "other.sqlite3"))
    other.append(onset("bed9"))
    other.close()
    publisher = AlarmPublisher(config, journal)
    listener = Listener(config.pub_endpoint)
    try:
        os.replace(tmp_path / "other.sqlite3", path)
        events = listener.drain(lambda ev: any(e.reason == "journal_recreated" for e in ev))
        beats = listener.drain(lambda ev: ev[-1].kind == "heartbeat" and ev[-1].journal_id == journal.journal_id)
    finally:
        listener.close()
        publisher.close()
        journal.close()
    notice, = [e for e in events if e.reason == "journal_recreated"]
    assert "replaced" in notice.detail and notice.journal_id == journal.journal_id
    assert beats[-1].journal_head == 1  # the notice is the new journal's first event
    found, = tmp_path.glob("journal.sqlite3.replaced-*.found")
    assert [e.bed_id for e in offline_events(found)] == ["bed9"]  # the file put there is kept, untouched


@pytest.mark.skipif(not CAN_CHATTR, reason="needs root and chattr to make a file immutable")
def test_an_immutable_journal_is_reported_and_events_still_go_out_live(tmp_path):
    path = tmp_path / "journal.sqlite3"
    config = publisher_config(heartbeat_s=30.0)
    metrics = IctalMetrics()
    journal = Journal(JournalConfig(path=path))
    publisher = AlarmPublisher(config, journal, metrics=metrics)
    listener = Listener(config.pub_endpoint)
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        sent = publisher.publish(onset("bed1"))
        events = listener.drain(lambda ev: any(e.reason == "journal_error" for e in ev))
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
        listener.close()
        publisher.close()
        journal.close()
    assert sent.journal_seq is None
    assert [e.kind for e in events if e.kind != "heartbeat"] == ["onset", "daemon"]
    assert "unwritable" in events[-1].detail and "could not be moved aside" in events[-1].detail
    assert metrics.journal_faults.labels(fault="unwritable")._value.get() == 1


class HungJournal(Journal):
    """A journal whose appends block while ``frozen`` is set (a hung disk), injected in the writer."""

    def __init__(self, config: JournalConfig) -> None:
        super().__init__(config)
        self.frozen = threading.Event()
        self.thawed = threading.Event()

    def append_many(self, events):
        if self.frozen.is_set():
            self.thawed.wait(30.0)
        return super().append_many(events)


def test_a_hung_journal_does_not_hold_an_alarm_back(tmp_path):
    config = publisher_config(heartbeat_s=0.1).model_copy(update={"journal_timeout_s": 0.3})
    metrics = IctalMetrics()
    journal = HungJournal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(config, journal, metrics=metrics)
    listener = Listener(config.pub_endpoint)
    try:
        journal.frozen.set()
        first = publisher.publish(onset("bed1", 1.0))
        second = publisher.publish(onset("bed1", 2.0))  # the first append is still stuck: no wait at all
        live = listener.drain(lambda ev: len([e for e in ev if e.kind == "onset"]) == 2)
        heartbeats_while_frozen = sum(e.kind == "heartbeat" for e in listener.drain(lambda ev: False, 0.5))
        assert not journal.thawed.is_set()  # all of this happened while the disk was still hung
        journal.thawed.set()
        deadline = time.monotonic() + 5.0
        while journal.last_seq < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        third = publisher.publish(onset("bed1", 3.0))
    finally:
        listener.close()
        publisher.close()
        journal.close()
    assert first.journal_seq is None and second.journal_seq is None
    stalled = [e for e in live if e.reason == "journal_stalled"]
    assert len(stalled) == 2 and "did not finish in 0.3 s" in stalled[0].detail
    assert heartbeats_while_frozen >= 2  # the daemon stays audibly alive
    assert metrics.journal_faults.labels(fault="stalled")._value.get() == 2
    # once the disk answers, both are journaled (catch-up brings them; subscribers know them by event_id)
    assert [e.event_id for e in offline_events(tmp_path / "journal.sqlite3")][:2] == [first.event_id,
                                                                                    second.event_id]
    assert third.journal_seq == 3


def test_the_journal_never_uses_a_shm_file(tmp_path):
    """Exclusive locking mode: the WAL index is in heap memory, so a -shm path that cannot be used is harmless."""
    path = tmp_path / "journal.sqlite3"
    Path(f"{path}-shm").mkdir()  # in shared-memory WAL mode this makes every open fail
    with Journal(JournalConfig(path=path)) as journal:
        for i in range(50):
            journal.append(onset("bed1", float(i)))
        assert len(journal.since(0)) == 50
    assert Path(f"{path}-shm").is_dir()


_CHILD = """
import subprocess, sys
from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import Journal
from tests.alarms.helpers import onset
path = sys.argv[1]
journal = Journal(JournalConfig(path=path))
for i in range(200):
    journal.append(onset("bed1", float(i)))
open(path + "-shm", "wb").close()
subprocess.run(["chattr", "+i", path + "-shm"], check=True)  # what killed the daemon with SIGBUS
for i in range(500):
    journal.append(onset("bed1", float(i)))
print(len(journal.since(0)))
"""


@pytest.mark.skipif(not CAN_CHATTR, reason="needs root and chattr to make the -shm file immutable")
def test_an_immutable_shm_file_does_not_kill_the_journal(tmp_path):
    path = tmp_path / "journal.sqlite3"
    try:
        run = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    finally:
        subprocess.run(["chattr", "-i", f"{path}-shm"], check=False)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])  # -7 / 135 would be SIGBUS
    assert run.stdout.split() == ["700"]
