"""`ictal tune`: choose alarm thresholds for a target FA/24h and write a thresholds file.

``ictal tune --checkpoint CKPT --data DATASET --target-fa X [--out thresholds.json]
[--write-checkpoint]`` runs the dataset through the daemon path once (or reads the probabilities of an
earlier ``ictal evaluate --out DIR`` with ``--from-eval DIR``), searches the grid of
:mod:`training.tune` for the thresholds of highest sensitivity with FA/24h <= X, writes them as a
thresholds file that ``ictal serve`` loads (``alarms.thresholds_file``) and, with
``--write-checkpoint``, into the checkpoint's metadata.

Exit status: 0 written; 3 when the target is unreachable (the lowest reachable FA/24h is printed and
nothing is written); 2 when the input is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys

from ictal.commands.evaluate import _progress, add_run_arguments

EXIT_UNREACHABLE = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` subcommand."""
    parser = subparsers.add_parser(
        "tune",
        help="Choose alarm thresholds for a target FA/24h and write a thresholds file.",
        description="Choose tau_on, tau_off and the minimum duration that maximise sensitivity (NEDC "
        "OVERLAP) with FA/24h <= the target, by re-running the alarm post-processor over the daemon "
        "path's probabilities (grid: training/tune.py). Exit 3 when the target is unreachable.",
    )
    add_run_arguments(parser)
    parser.add_argument("--target-fa", type=float, required=True, help="false alarms per 24 h allowed")
    parser.add_argument("--out", default="thresholds.json", help="thresholds file to write (default thresholds.json)")
    parser.add_argument("--write-checkpoint", action="store_true", help="also store the thresholds in the checkpoint")
    parser.add_argument("--thresholds", help="base thresholds (merge gap, max duration, refractory kept from them)")
    parser.add_argument("--from-eval", metavar="DIR", help="reuse the probabilities of `ictal evaluate --out DIR`")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def _eval_meta(eval_dir: str) -> dict:
    """hop_s and min_history_s of the evaluation whose probabilities are reused (from its report.json)."""
    from pathlib import Path

    path = Path(eval_dir) / "report.json"
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {})
    return {k: meta[k] for k in ("hop_s", "min_history_s", "checkpoint_id") if k in meta}


def run(args: argparse.Namespace) -> int:
    """Tune, write, print; returns the exit status."""
    from alarms.thresholds import ThresholdsFileError
    from detector.montage import MontageError
    from training.evaluate import (
        SCORED,
        DaemonPathRunner,
        EvaluationError,
        checkpoint_id,
        dataset_config,
        load_scored,
        resolve_thresholds,
        run_dataset,
        select_recordings,
    )
    from training.tune import tune, write_checkpoint_thresholds, write_thresholds

    if not args.target_fa >= 0:
        print(f"ictal tune: --target-fa is {args.target_fa}, expected a number >= 0", file=sys.stderr)
        return 2
    try:
        base, _ = resolve_thresholds(args.thresholds, args.checkpoint)
        if args.from_eval:
            recordings = load_scored(args.from_eval)
            dataset = str(args.data)
        else:
            from streaming.config import SchedulerConfig

            hop_s = SchedulerConfig().hop_s if args.hop_s is None else args.hop_s
            config = dataset_config(args.data, args.format)
            recs, skipped = select_recordings(config, args.include, args.split)
            skipped = list(skipped)
            runner = DaemonPathRunner.from_checkpoint(args.checkpoint, base, hop_s, args.min_history_s, args.device,
                                                        args.backend)
            evaluated = run_dataset(recs, runner, base, _progress(args), skipped)
            # recordings that could not be scored (too short, unusable) have no probability to tune on
            recordings = [ev.scored for ev in evaluated if ev.status == SCORED]
            for ev in evaluated:
                if ev.status != SCORED:
                    print(f"ictal tune: not scored, left out: {ev.recording.recording_id}: {ev.reason}",
                          file=sys.stderr)
            for item in skipped:
                print(f"ictal tune: skipped {item.path}: {item.reason}", file=sys.stderr)
            dataset = str(config.root)
        from training.evaluate import provenance_check

        # provenance (issue 17): warn when tuning on training or held-out recordings of the checkpoint
        warning = provenance_check(args.checkpoint, [r.recording_id for r in recordings], "tune")["warning"]
        if warning:
            print(f"ictal tune: {warning}", file=sys.stderr)
        result = tune(recordings, args.target_fa, base)
    except (EvaluationError, ThresholdsFileError, MontageError, FileNotFoundError, ValueError) as exc:
        print(f"ictal tune: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    if not result.reachable:
        print(f"ictal tune: {result.message()}; nothing written", file=sys.stderr)
        return EXIT_UNREACHABLE
    extra = {"hop_s": args.hop_s, "min_history_s": args.min_history_s, "from_eval": args.from_eval,
             "n_recordings": len(recordings)}
    if args.from_eval:
        extra.update(_eval_meta(args.from_eval))
    path = write_thresholds(args.out, result, dataset=dataset, checkpoint_id=checkpoint_id(args.checkpoint),
                            extra=extra)
    if not args.json:
        print(result.message())
        print(f"thresholds written to {path}")
    if args.write_checkpoint:
        meta = write_checkpoint_thresholds(args.checkpoint, path)
        if not args.json:
            print(f"thresholds stored in {meta}")
    return 0
