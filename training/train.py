"""The training loop: cache -> balanced windows -> AdamW with warm-up + cosine -> checkpoints.

One process per device. Under ``torchrun`` (``torchrun --nproc_per_node=N -m ictal train --config
...``, multi-node with ``--nnodes``/``--rdzv-endpoint``) the loop runs in PyTorch
DistributedDataParallel: NCCL on CUDA, gloo on CPU. The first process of each node builds or
completes the cache (the others wait; on several nodes ``data.cache_dir`` should be on a filesystem
they share, or be built beforehand on each with ``ictal train --cache-only``); rank 0 writes logs and
checkpoints and evaluates dev; every rank draws different windows (the item seed
includes the rank) and DDP averages the gradients, so every rank holds the same weights.

Reproducibility: weights are initialised from ``seed``; window ``i`` of epoch ``e`` on rank ``r``
is drawn from a generator seeded with ``(seed, e, r, i)``, and torch's generator (dropout) is reseeded
from ``(seed, step, rank)`` at every optimizer step, so a run resumed from a checkpoint continues
exactly as the uninterrupted run would (on the same hardware and library versions).

Where the loss is taken (``serving``, :class:`ictal.training.config.ServingConfig`): by default on the
served span of each window, ``[end - lookahead - hop, end - lookahead)``, the positions the daemon
reads (``detector.output_position``; :func:`ictal.training.losses.served_position_loss`), with windows
placed so that their anchor lies in that span and left-padded warm-up windows drawn as the daemon
scores them after connecting (:mod:`ictal.training.sampler`); dev evaluation reads the model at the same
positions (:func:`ictal.training.validation.predict_served_logits`). The checkpoint records ``lookahead_s``.
``loss_positions: window`` restores the whole-window loss of the first recipe.

Causal checkpoints (``model.direction: causal``, issue 16): the daemon's stream mode serves every
sample, lookahead 0, so the loss is taken on every sample a stream would serve (from ``min_history_s -
hop_s`` after the window's first real sample on: :func:`ictal.training.losses.causal_served_offsets`), and
the config must say ``serving.lookahead_s: 0`` and ``frontend.normalisation: running``
(:class:`ictal.training.config.TrainConfig` says why). With ``running`` each training window is the slice of its recording's per-sample
normalised stream, the statistics started at the recording's first sample as the daemon starts them at
a bed's connection (:mod:`ictal.training.sampler`). The checkpoint records ``direction`` (in its model
config) and ``lookahead_s`` 0.

Checkpoints (``out_dir/checkpoints/``): ``epoch_NNN`` after each epoch, ``last`` (after each epoch
and when ``--max-steps`` stops the run) and ``best`` (highest dev sensitivity at the target FA/24h,
then lowest dev loss). Each is a detector checkpoint (``model.safetensors`` + ``metadata.json``,
:mod:`ictal.detector.checkpoint`) plus the training state to resume from: ``training_state.safetensors``
(optimizer moments) and ``training_state.json`` (step, epoch, schedule, optimizer hyper-parameters,
config). Nothing is pickled. Each checkpoint's ``metadata.json`` also records its training data,
``provenance`` (:mod:`ictal.training.provenance`): the dataset, the split and the ids of the train, dev
(``validation_recordings``) and eval (``evaluation_recordings``) recordings of the cache the run read.

Progress and logs (rank 0, :mod:`ictal.training.progress`): on a terminal, tqdm bars for the cache and the
steps (loss, rate, ETA); otherwise (a log file, journald, CI) no bar but a plain line ``train: step
n/N (p%), loss L, r step/s, elapsed H:MM:SS, ETA H:MM:SS`` at least every ``log.progress_every_s``
(30 s), a line before each dev evaluation, and a last line. ``log.progress_bar`` true/false forces the
bar on/off. TensorBoard events are written when ``log.tensorboard`` is true and TensorBoard (the extra
``ictal[tensorboard]``) is installed; when it is not, the start of the run says so in one line
(:data:`TENSORBOARD_MISSING`) and training goes on. Metrics always go to ``metrics.jsonl`` and
``metrics.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ictal.training.config import TrainConfig
from ictal.training.losses import loss_from_config, served_position_loss
from ictal.training.provenance import build_provenance
from ictal.training.schedule import warmup_cosine

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
MAX_BAD_STEPS = 10
"""Consecutive optimizer steps with a non-finite gradient after which training stops with an error."""
TENSORBOARD_MISSING = (
    "WARNING: log.tensorboard is true but TensorBoard is not installed ({error}): no TensorBoard events "
    "will be written; metrics go to {out_dir}/metrics.jsonl and metrics.csv. Install it with `pip install "
    "ictal[tensorboard]`, or set log.tensorboard: false"
)
"""The one line said at the start of a run whose TensorBoard logging is on but not installed."""
LOG_COLUMNS = (
    "kind", "step", "epoch", "loss", "lr", "grad_norm", "windows_per_s", "elapsed_s",
    "dev_loss", "dev_sensitivity", "dev_fa_per_24h", "dev_tau_on", "dev_seizures", "dev_labelled_h",
)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly) distributed run."""

    rank: int
    world_size: int
    local_rank: int
    initialised_here: bool

    @property
    def is_main(self) -> bool:
        """True on rank 0 (logs, checkpoints, dev evaluation)."""
        return self.rank == 0


