"""`ictal demo`: Replay a recording into the daemon and show alarms and metrics end to end."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser("demo", help="Replay a recording into the daemon and show alarms and metrics end to end.", description="Replay a recording into the daemon and show alarms and metrics end to end.")
    parser.set_defaults(func=not_built("demo", 6))
