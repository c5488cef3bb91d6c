"""`ictal bench gpu`: one command that checks and measures the detector on a CUDA machine.

Writes ``bench_gpu.json`` and ``bench_gpu.md`` into ``--out`` and prints one of them (the JSON with
``--json``); asserts nothing, and exits 0 whatever the parts found (each part's ``status`` says it).
The document's layout, the parts (a), (b), (d), the fused stacks and the tolerances are described in
:mod:`ictal.detector.bench_gpu`; this module adds the parts that need EEG files, the daemon and training
(``training`` is the one package below ``ictal`` that may import all three):

- ``checkpoint`` (c): the demo checkpoint (``--checkpoint``) on real 60 s windows of ``--data``
  (:data:`WINDOW_FILES`: the newest window of each file and further ones every 30 s back, through the
  same front-end and normalisation as the daemon), scored by the reference backend in float32 (the
  baseline) and, on CUDA, by the reference in bf16 autocast and the fused backend in bf16 and
  float32: per run the mean probability and the largest and mean absolute difference to the baseline.
- ``beds`` (e): the daemon's scoring loop (:func:`ictal.streaming.bench_daemon.live_run`: bed threads,
  batched scoring, journal, publisher) serving N simulated beds (EEGMAT ``Subject00_1``, each from
  another offset; the first 60 s at once, then real time) at hop ``--hop-s`` for ``--beds-seconds``
  each, N in ``--beds`` (64, 256, 512): windows due, scored, skipped, whether it kept real time
  (nothing skipped and at least 90 % of the due windows scored, as ``ictal bench daemon`` judges),
  latency from the chunk completing a window to its probabilities at the post-processor (p50, p99).
- ``train`` (f): ``--train-steps`` optimizer steps (forward under bf16 autocast on CUDA, focal loss,
  backward, clipping, AdamW) of the ``--train-preset`` preset on real windows drawn from a cache
  (``--cache``, else built from ``--data`` in a temporary folder): windows/s = batch / median step
  time (CUDA-synchronised), after one warm-up step. A pool of at most 8 batches is drawn first and
  cycled, so the figure is the GPU's, not the sampler's.

Every part runs in its own process under a timeout (``--timeout NAME=S``; at most what is left of
``--budget-s``); a part that runs out is recorded as ``"timeout"`` with what it measured so far.
Without CUDA, parts a-c run on the reference backend and d-f are skipped with reason ``"no CUDA"``;
the hidden ``--allow-cpu`` runs d-f small on the CPU (tiny preset, short windows, 2 beds, 2 steps)
so that their code is exercised before a GPU run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ictal.detector import bench_gpu as core

REPO_ROOT = Path(__file__).resolve().parents[1]
WINDOW_FILES: tuple[str, ...] = (
    "labelled/hms_1628180742.edf",
    "background/eegmat/Subject00_2.edf",
    "background/eegmat/Subject00_1.edf",
)
"""Real recordings at least 60 s long (the IIIC, GROND and other HMS clips are 50 s or 10 s): an ICU
seizure (HMS, 90 s, rated seizure 20-70 s), task and resting EEG (EEGMAT, 62 s and 182 s). Part (c)
takes its windows from these, in this order."""
BEDS_FILE = "background/eegmat/Subject00_1.edf"
"""The recording the simulated beds of part (e) replay (as ``ictal bench daemon``)."""
DEFAULT_TIMEOUTS_S: dict[str, float] = {
    "env": 120.0, "parity": 300.0, "checkpoint": 180.0, "speed": 300.0, "beds": 240.0, "train": 180.0,
}
"""Per-part limits: generous for the first Triton compilation and autotuning of each kernel (tens
of seconds on a fresh machine), short enough that one hang cannot eat a 15-minute GPU lease."""
CUDA_PARTS: tuple[str, ...] = ("speed", "beds", "train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ictal bench gpu``."""
    default_data = os.environ.get("ICTAL_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--json", action="store_true", help="Print the JSON document (default: the markdown).")
    parser.add_argument("--out", type=Path, default=Path("bench-gpu"),
                        help="Folder for bench_gpu.json and bench_gpu.md (default: ./bench-gpu).")
    parser.add_argument("--data", type=Path, default=Path(default_data),
                        help="Real EEG folder laid out as ../shared/data (default: %(default)s).")
    parser.add_argument("--cache", type=Path, default=None,
                        help="Training cache for part f (default: built from --data in a temporary folder).")
    parser.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "checkpoints" / "demo",
                        help="Checkpoint of parts c and e (default: the shipped demo checkpoint).")
    parser.add_argument("--parts", nargs="+", default=list(core.PART_ORDER),
                        help="Parts to run, by letter (a-f) or name (env parity checkpoint speed beds train).")
    parser.add_argument("--timeout", action="append", default=[], metavar="NAME=S",
                        help="Limit of one part in seconds, e.g. speed=200 (defaults: "
                        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_TIMEOUTS_S.items()) + ").")
    parser.add_argument("--budget-s", type=float, default=1200.0,
                        help="Seconds for all parts together; a part gets at most what is left (default 1200).")
    parser.add_argument("--quick", action="store_true",
                        help="Small parity shapes and 1 real window (for tests; the full run is the default).")
    parser.add_argument("--seed", type=int, default=None, help="Seed of the parity inputs (default: fresh).")
    parser.add_argument("--speed-presets", nargs="+", default=["tiny", "full"], help="Presets of part d.")
    parser.add_argument("--speed-batches", nargs="+", type=int, default=list(core.SPEED_BATCHES),
                        help="Batch sizes of part d (default 1 8 32 128 256).")
    parser.add_argument("--speed-warmup", type=int, default=2, help="Untimed passes per batch size (default 2).")
    parser.add_argument("--speed-repeats", type=int, default=5, help="Timed passes per batch size (default 5).")
    parser.add_argument("--windows", type=int, default=8, help="Real windows of part c (default 8).")
    parser.add_argument("--beds", nargs="+", type=int, default=[64, 256, 512], help="Bed counts of part e.")
    parser.add_argument("--beds-seconds", type=float, default=20.0, help="Wall seconds per bed count (default 20).")
    parser.add_argument("--hop-s", type=float, default=4.0, help="Hop of part e in seconds (default 4).")
    parser.add_argument("--beds-max-batch", type=int, default=64, help="Windows per forward in part e (default 64).")
    parser.add_argument("--train-preset", default="full", choices=["tiny", "full"], help="Preset of part f.")
    parser.add_argument("--train-stack", default="bimamba2", choices=list(core.STACK_NAMES), help="Stack of part f.")
    parser.add_argument("--train-steps", type=int, default=50, help="Timed optimizer steps of part f (default 50).")
    parser.add_argument("--train-batch", type=int, default=8, help="Windows per step of part f (default 8).")
    parser.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)


