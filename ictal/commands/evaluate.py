"""`ictal evaluate`: Run recordings through the daemon path and write a scored report."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser("evaluate", help="Run recordings through the daemon path and write a scored report.", description="Run recordings through the daemon path and write a scored report.")
    parser.set_defaults(func=not_built("evaluate", 5))
