"""The `ictal` command line: one subcommand per module of `ictal.commands`."""

from __future__ import annotations

import argparse
import os
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


EXIT_BROKEN_PIPE = 128 + 13
"""Exit status when the reader of stdout went away (``ictal score ... | head``): that of a Unix tool
ended by SIGPIPE."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ictal` console script; returns the process exit code.

    A closed stdout (the reader of a pipe exited, as ``head`` does) ends the command quietly with
    status 141, as Unix tools do, instead of a ``BrokenPipeError`` traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's own advice (signal docs, "Note on SIGPIPE"): point stdout at devnull so that the
        # interpreter's final flush does not raise again, then exit like a tool killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
