"""`ictal tune`: choose alarm thresholds for a target FA/24h and write a thresholds file.

``ictal tune --checkpoint CKPT --data DATASET --target-fa X [--out thresholds.json]
[--write-checkpoint]`` runs the dataset through the daemon path once, searches the grid of
:mod:`ictal.training.tune` for the thresholds of highest sensitivity with FA/24h <= X, writes them as a
thresholds file that ``ictal serve`` loads (``alarms.thresholds_file``) and, with
``--write-checkpoint``, into the checkpoint's metadata.

``ictal tune --from-eval DIR --target-fa X`` reuses the probabilities of an earlier
``ictal evaluate --out DIR`` instead: the checkpoint id, the checkpoint folder, the dataset and the base
thresholds come from ``DIR/report.json`` (``meta``), so neither ``--checkpoint`` nor ``--data`` is
needed. A ``--checkpoint`` whose id differs from the evaluation's, or a ``--data`` other than the
evaluation's dataset, is refused naming both (``--format``, ``--include``, ``--split`` select recordings
to run and are refused too: the evaluation already chose them).

The thresholds file is stamped with the checkpoint id the probabilities came from and the ids of the
recordings tuned on (``alarms.thresholds``). A choice without hysteresis (tau_off == tau_on) or with a
minimum duration below ``--min-duration-floor-s`` (default ``alarms.thresholds.MIN_DURATION_FLOOR_S``)
is written (it is the best point within the budget on this data) but said so: a warning line on stderr
and ``provenance.extra.warnings`` in the file, which the daemon logs again at every start. Refusing
would leave nothing to serve; the grid still holds the choice, and the warning travels with the file.

``--calibrate`` (with ``--write-checkpoint``, not with ``--from-eval``) first fits a temperature
(Guo et al. 2017; :func:`ictal.training.calibration.fit_recordings_temperature`) on the labelled served samples of
the recordings it runs, stores it in the checkpoint's metadata (``calibration``, :mod:`ictal.detector.calibration`),
recalibrates the stored probabilities with it, and only then tunes: the thresholds refer to calibrated
probabilities, the ones ``Detector`` serves from then on. The order is fixed (fit, then tune) because a
temperature moves every probability and hence every tau_on. It refuses recordings the checkpoint's
provenance lists as held out (evaluation or validation): calibration is fitted on TRAINING recordings only.
A checkpoint that already has a calibration gets the product of the old and the new temperature (the
probabilities it is fitted on already carry the old one).

``ictal tune --checkpoint CKPT --from-crossval DIR/CANDIDATE --target-fa X [--calibrate] --write-checkpoint``
calibrates and tunes on **out-of-fold** probabilities: those ``ictal crossval`` stored for one candidate
(``DIR/CANDIDATE/fold_*/eval``), where every recording was scored by the fold model that never trained on it.
CKPT is the model trained with the same recipe on all those recordings (the shipped model), so its own
probabilities on them are in-sample and would overstate its confidence and understate its false alarms;
the fold models' are not. The fold checkpoints must have CKPT's architecture, front-end, montage and
serving settings (refused naming the first key that differs) and no calibration of their own; every
recording must be a training recording of CKPT (its provenance), none held out. The temperature stored
replaces any earlier one (the fold probabilities never carried it). Without ``--write-checkpoint`` only
the thresholds file is written.

Exit status: 0 written; 3 when the target is unreachable (the lowest reachable FA/24h is printed and
nothing is written); 2 when the input is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.commands.evaluate import _progress, add_run_arguments

EXIT_UNREACHABLE = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` subcommand."""
    parser = subparsers.add_parser(
        "tune",
        help="Choose alarm thresholds for a target FA/24h and write a thresholds file.",
        description="Choose tau_on, tau_off and the minimum duration that maximise sensitivity (NEDC "
        "OVERLAP) with FA/24h <= the target, by re-running the alarm post-processor over the daemon "
        "path's probabilities. The grid: tau_on 0.05-0.95 by 0.05, 0.97-0.99 and quantiles of the "
        "probabilities; hysteresis gap tau_on - tau_off 0, 0.1, 0.2, 0.3 (tau_off at least tau_on / 2); "
        "minimum duration 2, 5, 10, 15, 20 s; merge gap, maximum duration and refractory kept from the "
        "base thresholds. Among the points within the target: highest sensitivity, then lowest FA/24h, "
        "then shortest minimum duration, then highest tau_on. Exit 3 when the target is unreachable.",
    )
    add_run_arguments(parser)
    for action in parser._actions:  # not required with --from-eval (checked in run)
        if action.dest in ("checkpoint", "data"):
            action.required = False
    parser.add_argument("--target-fa", type=float, required=True, help="false alarms per 24 h allowed")
    parser.add_argument("--out", default="thresholds.json", help="thresholds file to write (default thresholds.json)")
    parser.add_argument("--write-checkpoint", action="store_true", help="also store the thresholds in the checkpoint")
    parser.add_argument("--thresholds", help="base thresholds (merge gap, max duration, refractory kept from them)")
    parser.add_argument("--from-eval", metavar="DIR", help="reuse the probabilities of `ictal evaluate --out DIR` "
                        "(checkpoint, dataset and base thresholds from DIR/report.json; no --checkpoint/--data)")
    parser.add_argument("--from-crossval", metavar="DIR", help="calibrate and tune on the out-of-fold probabilities "
                        "of one `ictal crossval` candidate (DIR = the crossval --out folder / the candidate's name, "
                        "holding fold_*/eval); --checkpoint is the model trained on the same recipe on all of them")
    parser.add_argument("--min-duration-floor-s", type=float, default=None, metavar="S",
                        help="warn when the chosen minimum duration is below this (default: "
                        "alarms.thresholds.MIN_DURATION_FLOOR_S, 5 s)")
    parser.add_argument("--calibrate", action="store_true",
                        help="first fit a temperature (calibration) on these recordings' labelled samples and store "
                        "it in the checkpoint (needs --write-checkpoint; TRAINING recordings only), then tune on the "
                        "calibrated probabilities")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


