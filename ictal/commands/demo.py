"""`ictal demo`: replay a recording into the daemon and show alarms and metrics end to end."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    from ictal.streaming.demo import DEFAULT_INPUT, DEFAULT_SPEED

    parser = subparsers.add_parser(
        "demo",
        help="Replay a recording into the daemon and show alarms and metrics end to end.",
        description="Start the daemon (ictal serve) with the default config on free loopback ports, replay a "
        "recording into it as a real LSL stream (ictal replay in a child process), print every event as a "
        "ZeroMQ subscriber sees it and where the metrics are, and end with a summary (alarms raised, windows "
        f"scored, latency). Without --edf it replays {DEFAULT_INPUT} of the shared real-EEG folder "
        "($ICTAL_SHARED_DATA, default ../shared/data): a 50 s ICU segment at 200 Hz whose 20-30 s experts rated "
        "seizure (IIIC), a training recording of the demo checkpoint (it detects no held-out seizure; the demo "
        "says whether its input is a training recording). Its working folder (daemon "
        "config, log, journal) is removed at the end unless --keep.",
    )
    parser.add_argument("--edf", type=Path, default=None, help="EDF/EDF+ file to replay (19 referential channels).")
    parser.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                        help=f"Replay pacing, x real time (default {DEFAULT_SPEED:g}: the 50 s default input "
                        "takes about 13 s).")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="Checkpoint directory (default: the demo checkpoint installed with ictal, "
                        "checkpoints/demo of a checkout).")
    parser.add_argument("--config", type=Path, default=None,
                        help="Daemon config the demo starts from (default: the one installed with ictal, "
                        "configs/daemon.yaml of a checkout); its beds, ports and journal path are replaced.")
    parser.add_argument("--untrained", action="store_true",
                        help="Use a randomly initialised model instead of a checkpoint (shows the plumbing; its "
                        "alarms mean nothing).")
    parser.add_argument("--untrained-config", type=Path, default=None,
                        help="Model preset of --untrained (default configs/model/tiny_bimamba2.yaml).")
    parser.add_argument("--keep", action="store_true",
                        help="Keep the demo's working folder (daemon config, log, alarm journal) and print its "
                        "path; by default it is removed at the end.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when it ran to its summary, 2 when it cannot run, 1 when something failed."""
    from ictal import resources
    from ictal.config import ConfigError
    from ictal.streaming.demo import DemoError, run_demo

    checkpoint = args.checkpoint if args.checkpoint is not None else resources.demo_checkpoint()
    config = args.config if args.config is not None else resources.default_daemon_config()
    untrained_config = (args.untrained_config if args.untrained_config is not None
                        else resources.model_preset("tiny_bimamba2"))
    try:
        return run_demo(args.edf, args.speed, checkpoint, config, args.untrained, untrained_config,
                        out=lambda line: print(line, flush=True), keep=args.keep)
    except (DemoError, ConfigError) as exc:
        print(f"ictal demo: {exc}", file=sys.stderr)
        return 2