@dataclass
class TrainResult:
    """What a run left behind.

    Attributes
    ----------
    global_step : int
        Optimizer steps taken in all (resumed runs included).
    epoch : int
        Epochs completed.
    last_checkpoint : Path
        ``out_dir/checkpoints/last``.
    best_checkpoint : Path or None
        ``out_dir/checkpoints/best`` when a dev evaluation ran.
    final_loss : float
        Mean training loss over the last logging interval (averaged over ranks).
    model : torch.nn.Module
        The trained model (unwrapped from DDP), on the training device.
    """

    global_step: int
    epoch: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    final_loss: float
    model: torch.nn.Module


def setup_distributed(device_kind: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Parameters
    ----------
    device_kind : {"cuda", "cpu"}
        NCCL is used for CUDA, gloo for CPU.

    Returns
    -------
    info : DistInfo
        rank 0 of 1 when not launched by torchrun (``WORLD_SIZE`` unset or 1).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size <= 1:
        return DistInfo(0, 1, 0, False)
    import torch.distributed as dist

    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, False)
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, True)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``cuda`` -> ``cuda:LOCAL_RANK``.

    Raises
    ------
    ValueError
        If CUDA is asked for and is not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but CUDA is not available here (use device: cpu)")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


def _barrier(dist_info: DistInfo) -> None:
    if dist_info.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def prepare_cache(config: TrainConfig, progress: bool | None = None):
    """Discover the dataset and build (or complete) its cache; returns the CacheSummary.

    Parameters
    ----------
    config : TrainConfig
    progress : bool or None
        A bar (True), plain lines every ``config.log.progress_every_s`` (False), or None:
        ``config.log.progress_bar`` (None there: a bar only on a terminal).

    Raises
    ------
    training.cache.CacheMismatchError
        If ``data.cache_dir`` was built with another front-end config.
    """
    from ictal.training.cache import build_cache
    from ictal.training.datasets import discover

    index = discover(config.data)
    return build_cache(index.recordings, config.data.cache_dir, config.frontend, workers=config.data.cache_workers,
                       chunk_s=config.data.cache_chunk_s, skipped=index.skipped,
                       progress=config.log.progress_bar if progress is None else progress,
                       progress_every_s=config.log.progress_every_s)


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and kernels only (not on biases, norms, 1-D parameters).

    References
    ----------
    Loshchilov I., Hutter F., "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.optim.lr, betas=(0.9, 0.999), eps=1e-8)


