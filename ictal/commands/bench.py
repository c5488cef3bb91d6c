"""`ictal bench WHAT`: benchmarks that print figures (they assert nothing).

Each benchmark lives in the package it measures, as a module with ``add_arguments(parser)`` and
``run(args) -> int``; this table only names them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS: dict[str, tuple[str, str, int]] = {
    "frontend": ("streaming.bench_frontend", "Front-end speed per bed, replay pacing, memory.", 3),
    "model": ("detector.bench_model", "Model latency and throughput per preset and stack.", 8),
    "alarms": ("alarms.bench_alarms", "Journal + publish rate, append latency, catch-up.", 4),
    "daemon": ("streaming.bench_daemon", "Beds served in real time, latency, memory per bed.", 9),
    "train": ("training.bench_train", "Cache build speed and training throughput.", 10),
    "soak": ("streaming.bench_soak", "Many beds x 24 h replay: RSS slope, lost events.", 7),
}


def _load(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand group."""
    parser = subparsers.add_parser("bench", help="Run a benchmark and print its figures.")
    sub = parser.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    for name, (module_name, help_text, issue) in BENCHMARKS.items():
        bench_parser = sub.add_parser(name, help=help_text, description=help_text)
        module = _load(module_name)
        if module is None:
            bench_parser.set_defaults(func=_missing(name, issue))
        else:
            module.add_arguments(bench_parser)
            bench_parser.set_defaults(func=module.run)


def _missing(name: str, issue: int):
    def handler(args: argparse.Namespace) -> int:
        print(f"ictal bench {name}: not built yet (tracked in issue {issue}); nothing was measured.",
              file=sys.stderr)
        return 2

    return handler
