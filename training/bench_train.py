"""`ictal bench train`: cache build speed and training throughput. Prints figures; asserts nothing.

1. Cache build: the rated-window and EEGMAT recordings of the shared data folder run through
   discovery, ``streaming.edf.load_canonical`` and ``Frontend.process`` into a fresh cache in a
   temporary folder, in this process (one core for the front-end: BLAS/OpenMP threads are set to 1).
   Figure: hours of EEG cached per minute of wall time.
2. Training throughput: optimizer steps of a model preset (``tiny`` by default; ``full`` on a GPU,
   with bf16 autocast) on 60 s windows drawn from that cache exactly as training draws them
   (balanced sampling, augmentation, ``Frontend.prepare_window``). Figures: windows per second of
   the optimizer step (forward, backward, clipping, AdamW; windows drawn beforehand) and of the
   sampling alone (one process; DataLoader workers multiply it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ictal bench train``."""
    default_data = os.environ.get("ICTAL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=Path(default_data),
                        help="shared data folder with labelled/manifest.csv and background/eegmat (default: %(default)s)")
    parser.add_argument("--preset", action="append", choices=["tiny", "full"], default=None,
                        help="model preset(s) to time (default: tiny; full is meant for a GPU)")
    parser.add_argument("--stack", choices=["bimamba2", "gated_deltanet"], default="bimamba2")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per step (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    parser.add_argument("--max-files", type=int, default=None, help="cache at most this many recordings")


def _machine(device) -> str:
    import torch

    from ictal.detector.machine import cpu_model

    cpu = cpu_model()
    text = f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.1f} at the end"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def _train_step(model, optimizer, batch, device, autocast: bool) -> None:
    """One optimizer step as training takes it: forward (bf16 autocast on CUDA), focal loss, clip, AdamW."""
    import torch

    from ictal.training.losses import focal_loss

    x = torch.stack([item[0] for item in batch]).to(device)
    y = torch.stack([item[1] for item in batch]).to(device)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(x)
    loss = focal_loss(logits, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its table; returns 0 (2 when the data folder is missing)."""
    import sys

    import numpy as np
    import torch

    from ictal.config import load_config
    from ictal.detector.config import FrontendConfig
    from ictal.detector.model import build_model, count_parameters
    from ictal.training.cache import Cache, build_cache
    from ictal.training.config import AugmentConfig, DataConfig
    from ictal.training.datasets import discover
    from ictal.training.sampler import WindowDataset, WindowSampler
    from ictal.training.train import resolve_device

    if not (args.data / "labelled" / "manifest.csv").is_file():
        print(f"ictal bench train: {args.data} holds no labelled/manifest.csv (use --data)", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    presets = args.preset or ["tiny"]
    rows: list[tuple[str, str, str]] = []
    frontend = FrontendConfig()
    with tempfile.TemporaryDirectory(prefix="ictal-bench-train-") as tmp:
        index = discover(DataConfig(format="rated_windows", root=args.data))
        recordings = index.recordings[: args.max_files] if args.max_files else index.recordings
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the front-end is numpy/scipy; this keeps torch from competing
        start = time.perf_counter()
        summary = build_cache(recordings, Path(tmp) / "cache", frontend, workers=1, progress=False,
                              log=lambda text: None)
        elapsed = time.perf_counter() - start
        torch.set_num_threads(threads)
        hours = summary.hours()
        rows.append(("cache build (1 process)", f"{hours / (elapsed / 60):.2f}", "h of EEG / min"))
        rows.append(("  recordings cached", f"{len(summary.entries)} ({hours * 60:.1f} min of EEG)",
                     f"in {elapsed:.1f} s"))
        cache = Cache(Path(tmp) / "cache", frontend)
        sampler = WindowSampler(cache, cache.entries, 15360, 0.5)
        n_windows = args.batch_size * (args.steps + 1)
        dataset = WindowDataset(sampler, frontend, AugmentConfig(), n_windows, seed=0)
        start = time.perf_counter()
        for i in range(n_windows):
            dataset[i]
        rows.append(("window sampling + normalisation", f"{n_windows / (time.perf_counter() - start):.1f}",
                     "windows / s"))
        repo = Path(__file__).resolve().parents[1]
        autocast = device.type == "cuda"
        for preset in presets:
            model_config = load_config(repo / "configs" / "model" / f"{preset}_{args.stack}.yaml", kind="model")
            torch.manual_seed(0)
            model = build_model(model_config).to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            batches = [[dataset[b * args.batch_size + i] for i in range(args.batch_size)] for b in range(args.steps + 1)]

            _train_step(model, optimizer, batches[0], device, autocast)  # warm-up (allocations, kernel selection)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times = []
            for batch in batches[1:]:
                t0 = time.perf_counter()
                _train_step(model, optimizer, batch, device, autocast)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - t0)
            per_step = float(np.median(times))
            precision = "bf16 autocast" if autocast else "float32"
            rows.append((f"train step {preset} {args.stack} ({count_parameters(model) / 1e6:.2f} M params)",
                         f"{args.batch_size / per_step:.2f}", f"windows / s ({precision}, batch {args.batch_size}, "
                         f"median of {len(times)} steps, {per_step:.2f} s/step)"))
    print(f"ictal bench train on {_machine(device)}; device {device}")
    width = max(len(r[0]) for r in rows)
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>12}  {unit}")
    return 0
