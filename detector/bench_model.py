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

Modes (``--mode``, issue 16)
----------------------------
``window`` (default) times the forward pass over whole windows, as above: in window mode the daemon
scores one 60 s window per bed every hop. ``stream`` times :meth:`Detector.step`-equivalent calls of a
causal model (``TimeThenGraphDetector.step``) on ``--hop-s`` seconds of new samples per bed, the
states of ``batch`` beds stepped together, after ``--warmup`` steps; ``both`` runs the two on the same
model in one child. Per mode and batch the figures are converted to the bed's point of view:

- ``cpu_ms_per_bed_second``: CPU time of the child per call / (batch x hop_s), in ms: the work one
  bed costs per second of EEG (window mode: one window per hop).
- ``beds_realtime_estimate``: batch x hop_s / median wall time of a call: the beds one scoring thread
  keeps in real time at that batch, with this machine's threads.
- ``latency_p50_s``, ``latency_p99_s``: wall time of a call (what a hop waits for the model).
- ``state_mb_per_bed`` (stream): bytes of one bed's state; ``rss_mb_per_bed``: growth of the child's
  peak RSS from batch 1 to the largest batch, per added bed (activations included), or the state size
  when only one batch is run.

``--json`` prints one JSON object (the first preset and stack; top-level figures from the largest
batch of the first mode; ``results`` holds every row).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from ictal.detector.machine import cpu_model

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
    parser.add_argument("--mode", choices=["window", "stream", "both"], default="window",
                        help="window: a 60 s window per bed per hop; stream: a causal step of --hop-s per bed; "
                        "both: the two on the same model (default window).")
    parser.add_argument("--direction", choices=["bidirectional", "causal"], default=None,
                        help="Model direction (default: causal when a stream mode is run, else the preset's).")
    parser.add_argument("--hop-s", type=float, default=4.0, help="Hop in seconds (default 4).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of the table.")


def _machine() -> str:
    model = cpu_model()
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _measure(job: dict) -> dict:
    """Child process: build one (preset, stack) model and time it at every batch size."""
    import torch

    from ictal.config import load_config
    from ictal.detector.config import ModelConfig
    from ictal.detector.inference import resolve_device
    from ictal.detector.model import build_model, count_parameters

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    device = resolve_device(job["device"])
    config = load_config(CONFIGS / f"{job['preset']}_{job['stack']}.yaml")
    changes = {"backend": job["backend"]}
    if job["n_times"]:
        changes["n_times"] = job["n_times"]
    if job.get("direction"):
        changes["direction"] = job["direction"]
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
    job = {"mode": "window", "hop_s": 4.0, **job}
    modes = ["window", "stream"] if job["mode"] == "both" else [job["mode"]]
    hop = int(round(job["hop_s"] * config.sfreq))
    try:
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        rows = []
        if "stream" in modes:
            rows += _measure_stream(model, config, job, hop, device, autocast, sync)
        if "window" not in modes:
            raise _Done
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
            rows.append({"mode": "window", "batch": batch, "ms_per_window": 1e3 * median / batch,
                         "cpu_ms_per_window": 1e3 * statistics.median(cpu_totals) / batch,
                         "windows_per_s": batch / median, "breakdown": breakdown,
                         **_bed_figures(totals, cpu_totals, batch, job["hop_s"])})
    except _Done:
        pass
    finally:
        torch.linalg.eigh = real_eigh
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _rss_per_bed(rows)
    return {"preset": job["preset"], "stack": job["stack"], "params": count_parameters(model),
            "backend": "+".join(sorted(str(b) for b in backends)) or job["backend"], "device": str(device),
            "direction": config.direction, "threads": torch.get_num_threads(), "n_times": config.n_times,
            "peak_mb": peak_mb, "rows": rows}


class _Done(Exception):
    """Window mode not requested."""


