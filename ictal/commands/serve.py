"""`ictal serve`: Run the bedside daemon: score every configured bed and publish alarms."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser("serve", help="Run the bedside daemon: score every configured bed and publish alarms.", description="Run the bedside daemon: score every configured bed and publish alarms.")
    parser.set_defaults(func=not_built("serve", 9))
