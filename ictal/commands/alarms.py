"""`ictal alarms ...`: tools for alarm subscribers."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from alarms.config import PublisherConfig
from alarms.schema import AlarmEvent
from alarms.subscriber import AlarmSubscriber, ClientCurve, catchup_endpoint_for

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
    watch.add_argument("--server-key", type=Path, default=None,
                       help="CURVE: the server's public certificate file.")
    watch.add_argument("--client-key", type=Path, default=None,
                       help="CURVE: this client's secret certificate file.")
    watch.set_defaults(func=run_watch)


def format_event(event: AlarmEvent) -> str:
    """One human-readable line for an event."""
    when = event.wall_time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    seq = f"#{event.journal_seq}" if event.journal_seq is not None else "#-"
    bed = f"{event.bed_id}/{event.bed_seq}" if event.bed_id is not None else "-"
    parts = [when, seq, bed, event.kind.upper()]
    if event.kind == "onset":
        parts.append(f"onset {event.onset_s:.2f} s, raised {event.stream_time_s:.2f} s "
                     f"(latency {event.latency_s:.2f} s)" if event.latency_s is not None
                     else f"onset {event.onset_s:.2f} s")
    elif event.kind == "offset":
        parts.append(f"onset {event.onset_s:.2f} s, offset {event.offset_s:.2f} s "
                     f"(duration {event.offset_s - event.onset_s:.2f} s)")
    if event.probability is not None:
        parts.append(f"p peak {event.probability.peak:.3f} mean {event.probability.mean:.3f}")
    if event.model is not None:
        parts.append(f"model {event.model.model_id} ({event.model.stack})")
    if event.reason:
        parts.append(f"[{event.reason}]")
    if event.kind == "heartbeat":
        parts.append(f"journal head {event.journal_head}")
    if event.detail:
        parts.append(event.detail)
    if event.problems:
        parts.append("; ".join(event.problems))
    return " ".join(parts)


def run_watch(args: argparse.Namespace) -> int:
    """Run `ictal alarms watch`; returns the exit code (0 on Ctrl-C, SIGTERM or --count reached)."""
    if (args.server_key is None) != (args.client_key is None):
        print("ictal alarms watch: CURVE needs both --server-key and --client-key", file=sys.stderr)
        return 2
    if args.since < 0:
        print(f"ictal alarms watch: --since must be >= 0 (found {args.since})", file=sys.stderr)
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
                                     heartbeat_timeout_s=args.heartbeat_timeout, on_notice=notice)
    except ValueError as exc:
        print(f"ictal alarms watch: {exc}", file=sys.stderr)
        return 2
    printed = 0
    try:
        for event in subscriber.iter_events(stop, include_heartbeats=args.heartbeats):
            print(event.model_dump_json() if args.json else format_event(event), flush=True)
            printed += 1
            if args.count is not None and printed >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.close()
    return 0
