"""`ictal evaluate`: run recordings through the daemon path (or read another detector's output) and write a scored report.

``ictal evaluate --checkpoint CKPT --data DATASET --out DIR [--hop-s S] [--thresholds FILE]
[--min-history-s S] [--mode window|stream]`` replays every recording of DATASET through the per-bed path
of ``ictal serve`` (:mod:`ictal.training.evaluate`) in the daemon's ``detector.mode`` (default the checkpoint's
natural mode: ``stream`` for a causal checkpoint, each bed's state carried from hop to hop; ``window``
otherwise; ``report.json``'s ``meta.mode`` says which), writes hypothesis and reference ``csv_bi`` files with ``ref.list`` and
``hyp.list``, per-recording probabilities, ``report.json``, ``report.md`` and PNG plots under DIR, and
prints the headline figures. A WARNING line (stderr before scoring, and in the summary) says how many
of the recordings are training recordings of the checkpoint, or that its training data is unknown
(:mod:`ictal.training.provenance`). Exit status 0 on success, 2 when the input is invalid (the message says
what and where).

``ictal evaluate --hypotheses HYP --data DATASET --out DIR [--probs-rate-hz R] [--name NAME]`` scores
another detector's stored output (events per recording as csv_bi or SzCORE ``_events.tsv``, optional
per-sample probabilities; :mod:`ictal.training.hypotheses`) on the same recordings with the same scorers
and report; no checkpoint is needed. ``ictal compare`` puts several reports side by side.

Progress: on a terminal, a tqdm bar on stderr (recordings done / selected, ETA) with one line per
recording above it; when stderr is not a terminal (logs, CI) nothing is printed until the summary.
``--quiet`` hides the progress on a terminal too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="Run recordings through the daemon path (or read another detector's output) and write a scored report.",
        description="Run every recording of a dataset through the daemon path (front-end in streaming "
        "chunks, windows every hop, stitching, alarm post-processor), or read another detector's output "
        "with --hypotheses, and write hypotheses, probabilities and a report (NEDC OVERLAP/TAES/DP "
        "alignment/EPOCH, SzCORE pooled and per-patient mean +- std, AUROC/AUPRC, 95%% bootstrap intervals "
        "by patient, sensitivity at 1/2.5/5/10 FA/24h, onset latency, plots).",
        epilog=OUTPUT_LAYOUT + "\n\n" + HYPOTHESES_LAYOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser, checkpoint_required=False)
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--thresholds", help="thresholds file (ictal tune); default: the checkpoint's, else defaults")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--mode", choices=("window", "stream"), default=None,
                        help="the daemon's detector.mode to run (default: the checkpoint's natural mode, stream "
                             "for a causal checkpoint, window otherwise)")
    parser.add_argument("--hypotheses", metavar="DIR", default=None,
                        help="score another detector's output in DIR instead of a checkpoint (layout below)")
    parser.add_argument("--probs-rate-hz", type=float, default=None, metavar="HZ",
                        help="samples per second of the probability files in --hypotheses DIR")
    parser.add_argument("--name", default=None,
                        help="name of the evaluated detector in the report (default: the checkpoint id, or the "
                             "--hypotheses folder name)")
    parser.set_defaults(func=run)


OUTPUT_LAYOUT = """\
Layout of --out DIR:
  report.json, report.md        the report (figures, intervals, per-recording table)
  recordings.json               per recording: path, patient, duration, status, reference and detected events
  ref/<recording>.csv_bi, ref.list
                                reference seizures (TUSZ csv_bi) of the scored recordings
  hyp/<recording>.csv_bi, hyp.list
                                detected events (csv_bi; confidence = peak probability)
  bids/ref/sub-<patient>/ses-01/eeg/sub-<patient>_ses-01_task-szMonitoring_run-<NN>_events.tsv
  bids/hyp/... (same names), ref_tsv.list, hyp_tsv.list
                                the same as SzCORE/BIDS _events.tsv files (for szcore-evaluation)
  probs/<recording>.npy         float32 per-sample probability at 256 Hz (NaN = not scored)
  labels/<recording>.npy        int8 per-sample label at 256 Hz (1 seizure, 0 background, -1 unrated)
  usable/<recording>.npy        bool, False where the daemon withheld the probability (unusable input)
  plots/*.png                   sensitivity vs FA/24h, reliability diagram, one timeline per recording
`ictal score --ref DIR/ref.list --hyp DIR/hyp.list` (or the _tsv lists) rescores the written files."""

HYPOTHESES_LAYOUT = """\
Layout of --hypotheses DIR (files found at any depth, by name):
  <name>.csv_bi or <name>_events.tsv
                  the detector's events for one recording (TUSZ csv_bi, or SzCORE/BIDS _events.tsv with
                  columns onset, duration, eventType, confidence, channels, dateTime, recordingDuration);
                  required for every selected recording (a missing one is an error naming it)
  <name>.npy or <name>.csv
                  optional per-sample seizure probabilities in [0, 1] (NaN = not scored): a 1-d .npy array
                  or one number per line, at --probs-rate-hz samples per second; they give AUROC,
                  calibration and the tau_on sweep
  <name> is the recording id ictal evaluate uses (e.g. labelled__iiic_01), the EDF file name without its
  extension, or that name without a trailing _eeg (BIDS)."""


def add_run_arguments(parser: argparse.ArgumentParser, checkpoint_required: bool = True) -> None:
    """Arguments shared by `evaluate` and `tune`: checkpoint, dataset, and how the daemon path runs."""
    parser.add_argument("--checkpoint", required=checkpoint_required, default=None,
                        help="checkpoint directory (safetensors + metadata.json)"
                        + ("" if checkpoint_required else "; not with --hypotheses"))
    parser.add_argument("--data", required=True, help="dataset folder (TUSZ tree, EDF+/BIDS folder, or rated windows)")
    parser.add_argument("--format", choices=("tusz", "edf_folder", "rated_windows", "chbmit"), default=None,
                        help="dataset layout (default: guessed from the folder)")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="keep recordings whose id matches this shell pattern (repeatable)")
    parser.add_argument("--split", choices=("train", "dev", "eval"), default=None, help="keep one split only")
    parser.add_argument("--hop-s", type=float, default=None, help="seconds between scored windows (default: daemon's)")
    parser.add_argument("--min-history-s", type=float, default=None,
                        help="score a left-padded window once this much signal exists (default: the daemon's, "
                             "SchedulerConfig.min_history_s = 10 s); a shorter recording is listed as unscored")
    parser.add_argument("--device", default="auto", help="torch device (auto: cuda if available)")
    parser.add_argument("--backend", choices=("auto", "fused", "reference"), default="auto", help="stack backend")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress (evaluate shows a bar with ETA and a line per recording only when stderr "
                             "is a terminal)")


def _progress(args: argparse.Namespace):
    if args.quiet:
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the headline figures; returns the exit status."""
    from ictal.alarms.thresholds import ThresholdsFileError
    from ictal.detector.montage import MontageError
    from ictal.training.evaluate import EvaluationError, evaluate

    if (args.checkpoint is None) == (args.hypotheses is None):
        print("ictal evaluate: give --checkpoint CKPT or --hypotheses DIR (found "
              + ("both" if args.checkpoint else "neither") + ")", file=sys.stderr)
        return 2
    if args.probs_rate_hz is not None and args.hypotheses is None:
        print("ictal evaluate: --probs-rate-hz applies to --hypotheses only", file=sys.stderr)
        return 2
    bar = not args.quiet and sys.stderr.isatty()
    try:
        report = evaluate(
            args.checkpoint, args.data, args.out, hop_s=args.hop_s, thresholds_file=args.thresholds,
            min_history_s=args.min_history_s, data_format=args.format, include=args.include, split=args.split,
            device=args.device, backend=args.backend, plots=not args.no_plots,
            progress=_progress(args) if bar else None,
            warn=lambda line: print(line, file=sys.stderr, flush=True), mode=args.mode,
            hypotheses=args.hypotheses, probs_rate_hz=args.probs_rate_hz, detector_name=args.name,
            progress_bar=bar,
        )
    except (EvaluationError, ThresholdsFileError, MontageError, FileNotFoundError) as exc:
        print(f"ictal evaluate: {exc}", file=sys.stderr)
        return 2
    print(summary_lines(report))
    return 0


def _szcore_evaluation_lines(result: dict | None) -> list[str]:
    """The SzCORE figures as szcore-evaluation reports them (mean +- std over patients); none when absent."""
    if not result:
        return []
    from ictal.training.scoring.szcore_dataset import format_lines

    return [f"SzCORE per patient (szcore-evaluation, 1 Hz masks, mean +- std over {result['n_subjects']} patients):",
            *format_lines(result)]


MAX_UNSCORED_LINES = 5
"""Unscored recordings named in the printed summary (all of them are in report.json and report.md)."""


def summary_lines(report) -> str:
    """The headline figures of a report, a few lines of text."""
    from ictal.training.evaluate_report import exact_interval_line, interval_line

    def fmt(x, spec=".2f", scale=1.0):
        return "n/a" if x is None else format(scale * x, spec)

    def pct(x: float | None, n_seizures: float) -> str:
        # No seizure to find: a sensitivity is undefined, never 0.00% (nor nan%).
        return "n/a (no seizures)" if x is None or not n_seizures else f"{100 * x:.2f}%"

    m = report.meta
    ov = report.scores["nedc"]["overlap"]["labels"]["seiz"]
    ta = report.scores["nedc"]["taes"]["labels"]["seiz"]
    sz = report.scores["szcore"]
    bg = report.background_only
    lat = report.latency
    cal = (getattr(report, "calibration", None) or {}).get("pooled") or {}
    lines = [
        f"{m['n_recordings']} recordings, {m['n_scored']} scored ({m['duration_s'] / 3600:.3f} h), "
        f"{m['n_unscored']} unscored, hop {m['hop_s']:g} s, min history {m['min_history_s']:g} s, lookahead "
        f"{m['lookahead_s']:g} s, tau_on {m['thresholds']['tau_on']:g} (from {m['thresholds_source']})",
        f"NEDC OVERLAP: {ov['hits']:.0f}/{ov['targets']:.0f} seizures, sensitivity {pct(ov['sensitivity'], ov['targets'])}, "
        f"{ov['false_alarms']:.0f} FA, {ov['fa_per_24h']:.2f} FA/24h",
        f"NEDC TAES: sensitivity {pct(ta['sensitivity'], ov['targets'])}, {ta['false_alarms']:.2f} FA, {ta['fa_per_24h']:.2f} FA/24h",
        f"SzCORE: sensitivity {pct(sz['sensitivity'], ov['targets'])}, FP/24h {fmt(sz['fp_per_24h'])}",
        *_szcore_evaluation_lines(report.scores.get("szcore_evaluation")),
        f"AUROC {fmt(report.sample_level['auroc'], '.4f')}, AUPRC {fmt(report.sample_level['auprc'], '.4f')}",
        interval_line(getattr(report, "confidence_intervals", None) or {}),
        *([line] if (line := exact_interval_line(getattr(report, "confidence_intervals", None) or {})) else []),
        f"calibration: ECE {fmt(cal.get('ece'), '.3f')}, Brier {fmt(cal.get('brier'), '.4f')} (prevalence-only "
        f"{fmt(cal.get('brier_reference'), '.4f')}), 99.9th percentile on seizure samples "
        f"{fmt(cal.get('p999_seizure'), '.3f')}" + (f"; reliability diagram in {report.plots['reliability']}"
                                                   if report.plots.get("reliability") else ""),
        "sensitivity at FA/24h: " + ", ".join(
            f"{r['budget_fa_per_24h']:g}: " + ("n/a" if r["point"] is None or r["point"]["sensitivity"] is None
                                               else f"{100 * r['point']['sensitivity']:.1f}%")
            for r in report.sensitivity_at_fa),
        "alarm latency (alarm leaves daemon - annotated onset): " + (
            f"p50 {lat['p50_s']:.1f} s, p90 {lat['p90_s']:.1f} s ({lat['n']} seizures)" if lat["n"] and lat["p50_s"] is not None
            else "n/a (no detected seizure)"),
        f"background-only: {bg['false_alarms']} FA in {bg['duration_s'] / 3600:.3f} h = {fmt(bg['fa_per_24h'])} FA/24h"
        + (f" (exact 95% upper limit {fmt(bg['fa_per_24h_exact']['hi'])})"
           if (bg.get("fa_per_24h_exact") or {}).get("hi") is not None else ""),
    ]
    if report.segments is not None:
        lines.append("rated windows flagged: " + ", ".join(
            f"{c.label} {c.flagged}/{c.scored}" for c in report.segments.classes) if report.segments.classes
                     else "rated windows flagged: none (no rated window in the scored recordings)")
        if report.segments.aucs:
            lines.append("rated-span AUC seizure vs (95% cluster bootstrap): " + ", ".join(
                f"{a.label} " + ("n/a" if a.auc != a.auc else f"{a.auc:.2f} [{a.ci_low:.2f}, {a.ci_high:.2f}]")
                + f" ({a.n_seizure_spans} seizure spans of {a.n_seizure_recordings} recordings vs {a.n_spans} of "
                f"{a.n_recordings})" for a in report.segments.aucs))
    if m["n_unscored"]:
        lines.append(f"unscored ({m['unscored_ref_seizures']} reference seizures not counted): " + "; ".join(
            f"{u['recording_id']}: {u['reason']}" for u in m["unscored"][:MAX_UNSCORED_LINES])
            + (f"; ... {m['n_unscored'] - MAX_UNSCORED_LINES} more in report.json" if m["n_unscored"] > MAX_UNSCORED_LINES
               else ""))
    prov = m.get("provenance")
    if prov and prov.get("warning"):
        lines.append(prov["warning"])
    lines.append(f"report: {Path(m.get('out_dir', '.')) / 'report.md'}")
    return "\n".join(lines)