def _config_json(config: TrainConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def save_training_state(path: Path, optimizer: torch.optim.Optimizer, scheduler, state: dict[str, Any]) -> None:
    """Write the optimizer, schedule and loop state beside a checkpoint, without pickle.

    Parameters
    ----------
    path : Path
        The checkpoint directory.
    optimizer : torch.optim.Optimizer
        Its per-parameter tensors go to ``training_state.safetensors`` (keys ``state.<i>.<name>``);
        its hyper-parameters to ``training_state.json``.
    scheduler : torch.optim.lr_scheduler.LRScheduler
    state : dict
        JSON-serialisable loop state (step, epoch, best score, config).
    """
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in opt["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    save_file(tensors, str(path / STATE_TENSORS))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    payload = {**state, "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
               "scheduler": sched}
    (path / STATE_JSON).write_text(json.dumps(payload, indent=1), encoding="utf-8")


def load_training_state(path: Path, optimizer: torch.optim.Optimizer, scheduler,
                        device: torch.device) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote; returns the loop state.

    Raises
    ------
    FileNotFoundError
        If the checkpoint has no training state (e.g. a checkpoint made for deployment only).
    """
    json_path, tensor_path = path / STATE_JSON, path / STATE_TENSORS
    if not json_path.is_file() or not tensor_path.is_file():
        raise FileNotFoundError(
            f"{path}: no training state ({STATE_JSON} and {STATE_TENSORS}) to resume from; "
            "only checkpoints written by `ictal train` can be resumed"
        )
    payload = json.loads(json_path.read_text(encoding="utf-8"))
    tensors = load_file(str(tensor_path), device=str(device))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in payload["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    for values in state.values():
        if "step" in values and isinstance(values["step"], torch.Tensor):
            values["step"] = values["step"].to("cpu")
    optimizer.load_state_dict({"state": state, "param_groups": payload["optimizer"]["param_groups"]})
    scheduler.load_state_dict({**payload["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    return payload


def _replace_dir(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def write_checkpoint(path: Path, model: torch.nn.Module, config: TrainConfig, optimizer, scheduler,
                     state: dict[str, Any], provenance: dict[str, Any] | None = None) -> Path:
    """Write a resumable checkpoint directory atomically (a temporary directory renamed into place).

    Parameters
    ----------
    path : Path
        The checkpoint directory to (re)write.
    model : torch.nn.Module
        The unwrapped model.
    config : TrainConfig
    optimizer, scheduler
        Saved with :func:`save_training_state`.
    state : dict
        Loop state; also recorded as the checkpoint's training summary.
    provenance : dict, optional
        The training data (:func:`ictal.training.provenance.build_provenance`), written as
        ``metadata["provenance"]``; None leaves the checkpoint's data unknown.

    Returns
    -------
    path : Path
    """
    from ictal.detector.checkpoint import save_checkpoint

    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in state.items() if k != "config"}
    serving = config.serving
    save_checkpoint(tmp, model, config.model, config.frontend, lookahead_s=serving.lookahead_s,
                    provenance=provenance,
                    extra={"training": summary,
                           "serving": {"loss_positions": serving.loss_positions, "hop_s": serving.hop_s,
                                       "min_history_s": serving.min_history_s,
                                       "warmup_fraction": serving.warmup_fraction,
                                       "whole_window_loss_weight": serving.whole_window_loss_weight}})
    save_training_state(tmp, optimizer, scheduler, state)
    _replace_dir(tmp, path)
    return path


def tensorboard_writer_class() -> tuple[Any, str | None]:
    """TensorBoard's ``SummaryWriter``, or None and why it cannot be imported.

    Returns
    -------
    writer_class : type or None
        ``torch.utils.tensorboard.SummaryWriter`` when TensorBoard is installed.
    error : str or None
        The import error's message when it is not (``torch.utils.tensorboard`` raises ImportError
        without the ``tensorboard`` package).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        return None, str(exc)
    return SummaryWriter, None


