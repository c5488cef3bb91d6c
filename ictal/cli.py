"""The `ictal` command line: one subcommand per module of `ictal.commands`."""

from __future__ import annotations

import argparse
import sys

from ictal import __version__
from ictal.commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="ictal",
        description="Real-time bedside seizure detection for ICU EEG: replay or stream EEG, score it, "
        "raise alarms over ZeroMQ, export Prometheus metrics; train, evaluate and tune models.",
    )
    parser.add_argument("--version", action="version", version=f"ictal {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ictal` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
