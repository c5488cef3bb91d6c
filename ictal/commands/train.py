"""`ictal train`: Train a detector from a training config."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser("train", help="Train a detector from a training config.", description="Train a detector from a training config.")
    parser.set_defaults(func=not_built("train", 10))
