"""`ictal score`: score hypothesis annotations against reference annotations (NEDC, SzCORE).

``ictal score --ref REF.list --hyp HYP.list [--json]`` reads two list files of ``csv_bi`` (or
``tse``/``tse_bi``) annotations, paired in order, and prints per scorer (NEDC DP alignment, EPOCH,
OVERLAP and TAES, compatible with NEDC EEG Eval v6.0.0, and SzCORE) a table, or with ``--json`` the
JSON documented in `training.scoring.report`. Exit status 0 on success, 2 when the input is invalid
(the message names the file and line).
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `score` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help="Score hypothesis annotations against reference annotations (NEDC, SzCORE).",
        description="Score hypothesis csv_bi/tse annotations against reference annotations with the "
        "NEDC EEG Eval v6.0.0-compatible scorers (DP alignment, EPOCH, OVERLAP, TAES) and SzCORE. "
        "--json prints one object: ref_list, hyp_list, n_files, duration_s; nedc.{dpalign,epoch,overlap,taes}"
        ".labels.{seiz,bckg} with targets, hits, misses, false_alarms, sensitivity, precision, f1, fa_per_24h "
        "(and the other NEDC counts); szcore with tp, fp, fn, sensitivity, precision, f1, fp_per_24h (null "
        "where undefined). Ratios are fractions in [0, 1], times in seconds, rates per 24 h; EPOCH counts "
        "0.25 s epochs.",
    )
    parser.add_argument("--ref", required=True, help="list file of reference annotations, one path a line")
    parser.add_argument("--hyp", required=True, help="list file of hypothesis annotations, same order")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score and print; returns the exit status."""
    from ictal.training.scoring.annotations import AnnotationError
    from ictal.training.scoring.report import format_text, score_lists

    try:
        report = score_lists(args.ref, args.hyp)
    except (AnnotationError, ValueError, OSError) as exc:
        print(f"ictal score: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_text(report))
    return 0