# ------------------------------------------------------------------------------------------- part (c)


def real_windows(data: Path, frontend_config, n_windows: int, window_samples: int) -> tuple[list, list[str]]:
    """Normalised real 60 s windows of :data:`WINDOW_FILES`, taken in turn from each file.

    Returns
    -------
    windows : list of ndarray of float32, shape (19, window_samples)
    sources : list of str
        ``"<file>@<end in s>"`` of each window.

    Raises
    ------
    FileNotFoundError
        If none of the files is under ``data``.
    """
    from ictal.detector.frontend import Frontend, process_recording
    from ictal.streaming.edf import load_canonical

    per_file: list[list[tuple[Any, str]]] = []
    for rel in WINDOW_FILES:
        path = data / rel
        if not path.is_file() or len(per_file) >= n_windows:  # every file read gives at least one window
            continue
        recording = load_canonical(path, frontend_config)
        filtered = process_recording(recording.data, recording.fs, frontend_config)
        frontend = Frontend(frontend_config, float(frontend_config.fs_hz), n_channels=filtered.shape[0])
        fs = frontend_config.fs_hz
        ends = range(filtered.shape[1], window_samples - 1, -30 * fs)
        per_file.append([(frontend.prepare_window(filtered[:, e - window_samples:e]), f"{rel}@{e / fs:.0f}s")
                         for e in ends])
    if not per_file:
        raise FileNotFoundError(f"{data}: none of {list(WINDOW_FILES)} found (pass --data, laid out as ../shared/data)")
    chosen: list[tuple[Any, str]] = []
    while len(chosen) < n_windows and any(per_file):
        for items in per_file:
            if items and len(chosen) < n_windows:
                chosen.append(items.pop(0))
    return [w for w, _ in chosen], [s for _, s in chosen]


