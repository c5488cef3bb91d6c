"""`ictal config check FILE`: validate a config file, print it resolved, and run the daemon's pre-flight.

The check is :func:`ictal.config.load_config`, the daemon's own loading: what it accepts starts every
bed (a hop of whole samples at 256 Hz that fits beside the checkpoint's lookahead, distinct LSL streams
per bed, quotable LSL selectors); what it refuses is named with its key and value.

A valid daemon config is then checked against this machine (:func:`ictal.streaming.preflight.preflight`):
the checkpoint loads as the daemon loads it, the thresholds in force resolve (a thresholds file made
for another checkpoint is refused), the journal's directory is writable (the journal is not opened),
each port can be bound (a busy one names its holder), each EDF bed's file opens. Every problem is
printed (``PROBLEM <check>: ...`` on stderr) and the exit code is 1 when there is any; ``--no-preflight``
validates the file only (e.g. on another machine than the one that will run it).
"""

from __future__ import annotations

import argparse
import sys

from ictal.config import ConfigError, dump_config, load_config
from ictal.streaming.config import DaemonConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `config` subcommand group."""
    parser = subparsers.add_parser("config", help="Validate config files.")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check", help="Validate a config file and print the resolved config (defaults filled in).",
        description="Validate a daemon, model or train config file as the daemon loads it (a daemon config also "
        "against its checkpoint's lookahead_s); exit 1 naming every bad key. A daemon config is then "
        "pre-flighted on this machine: checkpoint loaded, thresholds resolved and matched to it, journal "
        "directory writable, ports free (a busy one names its process), EDF bed files readable; exit 1 "
        "naming every problem. Nothing is left bound and the journal is not opened.",
    )
    check.add_argument("file", help="YAML config file (its top-level `kind` picks the schema).")
    check.add_argument("--no-preflight", action="store_true",
                       help="Validate the file only: no checkpoint, journal, port or EDF check.")
    check.set_defaults(func=run_check)


def print_preflight(config: DaemonConfig, *, file=None) -> int:
    """Run the pre-flight of ``config``, print its lines; return the number of problems.

    Lines passed go to ``file`` (stdout by default), problems to stderr as well when ``file`` is stdout.
    """
    from ictal.streaming.preflight import preflight

    out = file if file is not None else sys.stdout
    report = preflight(config)
    for check, what in report.passed:
        print(f"ok      {check}: {what}", file=out)
    for check, what in report.warnings:
        print(f"WARNING {check}: {what}", file=out)
    for check, what in report.problems:
        print(f"PROBLEM {check}: {what}", file=out if file is not None else sys.stderr)
    return len(report.problems)


def run_check(args: argparse.Namespace) -> int:
    """Validate ``args.file``; print the resolved YAML on success, the errors on failure; pre-flight a daemon config."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"invalid config:\n{exc}", file=sys.stderr)
        return 1
    print(f"# {args.file}: valid {config.kind} config (resolved, defaults filled in)")
    print(dump_config(config), end="")
    if not isinstance(config, DaemonConfig) or args.no_preflight:
        return 0
    print(f"# pre-flight of {args.file} on this machine")
    problems = print_preflight(config)
    if problems:
        print(f"{args.file}: {problems} problem(s) would stop or break `ictal serve` (listed above)", file=sys.stderr)
        return 1
    print(f"# {args.file}: pre-flight passed")
    return 0
