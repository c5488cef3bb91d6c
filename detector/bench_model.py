"""`ictal bench model`: forward latency and throughput of the detector per preset, stack and batch size.

Prints a table of figures with units and the machine; asserts nothing. Goals (issue 8) on the 2-core
CPU: ``tiny`` <= 100 ms per 60 s window at batch 1, ``full`` <= 1.5 s; on one H100 with the fused
kernels and bf16: ``full`` >= 300 windows/s at batch 64 and <= 30 ms per window at batch 1.

Figures
-------
- Latency: wall time of one forward pass (``torch.inference_mode``, random normalised windows of
  ``n_times`` samples), the median of ``--repeats`` runs after ``--warmup`` runs, divided by the batch
  size: ms per window. Throughput: windows per second = batch / median time.
- Where the time goes: every top-level layer is timed by forward hooks (encoder, node stream, edge
  stream, adjacency, Laplacian PE, graph network, fusion + read-out + decoder), and
  ``torch.linalg.eigh`` alone by a timing wrapper; ms per window, medians over the repeats.
- CPU time: ``time.process_time`` of the child (all its threads) per window, beside the wall time;
  on a shared machine it shows the work done when the wall time is inflated by other processes.
- Peak memory: each (preset, stack) runs in its own child process; on the CPU the figure is the
  child's peak resident set size (ru_maxrss, model and interpreter included), on CUDA the peak of
  ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import time
from pathlib import Path

from detector.machine import cpu_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"
GOALS_MS = {"tiny": 100.0, "full": 1500.0}
PARTS = ("encoder", "projection", "node_stream", "edge_stream", "adjacency", "lpe", "graph", "fusion",
         "readout", "decoder")
SHOWN = (("encoder", "tcn"), ("node_stream", "node"), ("edge_stream", "edge"), ("adjacency", "adj"),
         ("lpe", "lpe"), ("eigh", "eigh"), ("graph", "gnn"), ("rest", "rest"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ictal bench model`."""
    parser.add_argument("--presets", nargs="+", default=["tiny", "full"], help="Presets (default tiny full).")
    parser.add_argument("--stacks", nargs="+", default=["bimamba2", "gated_deltanet"],
                        help="Stacks (default bimamba2 gated_deltanet).")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32],
                        help="Batch sizes (windows per forward pass; default 1 8 32).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per batch size (default 3).")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed runs first (default 1).")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu).")
    parser.add_argument("--backend", default="auto", choices=["auto", "fused", "reference"],
                        help="Stack backend (default auto: fused on CUDA when installed).")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--n-times", type=int, default=None,
                        help="Samples per window (default the preset's 15360 = 60 s at 256 Hz).")


def _machine() -> str:
    model = cpu_model()
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _measure(job: dict) -> dict:
    """Child process: build one (preset, stack) model and time it at every batch size."""
    import torch

    from detector.config import ModelConfig
    from detector.inference import resolve_device
    from detector.model import build_model, count_parameters
    from ictal.config import load_config

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    device = resolve_device(job["device"])
    config = load_config(CONFIGS / f"{job['preset']}_{job['stack']}.yaml")
    changes = {"backend": job["backend"]}
    if job["n_times"]:
        changes["n_times"] = job["n_times"]
    config = ModelConfig.model_validate({**config.model_dump(), **changes})
    torch.manual_seed(0)
    model = build_model(config).to(device).eval()
    backends = {getattr(m, "backend", None) for m in model.modules()} - {None}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    spent: dict[str, float] = {}
    started: dict[str, float] = {}

    def pre(name):
        def hook(module, inputs):
            sync()
            started[name] = time.perf_counter()
        return hook

    def post(name):
        def hook(module, inputs, output):
            sync()
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started[name]
        return hook

    for name in PARTS:
        getattr(model, name).register_forward_pre_hook(pre(name))
        getattr(model, name).register_forward_hook(post(name))
    real_eigh = torch.linalg.eigh

    def timed_eigh(*args, **kwargs):
        sync()
        t0 = time.perf_counter()
        out = real_eigh(*args, **kwargs)
        sync()
        spent["eigh"] = spent.get("eigh", 0.0) + time.perf_counter() - t0
        return out

    torch.linalg.eigh = timed_eigh
    try:
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        rows = []
        for batch in job["batches"]:
            x = torch.randn(batch, config.n_chans, config.n_times, device=device)
            totals, cpu_totals, parts = [], [], []
            with torch.inference_mode(), autocast:
                for run in range(job["warmup"] + job["repeats"]):
                    spent.clear()
                    sync()
                    t0, c0 = time.perf_counter(), time.process_time()
                    model(x)
                    sync()
                    if run >= job["warmup"]:
                        totals.append(time.perf_counter() - t0)
                        cpu_totals.append(time.process_time() - c0)
                        parts.append(dict(spent))
            median = statistics.median(totals)
            breakdown = {
                k: 1e3 * statistics.median(p.get(k, 0.0) for p in parts) / batch for k in (*PARTS, "eigh")
            }
            breakdown["rest"] = sum(breakdown[k] for k in ("projection", "fusion", "readout", "decoder"))
            rows.append({"batch": batch, "ms_per_window": 1e3 * median / batch,
                         "cpu_ms_per_window": 1e3 * statistics.median(cpu_totals) / batch,
                         "windows_per_s": batch / median, "breakdown": breakdown})
    finally:
        torch.linalg.eigh = real_eigh
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"preset": job["preset"], "stack": job["stack"], "params": count_parameters(model),
            "backend": "+".join(sorted(str(b) for b in backends)) or job["backend"], "device": str(device),
            "threads": torch.get_num_threads(), "n_times": config.n_times, "peak_mb": peak_mb, "rows": rows}


