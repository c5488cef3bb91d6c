"""`ictal replay`: Publish an EDF file as a real-time LSL EEG stream."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `replay` subcommand."""
    parser = subparsers.add_parser("replay", help="Publish an EDF file as a real-time LSL EEG stream.", description="Publish an EDF file as a real-time LSL EEG stream.")
    parser.set_defaults(func=not_built("replay", 3))
