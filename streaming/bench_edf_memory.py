"""`python -m ictal.streaming.bench_edf_memory`: peak memory of replaying and evaluating a long EDF file.

Prints a table of figures with units and the machine it ran on; asserts nothing.

What runs
---------
1. A synthetic EDF+C recording of ``--hours`` hours is written into a temporary folder (or
   ``--edf PATH`` is used as it is): the 19 canonical EEG channels (``EEG Fp1-REF`` ...) and an ``EKG``
   at ``--fs`` Hz (Gaussian noise, 30 uV rms, 0.1 uV per bit), 1 s data records, and an
   ``EDF Annotations`` signal with the timekeeping annotation of every record and one annotation per
   hour. The header comes from edfio (a one-record file written by ``edfio.Edf.write``); the records
   are written in pieces of 10 minutes, so the writer's own memory stays small (it is printed, but it
   is not one of the figures below).
2. Each measured path runs in a fresh child process (``python -m ictal.streaming.bench_edf_memory --child
   WHAT PATH WARMUP``), which reports its peak resident set size after the run (``VmHWM``, see
   :func:`_peak_rss_mb`; ``ru_maxrss`` is printed beside it, and the CPU seconds of the run), the same figure just after its imports (the interpreter, numpy, the project's
   modules), and after a warm-up run of the same path on a 2-minute file of the same kind (the modules
   the path imports lazily, e.g. scipy.signal, its filters and buffers): what the long file adds is the
   peak minus the warm-up figure.

   - ``replay``: ``streaming.sources.edf_replay.EdfReplaySource`` at speed 0 (as fast as it reads), its
     default chunks, from ``open()`` to the last chunk: what ``ictal replay`` and an EDF bed of the
     daemon hold;
   - ``evaluate``: what ``ictal evaluate`` does per recording, ``training.evaluate.label_spans`` (the
     EDF+ annotations) then ``training.evaluate.DaemonPathRunner`` (``streaming.bed.run_recording``:
     front-end, ring buffer, a window every ``--hop-s``, stitching, post-processor), with a stub
     scorer that returns zeros instead of a model, so that only the data path's memory is measured
     (a real model adds its weights and one batch of windows, independent of the file's length).

Run it from another checkout (``PYTHONPATH`` at that checkout, with this file copied into its
``streaming/``) to measure that version: the children import the project from the folder this file
lies in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
WHAT = ("replay", "evaluate")
EEG_RMS_UV = 30.0
"""Amplitude of the synthetic EEG (Gaussian noise): scalp EEG is tens of microvolts."""
UV_PER_BIT = 0.1
"""Resolution of the synthetic file: physical range +-3276.8 uV over the 16-bit digital range."""
PIECE_RECORDS = 600
"""Data records (1 s each) generated and written at a time by the writer."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the benchmark."""
    parser.add_argument("--hours", type=float, default=24.0, help="Hours of EEG in the synthetic file (default 24).")
    parser.add_argument("--fs", type=int, default=256, help="Sampling rate of the synthetic file in Hz (default 256).")
    parser.add_argument("--hop-s", type=float, default=4.0, help="Hop of the evaluate path in seconds (default 4).")
    parser.add_argument("--edf", type=Path, default=None, help="Measure this file instead of writing one.")
    parser.add_argument("--keep", type=Path, default=None, help="Write the synthetic file here and keep it.")
    parser.add_argument("--only", choices=WHAT, action="append", default=None,
                        help="Measure only this path (repeatable; default both).")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "PATH", "WARMUP"), default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB: ``VmHWM`` of /proc/self/status on Linux.

    ``ru_maxrss`` is not used where ``VmHWM`` exists: Linux carries the parent's resident size at
    ``fork`` into a child's ``ru_maxrss`` (it survives ``execve``), while ``VmHWM`` belongs to the
    process's own memory map; ``ru_maxrss`` is also reported (:func:`_ru_maxrss_mb`).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass  # not Linux: ru_maxrss below
    return _ru_maxrss_mb()


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_synthetic_edf(path: Path, hours: float, fs: int, seed: int = 0) -> int:
    """Write a synthetic EDF+C file of ``hours`` hours (see the module docstring).

    Parameters
    ----------
    path : Path
        The file to write.
    hours : float
        Duration; rounded to whole seconds (1 s data records).
    fs : int
        Sampling rate of every signal in Hz.
    seed : int, default 0
        Seed of the noise.

    Returns
    -------
    n_records : int
        Data records written (= seconds).
    """
    import edfio

    from ictal.detector import CANONICAL_CHANNELS

    n_records = max(1, int(round(hours * 3600)))
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS] + ["EKG"]
    physical = 32768 * UV_PER_BIT
    signals = [edfio.EdfSignal(np.zeros(fs), fs, label=label, physical_dimension="uV",
                               physical_range=(-physical, physical - UV_PER_BIT), digital_range=(-32768, 32767))
               for label in labels]
    template = edfio.Edf(signals, annotations=[edfio.EdfAnnotation(0.5, 1.0, "hourly mark " + "x" * 20)])
    with tempfile.TemporaryDirectory() as folder:
        one = Path(folder) / "one.edf"
        template.write(one)
        raw = one.read_bytes()
    ns = len(labels) + 1
    header = bytearray(raw[:256 * (ns + 1)])
    header[236:244] = str(n_records).encode("ascii").ljust(8)  # number of data records
    record_bytes = len(raw) - len(header)
    ann_bytes = record_bytes - 2 * fs * len(labels)
    rng = np.random.default_rng(seed)
    with path.open("wb") as out:
        out.write(header)
        for first in range(0, n_records, PIECE_RECORDS):
            count = min(PIECE_RECORDS, n_records - first)
            records = np.zeros((count, record_bytes), dtype=np.uint8)
            noise = rng.standard_normal((count, len(labels) * fs), dtype=np.float32) * (EEG_RMS_UV / UV_PER_BIT)
            records[:, :2 * fs * len(labels)] = noise.astype("<i2").view(np.uint8)
            for k in range(count):
                second = first + k
                tal = f"+{second}\x14\x14\x00".encode("ascii")
                if second % 3600 == 1800:
                    tal += f"+{second}.5\x151\x14hourly mark\x14\x00".encode("ascii")
                if len(tal) > ann_bytes:
                    raise ValueError(f"annotation of record {second} needs {len(tal)} bytes; the signal has {ann_bytes}")
                records[k, record_bytes - ann_bytes:record_bytes - ann_bytes + len(tal)] = np.frombuffer(tal, np.uint8)
            out.write(records.tobytes())
    return n_records


