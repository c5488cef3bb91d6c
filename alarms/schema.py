"""The alarm event: what the journal stores and the publisher sends (pydantic, JSON, versioned).

Sequence numbers
----------------
Every journaled event carries two sequence numbers, both assigned by :class:`alarms.journal.Journal`:

- ``journal_seq``: global, strictly increasing over all beds, never reused (also not after pruning or
  a restart). It is the one order of the journal: catch-up requests (``since``) and
  ``ictal alarms watch --since`` use it, and a subscriber detects lost messages by a hole in it.
- ``bed_seq``: per bed, 1, 2, 3, ... for that bed's events; it lets a consumer of one bed's topics
  check that it saw all of that bed's events.

Heartbeats are not journaled (``journal_seq`` and ``bed_seq`` are None); they carry ``journal_head``,
the newest ``journal_seq`` at the time, so a subscriber that missed the last event learns it from the
next heartbeat. An event that could not be journaled (disk full) is still published live with
``journal_seq`` None, followed by a ``daemon`` event saying so.

Regenerate the shipped JSON Schema with ``python -m alarms.schema``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alarms.config import AlarmThresholds
from alarms.postprocess import Transition

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("alarm_event.schema.json")
BED_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

EventKind = Literal["onset", "offset", "heartbeat", "signal_quality", "daemon"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Probability(_Frozen):
    """Seizure probability over the event (for an onset: up to the alarm)."""

    peak: float = Field(ge=0, le=1, description="Highest per-sample probability.")
    mean: float = Field(ge=0, le=1, description="Mean per-sample probability.")


class ModelInfo(_Frozen):
    """The model that produced the probabilities."""

    model_id: str = Field(description="Checkpoint id (e.g. directory name + content hash).")
    stack: str = Field(description="Sequence-model stack, e.g. 'bimamba2' or 'gated_deltanet'.")
    backend: str | None = Field(None, description="'fused' or 'reference' kernels.")


class AlarmEvent(_Frozen):
    """One event on the alarm stream.

    ``kind`` is ``onset`` / ``offset`` (a seizure alarm starts / ends; topic ``alarm.<bed>``),
    ``signal_quality`` (the input of a bed became unusable or usable again; topic ``quality.<bed>``),
    ``heartbeat`` (topic ``heartbeat``) or ``daemon`` (the daemon itself: start, stop, journal
    failure; topic ``daemon``). Times: ``stream_time_s``, ``onset_s`` and ``offset_s`` are seconds of
    the bed's stream clock; ``wall_time`` is UTC.
    """

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Version of this schema.")
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique id of the event.")
    journal_seq: int | None = Field(
        None, ge=1, description="Global journal sequence number (assigned by the journal; None if not "
        "journaled: heartbeats, or a journal failure)."
    )
    bed_seq: int | None = Field(None, ge=1, description="Per-bed sequence number (assigned by the journal).")
    bed_id: str | None = Field(
        None, pattern=BED_ID_PATTERN, description="Bed id; None only for heartbeat and daemon-wide events."
    )
    kind: EventKind = Field(description="What happened.")
    stream_time_s: float | None = Field(
        None, description="Stream time (s) at which the event was emitted (for an onset: the sample that "
        "completed the minimum duration)."
    )
    wall_time: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc), description="UTC wall-clock time of emission."
    )
    onset_s: float | None = Field(
        None, description="Stream time (s) at which the probability first crossed tau_on (onset/offset)."
    )
    offset_s: float | None = Field(None, description="Stream time (s) at which the event ended (offset).")
    window_end_s: float | None = Field(
        None, description="Onset/offset: stream time (s) of the end of the scored window whose "
        "probabilities decided the transition (its decision time: the newest signal the decision used; "
        "the event cannot leave the daemon before it). See detector.output_position."
    )
    probability: Probability | None = Field(None, description="Peak and mean probability (onset/offset).")
    model: ModelInfo | None = Field(None, description="Model id and stack (onset/offset).")
    thresholds: AlarmThresholds | None = Field(None, description="Post-processor thresholds in force.")
    reason: str | None = Field(
        None, description="Why the transition happened, e.g. 'min_duration', 'below_tau_off', "
        "'max_duration', 'end_of_data', 'gap'."
    )
    journal_head: int | None = Field(
        None, ge=0, description="Heartbeats: newest journal_seq at the time (0 when the journal is empty)."
    )
    detail: str | None = Field(None, description="Free text for signal_quality and daemon events.")
    problems: list[str] = Field(
        default_factory=list, description="Signal-quality problems, e.g. 'T5: flat (std 0.02 uV)'."
    )

    @field_validator("wall_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError(f"wall_time must be timezone-aware UTC (found naive {value.isoformat()})")
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _check_kind(self) -> AlarmEvent:
        if self.kind in ("onset", "offset", "signal_quality") and self.bed_id is None:
            raise ValueError(f"a {self.kind} event needs a bed_id (found None)")
        if self.kind in ("onset", "offset") and self.onset_s is None:
            raise ValueError(f"a {self.kind} event needs onset_s (found None)")
        if self.kind == "offset" and self.offset_s is None:
            raise ValueError("an offset event needs offset_s (found None)")
        return self

    @property
    def topic(self) -> str:
        """ZeroMQ topic: ``alarm.<bed>``, ``quality.<bed>``, ``heartbeat`` or ``daemon``."""
        if self.kind in ("onset", "offset"):
            return f"alarm.{self.bed_id}"
        if self.kind == "signal_quality":
            return f"quality.{self.bed_id}"
        return self.kind

    @property
    def latency_s(self) -> float | None:
        """For an onset: seconds of stream time from the tau_on crossing to the alarm (else None)."""
        if self.kind != "onset" or self.stream_time_s is None or self.onset_s is None:
            return None
        return self.stream_time_s - self.onset_s


def event_from_transition(transition: Transition, *, bed_id: str, model: ModelInfo | None = None,
                          thresholds: AlarmThresholds | None = None) -> AlarmEvent:
    """Build the onset/offset event of a post-processor transition.

    Parameters
    ----------
    transition : alarms.postprocess.Transition
        Times are stream seconds; ``transition.time_s`` becomes ``stream_time_s``.
    bed_id : str
    model : ModelInfo, optional
    thresholds : AlarmThresholds, optional
        The thresholds in force.

    Returns
    -------
    event : AlarmEvent
        Not yet journaled (no sequence numbers); wall time now.
    """
    return AlarmEvent(kind=transition.kind, bed_id=bed_id, stream_time_s=transition.time_s,
                      onset_s=transition.onset_s, offset_s=transition.offset_s,
                      probability=Probability(peak=transition.peak, mean=transition.mean),
                      model=model, thresholds=thresholds, reason=transition.reason)


def json_schema_text() -> str:
    """The JSON Schema of :class:`AlarmEvent`, as shipped in ``alarms/alarm_event.schema.json``."""
    schema = AlarmEvent.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://ictal.invalid/alarm_event/v{SCHEMA_VERSION}"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    """Write the JSON Schema of :class:`AlarmEvent` to ``path`` and return it."""
    path.write_text(json_schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_json_schema())
