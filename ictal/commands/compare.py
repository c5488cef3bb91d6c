"""`ictal compare`: several evaluation reports side by side.

``ictal compare REPORT... [--out FILE.md] [--plot FILE.png]`` reads ``report.json`` files (or the
``ictal evaluate --out`` folders holding them), prints a Markdown table (one row per report: OVERLAP
and TAES sensitivity and FA/24h, SzCORE mean +- std over patients, AUROC, sensitivity at 2.5 FA/24h,
alarm latency; the 95 % bootstrap intervals of each report) to stdout, or writes it to ``--out``, and
draws one PNG chart of the intervals (``--plot``; default ``FILE.png`` beside ``--out``, else
``compare.png`` in the current folder; its path is printed on stderr). Layout and definitions:
:mod:`ictal.training.compare_reports`. Exit status 0 on success, 2 when a report cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compare` subcommand."""
    parser = subparsers.add_parser(
        "compare",
        help="Put several evaluation reports side by side (Markdown table and a chart of the intervals).",
        description="Compare ictal evaluate reports (of checkpoints, or of other detectors scored with "
        "ictal evaluate --hypotheses): a Markdown table with one row per report (OVERLAP and TAES "
        "sensitivity and FA/24h, SzCORE event sensitivity, FP/24h and sample F1 as mean +- std over "
        "patients, AUROC, sensitivity at 2.5 FA/24h, alarm latency p50; 95%% bootstrap intervals by "
        "patient as 'value [lo, hi]', or the reason there is none) and one PNG chart of the intervals. "
        "A WARNING line heads the table when the reports scored different recordings.",
    )
    parser.add_argument("reports", nargs="+", metavar="REPORT",
                        help="report.json of ictal evaluate, or its --out folder")
    parser.add_argument("--out", default=None, metavar="FILE.md", help="write the table here instead of stdout")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="the chart (default: FILE.png beside --out, else compare.png in the current folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare and print or write; returns the exit status."""
    from ictal.training.compare_reports import CompareError, format_markdown, load_report, plot_comparison

    try:
        reports = [load_report(p) for p in args.reports]
    except CompareError as exc:
        print(f"ictal compare: {exc}", file=sys.stderr)
        return 2
    if args.plot is not None:
        chart = Path(args.plot)
    elif args.out is not None:
        chart = Path(args.out).with_suffix(".png")
    else:
        chart = Path("compare.png")
    plot_comparison(reports, chart)
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shown = Path(chart.name) if chart.parent.resolve() == out.parent.resolve() else chart
        out.write_text(format_markdown(reports, shown), encoding="utf-8")
        print(f"ictal compare: table {out}, chart {chart}", file=sys.stderr)
    else:
        print(format_markdown(reports, chart), end="")
        print(f"ictal compare: chart {chart}", file=sys.stderr)
    return 0
