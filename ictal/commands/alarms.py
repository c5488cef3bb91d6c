"""`ictal alarms ...`: tools for alarm subscribers.

``ictal alarms watch`` prints one line per event. An onset line gives the times of the alarm as the
event schema defines them (``alarms.schema``): the onset in stream time and UTC, the sample that
completed the minimum duration, the publish time and the latency = publish wall time - onset wall
time. An event of a schema version this ictal does not read ends the watch with exit code 1 and a
message naming the version found and the ones supported.

Beds: a ``signal_quality`` event with reason ``not_monitored`` / ``monitored`` says so in capitals
(``NOT MONITORED: no alarm can be raised for this bed`` / ``MONITORED again``). Heartbeats carry each
bed's state (schema version 3): the first heartbeat prints one ``BED`` line per bed, later ones a line
for each bed whose state changed, appeared or disappeared (on stdout; with ``--json`` as notices on
stderr, so stdout stays one event per line). A change of the daemon's journal (it was recreated) is a
notice naming the old and new journal ids; the watch then resynchronises on the new journal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

from ictal.alarms.config import PublisherConfig
from ictal.alarms.schema import AlarmEvent, BedStatus, UnsupportedSchemaVersionError
from ictal.alarms.subscriber import AlarmSubscriber, ClientCurve, catchup_endpoint_for

_DEFAULTS = PublisherConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `alarms` subcommand group."""
    parser = subparsers.add_parser("alarms", help="Subscribe to alarm events.", description="Alarm tools.")
    sub = parser.add_subparsers(dest="alarms_command", metavar="ACTION", required=True)
    watch = sub.add_parser(
        "watch", help="Catch up from the journal, then follow live alarms.",
        description="Connect to the live stream, catch up from the journal endpoint (every event with "
        "journal_seq > --since), then follow the live stream without duplicates or gaps. One line per "
        "event on stdout (or JSON lines); notices (heartbeat lost, gap filled) on stderr.",
    )
    watch.add_argument("--endpoint", default=_DEFAULTS.pub_endpoint,
                       help=f"PUB endpoint of the daemon (default {_DEFAULTS.pub_endpoint}).")
    watch.add_argument("--catchup-endpoint", default=None,
                       help="Catch-up REP endpoint (default: the --endpoint port + 1, i.e. "
                       f"{_DEFAULTS.catchup_endpoint} for the default endpoint).")
    watch.add_argument("--since", type=int, default=0, metavar="SEQ",
                       help="Print events with global journal sequence number > SEQ (default 0: all retained).")
    watch.add_argument("--json", action="store_true", help="Print each event as one JSON line.")
    watch.add_argument("--heartbeats", action="store_true", help="Also print heartbeats.")
    watch.add_argument("--count", type=int, default=None, metavar="N", help="Exit after N events.")
    watch.add_argument("--heartbeat-timeout", type=float, default=3 * _DEFAULTS.heartbeat_s, metavar="S",
                       help="Report the heartbeat lost after S seconds of silence (default %(default)s).")
    watch.add_argument("--request-timeout", type=float, default=5.0, metavar="S",
                       help="Give up on a catch-up reply after S seconds and resume later from the last event "
                       "printed (default %(default)s).")
    watch.add_argument("--server-key", type=Path, default=None,
                       help="CURVE: the server's public certificate file.")
    watch.add_argument("--client-key", type=Path, default=None,
                       help="CURVE: this client's secret certificate file.")
    watch.set_defaults(func=run_watch)


def _utc(when: datetime | None) -> str:
    """``2026-01-01T10:00:20.123Z`` (milliseconds), or ``?`` when unknown."""
    return "?" if when is None else when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_onset_times(event: AlarmEvent) -> str:
    """The times of an onset: onset, minimum duration completed, published, latency (one definition).

    Example: ``onset 20.00 s = 2026-01-01T10:00:20.000Z, min duration done 22.00 s =
    2026-01-01T10:00:22.000Z, published 2026-01-01T10:00:31.500Z, latency 11.50 s (published - onset)``.
    Stream times are seconds since the bed's first sample; wall times UTC. Without an onset wall time
    (a version-1 event, or a sample the daemon could not date) the latency is said to be unknown.
    """
    text = f"onset {event.onset_s:.2f} s = {_utc(event.onset_wall_time)}"
    if event.stream_time_s is not None:
        text += f", min duration done {event.stream_time_s:.2f} s = {_utc(event.min_duration_wall_time)}"
    text += f", published {_utc(event.wall_time)}"
    if event.latency_s is not None:
        return text + f", latency {event.latency_s:.2f} s (published - onset)"
    why = "a version-1 event" if event.schema_version == 1 else "the onset sample was not dated"
    return text + f", latency unknown ({why}: no onset wall time)"


