"""`ictal replay`: Publish an EDF file as a real-time LSL EEG stream."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `replay` subcommand."""
    parser = subparsers.add_parser(
        "replay",
        help="Publish an EDF file as a real-time LSL EEG stream.",
        description="Publish an EDF/EDF+ file as an LSL stream of type EEG (the 19 canonical channels in "
        "microvolts at the file's native rate, channel labels and units in the stream description), paced "
        "in real time, so the daemon reads it exactly as it reads an amplifier.",
    )
    parser.add_argument("file", type=Path, help="EDF or EDF+ file.")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="Pacing factor: 1 = real time (default), 2 = twice as fast, 0 = as fast as possible.")
    parser.add_argument("--loop", action="store_true", help="Start again at the end of the file.")
    parser.add_argument("--name", default="ictal-replay", help="LSL stream name (default: ictal-replay).")
    parser.add_argument("--source-id", default=None,
                        help="LSL source_id (default: ictal-replay:NAME, stable across restarts).")
    parser.add_argument("--chunk-s", type=float, default=0.05,
                        help="Seconds of signal per pushed chunk (default 0.05).")
    parser.add_argument("--wait-consumer-s", type=float, default=0.0,
                        help="Wait up to this many seconds for a consumer before the first sample (default 0).")
    parser.add_argument("--linger-s", type=float, default=2.0,
                        help="Seconds the stream stays up after the last sample (default 2), so consumers "
                        "pull what is still in flight.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Publish the file until its end (or forever with --loop, until interrupted)."""
    from ictal.streaming.lsl_outlet import ReplayPublisher

    if args.speed < 0:
        print(f"ictal replay: --speed must be >= 0 (found {args.speed})", file=sys.stderr)
        return 2
    if args.chunk_s <= 0:
        print(f"ictal replay: --chunk-s must be > 0 (found {args.chunk_s})", file=sys.stderr)
        return 2
    publisher = ReplayPublisher(
        args.file, args.name, speed=args.speed, loop=args.loop, chunk_s=args.chunk_s, source_id=args.source_id
    )
    try:
        publisher.open()
    except (ValueError, FileNotFoundError) as exc:
        print(f"ictal replay: {exc}", file=sys.stderr)
        return 2
    stream = publisher.source.stream
    print(
        f"ictal replay: publishing {args.file} as LSL stream {args.name!r} (type EEG, source_id "
        f"{publisher.source_id!r}, 19 channels, {stream.fs:g} Hz, uV, {stream.duration_s:.1f} s) "
        f"at speed {args.speed:g}{', looping' if args.loop else ''}",
        flush=True,
    )
    try:
        n = publisher.run(wait_consumer_s=args.wait_consumer_s, linger_s=args.linger_s)
    except KeyboardInterrupt:
        n = publisher.n_pushed
    finally:
        publisher.close()
    print(f"ictal replay: done, {n} samples per channel published", flush=True)
    return 0