class MetricsLog:
    """Training and dev metrics to ``metrics.jsonl``, ``metrics.csv`` and TensorBoard (when installed).

    Parameters
    ----------
    out_dir : Path
        Run folder.
    tensorboard : bool
        ``log.tensorboard``. When TensorBoard is not installed ``tb`` stays None and ``tb_note`` says
        why; :func:`train` has said so at the start of the run (:data:`TENSORBOARD_MISSING`).
    """

    def __init__(self, out_dir: Path, tensorboard: bool):
        self.jsonl = out_dir / "metrics.jsonl"
        self.csv = out_dir / "metrics.csv"
        new_csv = not self.csv.exists()
        self._csv_handle = open(self.csv, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._csv_handle, fieldnames=LOG_COLUMNS)
        if new_csv:
            self._writer.writeheader()
        self.tb = None
        self.tb_note = "off in the config"
        if tensorboard:
            writer_class, error = tensorboard_writer_class()
            if writer_class is not None:
                self.tb = writer_class(str(out_dir / "tensorboard"))
                self.tb_note = str(out_dir / "tensorboard")
            else:
                self.tb_note = f"not written ({error}; pip install ictal[tensorboard])"

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (keys of :data:`LOG_COLUMNS`)."""
        with open(self.jsonl, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        self._writer.writerow({k: row.get(k, "") for k in LOG_COLUMNS})
        self._csv_handle.flush()
        if self.tb is not None:
            prefix = row.get("kind", "train")
            for key, value in row.items():
                if key not in ("kind", "step", "epoch") and isinstance(value, (int, float)) and value is not None:
                    self.tb.add_scalar(f"{prefix}/{key}", value, row["step"])

    def close(self) -> None:
        """Flush and close the files."""
        self._csv_handle.close()
        if self.tb is not None:
            self.tb.close()


def _check_resume_compatible(loaded, config: TrainConfig, path: Path) -> None:
    ours = config.model.model_dump(mode="json")
    theirs = loaded.model_config.model_dump(mode="json")
    differ = sorted(k for k in ours if k != "backend" and ours.get(k) != theirs.get(k))
    if differ:
        raise ValueError(f"{path}: cannot resume, its model config differs from the run's in {differ} "
                         f"(checkpoint: {[theirs.get(k) for k in differ]}, run: {[ours.get(k) for k in differ]})")
    if loaded.frontend_config != config.frontend:
        raise ValueError(f"{path}: cannot resume, it was trained with another front-end config "
                         f"({loaded.frontend_config.model_dump()} vs {config.frontend.model_dump()})")


def train(config: TrainConfig, resume: Path | None = None, max_steps: int | None = None,
          progress: bool | None = None, warn: Any = None) -> TrainResult:
    """Train a detector as the config says (see the module docstring for the method).

    Parameters
    ----------
    config : TrainConfig
        The run (model, front-end, data, optimiser, augmentation, dev evaluation, logging).
    resume : Path, optional
        A checkpoint directory written by this function; weights, optimizer moments, schedule, step
        and epoch continue from it.
    max_steps : int, optional
        Stop once this many optimizer steps have been taken in all (resumed steps count), writing
        ``last``; None runs ``epochs * steps_per_epoch`` steps.
    progress : bool, optional
        Progress bars (True) or plain progress lines (False); default ``config.log.progress_bar``
        (None there: bars only when stderr is a terminal). See the module docstring.
    warn : callable, optional
        Receives the one-line warnings of the start (TensorBoard missing); default prints to stderr.

    Returns
    -------
    result : TrainResult

    Raises
    ------
    FloatingPointError
        If :data:`MAX_BAD_STEPS` optimizer steps in a row have a non-finite gradient (each such step
        is skipped and reported; a few can happen under bf16).
    ValueError
        If the train split has no labelled sample, or a resumed checkpoint has another model or
        front-end config.
    training.cache.CacheMismatchError
        If the cache was built with another front-end config.
    """
    from ictal.detector.model import build_model
    from ictal.training.cache import Cache
    from ictal.training.progress import Progress
    from ictal.training.sampler import WindowDataset, WindowSampler

    progress = config.log.progress_bar if progress is None else progress
    if warn is None:
        def warn(text: str) -> None:
            print(text, file=sys.stderr, flush=True)
    device_probe = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist_info = setup_distributed(device_probe.type)
    device = resolve_device(config.device, dist_info.local_rank)
    out_dir = Path(config.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    try:
        if dist_info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.json").write_text(json.dumps(_config_json(config), indent=1), encoding="utf-8")
            if config.log.tensorboard:  # said once, before the cache and the model take their time
                _, tb_error = tensorboard_writer_class()
                if tb_error is not None:
                    warn(TENSORBOARD_MISSING.format(error=tb_error, out_dir=out_dir))
        if dist_info.local_rank == 0:
            # other nodes' cache builders write plain lines, never a bar into a shared terminal
            prepare_cache(config, progress=progress if dist_info.is_main else False)
        _barrier(dist_info)
        cache = Cache(config.data.cache_dir, config.frontend)
        provenance = build_provenance(config.data, [(e.recording_id, e.split) for e in cache.entries])
        window = config.model.n_times
        sampler = WindowSampler(cache, cache.split("train"), window, config.optim.seizure_fraction,
                                config.optim.anchor_weighting)

        torch.manual_seed(config.seed)
        model = build_model(config.model).to(device)
        raw_model = model
        if dist_info.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = build_optimizer(raw_model, config)
        optim = config.optim
        total_steps = optim.epochs * optim.steps_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, optim.warmup_steps, total_steps, optim.min_lr_ratio))
        base_loss = loss_from_config(optim)
        loss_fn = served_position_loss(base_loss, config.serving, config.model.n_times, config.model.direction)
        state: dict[str, Any] = {"global_step": 0, "epoch": 0, "step_in_epoch": 0, "best_score": None,
                                 "best_step": None, "world_size": dist_info.world_size}
        if resume is not None:
            from ictal.detector.checkpoint import load_checkpoint

            loaded = load_checkpoint(resume, backend="reference", device="cpu")
            _check_resume_compatible(loaded, config, Path(resume))
            raw_model.load_state_dict(loaded.model.state_dict())
            saved = load_training_state(Path(resume), optimizer, scheduler, device)
            for key in ("global_step", "epoch", "step_in_epoch", "best_score", "best_step"):
                state[key] = saved.get(key, state[key])
            if saved.get("world_size", 1) != dist_info.world_size and dist_info.is_main:
                print(f"resuming a run of world size {saved.get('world_size')} on {dist_info.world_size} "
                      "processes: the windows drawn from here on differ from the original run's", file=sys.stderr)
        limit = total_steps if max_steps is None else min(max_steps, total_steps)
        log = MetricsLog(out_dir, config.log.tensorboard) if dist_info.is_main else None
        autocast = device.type == "cuda" and optim.bf16
        micro_batches = optim.grad_accum
        windows_per_step = optim.batch_size * micro_batches * dist_info.world_size
        dev_entries = _dev_entries(cache, config)

        bar = Progress(limit, "train", "step", bar=progress, every_s=config.log.progress_every_s,
                       initial=state["global_step"], enabled=dist_info.is_main)
        recent_loss: list[float] = []
        bad_steps = 0
        final_loss = math.nan
        start_time = time.perf_counter()
        interval_start, interval_steps = start_time, 0
        model.train()
        while state["global_step"] < limit and state["epoch"] < optim.epochs:
            epoch = state["epoch"]
            dataset = WindowDataset(sampler, config.frontend, config.augment,
                                    optim.steps_per_epoch * optim.batch_size * micro_batches,
                                    config.seed, epoch, dist_info.rank, serving=config.serving,
                                    direction=config.model.direction)
            first = state["step_in_epoch"] * optim.batch_size * micro_batches
            subset = torch.utils.data.Subset(dataset, range(first, len(dataset)))
            loader = torch.utils.data.DataLoader(subset, batch_size=optim.batch_size, shuffle=False,
                                                 num_workers=optim.num_workers, drop_last=True,
                                                 pin_memory=device.type == "cuda",
                                                 persistent_workers=False)
            batches = iter(loader)
            while state["step_in_epoch"] < optim.steps_per_epoch and state["global_step"] < limit:
                torch.manual_seed(_step_seed(config.seed, state["global_step"], dist_info.rank))
                optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for micro in range(micro_batches):
                    x, y = next(batches)
                    x = x.to(device, non_blocking=True)
                    y = y.to(device, non_blocking=True)
                    sync = micro == micro_batches - 1 or dist_info.world_size == 1
                    ctx = contextlib.nullcontext() if sync else model.no_sync()
                    with ctx:
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                            logits = model(x)
                        loss = loss_fn(logits, y) / micro_batches
                        loss.backward()
                    step_loss += float(loss.detach())
                grad_norm = float(torch.nn.utils.clip_grad_norm_(raw_model.parameters(), optim.grad_clip))
                if math.isfinite(grad_norm):
                    optimizer.step()
                    bad_steps = 0
                else:
                    # The norm is of the all-reduced gradient: every rank takes the same decision.
                    bad_steps += 1
                    state["skipped_steps"] = state.get("skipped_steps", 0) + 1
                    optimizer.zero_grad(set_to_none=True)
                    if dist_info.is_main:
                        bar.note(f"step {state['global_step'] + 1}: non-finite gradient norm ({grad_norm}); "
                                 "update skipped")
                    if bad_steps >= MAX_BAD_STEPS:
                        raise FloatingPointError(
                            f"{bad_steps} optimizer steps in a row had a non-finite gradient (last loss "
                            f"{step_loss}); lower optim.lr or check the cache for non-finite samples")
                scheduler.step()
                state["global_step"] += 1
                state["step_in_epoch"] += 1
                recent_loss.append(step_loss)
                interval_steps += 1
                bar.update(1)
                if state["global_step"] % config.log.every_steps == 0 or state["global_step"] == limit:
                    now = time.perf_counter()
                    rate = interval_steps * windows_per_step / max(now - interval_start, 1e-9)
                    final_loss = _mean_across_ranks(float(np.mean(recent_loss)), dist_info, device)
                    if log is not None:
                        log.write({"kind": "train", "step": state["global_step"], "epoch": epoch,
                                   "loss": final_loss, "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                                   "windows_per_s": rate, "elapsed_s": now - start_time})
                    bar.set_postfix(loss=f"{final_loss:.4f}", win_s=f"{rate:.3g}")
                    recent_loss, interval_start, interval_steps = [], now, 0
            epoch_done = state["step_in_epoch"] >= optim.steps_per_epoch
            if epoch_done:
                state["epoch"] += 1
                state["step_in_epoch"] = 0
            if dist_info.is_main:
                state["config"] = _config_json(config)
                if epoch_done and config.eval.enabled and dev_entries:
                    bar.note(f"train: epoch {state['epoch']} done at step {state['global_step']}: evaluating dev "
                             f"({len(dev_entries)} recordings)")
                if epoch_done:
                    dev = _evaluate(raw_model, cache, dev_entries, config, base_loss, device, autocast)
                    if dev is not None:
                        log.write({"kind": "dev", "step": state["global_step"], "epoch": epoch,
                                   "dev_loss": dev.loss, "dev_sensitivity": dev.sensitivity,
                                   "dev_fa_per_24h": dev.fa_per_24h, "dev_tau_on": dev.tau_on,
                                   "dev_seizures": dev.n_seizures, "dev_labelled_h": dev.labelled_hours})
                        score = list(dev.score())
                        is_best = state["best_score"] is None or score > state["best_score"]
                        if is_best:
                            state["best_score"], state["best_step"] = score, state["global_step"]
                        state["dev"] = {"loss": dev.loss, "sensitivity": dev.sensitivity,
                                        "fa_per_24h": dev.fa_per_24h, "tau_on": dev.tau_on,
                                        "target_fa_per_24h": config.target_fa_per_24h,
                                        "n_seizures": dev.n_seizures}
                        if is_best:
                            write_checkpoint(ckpt_dir / "best", raw_model, config, optimizer, scheduler, state,
                                             provenance)
                    write_checkpoint(ckpt_dir / f"epoch_{state['epoch']:03d}", raw_model, config, optimizer,
                                     scheduler, state, provenance)
                write_checkpoint(ckpt_dir / "last", raw_model, config, optimizer, scheduler, state, provenance)
            _barrier(dist_info)
        bar.close()
        if log is not None:
            log.close()
        best = ckpt_dir / "best"
        return TrainResult(state["global_step"], state["epoch"], ckpt_dir / "last",
                           best if best.exists() else None, final_loss, raw_model)
    finally:
        if dist_info.initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _mean_across_ranks(value: float, dist_info: DistInfo, device: torch.device) -> float:
    if dist_info.world_size == 1:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist_info.world_size


def _dev_entries(cache, config: TrainConfig):
    entries = cache.split("dev")
    if config.eval.max_dev_hours is None:
        return entries
    chosen, total = [], 0.0
    for entry in entries:
        if total >= config.eval.max_dev_hours * 3600:
            break
        chosen.append(entry)
        total += entry.duration_s
    return chosen


def _evaluate(model, cache, entries, config: TrainConfig, loss_fn, device, autocast):
    from ictal.training.validation import evaluate_dev

    if not config.eval.enabled or not entries:
        return None
    return evaluate_dev(model, cache, entries, config.frontend, config.model.n_times, config.thresholds,
                        config.target_fa_per_24h, loss_fn, device, config.eval.batch_size, autocast,
                        serving=config.serving)
