"""`ictal bench frontend`: front-end speed per bed, replay pacing error, memory per bed.

Prints a table of figures with units and the machine; asserts nothing. Goals (issue 3): the whole
front-end of one bed on one CPU core at >= 1000x real time (one hour of 19-channel EEG in <= 3.6 s),
replay pacing drift < 10 ms over 10 minutes at 1x.

Figures
-------
- Front-end speed: a real recording (default: EEGMAT Subject00_1, 500 Hz) tiled to ``--hours`` of
  signal is pushed through ``BedPipeline`` (resampling, band-pass + notch, ring buffer, windows
  every ``--hop-s``, normalisation, signal quality) in chunks of ``--chunk-s``, with the process
  pinned to one CPU core. The stages are also timed alone on the same signal.
- Replay pacing: ``ictal replay``'s engine (``ReplayPublisher``, an LSL outlet on loopback) at 1x
  for ``--pacing-s`` seconds; for each pushed chunk, lateness = push time - scheduled time of its
  last sample. Drift = mean lateness over the last 10 % of chunks - over the first 10 %.
- Memory per bed: the ring buffer's size, and the peak of Python/numpy allocations (tracemalloc)
  while one bed's pipeline streams ``--memory-s`` (10 minutes), the input excluded.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

from ictal.detector import FS_HZ, WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend
from ictal.detector.machine import cpu_model
from ictal.detector.quality import assess_window
from ictal.streaming.chunk import Chunk
from ictal.streaming.edf import load_canonical
from ictal.streaming.pipeline import BedPipeline

DEFAULT_EDF = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "background" / "eegmat" / "Subject00_1.edf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ictal bench frontend`."""
    parser.add_argument("--edf", type=Path, default=DEFAULT_EDF, help=f"Real recording to tile (default {DEFAULT_EDF}).")
    parser.add_argument("--hours", type=float, default=1.0, help="Hours of signal for the speed figure (default 1).")
    parser.add_argument("--chunk-s", type=float, default=0.25, help="Seconds per pushed chunk (default 0.25).")
    parser.add_argument("--hop-s", type=float, default=4.0, help="Seconds between windows (default 4).")
    parser.add_argument("--pacing-s", type=float, default=600.0,
                        help="Seconds of 1x replay for the pacing figure (default 600; 0 skips it).")
    parser.add_argument("--memory-s", type=float, default=600.0,
                        help="Seconds of signal streamed for the memory figure (default 600).")
    parser.add_argument("--cpu", type=int, default=None, help="CPU core to pin to (default: the first allowed).")


