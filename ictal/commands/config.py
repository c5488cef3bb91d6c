"""`ictal config check FILE`: validate a config file and print it resolved.

The check is :func:`ictal.config.load_config`, the daemon's own loading: what it accepts starts every
bed (a hop of whole samples at 256 Hz that fits beside the checkpoint's lookahead, distinct LSL streams
per bed, quotable LSL selectors); what it refuses is named with its key and value.
"""

from __future__ import annotations

import argparse
import sys

from ictal.config import ConfigError, dump_config, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `config` subcommand group."""
    parser = subparsers.add_parser("config", help="Validate config files.")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check", help="Validate a config file and print the resolved config (defaults filled in).",
        description="Validate a daemon, model or train config file as the daemon loads it (a daemon config also "
        "against its checkpoint's lookahead_s); exit 1 naming every bad key.",
    )
    check.add_argument("file", help="YAML config file (its top-level `kind` picks the schema).")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Validate ``args.file``; print the resolved YAML on success, the errors on failure."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"invalid config:\n{exc}", file=sys.stderr)
        return 1
    print(f"# {args.file}: valid {config.kind} config (resolved, defaults filled in)")
    print(dump_config(config), end="")
    return 0
