"""`ictal train`: train a detector from a training config.

``ictal train --config FILE [--set KEY=VALUE ...] [--resume CKPT] [--max-steps N] [--cache-only]``. For several GPUs or
nodes run it under torchrun: ``torchrun --nproc_per_node=N -m ictal train --config FILE`` (PyTorch
DDP; build the cache first with ``--cache-only`` so the other ranks do not wait on it). Exit status 0
on success, 2 when the config, the data or the checkpoint is unusable (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        "train", help="Train a detector from a training config.",
        description="Build the preprocessing cache (once) and train a detector: balanced 60 s windows, "
        "focal loss or weighted BCE, AdamW with warm-up + cosine, a checkpoint every epoch plus the best by "
        "dev sensitivity at the target FA/24h. Run under torchrun for DDP on several GPUs or nodes.",
    )
    parser.add_argument("--config", required=True, type=Path, help="a `kind: train` YAML file (configs/train/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config key (dotted path, YAML value), validated like the file: "
                        "e.g. --set serving.lookahead_s=2 --set out_dir=runs/la2 (repeatable)")
    parser.add_argument("--resume", type=Path, default=None,
                        help="checkpoint directory written by `ictal train` to continue from")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many optimizer steps in all (resumed steps count)")
    parser.add_argument("--cache-only", action="store_true", help="build or complete the cache, then exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train (or build the cache) and print where the checkpoints are; returns the exit status."""
    from ictal.config import ConfigError, load_config
    from ictal.training.cache import CacheMismatchError

    try:
        config = load_config(args.config, kind="train")
        if args.overrides:
            config = apply_overrides(config, args.overrides, str(args.config))
    except ConfigError as exc:
        print(f"ictal train: {exc}", file=sys.stderr)
        return 2
    if args.max_steps is not None and args.max_steps < 1:
        print(f"ictal train: --max-steps must be >= 1 (found {args.max_steps})", file=sys.stderr)
        return 2
    try:
        if args.cache_only:
            from ictal.training.train import prepare_cache

            summary = prepare_cache(config, progress=not args.no_progress)
            return 0 if summary.entries else 2
        from ictal.training.train import train

        result = train(config, resume=args.resume, max_steps=args.max_steps,
                       progress=False if args.no_progress else None)
    except (CacheMismatchError, FileNotFoundError, ValueError) as exc:
        print(f"ictal train: {exc}", file=sys.stderr)
        return 2
    print(f"trained {result.global_step} steps ({result.epoch} epochs done); last checkpoint "
          f"{result.last_checkpoint}" + (f", best {result.best_checkpoint}" if result.best_checkpoint else ""))
    return 0


def apply_overrides(config, overrides: list[str], source: str):
    """A config with ``KEY=VALUE`` overrides applied and validated again.

    Parameters
    ----------
    config : pydantic model
        The loaded config.
    overrides : list of str
        ``dotted.key=value``; the value is parsed as YAML (``2``, ``true``, ``[1, 2]``, ``runs/x``).
    source : str
        The config file (for messages).

    Returns
    -------
    config : same type
        Validated anew, so a mistyped key or a bad value is an error as in the file.

    Raises
    ------
    ictal.config.ConfigError
        If an override has no ``=``, names an unknown key or gives a value that does not validate.
    """
    import yaml
    from pydantic import ValidationError

    from ictal.config import ConfigError

    data = config.model_dump(mode="json")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. serving.lookahead_s=2)")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {item!r}: {source} has no section {part!r} on the path {key!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"--set {item!r}: {source} has no key {key!r} (found: {', '.join(sorted(node))})")
        node[parts[-1]] = yaml.safe_load(text)
    try:
        return type(config).model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source} with --set {' '.join(overrides)}: {exc}") from exc