class TuneInputError(ValueError):
    """Arguments that contradict each other or an evaluation folder; the message names both values."""


@dataclass
class EvalSource:
    """What ``--from-eval DIR`` takes from ``DIR/report.json`` (``meta``)."""

    checkpoint: str | None
    checkpoint_id: str
    dataset: str
    thresholds: dict[str, Any] | None
    meta: dict[str, Any]


def _eval_source(eval_dir: str) -> EvalSource:
    """The checkpoint id, checkpoint folder, dataset and thresholds of an ``ictal evaluate --out`` folder.

    Raises
    ------
    TuneInputError
        If ``DIR/report.json`` is missing, unreadable or has no ``meta.checkpoint_id``.
    """
    path = Path(eval_dir) / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TuneInputError(f"{path}: cannot read the evaluation report ({exc.strerror}); --from-eval needs the "
                             "output folder of `ictal evaluate --out`") from exc
    except json.JSONDecodeError as exc:
        raise TuneInputError(f"{path}: not valid JSON ({exc})") from exc
    meta = report.get("meta") if isinstance(report, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("checkpoint_id"), str):
        found = None if not isinstance(meta, dict) else meta.get("checkpoint_id")
        raise TuneInputError(f"{path}: meta.checkpoint_id is {found!r}, expected the id of the checkpoint evaluated")
    return EvalSource(checkpoint=meta.get("checkpoint"), checkpoint_id=meta["checkpoint_id"],
                      dataset=str(meta.get("dataset", eval_dir)), thresholds=meta.get("thresholds"), meta=meta)


def _check_from_eval_args(args: argparse.Namespace, source: EvalSource, checkpoint_id) -> None:
    """Refuse arguments that contradict the evaluation (see the module docstring)."""
    if args.checkpoint is not None:
        given = checkpoint_id(args.checkpoint)
        if given != source.checkpoint_id:
            raise TuneInputError(
                f"--checkpoint {args.checkpoint} is checkpoint {given}, but the evaluation {args.from_eval} scored "
                f"checkpoint {source.checkpoint_id}: its probabilities belong to {source.checkpoint_id} (leave "
                "--checkpoint out, or evaluate the other checkpoint)")
    if args.data is not None and Path(args.data).resolve() != Path(source.dataset).resolve():
        raise TuneInputError(f"--data {args.data} differs from the dataset of the evaluation {args.from_eval} "
                             f"({source.dataset}); --from-eval needs no --data")
    for flag, value in (("--format", args.format), ("--include", args.include), ("--split", args.split)):
        if value:
            raise TuneInputError(f"{flag} {value} is not used with --from-eval (the evaluation {args.from_eval} "
                                 "chose its recordings); leave it out")