class ZeroScorer:
    """Stub scorer: probability 0 for every sample, so that only the data path's memory is measured."""

    max_batch = 32

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(B, 19, 15360) windows -> (B, 15360) zeros (float32)."""
        return np.zeros((windows.shape[0], windows.shape[-1]), dtype=np.float32)


WARMUP_HOURS = 2 / 60
"""Length of the warm-up file (2 minutes: more than one 60 s window)."""


def _run_path(what: str, path: Path, hop_s: float) -> str:
    """Run one path on ``path`` in this process; a line describing what it produced."""
    from ictal.alarms.config import AlarmThresholds
    from ictal.detector.config import FrontendConfig
    from ictal.streaming.config import EdfSourceConfig
    from ictal.streaming.sources.edf_replay import EdfReplaySource
    from ictal.training.datasets.base import Recording
    from ictal.training.evaluate import DaemonPathRunner, label_spans

    if what == "replay":
        source = EdfReplaySource(EdfSourceConfig(path=path, speed=0.0))
        source.open()
        n = 0
        while not source.exhausted:
            chunk = source.read(0.0)
            if chunk is not None:
                n = chunk.end_index
        source.close()
        return f"{n} samples per channel"
    elif what == "evaluate":
        rec = Recording(recording_id=path.stem, path=path, patient="bench", split="eval", annotations=None,
                        edf_annotation_labels={"hourly mark": "bckg"}, source="edf_plus")
        spans = label_spans(rec)
        out = DaemonPathRunner(ZeroScorer(), FrontendConfig(), AlarmThresholds(), hop_s)(rec)
        return (f"{out.probs.size} probabilities, {int(np.isfinite(out.probs).sum())} finite, "
                f"{len(spans)} label spans, {len(out.quality_events)} quality events")
    raise ValueError(f"unknown path {what!r}; expected one of {WHAT}")


def _child(what: str, path: Path, warmup: Path, hop_s: float) -> dict:
    """Figures of one path in this process: after imports, after the warm-up, peak over the long file."""
    import ictal.streaming.sources.edf_replay  # noqa: F401 - the imports both paths need, before the first figure
    import ictal.training.evaluate  # noqa: F401

    imports_mb = _peak_rss_mb()
    _run_path(what, warmup, hop_s)
    warm_mb = _peak_rss_mb()
    started, cpu = time.perf_counter(), _cpu_s()
    detail = _run_path(what, path, hop_s)
    return {"what": what, "imports_mb": imports_mb, "warm_mb": warm_mb, "peak_mb": _peak_rss_mb(),
            "ru_maxrss_mb": _ru_maxrss_mb(), "wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu,
            "detail": detail}


def _machine() -> str:
    from ictal.detector.machine import cpu_model

    with open("/proc/loadavg") as handle:
        load = " ".join(handle.read().split()[:3])
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        uptime = f"uptime unavailable ({exc})"
    return (f"{platform.node()}: {cpu_model()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python "
            f"{platform.python_version()}; load average {load}\n  uptime: {uptime}")


def _measure(what: str, path: Path, warmup: Path, hop_s: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "ictal.streaming.bench_edf_memory", "--hop-s", str(hop_s),
                           "--child", what, str(path), str(warmup)], capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    if proc.returncode != 0:
        return {"what": what, "error": f"child exited {proc.returncode}: {proc.stderr.strip()[-600:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> int:
    """Write (or take) the file, measure each path in a child process, print the table."""
    if args.child is not None:
        what, path, warmup = args.child
        print(json.dumps(_child(what, Path(path), Path(warmup), args.hop_s)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_edf_memory_") as folder:
        path = args.edf
        writer = "given"
        if path is None:
            path = args.keep or Path(folder) / f"synthetic_{args.hours:g}h.edf"
            started = time.perf_counter()
            n_records = write_synthetic_edf(path, args.hours, args.fs)
            writer = (f"written in {time.perf_counter() - started:.0f} s ({n_records} records of 1 s); writer peak RSS "
                      f"{_peak_rss_mb():.0f} MB")
        size_mb = path.stat().st_size / 2**20
        warmup = Path(folder) / "warmup.edf"
        write_synthetic_edf(warmup, WARMUP_HOURS, args.fs, seed=1)
        rows = [_measure(what, path, warmup, args.hop_s) for what in (args.only or WHAT)]
        print("EDF memory benchmark (peak RSS = VmHWM of a fresh child process per path; ru_maxrss beside it)")
        print(f"  machine: {_machine()}")
        print(f"  code: {REPO_ROOT}")
        print(f"  file: {path} ({size_mb:.0f} MB; {writer})")
        print(f"  {'path':<10} {'peak RSS MB':>12} {'ru_maxrss MB':>13} {'after imports MB':>17} "
              f"{'after warm-up MB':>17} {'added by file MB':>17} {'wall s':>8} {'CPU s':>7}  detail")
        for row in rows:
            if "error" in row:
                print(f"  {row['what']:<10} {row['error']}")
                continue
            print(f"  {row['what']:<10} {row['peak_mb']:>12.0f} {row['ru_maxrss_mb']:>13.0f} {row['imports_mb']:>17.0f} "
                  f"{row['warm_mb']:>17.0f} {row['peak_mb'] - row['warm_mb']:>17.0f} {row['wall_s']:>8.1f} "
                  f"{row['cpu_s']:>7.1f}  {row['detail']}")
        print("  evaluate uses a stub scorer returning zeros (no model): the figures are the data path's.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ictal.streaming.bench_edf_memory``."""
    parser = argparse.ArgumentParser(prog="python -m ictal.streaming.bench_edf_memory", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
