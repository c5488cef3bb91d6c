"""`ictal crossval`: choose a model and recipe by cross-validation over the training recordings, by patient.

``ictal crossval --config FILE [--vary NAME:KEY=VALUE ...] [--set KEY=VALUE ...] --folds K [--seed S]
[--max-steps N] --out DIR``. The held-out split of the config (``data.eval_recordings``) is never used;
the folds are written to ``DIR/folds.json`` before any training (``ictal.training.crossval``). Exit
status 0 when every fold ran, 2 when the configs or the folds are unusable (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `crossval` subcommand."""
    parser = subparsers.add_parser(
        "crossval", help="Cross-validate candidate recipes over the training recordings, grouped by patient.",
        description="Deal the training recordings' patients into K folds (seizure patients spread first; the "
        "assignment is written to DIR/folds.json before any training and must not change between runs into "
        "DIR), train each candidate K times with one fold held out, score each fold through ictal evaluate's "
        "daemon path, and write DIR/cv_report.json and DIR/cv_report.md. The config's held-out split "
        "(data.eval_recordings) is never trained on nor scored. The candidate chosen is the one with the "
        "highest mean fold AUROC (ties: pooled OVERLAP sensitivity), a rule fixed before any result. "
        "Candidates: the config as given ('base'), or one per --vary name.",
    )
    parser.add_argument("--config", required=True, type=Path, help="a `kind: train` YAML file (configs/train/)")
    parser.add_argument("--vary", action="append", default=[], metavar="NAME:KEY=VALUE",
                        help="a candidate NAME whose config is --config with KEY=VALUE (repeat with the same NAME "
                        "for several keys; e.g. --vary running:frontend.normalisation=running)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config key for every candidate (as ictal train --set)")
    parser.add_argument("--folds", type=int, default=4, help="number of folds K (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps per fold training")
    parser.add_argument("--device", default="auto", help="device of the fold evaluations (default auto)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run)


def candidate_overrides(vary: list[str]) -> dict[str, list[str]]:
    """``NAME:KEY=VALUE`` items grouped by NAME, in order; {"base": []} without any.

    Raises
    ------
    ValueError
        If an item has no ``NAME:`` prefix or no ``=``.
    """
    groups: dict[str, list[str]] = {}
    for item in vary:
        name, sep, override = item.partition(":")
        if not sep or not name or "=" not in override:
            raise ValueError(f"--vary {item!r}: expected NAME:KEY=VALUE (e.g. running:frontend.normalisation=running)")
        groups.setdefault(name, []).append(override)
    return groups or {"base": []}


def run(args: argparse.Namespace) -> int:
    """Run the cross-validation; returns the exit status."""
    from ictal.commands.train import apply_overrides
    from ictal.config import ConfigError, load_config
    from ictal.training.cache import CacheMismatchError
    from ictal.training.crossval import CrossValidationError, crossval

    try:
        base = load_config(args.config, kind="train")
        if args.overrides:
            base = apply_overrides(base, args.overrides, str(args.config))
        candidates = {name: apply_overrides(base, items, f"{args.config} (candidate {name})") if items else base
                      for name, items in candidate_overrides(args.vary).items()}
    except (ConfigError, ValueError) as exc:
        print(f"ictal crossval: {exc}", file=sys.stderr)
        return 2
    try:
        report = crossval(candidates, args.folds, args.out, seed=args.seed, max_steps=args.max_steps,
                          device=args.device, progress=lambda line: print(line, flush=True))
    except (CrossValidationError, CacheMismatchError, FileNotFoundError) as exc:
        print(f"ictal crossval: {exc}", file=sys.stderr)
        return 2
    print((args.out / "cv_report.md").read_text(), end="")
    return 0 if report["chosen"] is not None else 1