def _checkpoint_to_write(args: argparse.Namespace, source: EvalSource | None, checkpoint_id) -> str:
    """The checkpoint folder --write-checkpoint writes into, checked to be the one tuned for."""
    folder = args.checkpoint if args.checkpoint is not None else (source.checkpoint if source else None)
    if folder is None or not (Path(folder) / "metadata.json").is_file():
        raise TuneInputError(f"--write-checkpoint: checkpoint folder {folder!r} not found (give --checkpoint)")
    if source is not None and checkpoint_id(folder) != source.checkpoint_id:
        raise TuneInputError(f"--write-checkpoint: {folder} is checkpoint {checkpoint_id(folder)}, but the "
                             f"evaluation {args.from_eval} scored checkpoint {source.checkpoint_id}")
    return str(folder)


SAME_RECIPE_KEYS: tuple[str, ...] = ("format", "model_config", "stack", "frontend_config", "montage", "lookahead_s",
                                     "serving")
"""Checkpoint metadata keys a fold model must share with the checkpoint tuned by ``--from-crossval``."""


def _out_of_fold(candidate_dir: str, checkpoint: str, load_scored) -> tuple[list, str]:
    """The out-of-fold scored recordings of one crossval candidate, checked against ``checkpoint``.

    Returns
    -------
    recordings : list of ScoredRecording
        Every fold's scored recordings (served probabilities of the fold model that did not train on them).
    dataset : str
        The folds' dataset.

    Raises
    ------
    TuneInputError
        If the folder holds no ``fold_*/eval/report.json``, a recording appears in two folds, the folds were
        scored on different datasets, a fold checkpoint carries a calibration, or a fold checkpoint differs
        from ``checkpoint`` in one of :data:`SAME_RECIPE_KEYS` (named).
    """
    from ictal.training.evaluate import checkpoint_metadata

    root = Path(candidate_dir)
    evals = sorted(p.parent for p in root.glob("fold_*/eval/report.json"))
    if not evals:
        raise TuneInputError(f"--from-crossval {candidate_dir}: no fold_*/eval/report.json here (expected the "
                             "folder of one candidate: the `ictal crossval --out` folder / the candidate's name)")
    final = checkpoint_metadata(checkpoint)
    recordings: list = []
    datasets: set[str] = set()
    for eval_dir in evals:
        source = _eval_source(str(eval_dir))
        datasets.add(str(Path(source.dataset).resolve()))
        fold_ckpt = source.checkpoint
        if fold_ckpt is None or not (Path(fold_ckpt) / "metadata.json").is_file():
            raise TuneInputError(f"{eval_dir}: its checkpoint folder {fold_ckpt!r} is gone; the fold models are "
                                 "needed to check they share the recipe of --checkpoint")
        fold_meta = checkpoint_metadata(fold_ckpt)
        if fold_meta.get("calibration"):
            raise TuneInputError(f"{fold_ckpt}: the fold model carries a calibration; out-of-fold calibration needs "
                                 "the fold models' raw probabilities")
        for key in SAME_RECIPE_KEYS:
            if fold_meta.get(key) != final.get(key):
                raise TuneInputError(f"{fold_ckpt} and --checkpoint {checkpoint} differ in {key!r} ({fold_meta.get(key)!r} "
                                     f"vs {final.get(key)!r}): the folds are not of this checkpoint's recipe")
        recordings.extend(load_scored(eval_dir))
    if len(datasets) > 1:
        raise TuneInputError(f"--from-crossval {candidate_dir}: the folds were scored on different datasets "
                             f"{sorted(datasets)}")
    ids = [r.recording_id for r in recordings]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise TuneInputError(f"--from-crossval {candidate_dir}: recording(s) scored in two folds: {twice[:3]}")
    print(f"out-of-fold: {len(recordings)} recordings from {len(evals)} folds of {candidate_dir}")
    return recordings, datasets.pop()


def _check_out_of_fold_provenance(provenance: dict, checkpoint: str, checkpoint_id: str, n: int) -> None:
    """Every out-of-fold recording must be a training recording of the checkpoint (none held out, none unknown).

    Raises
    ------
    TuneInputError
        If the checkpoint records no training data or holds out any of the recordings.
    """
    if not provenance.get("known"):
        raise TuneInputError(f"--from-crossval: checkpoint {checkpoint} records no training data (provenance)")
    held_out = list(provenance.get("evaluation", [])) + list(provenance.get("validation", []))
    if held_out:
        raise TuneInputError(f"--from-crossval: {len(held_out)} of the {n} out-of-fold recordings are held out by "
                             f"checkpoint {checkpoint_id} (e.g. {held_out[0]}): the folds are not of its training split")