def format_event(event: AlarmEvent) -> str:
    """One human-readable line for an event (publish time first; onsets: see :func:`format_onset_times`)."""
    when = _utc(event.wall_time)
    seq = f"#{event.journal_seq}" if event.journal_seq is not None else "#-"
    bed = f"{event.bed_id}/{event.bed_seq}" if event.bed_id is not None else "-"
    parts = [when, seq, bed, event.kind.upper()]
    if event.kind == "onset":
        parts.append(format_onset_times(event))
    elif event.kind == "offset":
        parts.append(f"onset {event.onset_s:.2f} s, offset {event.offset_s:.2f} s "
                     f"(duration {event.offset_s - event.onset_s:.2f} s)")
    if event.probability is not None:
        parts.append(f"p peak {event.probability.peak:.3f} mean {event.probability.mean:.3f}")
    if event.model is not None:
        parts.append(f"model {event.model.model_id} ({event.model.stack})")
    if event.kind == "signal_quality" and event.reason == "not_monitored":
        parts.append("NOT MONITORED: no alarm can be raised for this bed")
    elif event.kind == "signal_quality" and event.reason == "monitored":
        parts.append("MONITORED again")
    if event.reason:
        parts.append(f"[{event.reason}]")
    if event.kind == "heartbeat":
        parts.append(f"journal head {event.journal_head}")
        if event.journal_id is not None:
            parts.append(f"journal {event.journal_id}")
        if event.beds is not None:
            counts = {state: sum(s.state == state for s in event.beds.values())
                      for state in ("monitored", "connecting", "not_monitored")}
            parts.append(", ".join(f"{n} {state.replace('_', ' ')}" for state, n in counts.items()))
    if event.detail:
        parts.append(event.detail)
    if event.problems:
        parts.append("; ".join(event.problems))
    return " ".join(parts)


def format_bed_status(when: datetime | None, bed: str, status: BedStatus | None, was: BedStatus | None) -> str:
    """One line for a bed's state as a heartbeat reports it, e.g.
    ``2026-01-01T10:00:05.000Z BED icu3 NOT MONITORED (stream not found) since 2026-01-01T09:59:40.000Z,
    was monitored``; ``status`` None: the bed is no longer configured."""
    if status is None:
        return f"{_utc(when)} BED {bed} REMOVED (no longer in the daemon's configuration)"
    text = f"{_utc(when)} BED {bed} {status.state.replace('_', ' ').upper()}"
    if status.reason:
        text += f" ({status.reason})"
    if status.since is not None:
        text += f" since {_utc(status.since)}"
    if status.state == "not_monitored":
        text += ": no alarm can be raised for this bed"
    if was is not None:
        text += f", was {was.state.replace('_', ' ')}"
    return text


def bed_changes(previous: dict[str, BedStatus] | None, heartbeat: AlarmEvent) -> list[str]:
    """Lines for the beds whose state changed since the previous heartbeat's (every bed the first time).

    A bed is said to change when its ``state`` or ``reason`` differs; beds that disappeared are listed too.
    """
    if heartbeat.beds is None:
        return []
    lines = []
    for bed, status in sorted(heartbeat.beds.items()):
        was = None if previous is None else previous.get(bed)
        if was is None or (was.state, was.reason) != (status.state, status.reason):
            lines.append(format_bed_status(heartbeat.wall_time, bed, status, was))
    for bed in sorted(set(previous or ()) - set(heartbeat.beds)):
        lines.append(format_bed_status(heartbeat.wall_time, bed, None, previous[bed]))
    return lines


def run_watch(args: argparse.Namespace) -> int:
    """Run `ictal alarms watch`; returns the exit code (0 on Ctrl-C, SIGTERM or --count reached; 1 at an
    event of an unsupported schema version; 2 on bad options)."""
    if (args.server_key is None) != (args.client_key is None):
        print("ictal alarms watch: CURVE needs both --server-key and --client-key", file=sys.stderr)
        return 2
    if args.since < 0:
        print(f"ictal alarms watch: --since must be >= 0 (found {args.since})", file=sys.stderr)
        return 2
    if not args.request_timeout > 0:
        print(f"ictal alarms watch: --request-timeout must be > 0 (found {args.request_timeout})", file=sys.stderr)
        return 2
    try:
        catchup = args.catchup_endpoint or catchup_endpoint_for(args.endpoint)
    except ValueError as exc:
        print(f"ictal alarms watch: {exc}", file=sys.stderr)
        return 2
    curve = ClientCurve(args.server_key, args.client_key) if args.server_key is not None else None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)

    def notice(text: str) -> None:
        print(f"ictal alarms watch: {text}", file=sys.stderr, flush=True)

    try:
        subscriber = AlarmSubscriber(args.endpoint, catchup, since=args.since, curve=curve,
                                     heartbeat_timeout_s=args.heartbeat_timeout,
                                     request_timeout_s=args.request_timeout, on_notice=notice)
    except ValueError as exc:
        print(f"ictal alarms watch: {exc}", file=sys.stderr)
        return 2
    printed = 0
    beds: dict[str, BedStatus] | None = None
    try:
        for event in subscriber.iter_events(stop, include_heartbeats=True):
            if event.kind == "heartbeat":
                for line in bed_changes(beds, event):
                    if args.json:
                        notice(line)
                    else:
                        print(line, flush=True)
                if event.beds is not None:
                    beds = dict(event.beds)
                if not args.heartbeats:
                    continue
            print(event.model_dump_json() if args.json else format_event(event), flush=True)
            printed += 1
            if args.count is not None and printed >= args.count:
                break
    except KeyboardInterrupt:
        pass
    except UnsupportedSchemaVersionError as exc:
        print(f"ictal alarms watch: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        subscriber.close()
    return 0