def _bed_figures(walls: list[float], cpus: list[float], batch: int, hop_s: float) -> dict:
    """Per-bed figures of one mode and batch from the wall and CPU times of its calls (seconds)."""
    wall = statistics.median(walls)
    return {
        "cpu_ms_per_bed_second": 1e3 * statistics.median(cpus) / (batch * hop_s),
        "beds_realtime_estimate": batch * hop_s / wall,
        "latency_p50_s": float(np.percentile(walls, 50)),
        "latency_p99_s": float(np.percentile(walls, 99)),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _rss_per_bed(rows: list[dict]) -> None:
    """Add ``rss_mb_per_bed`` to every row: peak-RSS growth per added bed between the smallest and
    largest batch of the mode (the state size when a mode ran one batch only)."""
    for mode in ("window", "stream"):
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        lo, hi = min(mine, key=lambda r: r["batch"]), max(mine, key=lambda r: r["batch"])
        if hi["batch"] > lo["batch"]:
            per_bed = max(hi["rss_mb"] - lo["rss_mb"], 0.0) / (hi["batch"] - lo["batch"])
        else:
            per_bed = hi.get("state_mb_per_bed", float("nan"))
        for r in mine:
            r["rss_mb_per_bed"] = per_bed


def _measure_stream(model, config, job: dict, hop: int, device, autocast, sync) -> list[dict]:
    """Time causal steps of ``hop`` samples for every batch size (stream mode)."""
    import torch

    if config.direction != "causal":
        raise ValueError(f"--mode stream needs a causal model (found direction {config.direction!r})")
    if hop % (16 * config.edge_pool):
        raise ValueError(f"--hop-s must be a multiple of {16 * config.edge_pool / config.sfreq:g} s in stream mode")
    rows = []
    for batch in job["batches"]:
        x = torch.randn(batch, config.n_chans, hop, device=device)
        walls, cpus = [], []
        with torch.inference_mode(), autocast:
            state = model.init_state(batch, device)
            for run in range(job["warmup"] + max(job["repeats"], 5)):
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                _, state = model.step(x, state)
                sync()
                if run >= job["warmup"]:
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
        state_mb = sum(t.numel() * t.element_size() for t in state.values()) / 2**20 / batch
        rows.append({"mode": "stream", "batch": batch, "hop_samples": hop, "state_mb_per_bed": state_mb,
                     "ms_per_bed_hop": 1e3 * statistics.median(walls) / batch,
                     **_bed_figures(walls, cpus, batch, job["hop_s"])})
    return rows


HEADER = (f"{'preset':<6} {'stack':<14} {'params':>7} {'batch':>5} {'ms/window':>10} {'cpu ms/w':>9} "
          f"{'windows/s':>10} "
          f"{'peak MB':>8} {'goal':>11} | " + " ".join(f"{label:>7}" for _, label in SHOWN))


def _format(result: dict) -> list[str]:
    """Table lines of one (preset, stack): one per batch size."""
    lines = []
    for row in result["rows"]:
        if row["mode"] == "stream":
            continue
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


BED_HEADER = (f"{'preset':<6} {'stack':<14} {'mode':<7} {'batch':>5} {'cpu ms/bed-s':>12} "
              f"{'beds real time':>14} {'lat p50 s':>9} {'lat p99 s':>9} {'MB/bed':>7}")


def _format_beds(result: dict, hop_s: float) -> list[str]:
    """The per-bed view of every row (both modes), at hop ``hop_s``."""
    return [
        f"{result['preset']:<6} {result['stack']:<14} {row['mode']:<7} {row['batch']:>5} "
        f"{row['cpu_ms_per_bed_second']:>12.2f} {row['beds_realtime_estimate']:>14.1f} "
        f"{row['latency_p50_s']:>9.3f} {row['latency_p99_s']:>9.3f} {row['rss_mb_per_bed']:>7.2f}"
        for row in result["rows"]
    ]


def _job(args: argparse.Namespace, preset: str, stack: str) -> dict:
    direction = args.direction or ("causal" if args.mode in ("stream", "both") else None)
    return {"preset": preset, "stack": stack, "batches": args.batches, "repeats": args.repeats,
            "warmup": args.warmup, "device": args.device, "backend": args.backend,
            "threads": args.threads, "n_times": args.n_times, "mode": args.mode, "hop_s": args.hop_s,
            "direction": direction}


def _json(args: argparse.Namespace, result: dict) -> dict:
    """The one JSON object of ``--json``: top-level figures from the largest batch of the first mode."""
    first_mode = "window" if args.mode in ("window", "both") else "stream"
    mine = [r for r in result["rows"] if r["mode"] == first_mode]
    top = max(mine, key=lambda r: r["batch"])
    keys = ("cpu_ms_per_bed_second", "beds_realtime_estimate", "latency_p50_s", "latency_p99_s", "rss_mb_per_bed")
    return {"benchmark": "model", "machine": _machine(), "load_average": list(os.getloadavg()),
            "mode": first_mode, "preset": result["preset"], "stack": result["stack"],
            "direction": result["direction"], "backend": result["backend"], "device": result["device"],
            "threads": result["threads"], "hop_s": args.hop_s, "batch": top["batch"],
            **{k: top[k] for k in keys}, "results": result["rows"]}


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table (or one JSON object with ``--json``); returns 0."""
    import torch

    if args.json:
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            result = pool.apply(_measure, (_job(args, args.presets[0], args.stacks[0]),))
        print(json.dumps(_json(args, result), default=float))
        return 0
    print(f"ictal bench model: machine {_machine()}; torch {torch.__version__}; device {args.device}, "
          f"backend {args.backend}; median of {args.repeats} runs after {args.warmup} warm-up")
    print("each (preset, stack) runs in its own process; other processes on this machine disturb the figures")
    print()
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    context = multiprocessing.get_context("spawn")
    results: list[dict] = []
    for preset in args.presets:
        for stack in args.stacks:
            with context.Pool(1) as pool:
                result = pool.apply(_measure, (_job(args, preset, stack),))
            results.append(result)
            for line in _format(result):
                print(line)
            print(f"{'':<6} {'':<14} (backend {result['backend']}, device {result['device']}, "
                  f"direction {result['direction']}, {result['threads']} threads, windows of "
                  f"{result['n_times']} samples)", flush=True)
    print()
    print("ms/window = median forward (wall) time / batch; cpu ms/w = CPU time of the process (all its "
          "threads) per window, which other processes on the machine barely change: on an idle machine wall "
          "time is about cpu ms/w divided by the threads used in parallel; windows/s = batch / median "
          "forward time; peak MB = peak RSS of the child process (CPU) or peak CUDA allocation. Columns "
          "after '|' are wall ms per window spent in: tcn = TCN encoder, node = node stream, edge = edge "
          "stream, adj = dynamic adjacency (top-k), lpe = Laplacian PE (eigh included), eigh = "
          "torch.linalg.eigh alone, gnn = 2 x SSGConv, rest = projection, fusion, read-out, decoder. Goal: "
          "batch-1 latency goal of the preset on the 2-core CPU (ms).")
    print()
    print(f"per bed at hop {args.hop_s:g} s (window: one {results[0]['n_times']}-sample window per bed per hop; "
          "stream: one causal step of the hop per bed):")
    print(BED_HEADER)
    print("-" * len(BED_HEADER))
    for result in results:
        for line in _format_beds(result, args.hop_s):
            print(line)
    print("cpu ms/bed-s = CPU time per call / (batch x hop): work per bed per second of EEG; beds real time = "
          "batch x hop / median wall time of a call (one scoring thread); lat = wall time of a call; MB/bed = "
          f"peak-RSS growth per added bed (or the stream state's size). load average {os.getloadavg()[0]:.2f}")
    return 0