HEADER = (f"{'preset':<6} {'stack':<14} {'params':>7} {'batch':>5} {'ms/window':>10} {'cpu ms/w':>9} "
          f"{'windows/s':>10} "
          f"{'peak MB':>8} {'goal':>11} | " + " ".join(f"{label:>7}" for _, label in SHOWN))


def _format(result: dict) -> list[str]:
    """Table lines of one (preset, stack): one per batch size."""
    lines = []
    for row in result["rows"]:
        goal = GOALS_MS.get(result["preset"])
        verdict = "" if goal is None or row["batch"] != 1 else (
            f"{'met' if row['ms_per_window'] <= goal else 'MISSED'} {goal:g}")
        b = row["breakdown"]
        lines.append(
            f"{result['preset']:<6} {result['stack']:<14} {result['params'] / 1e6:>6.2f}M {row['batch']:>5} "
            f"{row['ms_per_window']:>10.1f} {row['cpu_ms_per_window']:>9.1f} {row['windows_per_s']:>10.2f} "
            f"{result['peak_mb']:>8.0f} "
            f"{verdict:>11} | " + " ".join(f"{b[key]:>7.1f}" for key, _ in SHOWN)
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table; returns 0."""
    import torch

    print(f"ictal bench model: machine {_machine()}; torch {torch.__version__}; device {args.device}, "
          f"backend {args.backend}; median of {args.repeats} runs after {args.warmup} warm-up")
    print("each (preset, stack) runs in its own process; other processes on this machine disturb the figures")
    print()
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    context = multiprocessing.get_context("spawn")
    for preset in args.presets:
        for stack in args.stacks:
            job = {"preset": preset, "stack": stack, "batches": args.batches, "repeats": args.repeats,
                   "warmup": args.warmup, "device": args.device, "backend": args.backend,
                   "threads": args.threads, "n_times": args.n_times}
            with context.Pool(1) as pool:
                result = pool.apply(_measure, (job,))
            for line in _format(result):
                print(line)
            print(f"{'':<6} {'':<14} (backend {result['backend']}, device {result['device']}, "
                  f"{result['threads']} threads, windows of {result['n_times']} samples)", flush=True)
    print()
    print("ms/window = median forward (wall) time / batch; cpu ms/w = CPU time of the process (all its "
          "threads) per window, which other processes on the machine barely change: on an idle machine wall "
          "time is about cpu ms/w divided by the threads used in parallel; windows/s = batch / median "
          "forward time; peak MB = peak RSS of the child process (CPU) or peak CUDA allocation. Columns "
          "after '|' are wall ms per window spent in: tcn = TCN encoder, node = node stream, edge = edge "
          "stream, adj = dynamic adjacency (top-k), lpe = Laplacian PE (eigh included), eigh = "
          "torch.linalg.eigh alone, gnn = 2 x SSGConv, rest = projection, fusion, read-out, decoder. Goal: "
          "batch-1 latency goal of the preset on the 2-core CPU (ms).")
    return 0
