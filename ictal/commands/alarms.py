"""`ictal alarms ...`: tools for alarm subscribers."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `alarms` subcommand group."""
    parser = subparsers.add_parser("alarms", help="Subscribe to alarm events.", description="Alarm tools.")
    sub = parser.add_subparsers(dest="alarms_command", metavar="ACTION", required=True)
    watch = sub.add_parser(
        "watch", help="Catch up from the journal, then follow live alarms.",
        description="Catch up from the journal endpoint, then follow the live stream.",
    )
    watch.set_defaults(func=not_built("alarms watch", 4))
