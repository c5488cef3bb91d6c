"""`ictal tune`: Choose alarm thresholds for a target FA/24h and write a thresholds file."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` subcommand."""
    parser = subparsers.add_parser("tune", help="Choose alarm thresholds for a target FA/24h and write a thresholds file.", description="Choose alarm thresholds for a target FA/24h and write a thresholds file.")
    parser.set_defaults(func=not_built("tune", 5))