def _probabilities(model, windows, device, autocast: bool, batch: int = 8):
    import numpy as np
    import torch

    out = []
    x = torch.as_tensor(np.stack(windows))
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        for start in range(0, x.shape[0], batch):
            logits = model(x[start:start + batch].to(device))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out)


def part_checkpoint(options: dict, record: Callable[[str, Any], None]) -> None:
    """(c) The demo checkpoint on both backends, probabilities compared on real windows."""
    import copy

    import numpy as np
    import torch

    from ictal.detector.checkpoint import load_checkpoint

    cuda = core.cuda_available()
    device = torch.device("cuda" if cuda else "cpu")
    loaded = load_checkpoint(options["checkpoint"], backend="reference", device=device)
    config = loaded.model_config
    windows, sources = real_windows(Path(options["data"]), loaded.frontend_config,
                                    1 if options.get("quick") else int(options["windows"]), config.n_times)
    record("checkpoint_id", loaded.checkpoint_id)
    record("model", f"{config.name} {config.stack}")
    record("n_windows", len(windows))
    record("windows", sources)
    baseline = _probabilities(loaded.model, windows, device, autocast=False)
    record("runs", [{"backend": "reference", "dtype": "float32", "device": str(device),
                     "mean_probability": float(baseline.mean()), "max_probability": float(baseline.max()),
                     "max_abs_diff": 0.0, "mean_abs_diff": 0.0}])
    if not cuda:
        record("fused", "not run: no CUDA")
        return
    runs = [("reference", "bf16", loaded.model)]
    available, why = core.fused_available(config.stack)
    if available:
        fused = copy.deepcopy(loaded.model)
        core.swap_model_to_fused(fused, config)
        runs += [("fused", "bf16", fused), ("fused", "float32", fused)]
        record("fused_path", core.fused_path(config.stack))
    else:
        record("fused", f"not run: {why}")
    for backend, dtype, model in runs:
        row = {"backend": backend, "dtype": dtype, "device": str(device)}
        try:
            probs = _probabilities(model, windows, device, autocast=dtype == "bf16")
            diff = np.abs(probs - baseline)
            row.update({"mean_probability": float(probs.mean()), "max_probability": float(probs.max()),
                        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())})
        except Exception as exc:  # a backend that fails on the real model is the finding of this row
            row["error"] = f"{type(exc).__name__}: {exc}"
        record("runs", [row])


# ------------------------------------------------------------------------------------------- part (e)


def part_beds(options: dict, record: Callable[[str, Any], None]) -> None:
    """(e) The daemon's scoring loop with N simulated beds: beds kept in real time, latency p50/p99."""
    import numpy as np
    import torch

    from ictal.detector.checkpoint import load_checkpoint
    from ictal.detector.inference import Detector
    from ictal.streaming.bench_daemon import live_run
    from ictal.streaming.edf import load_canonical

    cuda = core.cuda_available()
    device = torch.device("cuda" if cuda else "cpu")
    loaded = load_checkpoint(options["checkpoint"], backend="reference", device=device)
    if cuda and core.fused_available(loaded.model_config.stack)[0]:
        core.swap_model_to_fused(loaded.model, loaded.model_config)
    max_batch = int(options["beds_max_batch"])
    detector = Detector(loaded, device, max_batch=max_batch)
    detector.warmup((1, max_batch))
    data = Path(options["data"]) / BEDS_FILE
    recording = load_canonical(data, loaded.frontend_config)
    hop_s = float(options["hop_s"])
    record("hop_s", hop_s)
    record("model", f"{loaded.model_config.name} {detector.stack}, backend {detector.backend}, {detector.dtype}, "
           f"device {device}, max_batch {max_batch}")
    record("data", str(data))
    rows: list[dict] = []
    for beds in options["beds"]:
        with tempfile.TemporaryDirectory(prefix="ictal-bench-gpu-beds-") as tmp:
            live = live_run(detector, recording, int(beds), hop_s, float(options["beds_seconds"]), max_batch,
                            Path(tmp))
        lat = live["latencies"]
        real_time = bool(live["skipped"] == 0 and live["scored"] >= 0.9 * live["due"] - beds)
        row = {"beds": int(beds), "seconds": live["seconds"], "due": live["due"], "scored": int(live["scored"]),
               "skipped": int(live["skipped"]), "real_time": real_time,
               "model_ms_per_window": 1e3 * live["model_s_per_window"], "mean_batch": live["mean_batch"],
               "n_latencies": int(lat.size)}
        if lat.size:
            row.update({"p50_ms": float(np.percentile(lat, 50) * 1e3), "p99_ms": float(np.percentile(lat, 99) * 1e3)})
        record("rows", [row])
        rows.append(row)
        if not real_time:
            break  # more beds would not keep up either
    record("beds_kept_in_real_time", max((r["beds"] for r in rows if r["real_time"]), default=0))


