"""The alarm event schema: round trips, validation, and the shipped JSON Schema."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pydantic import ValidationError

from alarms.schema import SCHEMA_PATH, AlarmEvent, json_schema_text
from tests.alarms.helpers import onset


@pytest.mark.parametrize("event", [
    onset(),
    AlarmEvent(kind="offset", bed_id="icu-3", onset_s=10.0, offset_s=95.5, stream_time_s=97.5,
               probability={"peak": 0.9, "mean": 0.7}, reason="below_tau_off", journal_seq=7, bed_seq=2),
    AlarmEvent(kind="signal_quality", bed_id="icu_3", detail="input unusable",
               problems=["T5: flat (std 0.02 uV)", "O2: saturated"]),
    AlarmEvent(kind="heartbeat", journal_head=42),
    AlarmEvent(kind="daemon", detail="journal append failed", reason="journal_error"),
])
def test_event_round_trips_through_json(event):
    text = event.model_dump_json()
    back = AlarmEvent.model_validate_json(text)
    assert back == event
    assert json.loads(text)["schema_version"] == 1


def test_topics_follow_the_kind():
    assert onset("bed7").topic == "alarm.bed7"
    assert AlarmEvent(kind="signal_quality", bed_id="bed7").topic == "quality.bed7"
    assert AlarmEvent(kind="heartbeat").topic == "heartbeat"
    assert AlarmEvent(kind="daemon").topic == "daemon"


def test_event_ids_are_unique_and_latency_is_derived():
    a, b = onset(onset_s=3.0), onset(onset_s=3.0)
    assert a.event_id != b.event_id
    assert a.latency_s == pytest.approx(10.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="onset", onset_s=1.0), "needs a bed_id"),
    (dict(kind="offset", bed_id="b", onset_s=1.0), "needs offset_s"),
    (dict(kind="onset", bed_id="bed 1", onset_s=1.0), "pattern"),
    (dict(kind="alarm", bed_id="b"), "kind"),
    (dict(kind="daemon", wall_time=datetime(2026, 1, 1)), "timezone-aware"),
    (dict(kind="daemon", colour="red"), "Extra inputs"),
    (dict(kind="daemon", schema_version=2), "schema_version"),
])
def test_invalid_events_are_rejected_with_the_reason(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        AlarmEvent(**kwargs)


def test_shipped_json_schema_equals_the_generated_one():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == json_schema_text(), (
        "alarms/alarm_event.schema.json is stale: regenerate it with `python -m alarms.schema`")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["required"]) == {"kind"}
    assert schema["properties"]["kind"]["enum"] == ["onset", "offset", "heartbeat", "signal_quality", "daemon"]
    assert schema["additionalProperties"] is False


def test_event_from_a_post_processor_transition():
    import numpy as np

    from alarms.config import AlarmThresholds
    from alarms.postprocess import PostProcessor
    from alarms.schema import event_from_transition

    thresholds = AlarmThresholds(min_duration_s=2.0, merge_gap_s=1.0)
    pp = PostProcessor(thresholds)
    transitions = pp.feed(10.0, np.r_[np.zeros(4), np.full(8, 0.9), np.zeros(4)], 2.0)
    onset_event, offset_event = (event_from_transition(t, bed_id="b1", thresholds=thresholds) for t in transitions)
    assert (onset_event.kind, onset_event.onset_s, onset_event.stream_time_s) == ("onset", 12.0, 13.5)
    assert onset_event.latency_s == 1.5
    assert (offset_event.kind, offset_event.offset_s, offset_event.reason) == ("offset", 16.0, "below_tau_off")
    assert offset_event.probability.peak == 0.9 and offset_event.thresholds == thresholds
