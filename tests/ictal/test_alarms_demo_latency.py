"""`ictal demo` reports alarm latency by the one definition: publish wall time - onset wall time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ictal.streaming.demo import alarm_latency_s, describe, summary
from tests.alarms.helpers import onset

T0 = datetime(2026, 2, 1, 9, 0, 0, tzinfo=timezone.utc)


def _received(onset_s: float, onset_after_s: float, published_after_s: float) -> dict:
    """An onset as the demo's subscriber receives it (parsed JSON)."""
    event = onset("demo-bed", onset_s).model_copy(update={
        "onset_wall_time": T0 + timedelta(seconds=onset_after_s),
        "min_duration_wall_time": T0 + timedelta(seconds=onset_after_s + 2.5),
        "wall_time": T0 + timedelta(seconds=published_after_s), "journal_seq": 3})
    return json.loads(event.model_dump_json())


def test_the_demo_line_of_an_onset_gives_the_time_to_alarm():
    line = describe(_received(20.0, 5.0, 17.25))
    assert line.startswith("[3] ALARM ONSET bed demo-bed: seizure from 20.0 s (09:00:05.000 UTC)")
    assert "minimum duration done at 30.0 s, published 09:00:17.250 UTC: time to alarm 12.25 s" in line


def test_the_summary_reports_each_alarm_and_the_histogram_by_the_same_definition():
    events = [_received(20.0, 5.0, 17.25), {"kind": "heartbeat"}]
    values = {("ictal_alarm_latency_seconds_count", (("bed", "demo-bed"),)): 1.0,
              ("ictal_alarm_latency_seconds_sum", (("bed", "demo-bed"),)): 12.25}
    text = summary(Path("x.edf"), 4.0, events, values, 0)
    assert alarm_latency_s(events[0]) == 12.25
    assert "alarms raised: 1" in text
    assert ("onset at 20.0 s of the recording, decided at 30.0 s (published 09:00:17.250 UTC); wall-clock "
            "latency at 4x: 12.25 s") in text
    # at the bedside the 10 s of signal take 10 s, not 2.5 s: 10 + (12.25 - 2.5) s of processing
    assert "at the bedside (real-time signal): 19.8 s after the detected onset (10.0 s of signal + 9.75 s processing)" in text
    assert "ictal_alarm_latency_seconds: mean 12.250 s over 1 alarms" in text
    assert "runs the signal part 4x faster" in text


def test_an_undated_onset_has_an_unknown_time_to_alarm_not_a_stream_time_stand_in():
    event = json.loads(onset("demo-bed", 20.0).model_dump_json())
    assert alarm_latency_s(event) is None
    assert "time to alarm unknown" in describe(event)
    text = summary(Path("x.edf"), 1.0, [event], {}, 0)
    assert "ictal_alarm_latency_seconds: none observed (no alarms)" in text
    assert "bedside time to alarm: unknown (no wall times)" in text
