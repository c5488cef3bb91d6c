"""Alarm latency, one definition: publish wall time - onset wall time, in the event and in the metric;
old (version-1) journals still read, newer versions refused by the journal and the subscriber."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ictal.alarms.config import JournalConfig
from ictal.alarms.journal import Journal
from ictal.alarms.metrics import ALARM_LATENCY_BUCKETS_S, IctalMetrics
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent, UnsupportedSchemaVersionError
from ictal.alarms.subscriber import AlarmSubscriber
from tests.alarms.helpers import onset, publisher_config
from tests.alarms.test_schema import V1_ONSET_JSON


class FakeClock:
    """A wall clock (Unix s) the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _latency_samples(metrics: IctalMetrics, bed: str) -> tuple[float, float]:
    get = metrics.registry.get_sample_value
    return (get("ictal_alarm_latency_seconds_count", {"bed": bed}) or 0.0,
            get("ictal_alarm_latency_seconds_sum", {"bed": bed}) or 0.0)


def _dated(onset_unix: float, bed: str = "bed1") -> AlarmEvent:
    event = onset(bed)
    return event.model_copy(update={"onset_wall_time": datetime.fromtimestamp(onset_unix, timezone.utc)})


def test_the_metric_observes_exactly_the_latency_of_the_published_event(tmp_path):
    clock = FakeClock(1.7e9)
    metrics = IctalMetrics()
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(publisher_config(), journal, metrics=metrics, wall_clock=clock)
    try:
        @settings(max_examples=60, deadline=None)
        @given(source_clock_s=st.floats(0.0, 1.0e6), offset_s=st.floats(1.0e9, 1.8e9),
               delay_s=st.floats(0.0, 600.0))
        def check(source_clock_s: float, offset_s: float, delay_s: float) -> None:
            # the onset sample: source clock time + the source's offset from UTC (its clock mapping)
            onset_unix = source_clock_s + offset_s
            clock.now = onset_unix + delay_s
            count0, sum0 = _latency_samples(metrics, "bed1")
            sent = publisher.publish(_dated(onset_unix))
            count1, sum1 = _latency_samples(metrics, "bed1")
            assert sent.wall_time == datetime.fromtimestamp(clock.now, timezone.utc)
            assert sent.latency_s == pytest.approx(delay_s, abs=2e-6)  # microsecond datetimes
            assert count1 == count0 + 1
            assert sum1 - sum0 == pytest.approx(sent.latency_s, abs=1e-9, rel=1e-12)
            stored, = journal.since(sent.journal_seq - 1)
            assert stored.latency_s == sent.latency_s and stored.wall_time == sent.wall_time

        check()
    finally:
        publisher.close()
        journal.close()