def _machine() -> str:
    model = cpu_model()
    return (f"{platform.node()}: {model}, {os.cpu_count()} CPUs (1 used), Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def _tile(data: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // data.shape[1])
    return np.ascontiguousarray(np.tile(data, (1, reps))[:, :n])


def _stream(pipeline: BedPipeline, data: np.ndarray, fs: float, chunk: int) -> int:
    n_windows = 0
    for i in range(0, data.shape[1], chunk):
        part = data[:, i : i + chunk]
        n_windows += len(pipeline.push(Chunk(part, i, i / fs, fs)))
    return n_windows


def _speed_rows(args: argparse.Namespace, config: FrontendConfig) -> list[tuple[str, str, str]]:
    rec = load_canonical(args.edf, config)
    seconds = args.hours * 3600.0
    data = _tile(rec.data, int(round(seconds * rec.fs)))
    chunk = max(1, round(args.chunk_s * rec.fs))
    rows = [("signal", f"{seconds / 3600:g} h x 19 ch at {rec.fs:g} Hz ({args.edf.name}), "
             f"chunks of {chunk} samples", "")]
    pipeline = BedPipeline(config, rec.fs, args.hop_s)
    started, cpu_started = time.perf_counter(), time.process_time()
    n_windows = _stream(pipeline, data, rec.fs, chunk)
    total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rows.append(("whole front-end (BedPipeline.push)", f"{total:.2f} s wall per {seconds / 3600:g} h",
                 f"{seconds / total:,.0f}x real time (wall)"))
    rows.append(("  same, CPU time of the process", f"{cpu:.2f} s CPU per {seconds / 3600:g} h",
                 f"{seconds / cpu:,.0f}x real time (CPU; excludes waiting for a busy core)"))
    frontend = Frontend(config, rec.fs)
    started, cpu_started = time.perf_counter(), time.process_time()
    filtered = [frontend.process(data[:, i : i + chunk]) for i in range(0, data.shape[1], chunk)]
    t_process, cpu_process = time.perf_counter() - started, time.process_time() - cpu_started
    rows.append(("  resample + filters (Frontend.process)", f"{t_process:.2f} s wall, {cpu_process:.2f} s CPU",
                 f"{seconds / t_process:,.0f}x (wall), {seconds / cpu_process:,.0f}x (CPU)"))
    filtered = np.concatenate(filtered, axis=1)
    window = filtered[:, :WINDOW_SAMPLES]
    reps = 20
    started = time.process_time()
    for _ in range(reps):
        frontend.prepare_window(window)
    t_norm = (time.process_time() - started) / reps
    started = time.process_time()
    for _ in range(reps):
        assess_window(window, FS_HZ)
    t_quality = (time.process_time() - started) / reps
    rows.append(("  normalisation (prepare_window)", f"{t_norm * 1e3:.2f} ms CPU per window",
                 f"{n_windows} windows: {n_windows * t_norm:.2f} s"))
    rows.append(("  signal quality (assess_window)", f"{t_quality * 1e3:.2f} ms CPU per window",
                 f"{n_windows} windows: {n_windows * t_quality:.2f} s"))
    return rows


def _memory_rows(args: argparse.Namespace, config: FrontendConfig) -> list[tuple[str, str, str]]:
    rec = load_canonical(args.edf, config)
    data = _tile(rec.data, int(round(args.memory_s * rec.fs)))
    chunk = max(1, round(args.chunk_s * rec.fs))
    tracemalloc.start()
    pipeline = BedPipeline(config, rec.fs, args.hop_s)
    _stream(pipeline, data, rec.fs, chunk)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ring = pipeline.ring._data.nbytes + pipeline.ring._valid.nbytes
    return [
        ("memory per bed: ring buffer", f"{ring / 2**20:.2f} MiB", f"{pipeline.ring.capacity / FS_HZ:g} s x 19 ch"),
        ("memory per bed: held at the end", f"{current / 2**20:.2f} MiB", f"tracemalloc, {args.memory_s:g} s streamed"),
        ("memory per bed: peak while streaming", f"{peak / 2**20:.2f} MiB", "tracemalloc, input excluded"),
    ]


def _pacing_rows(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    from ictal.streaming.lsl_outlet import ReplayPublisher

    publisher = ReplayPublisher(args.edf, f"ictal-bench-pacing-{os.getpid()}", speed=1.0, loop=True, chunk_s=0.05)
    publisher.open()
    lateness: list[float] = []
    deadline = time.monotonic() + args.pacing_s
    stop = threading.Event()

    def on_chunk(chunk: Chunk) -> None:
        lateness.append(time.monotonic() - publisher.source.release_time(chunk.end_index))
        if time.monotonic() >= deadline:
            stop.set()

    publisher.run(stop=stop, on_chunk=on_chunk, linger_s=0.0)
    publisher.close()
    late = np.array(lateness) * 1e3
    tenth = max(1, late.size // 10)
    drift = late[-tenth:].mean() - late[:tenth].mean()
    return [
        ("replay pacing at 1x", f"{args.pacing_s:g} s, {late.size} chunks of 50 ms", "LSL outlet on loopback"),
        ("  lateness of a chunk (push - due)", f"median {np.median(late):.3f} ms, max {late.max():.3f} ms", ""),
        ("  drift (last 10 % - first 10 %)", f"{drift:+.3f} ms", "goal |drift| < 10 ms"),
    ]


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table."""
    if not args.edf.is_file():
        print(f"ictal bench frontend: recording {args.edf} not found (give one with --edf)")
        return 2
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[0] if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})
    try:
        config = FrontendConfig()
        load = os.getloadavg()[0]
        rows = [("machine", _machine(), f"pinned to CPU {cpu}; load average {load:.1f} at start")]
        rows += _speed_rows(args, config)
        rows += _memory_rows(args, config)
        if args.pacing_s > 0:
            rows += _pacing_rows(args)
    finally:
        os.sched_setaffinity(0, allowed)
    width = max(len(r[0]) for r in rows)
    width2 = max(len(r[1]) for r in rows[1:])
    print("ictal bench frontend (one bed, one CPU core)")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<{width2}}  {note}")
    return 0
