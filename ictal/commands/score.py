"""`ictal score`: Score hypothesis annotations against reference annotations (NEDC, SzCORE)."""

from __future__ import annotations

import argparse

from ictal.commands._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `score` subcommand."""
    parser = subparsers.add_parser("score", help="Score hypothesis annotations against reference annotations (NEDC, SzCORE).", description="Score hypothesis annotations against reference annotations (NEDC, SzCORE).")
    parser.set_defaults(func=not_built("score", 5))
