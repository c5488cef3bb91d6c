"""`ictal bench WHAT [OPTIONS]`: benchmarks that print figures (they assert nothing).

Each benchmark lives in the package it measures, as a module with ``add_arguments(parser)`` and
``run(args) -> int``; this table only names them. A benchmark module is imported only when it is run
(or its ``--help`` is asked for), so that `ictal`'s other commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS: dict[str, tuple[str, str, int]] = {
    "frontend": ("ictal.streaming.bench_frontend", "Front-end speed per bed, replay pacing, memory.", 3),
    "model": ("ictal.detector.bench_model", "Model latency and throughput per preset and stack.", 8),
    "alarms": ("ictal.alarms.bench_alarms", "Journal + publish rate, append latency, catch-up.", 4),
    "daemon": ("ictal.streaming.bench_daemon", "Beds served in real time, latency, memory per bed.", 9),
    "train": ("ictal.training.bench_train", "Cache build speed and training throughput.", 10),
    "soak": ("ictal.streaming.bench_soak", "Many beds x 24 h replay: RSS slope, lost events.", 7),
    "injected": ("ictal.training.injected_eval", "Simulated seizures in held-out EEG: latency, sensitivity, FA/24h.", 14),
    "quality": ("ictal.detector.bench_quality", "Rail clipping on every real EDF: false and true finds, cost.", 15),
    "flood": ("ictal.alarms.bench_flood", "Catch-up endpoint under pipelined requests and idle connections.", 15),
    "lsl": ("ictal.streaming.bench_lsl_reconnect", "LSL reconnection delay after an amplifier returns.", 15),
    "edf-memory": ("ictal.streaming.bench_edf_memory", "Peak memory of EDF replay and evaluation of a long file.", 15),
    "gpu": ("ictal.training.bench_gpu", "CUDA check: fused vs reference parity, speed, beds, training (JSON).", 20),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand; the benchmark's own options are parsed by its module."""
    listing = "\n".join(f"  {name:<9} {help_text}" for name, (_, help_text, _) in BENCHMARKS.items())
    parser = subparsers.add_parser(
        "bench", help="Run a benchmark and print its figures.",
        description=f"Run a benchmark and print its figures.\n\nbenchmarks:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=sorted(BENCHMARKS), metavar="WHAT", help="Which benchmark.")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="Options of that benchmark (see WHAT --help).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the chosen benchmark module, parse its options and run it."""
    module_name, help_text, issue = BENCHMARKS[args.what]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"ictal bench {args.what}: not built yet (tracked in issue {issue}); nothing was measured.",
              file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"ictal bench {args.what}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.options)) or 0)
