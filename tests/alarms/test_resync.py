"""`ictal alarms watch` and the subscriber lose nothing when the journal is reset or a catch-up page times out.

Issue 15, item 1: (a) after the journal was lost and the daemon restarted, sequence numbers started again
at 1 and a running watch dropped every new event as a "duplicate"; (b) a catch-up page that timed out
threw away the pages already fetched while the position had moved past them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import Journal
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent
from ictal.alarms.subscriber import AlarmSubscriber
from tests.alarms.helpers import onset, publisher_config
from tests.alarms.test_watch_cli import watch
from tests.streaming.daemon_helpers import wait_for


def _remove_journal(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _mixed(i: int) -> AlarmEvent:
    """Onsets every third event, signal-quality events otherwise (the bed matters, the kind does not)."""
    if i % 3 == 0:
        return onset(f"bed{i % 4}", float(i))
    return AlarmEvent(kind="signal_quality", bed_id=f"bed{i % 4}", reason="flat", detail=f"event {i}")


def _read_json_lines(proc, n: int, timeout_s: float) -> list[dict]:
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(json.loads(line))
    return out


def test_watch_follows_a_new_journal_after_the_journal_is_lost_and_the_daemon_restarts(tmp_path):
    path = tmp_path / "journal.sqlite3"
    config = publisher_config(heartbeat_s=0.2)
    journal = Journal(JournalConfig(path=path))
    publisher = AlarmPublisher(config, journal)
    proc = None
    try:
        old = [publisher.publish(_mixed(i)) for i in range(40)]
        proc = watch("--endpoint", config.pub_endpoint, "--catchup-endpoint", config.catchup_endpoint, "--json",
                     "--count", "72")
        first = _read_json_lines(proc, 40, 20.0)
        assert [e["journal_seq"] for e in first] == list(range(1, 41))
        # the journal is lost and the daemon restarts: a new journal, journal_seq again from 1
        publisher.close()
        journal.close()
        _remove_journal(path)
        journal = Journal(JournalConfig(path=path))
        assert journal.journal_id != old[0].journal_id and journal.last_seq == 0
        publisher = AlarmPublisher(config, journal)
        new = [publisher.publish(_mixed(i)) for i in range(32)]
        out, err = proc.communicate(timeout=30)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        publisher.close()
        journal.close()
    assert proc.returncode == 0, err
    second = [json.loads(line) for line in out.splitlines()]
    assert [e["event_id"] for e in second] == [str(e.event_id) for e in new]  # all 32, in order, once
    assert sum(e["kind"] == "onset" for e in second) == 11
    assert {e["journal_id"] for e in second} == {str(journal.journal_id)}
    assert "journal changed" in err and str(old[0].journal_id) in err and str(journal.journal_id) in err


def test_a_restarted_v2_style_journal_without_id_is_detected_by_its_lower_head(tmp_path):
    """A heartbeat whose journal_head is below the position (journal rolled back) resynchronises too."""
    config = publisher_config(heartbeat_s=0.1)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(config, journal)
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, since=50)
    subscriber.journal_id = None  # as if the endpoint never named its journal (a version-2 daemon)
    got: list[AlarmEvent] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: got.extend(subscriber.iter_events(stop)), daemon=True)
    try:
        thread.start()
        time.sleep(0.5)
        sent = [publisher.publish(onset("bed1", float(i))) for i in range(3)]
        wait_for(lambda: len(got) >= 3, 10.0)
    finally:
        stop.set()
        thread.join(timeout=5)
        subscriber.close()
        publisher.close()
        journal.close()
    assert [e.event_id for e in got] == [e.event_id for e in sent]
    assert any("below the last delivered 50" in n for n in subscriber.notices)


class _SlowPage:
    """Wraps ``publisher.handle_request``: the ``nth`` request is answered only after ``delay_s``."""

    def __init__(self, publisher: AlarmPublisher, nth: int, delay_s: float) -> None:
        self.real = publisher.handle_request
        self.nth, self.delay_s, self.calls = nth, delay_s, 0
        publisher.handle_request = self

    def __call__(self, payload: bytes) -> bytes:
        self.calls += 1
        if self.calls == self.nth:
            time.sleep(self.delay_s)
        return self.real(payload)


def test_a_catchup_page_that_times_out_keeps_the_pages_before_it_and_resumes_after_them(tmp_path):
    config = publisher_config(heartbeat_s=0.2)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    journal.append_many([_mixed(i) for i in range(1000)])
    publisher = AlarmPublisher(config, journal, max_batch=100)
    slow = _SlowPage(publisher, nth=4, delay_s=1.5)  # the 4th page (events 301..400) comes too late
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, request_timeout_s=0.5)
    got: list[AlarmEvent] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: got.extend(subscriber.iter_events(stop)), daemon=True)
    try:
        thread.start()
        wait_for(lambda: len(got) >= 1000, 20.0)
    finally:
        stop.set()
        thread.join(timeout=5)
        subscriber.close()
        publisher.close()
        journal.close()
    assert slow.calls > 10  # the slow page happened, and paging went on afterwards
    assert [e.journal_seq for e in got] == list(range(1, 1001))  # nothing skipped, nothing twice
    failed = [n for n in subscriber.notices if "catch-up failed" in n]
    # the retries during the slow page's 1.5 s time out too, each from the same position
    assert failed and all("at journal_seq 300" in n for n in failed)
    assert "after 300 events" in failed[0]


def test_watch_prints_every_event_once_when_a_catchup_page_times_out(tmp_path):
    config = publisher_config(heartbeat_s=0.2)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    stored = journal.append_many([_mixed(i) for i in range(600)])
    publisher = AlarmPublisher(config, journal, max_batch=100)
    _SlowPage(publisher, nth=3, delay_s=1.5)
    proc = None
    try:
        proc = watch("--endpoint", config.pub_endpoint, "--catchup-endpoint", config.catchup_endpoint, "--json",
                     "--count", "600", "--request-timeout", "0.5")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        publisher.close()
        journal.close()
    assert proc.returncode == 0, err
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [str(e.event_id) for e in stored]
    assert "catch-up failed" in err and "at journal_seq 200" in err


def test_catch_up_is_all_or_nothing_when_a_page_fails(tmp_path):
    config = publisher_config(heartbeat_s=5.0)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    journal.append_many([_mixed(i) for i in range(250)])
    publisher = AlarmPublisher(config, journal, max_batch=100)
    _SlowPage(publisher, nth=2, delay_s=1.0)
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, request_timeout_s=0.3)
    try:
        try:
            subscriber.catch_up()
            raised = False
        except Exception:  # CatchupError
            raised = True
        position_after_failure = subscriber.last_seq
        time.sleep(1.0)  # the late reply is discarded with the abandoned REQ socket
        events = subscriber.catch_up()
    finally:
        subscriber.close()
        publisher.close()
        journal.close()
    assert raised and position_after_failure == 0
    assert [e.journal_seq for e in events] == list(range(1, 251))


def test_an_event_published_live_and_later_journaled_is_delivered_once(tmp_path):
    """Identity by event_id: the live copy (journal stalled) and the journaled copy are one event."""
    config = publisher_config(heartbeat_s=0.1)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(config, journal)
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint)
    got: list[AlarmEvent] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: got.extend(subscriber.iter_events(stop)), daemon=True)
    try:
        thread.start()
        time.sleep(0.5)
        event = onset("bed1", 1.0)
        with publisher._send_lock:  # what a stalled journal does: live first, journaled when the disk answers
            publisher._send(event)
        journal.append(event)
        deadline = time.monotonic() + 5.0
        while subscriber.last_seq < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=5)
        subscriber.close()
        publisher.close()
        journal.close()
    assert [e.event_id for e in got] == [event.event_id]
    assert subscriber.last_seq == 1 and subscriber.duplicates == 1


def test_a_recreated_journal_under_a_running_publisher_is_followed_by_a_running_subscriber(tmp_path):
    path = tmp_path / "journal.sqlite3"
    config = publisher_config(heartbeat_s=0.1)
    journal = Journal(JournalConfig(path=path))
    publisher = AlarmPublisher(config, journal)
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint)
    got: list[AlarmEvent] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: got.extend(subscriber.iter_events(stop)), daemon=True)
    try:
        before = [publisher.publish(onset("bed1", float(i))) for i in range(5)]
        thread.start()
        wait_for(lambda: len(got) >= 5, 10.0)
        os.remove(path)
        after = [publisher.publish(onset("bed2", float(i))) for i in range(5)]
        wait_for(lambda: len(got) >= 11, 10.0)
    finally:
        stop.set()
        thread.join(timeout=5)
        subscriber.close()
        publisher.close()
        journal.close()
    ids = [e.event_id for e in got]
    assert ids[:5] == [e.event_id for e in before]
    assert got[5].kind == "daemon" and got[5].reason == "journal_recreated" and got[5].journal_seq == 1
    assert ids[6:] == [e.event_id for e in after] and [e.journal_seq for e in after] == [2, 3, 4, 5, 6]
    assert subscriber.journal_id == journal.journal_id != before[0].journal_id


def test_many_subscribers_started_at_once_each_get_every_event_once_despite_timeouts(tmp_path):
    """The issue's case, scaled down: watchers started together on a big journal, catch-up pages timing out."""
    config = publisher_config(heartbeat_s=0.2)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    journal.append_many([_mixed(i) for i in range(5005)])
    publisher = AlarmPublisher(config, journal, max_batch=1000)
    slow = _SlowPage(publisher, nth=7, delay_s=0.6)  # one slow page on top of the contention
    stop = threading.Event()
    subscribers = [AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, request_timeout_s=0.3)
                   for _ in range(8)]
    got: list[list[int]] = [[] for _ in subscribers]

    def follow(k: int) -> None:
        for event in subscribers[k].iter_events(stop):
            got[k].append(event.journal_seq)

    threads = [threading.Thread(target=follow, args=(k,), daemon=True) for k in range(len(subscribers))]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60.0
        while any(len(g) < 5005 for g in got) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        for subscriber in subscribers:
            subscriber.close()
        publisher.close()
        journal.close()
    assert slow.calls > 8 * 6
    timeouts = sum("catch-up failed" in n for s in subscribers for n in s.notices)
    assert timeouts >= 1  # the case happened at least once
    for seqs in got:
        assert seqs == list(range(1, 5006))
