"""The alarm event schema: round trips, validation, and the shipped JSON Schema."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ictal.alarms.schema import (
    SCHEMA_PATH,
    SUPPORTED_SCHEMA_VERSIONS,
    AlarmEvent,
    BedStatus,
    UnsupportedSchemaVersionError,
    json_schema_text,
    parse_event,
)
from tests.alarms.helpers import onset

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=timezone.utc)

# An onset exactly as ictal wrote it with schema version 1 (before window_end_s and the wall times):
# what an old journal holds after an upgrade.
V1_ONSET_JSON = (
    '{"schema_version":1,"event_id":"0f8e7a1c-3b2d-4c5e-9f6a-7b8c9d0e1f2a","journal_seq":41,"bed_seq":7,'
    '"bed_id":"icu-3","kind":"onset","stream_time_s":110.0,"wall_time":"2025-11-03T08:15:02.250000Z",'
    '"onset_s":100.0,"offset_s":null,"probability":{"peak":0.97,"mean":0.9},"model":{"model_id":"ckpt-test",'
    '"stack":"bimamba2","backend":"reference"},"thresholds":{"tau_on":0.8,"tau_off":0.5,"min_duration_s":10.0,'
    '"merge_gap_s":30.0,"max_duration_s":600.0,"refractory_s":60.0},"reason":"min_duration",'
    '"journal_head":null,"detail":null,"problems":[]}'
)


def dated_onset(onset_wall: datetime, published: datetime, **kwargs) -> AlarmEvent:
    """An onset carrying its onset wall time and publish time."""
    return AlarmEvent.model_validate(onset(**kwargs).model_dump() | {
        "onset_wall_time": onset_wall, "wall_time": published,
        "min_duration_wall_time": onset_wall + timedelta(seconds=10)})


@pytest.mark.parametrize("event", [
    onset(),
    dated_onset(T0, T0 + timedelta(seconds=31.5)),
    AlarmEvent(kind="offset", bed_id="icu-3", onset_s=10.0, offset_s=95.5, stream_time_s=97.5,
               probability={"peak": 0.9, "mean": 0.7}, reason="below_tau_off", journal_seq=7, bed_seq=2),
    AlarmEvent(kind="signal_quality", bed_id="icu_3", detail="input unusable",
               problems=["T5: flat (std 0.02 uV)", "O2: saturated"]),
    AlarmEvent(kind="heartbeat", journal_head=42),
    AlarmEvent(kind="heartbeat", journal_head=42, journal_id="0f8e7a1c-3b2d-4c5e-9f6a-7b8c9d0e1f2a",
               beds={"icu-3": BedStatus(state="monitored", since=T0),
                     "icu-4": BedStatus(state="not_monitored", reason="stream not found", since=T0)}),
    AlarmEvent(kind="daemon", detail="journal append failed", reason="journal_error"),
])
def test_event_round_trips_through_json(event):
    text = event.model_dump_json()
    back = AlarmEvent.model_validate_json(text)
    assert back == event
    assert json.loads(text)["schema_version"] == 3


def test_topics_follow_the_kind():
    assert onset("bed7").topic == "alarm.bed7"
    assert AlarmEvent(kind="signal_quality", bed_id="bed7").topic == "quality.bed7"
    assert AlarmEvent(kind="heartbeat").topic == "heartbeat"
    assert AlarmEvent(kind="daemon").topic == "daemon"


def test_event_ids_are_unique_and_latency_is_derived():
    a, b = onset(onset_s=3.0), onset(onset_s=3.0)
    assert a.event_id != b.event_id
    assert a.latency_s is None  # no onset wall time: unknown, not the stream-time delay
    assert a.min_duration_delay_s == pytest.approx(10.0)
    dated = dated_onset(T0, T0 + timedelta(seconds=61.25), onset_s=3.0)
    assert dated.latency_s == 61.25


@settings(max_examples=200, deadline=None)
@given(onset_unix=st.floats(1.0e9, 2.0e9), delay_s=st.floats(-5.0, 3600.0), tz_hours=st.integers(-12, 12))
def test_latency_is_publish_wall_time_minus_onset_wall_time(onset_unix, delay_s, tz_hours):
    zone = timezone(timedelta(hours=tz_hours))  # any aware zone: stored as UTC, the difference is the same
    onset_wall = datetime.fromtimestamp(onset_unix, zone)
    published = datetime.fromtimestamp(onset_unix + delay_s, timezone.utc)
    event = dated_onset(onset_wall, published)
    assert event.onset_wall_time.tzinfo == timezone.utc
    # datetimes hold microseconds: two roundings of at most 0.5 us each
    assert event.latency_s == pytest.approx(delay_s, abs=2e-6)
    back = AlarmEvent.model_validate_json(event.model_dump_json())
    assert back.latency_s == event.latency_s


def test_only_onsets_have_a_latency():
    offset = AlarmEvent(kind="offset", bed_id="b", onset_s=1.0, offset_s=9.0, onset_wall_time=T0,
                        wall_time=T0 + timedelta(seconds=30))
    assert offset.latency_s is None and offset.min_duration_delay_s is None


def test_a_version_1_event_still_parses_without_a_latency():
    event = parse_event(V1_ONSET_JSON)
    assert (event.schema_version, event.kind, event.onset_s, event.stream_time_s) == (1, "onset", 100.0, 110.0)
    assert event.journal_seq == 41 and event.wall_time == datetime(2025, 11, 3, 8, 15, 2, 250000, timezone.utc)
    assert event.onset_wall_time is None and event.latency_s is None
    assert event.min_duration_delay_s == 10.0
    assert json.loads(event.model_dump_json())["schema_version"] == 1  # re-serialised as what it is


def test_a_version_1_event_cannot_carry_version_2_fields():
    data = json.loads(V1_ONSET_JSON) | {"onset_wall_time": "2025-11-03T08:14:00Z"}
    with pytest.raises(ValidationError, match="version-1 event carries no onset_wall_time"):
        parse_event(json.dumps(data))


@pytest.mark.parametrize("version", [4, 0, "2"])
def test_an_unknown_version_is_refused_naming_found_and_supported(version):
    data = json.loads(V1_ONSET_JSON) | {"schema_version": version, "a_field_of_the_future": 1}
    with pytest.raises(UnsupportedSchemaVersionError) as info:
        parse_event(json.dumps(data), where="on topic 'alarm.icu-3'")
    message = str(info.value)
    assert f"schema_version {version!r}" in message and "reads versions 1, 2, 3" in message
    assert "on topic 'alarm.icu-3'" in message
    assert info.value.found == version and info.value.supported == SUPPORTED_SCHEMA_VERSIONS == (1, 2, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="onset", onset_s=1.0), "needs a bed_id"),
    (dict(kind="offset", bed_id="b", onset_s=1.0), "needs offset_s"),
    (dict(kind="onset", bed_id="bed 1", onset_s=1.0), "pattern"),
    (dict(kind="alarm", bed_id="b"), "kind"),
    (dict(kind="daemon", wall_time=datetime(2026, 1, 1)), "timezone-aware"),
    (dict(kind="daemon", colour="red"), "Extra inputs"),
    (dict(kind="daemon", schema_version=4), "schema_version 4 is not supported"),
    (dict(kind="onset", bed_id="b", onset_s=1.0, beds={}), "only a heartbeat has beds"),
    (dict(kind="daemon", schema_version=2, journal_id="0f8e7a1c-3b2d-4c5e-9f6a-7b8c9d0e1f2a"),
     "version-2 event carries no journal_id"),
    (dict(kind="heartbeat", beds={"b": {"state": "asleep"}}), "monitored"),
    (dict(kind="heartbeat", beds={"bed 1": {"state": "monitored"}}), "pattern"),
    (dict(kind="onset", bed_id="b", onset_s=1.0, onset_wall_time=datetime(2026, 1, 1)), "onset_wall_time must be "
     "timezone-aware"),
    (dict(kind="signal_quality", bed_id="b", onset_wall_time=T0), "has no onset_wall_time"),
    (dict(kind="offset", bed_id="b", onset_s=1.0, offset_s=2.0, min_duration_wall_time=T0), "only an onset"),
])
def test_invalid_events_are_rejected_with_the_reason(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        AlarmEvent(**kwargs)


def test_shipped_json_schema_equals_the_generated_one():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == json_schema_text(), (
        "alarms/alarm_event.schema.json is stale: regenerate it with `python -m ictal.alarms.schema`")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["required"]) == {"kind"}
    assert schema["properties"]["kind"]["enum"] == ["onset", "offset", "heartbeat", "signal_quality", "daemon"]
    assert schema["additionalProperties"] is False


def test_event_from_a_post_processor_transition():
    import numpy as np

    from ictal.alarms.config import AlarmThresholds
    from ictal.alarms.postprocess import PostProcessor
    from ictal.alarms.schema import event_from_transition

    thresholds = AlarmThresholds(min_duration_s=2.0, merge_gap_s=1.0)
    pp = PostProcessor(thresholds)
    transitions = pp.feed(10.0, np.r_[np.zeros(4), np.full(8, 0.9), np.zeros(4)], 2.0)
    onset_event, offset_event = (event_from_transition(t, bed_id="b1", thresholds=thresholds) for t in transitions)
    assert (onset_event.kind, onset_event.onset_s, onset_event.stream_time_s) == ("onset", 12.0, 13.5)
    assert onset_event.min_duration_delay_s == 1.5
    assert onset_event.onset_wall_time is None and onset_event.latency_s is None  # dated by the daemon
    assert (offset_event.kind, offset_event.offset_s, offset_event.reason) == ("offset", 16.0, "below_tau_off")
    assert offset_event.probability.peak == 0.9 and offset_event.thresholds == thresholds
