"""Helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def not_built(command: str, issue: int) -> Callable[[argparse.Namespace], int]:
    """Return a handler for a subcommand that does not exist yet: it says so and exits 2."""

    def handler(args: argparse.Namespace) -> int:
        print(f"ictal {command}: not built yet (tracked in issue {issue}); nothing was done.", file=sys.stderr)
        return 2

    return handler