def run(args: argparse.Namespace) -> int:
    """Tune, write, print; returns the exit status."""
    from ictal.alarms.config import AlarmThresholds
    from ictal.alarms.thresholds import MIN_DURATION_FLOOR_S, ThresholdsError, load_thresholds
    from ictal.detector.montage import MontageError
    from ictal.training.evaluate import (
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
    from ictal.training.tune import tune, write_checkpoint_thresholds, write_thresholds

    if not args.target_fa >= 0:
        print(f"ictal tune: --target-fa is {args.target_fa}, expected a number >= 0", file=sys.stderr)
        return 2
    floor = MIN_DURATION_FLOOR_S if args.min_duration_floor_s is None else args.min_duration_floor_s
    if not floor >= 0:
        print(f"ictal tune: --min-duration-floor-s is {floor}, expected a number >= 0", file=sys.stderr)
        return 2
    if args.calibrate and (args.from_eval or not args.write_checkpoint):
        print("ictal tune: --calibrate needs --write-checkpoint (the temperature is stored in the checkpoint) and "
              "runs the recordings itself or reads out-of-fold ones (--from-crossval), not with --from-eval",
              file=sys.stderr)
        return 2
    if args.from_crossval:
        clash = [flag for flag, value in (("--from-eval", args.from_eval), ("--data", args.data),
                                          ("--format", args.format), ("--include", args.include),
                                          ("--split", args.split)) if value]
        if clash or args.checkpoint is None:
            print(f"ictal tune: --from-crossval needs --checkpoint (the model trained on all the folds' recordings) "
                  f"and takes its recordings from the folds: {' '.join(clash) or '--checkpoint missing'}",
                  file=sys.stderr)
            return 2
    elif not args.from_eval:
        missing = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--data", args.data)) if value is None]
        if missing:
            print(f"ictal tune: {' and '.join(missing)} required (or --from-eval DIR)", file=sys.stderr)
            return 2
    source: EvalSource | None = None
    try:
        if args.from_crossval:
            write_to = _checkpoint_to_write(args, None, checkpoint_id) if args.write_checkpoint else None
            base, _ = resolve_thresholds(args.thresholds, args.checkpoint)
            recordings, dataset = _out_of_fold(args.from_crossval, args.checkpoint, load_scored)
            tuned_for = checkpoint_id(args.checkpoint)
        elif args.from_eval:
            source = _eval_source(args.from_eval)
            _check_from_eval_args(args, source, checkpoint_id)
            write_to = _checkpoint_to_write(args, source, checkpoint_id) if args.write_checkpoint else None
            if args.thresholds is not None:
                base = load_thresholds(args.thresholds)
            elif source.thresholds is not None:  # what the evaluation ran with (its merge gap, max, refractory)
                base = AlarmThresholds.model_validate(source.thresholds)
            else:
                base, _ = resolve_thresholds(None, write_to or args.checkpoint or source.checkpoint)
            recordings = load_scored(args.from_eval)
            dataset, tuned_for = source.dataset, source.checkpoint_id
        else:
            write_to = _checkpoint_to_write(args, None, checkpoint_id) if args.write_checkpoint else None
            base, _ = resolve_thresholds(args.thresholds, args.checkpoint)
            from ictal.streaming.config import SchedulerConfig

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
            dataset, tuned_for = str(config.root), checkpoint_id(args.checkpoint)
        recording_ids = [r.recording_id for r in recordings]
        # provenance (issue 17): warn when tuning on training or held-out recordings of the checkpoint
        checkpoint_dir = args.checkpoint or (source.checkpoint if source is not None else None)
        provenance = None
        if checkpoint_dir is not None:
            from ictal.training.evaluate import provenance_check

            provenance = provenance_check(checkpoint_dir, recording_ids, "tune")
            if args.from_crossval:
                _check_out_of_fold_provenance(provenance, args.checkpoint, tuned_for, len(recording_ids))
            elif provenance["warning"]:
                print(f"ictal tune: {provenance['warning']}", file=sys.stderr)
        else:
            print(f"ictal tune: the evaluation names no checkpoint folder: the checkpoint {tuned_for}'s training "
                  "data cannot be compared with the recordings tuned on", file=sys.stderr)
        calibration = None
        if args.calibrate:
            recordings, calibration = _calibrate(write_to, recordings, provenance, dataset, tuned_for,
                                                 out_of_fold=args.from_crossval)
        result = tune(recordings, args.target_fa, base)
    except (EvaluationError, ThresholdsError, MontageError, FileNotFoundError, ValueError) as exc:
        print(f"ictal tune: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    if not result.reachable:
        print(f"ictal tune: {result.message()}; nothing written", file=sys.stderr)
        return EXIT_UNREACHABLE
    extra = {"hop_s": args.hop_s, "min_history_s": args.min_history_s, "from_eval": args.from_eval,
             "from_crossval": args.from_crossval,
             "n_recordings": len(recordings), "provenance": provenance,
             "calibration": None if calibration is None else calibration["temperature"]}
    if source is not None:
        extra.update({k: source.meta[k] for k in ("hop_s", "min_history_s", "checkpoint") if k in source.meta})
    for warning in result.warnings(floor):
        print(f"ictal tune: warning: {warning}", file=sys.stderr)
    path = write_thresholds(args.out, result, dataset=dataset, checkpoint_id=tuned_for, recordings=recording_ids,
                            min_duration_floor_s=floor, extra=extra)
    if not args.json:
        print(result.message())
        print(f"thresholds for checkpoint {tuned_for} ({len(recording_ids)} recordings) written to {path}")
    if write_to is not None:
        meta = write_checkpoint_thresholds(write_to, path)
        if not args.json:
            print(f"thresholds stored in {meta}")
    return 0


def _calibrate(checkpoint: str, recordings: list, provenance: dict | None, dataset: str, checkpoint_id: str,
               out_of_fold: str | None = None) -> tuple[list, dict]:
    """Fit a temperature on the recordings, store it in the checkpoint, return the recalibrated recordings.

    With ``out_of_fold`` (the ``--from-crossval`` folder) the probabilities are the uncalibrated fold
    models': the stored temperature is the fitted one (it replaces the checkpoint's earlier one, if any),
    and the entry's ``fitted_on.source`` says where they came from.

    Raises
    ------
    TuneInputError
        If the checkpoint's provenance lists any of the recordings as held out (evaluation or
        validation), or its training data is unknown.
    ValueError
        If the recordings hold no seizure or no background sample (nothing to fit).
    """
    import dataclasses

    from ictal.detector.calibration import read_calibration
    from ictal.training.calibration import (
        apply_temperature,
        calibration_entry,
        fit_recordings_temperature,
        write_checkpoint_calibration,
    )
    from ictal.training.evaluate import checkpoint_metadata

    if provenance is None or not provenance.get("known"):
        raise TuneInputError(f"--calibrate: checkpoint {checkpoint} records no training data (provenance), so "
                             "nothing shows the recordings are training recordings; calibration is fitted on "
                             "training recordings only")
    held_out = list(provenance.get("evaluation", [])) + list(provenance.get("validation", []))
    if held_out:
        raise TuneInputError(f"--calibrate: {len(held_out)} of the recordings are held out by checkpoint "
                             f"{checkpoint_id} (e.g. {held_out[0]}); calibration is fitted on training recordings "
                             "only (select them with --include)")
    previous = read_calibration(checkpoint_metadata(checkpoint).get("calibration"), checkpoint).temperature
    if out_of_fold:
        if previous != 1.0:
            print(f"calibration: the earlier temperature {previous:.4g} of {checkpoint} is replaced (the out-of-fold "
                  "probabilities never carried it)")
        previous = 1.0
    fit = fit_recordings_temperature(recordings)
    entry = calibration_entry(fit, previous, checkpoint_id=checkpoint_id, dataset=dataset,
                              recordings=[r.recording_id for r in recordings])
    if out_of_fold:
        entry["fitted_on"]["source"] = (f"out-of-fold served probabilities of the fold models of ictal crossval "
                                        f"{out_of_fold} (each recording scored by a model that never trained on it)")
    path = write_checkpoint_calibration(checkpoint, entry)
    print(f"calibration: temperature {entry['temperature']:.4g} (fitted x{fit.temperature:.4g} on {fit.n:,} labelled "
          f"samples, {fit.n_positive:,} seizure, of {len(recordings)} recordings; NLL {fit.nll_before:.4f} -> "
          f"{fit.nll_after:.4f}) stored in {path}")
    recalibrated = [dataclasses.replace(r, probs=apply_temperature(r.probs, fit.temperature)) for r in recordings]
    return recalibrated, entry