def test_the_publish_time_is_set_when_published_not_when_the_event_was_built(tmp_path):
    built = onset("bed1").model_copy(update={"onset_wall_time": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    clock = FakeClock(datetime(2026, 1, 1, 0, 1, 30, tzinfo=timezone.utc).timestamp())  # 90 s later
    metrics = IctalMetrics()
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(publisher_config(), journal, metrics=metrics, wall_clock=clock)
    try:
        sent = publisher.publish(built)
    finally:
        publisher.close()
    assert built.wall_time != sent.wall_time
    assert sent.wall_time == datetime(2026, 1, 1, 0, 1, 30, tzinfo=timezone.utc)
    assert sent.latency_s == 90.0 == _latency_samples(metrics, "bed1")[1]
    assert journal.since(0)[0].wall_time == sent.wall_time
    # the journal prunes by the publish time
    assert journal.prune(now=sent.wall_time.timestamp() + 31 * 86400) == 1
    journal.close()


def test_an_onset_without_onset_wall_time_is_not_observed(tmp_path):
    metrics = IctalMetrics()
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(publisher_config(), journal, metrics=metrics)
    try:
        sent = publisher.publish(onset("bed1"))  # undated: unknown latency, not a stream-time stand-in
    finally:
        publisher.close()
        journal.close()
    assert sent.latency_s is None
    assert _latency_samples(metrics, "bed1") == (0.0, 0.0)


def test_latency_buckets_reach_past_two_minutes():
    assert max(ALARM_LATENCY_BUCKETS_S) >= 120.0
    metrics = IctalMetrics()
    metrics.alarm_latency.labels(bed="b").observe(100.0)
    get = metrics.registry.get_sample_value
    assert get("ictal_alarm_latency_seconds_bucket", {"bed": "b", "le": "90.0"}) == 0.0
    assert get("ictal_alarm_latency_seconds_bucket", {"bed": "b", "le": "120.0"}) == 1.0
    help_text = next(iter(metrics.alarm_latency.collect())).documentation
    assert "published" in help_text and "onset" in help_text


# -- versions in the journal and on the wire ---------------------------------------------------------------


def journal_with_raw_rows(path, rows: list[str]) -> None:
    """A journal file whose first events are ``rows`` (JSON as an older or newer ictal stored them)."""
    Journal(JournalConfig(path=path)).close()
    conn = sqlite3.connect(path)
    with conn:
        for seq, text in enumerate(rows, start=1):
            data = json.loads(text)
            text = json.dumps(data | {"journal_seq": seq, "bed_seq": seq})  # stored as journaled
            conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (seq, data.get("bed_id"), seq, data["kind"], time.time(), f"raw-{seq}", text))
        conn.execute("INSERT OR REPLACE INTO counters VALUES ('', ?)", (len(rows),))
    conn.close()


def test_an_old_journal_with_version_1_events_is_read_and_caught_up_after_an_upgrade(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal_with_raw_rows(path, [V1_ONSET_JSON])
    journal = Journal(JournalConfig(path=path))
    old, = journal.since(0)
    assert (old.schema_version, old.onset_s, old.latency_s) == (1, 100.0, None)
    config = publisher_config()
    publisher = AlarmPublisher(config, journal)
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint)
    try:
        new = publisher.publish(_dated(time.time() - 12.0, "icu-3"))
        caught = subscriber.catch_up()
    finally:
        subscriber.close()
        publisher.close()
        journal.close()
    assert [(e.journal_seq, e.schema_version) for e in caught] == [(1, 1), (2, 3)]
    assert caught[1].latency_s == new.latency_s and 12.0 <= new.latency_s < 30.0


def _v4(seq: int) -> str:
    data = json.loads(V1_ONSET_JSON) | {"schema_version": 4, "journal_seq": seq, "colour_of_alarm": "red"}
    return json.dumps(data)


def test_a_newer_version_in_the_journal_is_refused_by_the_journal_and_the_subscriber(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal_with_raw_rows(path, [_v4(1)])
    journal = Journal(JournalConfig(path=path))
    with pytest.raises(UnsupportedSchemaVersionError, match=r"in alarm journal .* schema_version 4; this ictal "
                       r"reads versions 1, 2, 3"):
        journal.since(0)
    config = publisher_config()
    publisher = AlarmPublisher(config, journal)
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint)
    try:
        with pytest.raises(UnsupportedSchemaVersionError, match="from catch-up endpoint .* schema_version 4"):
            list(subscriber.iter_events(threading.Event()))
    finally:
        subscriber.close()
        publisher.close()
        journal.close()
    assert subscriber.last_seq == 0  # nothing was delivered past the refused event


def test_a_newer_version_live_ends_the_subscription_instead_of_being_skipped(tmp_path):
    config = publisher_config(heartbeat_s=0.2)
    journal = Journal(JournalConfig(path=tmp_path / "journal.sqlite3"))
    publisher = AlarmPublisher(config, journal)
    subscriber = AlarmSubscriber(config.pub_endpoint, config.catchup_endpoint, heartbeat_timeout_s=30.0)
    outcome: list[object] = []

    def follow() -> None:
        try:
            for event in subscriber.iter_events(threading.Event()):
                outcome.append(event)
        except UnsupportedSchemaVersionError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=follow, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and thread.is_alive() and not outcome:
            # a newer daemon's event on the wire (sent raw through the publisher's PUB socket)
            with publisher._send_lock:
                publisher._pub.send_multipart([b"alarm.icu-3", _v4(1).encode()])
            time.sleep(0.1)
        thread.join(timeout=5.0)
    finally:
        publisher.close()
        subscriber.close()
        journal.close()
    assert len(outcome) == 1 and isinstance(outcome[0], UnsupportedSchemaVersionError), outcome
    assert "on topic 'alarm.icu-3'" in str(outcome[0]) and "schema_version 4" in str(outcome[0])


def test_the_example_latency_of_the_issue_is_reported_by_the_true_definition():
    # onset 0.04 s into the stream, minimum duration done at 2.04 s, the event left 60 s after connecting
    connected = datetime(2026, 2, 1, 9, 0, 0, tzinfo=timezone.utc)
    event = AlarmEvent(kind="onset", bed_id="b", onset_s=0.04, stream_time_s=2.04,
                       onset_wall_time=connected + timedelta(seconds=0.04),
                       min_duration_wall_time=connected + timedelta(seconds=2.04),
                       wall_time=connected + timedelta(seconds=60.0))
    assert event.min_duration_delay_s == pytest.approx(2.0)
    assert event.latency_s == pytest.approx(59.96)