# ------------------------------------------------------------------------------------------- part (f)


def part_train(options: dict, record: Callable[[str, Any], None]) -> None:
    """(f) Optimizer steps of a preset in bf16 on cached real windows: windows/s."""
    import statistics

    import torch

    from ictal.detector.config import FrontendConfig
    from ictal.detector.model import build_model, count_parameters
    from ictal.training.cache import Cache, build_cache
    from ictal.training.config import AugmentConfig, DataConfig
    from ictal.training.datasets import discover
    from ictal.training.losses import focal_loss
    from ictal.training.sampler import WindowDataset, WindowSampler

    cuda = core.cuda_available()
    device = torch.device("cuda" if cuda else "cpu")
    frontend = FrontendConfig()
    with tempfile.TemporaryDirectory(prefix="ictal-bench-gpu-train-") as tmp:
        cache_dir = Path(options["cache"]) if options.get("cache") else None
        if cache_dir is None or not (cache_dir / "manifest.json").is_file():
            index = discover(DataConfig(format="rated_windows", root=Path(options["data"])))
            recordings = index.recordings[: options["train_max_files"]] if options.get("train_max_files") \
                else index.recordings
            cache_dir = Path(tmp) / "cache"
            t0 = time.perf_counter()
            build_cache(recordings, cache_dir, frontend, workers=1, progress=False, log=lambda text: None)
            record("cache", f"built from {options['data']} in {time.perf_counter() - t0:.1f} s")
        else:
            record("cache", str(cache_dir))
        cache = Cache(cache_dir, frontend)
        changes = {"backend": "reference"}
        if options.get("n_times"):
            changes["n_times"] = int(options["n_times"])
        config = core.load_preset(options["train_preset"], options["train_stack"], **changes)
        sampler = WindowSampler(cache, cache.entries, config.n_times, 0.5)
        batch_size, steps = int(options["train_batch"]), int(options["train_steps"])
        n_pool = min(steps + 1, 8)
        dataset = WindowDataset(sampler, frontend, AugmentConfig(), batch_size * n_pool, seed=0)
        pool = []
        for b in range(n_pool):
            items = [dataset[b * batch_size + i] for i in range(batch_size)]
            pool.append((torch.stack([it[0] for it in items]).to(device), torch.stack([it[1] for it in items]).to(device)))
    torch.manual_seed(0)
    model = build_model(config)
    backend = "reference"
    if cuda and core.fused_available(config.stack)[0]:
        core.swap_model_to_fused(model, config)
        backend = "fused"
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 1):
        x, y = pool[step % n_pool]
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        loss = focal_loss(logits.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        if step:  # step 0 is the warm-up (allocations, compilation, autotuning)
            times.append(time.perf_counter() - t0)
    per_step = statistics.median(times)
    record("preset", config.name)
    record("stack", config.stack)
    record("backend", backend)
    record("params", count_parameters(model))
    record("precision", "bf16 autocast" if cuda else "float32")
    record("batch_size", batch_size)
    record("steps", steps)
    record("loss_last", float(loss.item()))
    record("seconds_per_step", per_step)
    record("windows_per_s", batch_size / per_step)
    if cuda:
        record("peak_mib", torch.cuda.max_memory_allocated() / 2**20)
    else:
        import resource

        record("peak_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# ---------------------------------------------------------------------------------------------- runner

TARGETS: dict[str, Callable] = {
    "env": core.part_env, "parity": core.part_parity, "checkpoint": part_checkpoint,
    "speed": core.part_speed, "beds": part_beds, "train": part_train,
}


def _wanted(parts: list[str]) -> list[str]:
    by_letter = {v: k for k, v in core.PART_LETTERS.items()}
    names = []
    for p in parts:
        name = by_letter.get(p, p)
        if name not in core.PART_ORDER:
            raise SystemExit(f"ictal bench gpu: unknown part {p!r} (expected a-f or one of {list(core.PART_ORDER)})")
        names.append(name)
    return names


def _timeouts(pairs: list[str]) -> dict[str, float]:
    timeouts = dict(DEFAULT_TIMEOUTS_S)
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in timeouts or not value:
            raise SystemExit(f"ictal bench gpu: --timeout takes NAME=SECONDS with NAME in {list(timeouts)} (found {pair!r})")
        timeouts[name] = float(value)
    return timeouts


def _options(args: argparse.Namespace) -> dict:
    options = {"data": str(args.data), "cache": str(args.cache) if args.cache else None,
               "checkpoint": str(args.checkpoint), "quick": args.quick, "seed": args.seed,
               "windows": args.windows, "presets": args.speed_presets, "batches": args.speed_batches,
               "warmup": args.speed_warmup, "repeats": args.speed_repeats, "n_times": None,
               "beds": args.beds, "beds_seconds": args.beds_seconds, "hop_s": args.hop_s,
               "beds_max_batch": args.beds_max_batch, "train_preset": args.train_preset,
               "train_stack": args.train_stack, "train_steps": args.train_steps, "train_batch": args.train_batch,
               "train_max_files": None, "allow_cpu": args.allow_cpu}
    if args.allow_cpu and not core.cuda_available():  # exercise d-f small on the CPU
        options.update({"presets": ["tiny"], "batches": [1], "warmup": 1, "repeats": 1, "n_times": 1024,
                        "beds": [2], "beds_seconds": min(args.beds_seconds, 10.0), "beds_max_batch": 2,
                        "train_preset": "tiny", "train_steps": 2, "train_batch": 1, "train_max_files": 6})
    return options


def run(args: argparse.Namespace) -> int:
    """Run the chosen parts, each time-bounded, write the JSON and markdown, print one; returns 0."""
    wanted = _wanted(args.parts)
    timeouts = _timeouts(args.timeout)
    options = _options(args)
    cuda = core.cuda_available()
    deadline = time.monotonic() + args.budget_s
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ictal-bench-gpu-") as tmp:
        for name in core.PART_ORDER:
            left = deadline - time.monotonic()
            if name not in wanted:
                results[name] = {"status": "skipped", "reason": "not selected (--parts)"}
            elif name in CUDA_PARTS and not cuda and not args.allow_cpu:
                results[name] = {"status": "skipped", "reason": "no CUDA"}
            elif left < 5:
                results[name] = {"status": "skipped", "reason": f"--budget-s {args.budget_s:g} spent"}
            else:
                timeout = min(timeouts[name], left)
                print(f"ictal bench gpu: ({core.PART_LETTERS[name]}) {name}, at most {timeout:.0f} s ...",
                      file=sys.stderr, flush=True)
                results[name] = core.run_part(name, TARGETS[name], options, timeout, Path(tmp))
                print(f"ictal bench gpu: ({core.PART_LETTERS[name]}) {name}: {results[name]['status']} in "
                      f"{results[name]['seconds']:.1f} s", file=sys.stderr, flush=True)
    document = core.assemble(results, options)
    text = json.dumps(document, indent=1, default=str)
    report = core.markdown(document)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_gpu.json").write_text(text + "\n", encoding="utf-8")
    (args.out / "bench_gpu.md").write_text(report, encoding="utf-8")
    print(text if args.json else report)
    print(f"ictal bench gpu: wrote {args.out / 'bench_gpu.json'} and {args.out / 'bench_gpu.md'}", file=sys.stderr)
    return 0
