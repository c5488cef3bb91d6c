"""The alarm event: what the journal stores and the publisher sends (pydantic, JSON, versioned).

Sequence numbers
----------------
Every journaled event carries two sequence numbers, both assigned by :class:`ictal.alarms.journal.Journal`:

- ``journal_seq``: global, strictly increasing over all beds, never reused (also not after pruning or
  a restart). It is the one order of the journal: catch-up requests (``since``) and
  ``ictal alarms watch --since`` use it, and a subscriber detects lost messages by a hole in it.
- ``bed_seq``: per bed, 1, 2, 3, ... for that bed's events; it lets a consumer of one bed's topics
  check that it saw all of that bed's events.

Heartbeats are not journaled (``journal_seq`` and ``bed_seq`` are None); they carry ``journal_head``,
the newest ``journal_seq`` at the time, so a subscriber that missed the last event learns it from the
next heartbeat. An event that could not be journaled (disk full, hung disk) is still published live
with ``journal_seq`` None, followed by a ``daemon`` event saying so.

Journal identity (version 3)
----------------------------
Sequence numbers are only comparable within one journal. Each journal file holds a random UUID,
created with the file (table ``meta``); it changes when the journal is recreated (the file was lost,
deleted or replaced, and the daemon opened a new one). Every journaled event carries it as
``journal_id`` (the journal that assigned its ``journal_seq``), every heartbeat carries the id of the
journal in use, and so does every catch-up reply. A subscriber that sees a new ``journal_id`` knows
that ``journal_seq`` started again: it says so, catches up on the new journal from 0, and identifies
events by ``(journal_id, journal_seq)`` (never by ``journal_seq`` alone).

Bed states (version 3)
----------------------
A heartbeat carries ``beds``: each configured bed's :class:`BedStatus`, ``monitored`` (samples arrive
and are scored), ``connecting`` (the daemon is looking for or (re)connecting to the bed's stream) or
``not_monitored`` (no alarm can be raised for the bed; ``reason`` says why, e.g. "stream not found"
or "no_data"), with ``since``, the UTC time the bed entered that state. ``beds`` is None when the
daemon could not tell (and on heartbeats of version 2).

Time to alarm (one definition)
------------------------------
An onset event carries four times of one seizure alarm:

- ``onset_s`` / ``onset_wall_time``: the sample at which the probability first crossed tau_on, in the
  bed's stream time (s) and as UTC wall-clock time. The wall time comes from the source's clock
  mapping (``streaming.sources.wall_clock``): the source clock time of that sample (LSL: the outlet's
  timestamp corrected to this machine's ``pylsl.local_clock``; EDF replay: its pacing schedule)
  plus the source's offset from UTC, and never later than the moment the daemon received the sample.
- ``stream_time_s`` / ``min_duration_wall_time``: the sample that completed the minimum duration
  (stream time, UTC).
- ``window_end_s``: the end of the scored window whose probabilities decided the onset.
- ``wall_time``: the UTC time at which the publisher took the event to journal and send it (set by
  :meth:`ictal.alarms.publisher.AlarmPublisher.publish`; the journal's fsync and the send follow within
  milliseconds).

**Alarm latency** (:attr:`AlarmEvent.latency_s`) is ``wall_time - onset_wall_time`` in seconds: the
true time to alarm, from the onset in the signal to the event leaving the daemon. It holds everything:
the warm-up after a (re)connection, the window and hop, the model's lookahead, the minimum duration,
inference, queueing and the journal. ``ictal alarms watch``, ``ictal demo``, the evaluate report and
the Prometheus histogram ``ictal_alarm_latency_seconds`` all use this one definition. The
post-processor's share alone (``stream_time_s - onset_s``, what version 1 called latency) is
:attr:`AlarmEvent.min_duration_delay_s`.

Versions
--------
Version 3 (this one) added ``journal_id`` (journaled events and heartbeats) and ``beds`` (heartbeats).
Version 2 added ``onset_wall_time`` and ``min_duration_wall_time`` and made ``wall_time`` the publish
time. Readers of this package (:func:`parse_event`, the journal, the subscriber, ``ictal alarms
watch``) read versions 1, 2 and 3 (:data:`SUPPORTED_SCHEMA_VERSIONS`): a version-1 event (an old
journal after an upgrade) parses unchanged, its ``latency_s`` is None (version 1 carried no onset wall
time) and its ``wall_time`` is its construction time; a version-1 or 2 event has ``journal_id`` None
(the subscriber then takes the journal id of the catch-up reply that carried it, and a live one
belongs to the journal last heard of). An event of any other version is
refused with :class:`UnsupportedSchemaVersionError`, naming the version found and the versions
supported: a reader never guesses at the meaning of a newer event. Readers built for versions 1 and 2
only (ictal before this change, or a consumer that pinned ``schema_version``) refuse version-3 events:
upgrade subscribers together with the daemon.

Regenerate the shipped JSON Schema with ``python -m ictal.alarms.schema``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import Transition

SCHEMA_VERSION = 3
"""Version of the events this package writes."""
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2, 3)
"""Versions this package reads (see "Versions" above)."""
_UNSUPPORTED = "unsupported_schema_version"
SCHEMA_PATH = Path(__file__).with_name("alarm_event.schema.json")
BED_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

EventKind = Literal["onset", "offset", "heartbeat", "signal_quality", "daemon"]


class UnsupportedSchemaVersionError(ValueError):
    """An event of a schema version this package cannot read (a newer daemon, or a foreign producer).

    Attributes
    ----------
    found : object
        The ``schema_version`` of the event.
    supported : tuple of int
        :data:`SUPPORTED_SCHEMA_VERSIONS`.
    """

    def __init__(self, found: object, where: str = "") -> None:
        self.found = found
        self.supported = SUPPORTED_SCHEMA_VERSIONS
        place = f" {where}" if where else ""
        super().__init__(
            f"alarm event{place} has schema_version {found!r}; this ictal reads versions "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}: upgrade ictal to read it (events are refused "
            "rather than guessed at)"
        )


def unsupported_version(exc: ValidationError, where: str = "") -> UnsupportedSchemaVersionError | None:
    """The :class:`UnsupportedSchemaVersionError` behind ``exc``, if an event's version caused it.

    Parameters
    ----------
    exc : pydantic.ValidationError
        From validating an :class:`AlarmEvent` or a model that holds some (a catch-up reply).
    where : str, optional
        Where the event came from, for the message (e.g. ``"from tcp://127.0.0.1:5556"``).
    """
    for error in exc.errors():
        if error["type"] == _UNSUPPORTED:
            return UnsupportedSchemaVersionError((error.get("ctx") or {}).get("found"), where)
    return None


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


BedState = Literal["monitored", "connecting", "not_monitored"]


class BedStatus(_Frozen):
    """The state of one configured bed, as a heartbeat reports it (version 3; see "Bed states")."""

    state: BedState = Field(
        description="'monitored': a window of the current connection was scored and its input was usable, "
        "alarms can be raised; 'connecting': the source is being opened or was just (re)connected and no "
        "window of it was scored yet (warm-up); 'not_monitored': no alarm can be raised (stream not found, "
        "lost, silent, refused, unusable input, or the bed failed and restarts). See streaming.bed_worker."
    )
    reason: str | None = Field(
        None, description="Why the bed is not monitored (or connecting), e.g. 'stream not found', 'no_data'."
    )
    since: datetime | None = Field(None, description="UTC time at which the bed entered this state.")

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"since must be timezone-aware UTC (found naive {value.isoformat()})")
        return value.astimezone(timezone.utc)


class AlarmEvent(_Frozen):
    """One event on the alarm stream.

    ``kind`` is ``onset`` / ``offset`` (a seizure alarm starts / ends; topic ``alarm.<bed>``),
    ``signal_quality`` (the input of a bed became unusable or usable again; topic ``quality.<bed>``),
    ``heartbeat`` (topic ``heartbeat``) or ``daemon`` (the daemon itself: start, stop, journal
    failure; topic ``daemon``). Times: ``stream_time_s``, ``onset_s``, ``offset_s`` and
    ``window_end_s`` are seconds of the bed's stream clock; ``wall_time``, ``onset_wall_time`` and
    ``min_duration_wall_time`` are UTC. Alarm latency: :attr:`latency_s` (see the module docstring).
    Parse received JSON with :func:`parse_event` (it names an unsupported version).
    """

    schema_version: Literal[1, 2, 3] = Field(
        SCHEMA_VERSION, description="Version of this schema (3; version-2 events, which lack journal_id and "
        "beds, and version-1 events, which also lack the wall times of the onset, are still read)."
    )
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique id of the event.")
    journal_seq: int | None = Field(
        None, ge=1, description="Global journal sequence number (assigned by the journal; None if not "
        "journaled: heartbeats, or a journal failure)."
    )
    bed_seq: int | None = Field(None, ge=1, description="Per-bed sequence number (assigned by the journal).")
    journal_id: uuid.UUID | None = Field(
        None, description="Version 3: id of the journal that assigned journal_seq (journaled events), or of "
        "the journal in use (heartbeats). It changes when the journal is recreated: journal_seq then starts "
        "again at 1. None: not journaled, or an event of version 1 or 2."
    )
    bed_id: str | None = Field(
        None, pattern=BED_ID_PATTERN, description="Bed id; None only for heartbeat and daemon-wide events."
    )
    kind: EventKind = Field(description="What happened.")
    stream_time_s: float | None = Field(
        None, description="Stream time (s) at which the event was emitted (for an onset: the sample that "
        "completed the minimum duration)."
    )
    wall_time: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc), description="UTC wall-clock time at which the "
        "event was published: set by the publisher when it journals and sends the event (version 1: when "
        "the event was built). For an onset, latency_s = wall_time - onset_wall_time."
    )
    onset_s: float | None = Field(
        None, description="Stream time (s) at which the probability first crossed tau_on (onset/offset)."
    )
    onset_wall_time: datetime | None = Field(
        None, description="Onset/offset (version 2): UTC wall-clock time of the sample at onset_s, from the "
        "source's clock mapping (the sample's source clock time plus the source's offset from UTC, never "
        "later than the daemon received the sample); None when unknown. The alarm latency of an onset is "
        "wall_time - onset_wall_time (latency_s)."
    )
    min_duration_wall_time: datetime | None = Field(
        None, description="Onset (version 2): UTC wall-clock time of the sample at stream_time_s, the one "
        "that completed the minimum duration (same clock mapping as onset_wall_time); None when unknown."
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
    beds: dict[Annotated[str, StringConstraints(pattern=BED_ID_PATTERN)], BedStatus] | None = Field(
        None, description="Heartbeats (version 3): each configured bed's state, by bed id; None when unknown."
    )
    detail: str | None = Field(None, description="Free text for signal_quality and daemon events.")
    problems: list[str] = Field(
        default_factory=list, description="Signal-quality problems, e.g. 'T5: flat (std 0.02 uV)'."
    )

    @model_validator(mode="before")
    @classmethod
    def _known_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("schema_version", SCHEMA_VERSION)
            if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
                raise PydanticCustomError(
                    _UNSUPPORTED, "schema_version {found} is not supported (this ictal reads versions "
                    "{supported})", {"found": version, "supported": ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))},
                )
        return data

    @field_validator("wall_time", "onset_wall_time", "min_duration_wall_time")
    @classmethod
    def _utc(cls, value: datetime | None, info: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{info.field_name} must be timezone-aware UTC (found naive {value.isoformat()})")
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _check_kind(self) -> AlarmEvent:
        if self.schema_version == 1 and (self.onset_wall_time is not None or self.min_duration_wall_time is not None):
            raise ValueError("a version-1 event carries no onset_wall_time or min_duration_wall_time (found "
                             "them: a version-2 event labelled 1?)")
        if self.schema_version < 3 and (self.journal_id is not None or self.beds is not None):
            raise ValueError(f"a version-{self.schema_version} event carries no journal_id or beds (found "
                             "them: a version-3 event labelled older?)")
        if self.kind != "heartbeat" and self.beds is not None:
            raise ValueError(f"only a heartbeat has beds (found them on a {self.kind} event)")
        if self.kind not in ("onset", "offset") and self.onset_wall_time is not None:
            raise ValueError(f"a {self.kind} event has no onset_wall_time (found {self.onset_wall_time.isoformat()})")
        if self.kind != "onset" and self.min_duration_wall_time is not None:
            raise ValueError(f"only an onset has min_duration_wall_time (found one on a {self.kind} event)")
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
        """Alarm latency of an onset: ``wall_time - onset_wall_time`` in seconds (the one definition).

        Returns
        -------
        latency_s : float or None
            Seconds from the onset sample (UTC, from the source's clock mapping) to the publication of
            the event (UTC); None for other kinds and when ``onset_wall_time`` is unknown (always for
            version-1 events). Resolution 1 us (datetimes).
        """
        if self.kind != "onset" or self.onset_wall_time is None:
            return None
        return (self.wall_time - self.onset_wall_time).total_seconds()

    @property
    def min_duration_delay_s(self) -> float | None:
        """Onset: stream seconds from the tau_on crossing to the sample completing the minimum duration.

        The post-processor's share of the latency only (what version 1 called ``latency_s``); None for
        other kinds.
        """
        if self.kind != "onset" or self.stream_time_s is None or self.onset_s is None:
            return None
        return self.stream_time_s - self.onset_s


def parse_event(data: str | bytes, where: str = "") -> AlarmEvent:
    """Parse one event from its JSON (any supported version).

    Parameters
    ----------
    data : str or bytes
        The event's JSON, as published or journaled.
    where : str, optional
        Where it came from, for the error message.

    Returns
    -------
    event : AlarmEvent

    Raises
    ------
    UnsupportedSchemaVersionError
        If its ``schema_version`` is not in :data:`SUPPORTED_SCHEMA_VERSIONS` (the message names both).
    pydantic.ValidationError
        If it is malformed otherwise.
    """
    try:
        return AlarmEvent.model_validate_json(data)
    except ValidationError as exc:
        refused = unsupported_version(exc, where)
        if refused is not None:
            raise refused from None
        raise


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
        Not yet journaled (no sequence numbers); no onset wall times (the daemon adds them from the
        source's clock mapping); ``wall_time`` is replaced by the publisher when it is published.
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
