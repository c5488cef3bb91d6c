"""`ictal bench daemon`: beds served in real time, window-to-post-processor latency, memory per bed.

Prints figures with units and the machine; asserts nothing. Three parts:

1. **Capacity.** The cost of one bed is measured on real EEG (EEGMAT, 500 Hz): the front-end per
   second of signal (``BedSession.push`` in 0.25 s chunks: resampling, filters, ring buffer), the
   preparation of each window (normalisation, signal quality) and the model's scoring time per window
   at batch 1 and ``--max-batch`` (``Detector.predict`` on real normalised windows). The beds one
   process serves in real time at hop ``h`` are ``1 / (frontend_s_per_s + (prep_s + infer_s) / h)``
   (the machine's cores shared by all of it, as in the daemon). A live run then checks the figure:
   the real daemon (bed threads, batched scoring loop, publisher, journal) serves ``N`` simulated beds
   (in-process sources replaying EEGMAT: the first 60 s at once, then paced in real time) for
   ``--live-seconds``; it reports windows scored against windows due, and windows skipped.
2. **Latency.** In the live run: from the arrival of the chunk completing a window (the newest
   sample of the window entering the daemon) to its probabilities reaching the post-processor, p50 and
   p99 (front-end, queueing, batching and inference included).
3. **Memory.** ``--memory-beds`` beds each fed ``--memory-hours`` of signal as fast as possible through
   the daemon's bed path (``BedSession``: front-end, ring buffer, windows, post-processor; scoring
   replaced by a constant so that hours take minutes: the model's memory is reported separately);
   RSS sampled every 5 simulated minutes, memory per bed and the RSS slope after the first 10 minutes.

Without ``--checkpoint`` the model is the preset of ``--model-config`` randomly initialised and saved
to a temporary directory (said in the output): speed and memory do not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from alarms.config import AlarmThresholds
from detector import CANONICAL_CHANNELS, WINDOW_SAMPLES
from detector.config import FrontendConfig
from detector.machine import cpu_model
from streaming.bed import BedSession
from streaming.chunk import Chunk
from streaming.edf import CanonicalRecording, load_canonical
from streaming.sources.base import Source

REPO_ROOT = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ictal bench daemon``."""
    parser.add_argument("--model-config", type=Path, default=REPO_ROOT / "configs" / "model" / "tiny_bimamba2.yaml",
                        help="Model preset, randomly initialised when no --checkpoint (default: tiny bimamba2).")
    parser.add_argument("--checkpoint", type=Path, default=None, help="A trained checkpoint instead.")
    parser.add_argument("--device", default="cpu", help="Torch device (default cpu; 'auto' picks cuda if present).")
    parser.add_argument("--max-batch", type=int, default=8, help="Windows per forward pass (default 8).")
    parser.add_argument("--hops", default="1,2,4,8", help="Hops (s) of the capacity table (default 1,2,4,8).")
    parser.add_argument("--hop-s", type=float, default=4.0, help="Hop of the live run (default 4, the config's).")
    parser.add_argument("--live-beds", type=int, default=None,
                        help="Beds of the live run (default: the estimated capacity at --hop-s, at least 1).")
    parser.add_argument("--live-seconds", type=float, default=40.0, help="Wall seconds of the live run (default 40).")
    parser.add_argument("--memory-beds", type=int, default=2, help="Beds of the memory run (default 2).")
    parser.add_argument("--memory-hours", type=float, default=1.0, help="Simulated hours per bed (default 1).")
    parser.add_argument("--data", type=Path, default=None,
                        help="EDF to simulate beds with (default ../shared/data/background/eegmat/Subject00_1.edf).")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status")


def _machine() -> str:
    cpu = cpu_model()
    import torch

    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
            "(other processes share these cores: figures are noisy)")


def _chunks(recording: CanonicalRecording, chunk_s: float = 0.25, offset: int = 0, n_loops: int = 1):
    fs = recording.fs
    n = max(1, round(chunk_s * fs))
    total = recording.data.shape[1]
    index = offset
    for _ in range(n_loops):
        for start in range(0, total - n + 1, n):
            yield Chunk(data=np.ascontiguousarray(recording.data[:, start:start + n]), first_index=index,
                        clock_s=index / fs, fs=fs)
            index += n


class SimulatedBedSource(Source):
    """A bed replaying a loaded recording (looped): the first ``preroll_s`` at once, then in real time x ``speed``.

    Parameters
    ----------
    recording : CanonicalRecording
    speed : float
        Pacing after the preroll (1 = real time).
    preroll_s : float
        Seconds of signal released at the first read (60: the first window is due at once).
    offset_s : float
        Start this far into the recording (different beds read different signal).
    chunk_s : float
        Seconds per chunk.
    """

    def __init__(self, recording: CanonicalRecording, speed: float = 1.0, preroll_s: float = 60.0,
                 offset_s: float = 0.0, chunk_s: float = 0.25) -> None:
        self.recording = recording
        self.speed = speed
        self.preroll_s = preroll_s
        self.offset = int(offset_s * recording.fs)
        self.n = max(1, round(chunk_s * recording.fs))
        self.index = 0
        self.t0: float | None = None

    @property
    def fs(self) -> float:
        return self.recording.fs

    def open(self) -> None:
        self.t0 = None

    def close(self) -> None:
        return None

    def read(self, timeout_s: float) -> Chunk | None:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        end_s = (self.index + self.n) / self.fs
        due = self.t0 + max(0.0, end_s - self.preroll_s) / self.speed
        if due - now > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            return None
        if due > now:
            time.sleep(due - now)
        total = self.recording.data.shape[1]
        cols = (self.offset + self.index + np.arange(self.n)) % total
        chunk = Chunk(data=np.ascontiguousarray(self.recording.data[:, cols]), first_index=self.index,
                      clock_s=time.monotonic(), fs=self.fs)
        self.index += self.n
        return chunk


class _ConstantScorer:
    max_batch = 64

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[2]), 0.05, dtype=np.float32)


def _load_model(args: argparse.Namespace, work: Path):
    from detector.inference import Detector

    note = ""
    checkpoint = args.checkpoint
    if checkpoint is None:
        import torch

        from detector.checkpoint import save_checkpoint
        from detector.model import build_model
        from ictal.config import load_config

        config = load_config(args.model_config, kind="model")
        torch.manual_seed(0)
        checkpoint = work / "checkpoint"
        save_checkpoint(checkpoint, build_model(config), config, FrontendConfig())
        note = f"randomly initialised {config.name} preset ({args.model_config.name}); no trained checkpoint used"
    t0 = time.perf_counter()
    detector = Detector.from_checkpoint(checkpoint, device=args.device, max_batch=args.max_batch)
    detector.warmup((1,))
    load_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in detector.model.parameters())
    return detector, note or f"checkpoint {checkpoint}", load_s, n_params


def measure_frontend(recording: CanonicalRecording, hop_s: float) -> tuple[float, float, list]:
    """Front-end seconds per second of signal (chunks) and seconds per window prepared; the windows."""
    session = BedSession("bench", FrontendConfig(), recording.fs, AlarmThresholds(), hop_s=hop_s)
    t_chunks = t_windows = 0.0
    windows = []
    n_signal = 0
    for chunk in _chunks(recording):
        t0 = time.perf_counter()
        new, _ = session.push(chunk)
        dt = time.perf_counter() - t0
        n_signal += chunk.n_samples
        if new:
            t_windows += dt
            windows.extend(new)
        else:
            t_chunks += dt
    signal_s = n_signal / recording.fs
    chunk_share = t_chunks / max(1, (signal_s / 0.25) - len(windows))  # s per chunk without a window
    per_signal_s = chunk_share / 0.25
    per_window = max(0.0, t_windows / max(1, len(windows)) - chunk_share)
    return per_signal_s, per_window, windows


def measure_inference(detector, windows: list, batch: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds per window of ``detector.predict`` at batch size ``batch``: median and min of ``repeats`` calls.

    The calls run in a thread of their own, as in the daemon's scoring loop: on this machine torch's
    CPU kernels called from the main thread (2 OpenMP threads on 2 busy cores) measured 5-10x slower
    than the same calls from another thread, which would misstate the daemon's capacity.
    """
    data = np.stack([windows[i % len(windows)].data for i in range(batch)])
    times: list[float] = []

    def calls() -> None:
        for _ in range(repeats):
            t0 = time.perf_counter()
            detector.predict(data)
            times.append(time.perf_counter() - t0)

    thread = threading.Thread(target=calls, name="bench-scoring")
    thread.start()
    thread.join()
    return float(np.median(times)) / batch, float(np.min(times)) / batch


class _TimedScorer:
    """Wraps a detector and records (batch size, seconds) of every ``predict`` call."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.calls: list[tuple[int, float]] = []
        for name in ("model_id", "stack", "backend", "device", "max_batch"):
            setattr(self, name, getattr(detector, name))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.detector.predict(windows)
        self.calls.append((windows.shape[0], time.perf_counter() - t0))
        return out


def live_run(detector, recording: CanonicalRecording, beds: int, hop_s: float, seconds: float,
             max_batch: int, work: Path) -> dict:
    """Serve ``beds`` simulated beds with the real daemon for ``seconds``; scored, due, skipped, latencies."""
    from alarms.config import AlarmsConfig, JournalConfig, MetricsConfig, PublisherConfig
    from streaming.config import (
        BedConfig,
        DaemonConfig,
        DetectorRuntimeConfig,
        EdfSourceConfig,
        SchedulerConfig,
    )
    from streaming.daemon import Daemon
    from streaming.notify import SystemdNotifier

    config = DaemonConfig(
        beds=[BedConfig(bed_id=f"sim-{i:03d}", source=EdfSourceConfig(path=recording.path)) for i in range(beds)],
        scheduler=SchedulerConfig(hop_s=hop_s),
        detector=DetectorRuntimeConfig(checkpoint=work, max_batch=max_batch, queue_windows=2),
        alarms=AlarmsConfig(journal=JournalConfig(path=work / f"journal-{beds}.sqlite3"),
                            publisher=PublisherConfig(pub_endpoint="tcp://127.0.0.1:*",
                                                      catchup_endpoint="tcp://127.0.0.1:*"),
                            metrics=MetricsConfig(port=0)),
    )
    offsets = {f"sim-{i:03d}": (i * 7.0) % max(1.0, recording.duration_s - 1) for i in range(beds)}

    def source(bed: BedConfig, frontend: FrontendConfig) -> Source:
        return SimulatedBedSource(recording, speed=1.0, preroll_s=60.0, offset_s=offsets[bed.bed_id])

    timed = _TimedScorer(detector)
    daemon = Daemon(config, timed, notifier=SystemdNotifier(socket_path=""), source_factory=source)
    first_seen: dict[str, int] = {}
    latencies: list[float] = []

    def on_scored(bed, item, result) -> None:
        if bed not in first_seen:
            first_seen[bed] = item.window.end_index  # the preroll window: excluded from latency
            return
        latencies.append(time.monotonic() - item.arrived_mono)

    daemon.scoring.on_scored = on_scored
    daemon.start()
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    workers = list(daemon.workers.values())
    scored = sum(w.session.windows_scored for w in workers if w.session)
    skipped = sum(w.session.windows_discarded for w in workers if w.session)
    daemon.shutdown()
    due = beds * (1 + elapsed / hop_s)  # the preroll window, then one per hop of real time
    n_windows = sum(b for b, _ in timed.calls)
    model_s = sum(t for _, t in timed.calls)
    return {"beds": beds, "seconds": elapsed, "scored": scored, "skipped": skipped, "due": due,
            "latencies": np.asarray(latencies), "model_s_per_window": model_s / max(1, n_windows),
            "mean_batch": n_windows / max(1, len(timed.calls))}


def memory_run(recording: CanonicalRecording, beds: int, hours: float, hop_s: float) -> dict:
    """RSS while ``beds`` bed paths take ``hours`` of signal each (constant scorer)."""
    scorer = _ConstantScorer()
    before = _rss_mb()
    sessions = [BedSession(f"mem-{i}", FrontendConfig(), recording.fs, AlarmThresholds(), hop_s=hop_s)
                for i in range(beds)]
    n_loops = int(np.ceil((hours * 3600 + 300.0) / recording.duration_s)) + 1  # whole steps of 5 min
    streams = [_chunks(recording, offset=0, n_loops=n_loops) for _ in range(beds)]
    step_s = 300.0
    samples: list[tuple[float, float]] = []
    signal_s = 0.0
    t0 = time.perf_counter()
    while signal_s < hours * 3600:
        target = signal_s + step_s
        for session, stream in zip(sessions, streams, strict=True):
            end = 0.0
            while end < target:
                chunk = next(stream)
                windows, _ = session.push(chunk)
                if windows:
                    probs = scorer.predict(np.stack([w.data for w in windows]))
                    for w, p in zip(windows, probs, strict=True):
                        session.score(w, p)
                end = chunk.end_index / chunk.fs
        signal_s = target
        samples.append((signal_s / 3600.0, _rss_mb()))
    wall = time.perf_counter() - t0
    hours_arr = np.array([h for h, _ in samples])
    rss = np.array([r for _, r in samples])
    steady = hours_arr > 10 / 60
    slope = float(np.polyfit(hours_arr[steady], rss[steady], 1)[0]) if steady.sum() >= 2 else float("nan")
    ring_mb = sessions[0].pipeline.ring.capacity * len(CANONICAL_CHANNELS) * 4 / 2**20
    return {"beds": beds, "hours": hours, "before": before, "after_warmup": float(rss[steady][0]) if steady.any()
            else float(rss[0]), "end": float(rss[-1]), "slope": slope, "wall": wall, "ring_mb": ring_mb}


def run(args: argparse.Namespace) -> int:
    """Run the three parts and print their tables."""
    data = args.data or Path(os.environ.get("ICTAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / \
        "background" / "eegmat" / "Subject00_1.edf"
    if not data.is_file():
        print(f"ictal bench daemon: {data} not found; pass --data FILE (a 19-channel EDF)")
        return 2
    hops = [float(h) for h in args.hops.split(",")]
    print(f"machine: {_machine()}")
    recording = load_canonical(data, FrontendConfig())
    print(f"data: {data} ({recording.duration_s:.0f} s at {recording.fs:g} Hz, real EEG: EEGMAT, Zyma et al. 2019)")
    with tempfile.TemporaryDirectory(prefix="ictal-bench-daemon-") as tmp:
        work = Path(tmp)
        print(f"\n3. memory (run first, before the model and the live run allocate): {args.memory_beds} bed(s) x "
              f"{args.memory_hours:g} h of signal each through the bed path (scoring replaced by a constant)")
        mem = memory_run(recording, args.memory_beds, args.memory_hours, args.hop_s)
        per_bed = (mem["end"] - mem["before"]) / mem["beds"]
        print(f"  RSS before the beds {mem['before']:.0f} MB, after 10 simulated min {mem['after_warmup']:.0f} MB, "
              f"after {mem['hours']:g} h {mem['end']:.0f} MB ({mem['wall']:.0f} s of wall time)")
        print(f"  memory per bed {per_bed:.1f} MB (ring buffer alone {mem['ring_mb']:.1f} MB); RSS slope after "
              f"warm-up {mem['slope']:+.2f} MB per simulated hour (all beds)")
        rss0 = _rss_mb()
        detector, note, load_s, n_params = _load_model(args, work)
        model_mb = _rss_mb() - rss0
        print(f"model: {note}; {n_params / 1e6:.2f} M parameters; stack {detector.stack}, backend "
              f"{detector.backend}, device {detector.device}; load + warm-up {load_s:.1f} s; RSS +{model_mb:.0f} MB")

        print("\n1. cost of one bed")
        fe_per_s, prep_per_window, windows = measure_frontend(recording, 4.0)
        infer1, infer1_min = measure_inference(detector, windows, 1)
        inferb, inferb_min = measure_inference(detector, windows, args.max_batch)
        print(f"  front-end (chunks of 0.25 s)          {fe_per_s * 1e3:8.2f} ms per s of signal")
        print(f"  window preparation (normalise+quality) {prep_per_window * 1e3:8.1f} ms per window")
        print(f"  model, batch 1                         {infer1 * 1e3:8.0f} ms per window (median of 3; "
              f"min {infer1_min * 1e3:.0f})")
        print(f"  model, batch {args.max_batch:<3d}                     {inferb * 1e3:8.0f} ms per window (median of 3; "
              f"min {inferb_min * 1e3:.0f})")
        print(f"\n   hop_s | beds served in real time, estimate at batch {args.max_batch} (median; best) | "
              "windows per s per bed")
        capacity = {}
        for hop in hops:
            capacity[hop] = 1.0 / (fe_per_s + (prep_per_window + inferb) / hop)
            best = 1.0 / (fe_per_s + (prep_per_window + inferb_min) / hop)
            print(f"   {hop:5g} | {capacity[hop]:8.1f} beds; {best:6.1f} beds{'':30s}| {1 / hop:.3f}")

        beds = args.live_beds or max(1, int(capacity.get(args.hop_s, 1.0 / (fe_per_s + (
            prep_per_window + inferb) / args.hop_s))))
        print(f"\n2. live run: the daemon serving {beds} simulated bed(s) at hop {args.hop_s:g} s for "
              f"{args.live_seconds:g} s (first 60 s of each bed at once, then real time)")
        live = live_run(detector, recording, beds, args.hop_s, args.live_seconds, args.max_batch, work)
        lat = live["latencies"]
        kept_up = live["skipped"] == 0 and live["scored"] >= 0.9 * live["due"] - beds
        print(f"  windows due {live['due']:.0f}, scored {live['scored']}, skipped {live['skipped']} -> "
              f"{'served in real time' if kept_up else 'NOT served in real time'}")
        print(f"  model time in the live run: {live['model_s_per_window'] * 1e3:.0f} ms per window (mean batch "
              f"{live['mean_batch']:.1f})")
        if lat.size:
            print(f"  latency, chunk completing a window -> probabilities at the post-processor: "
                  f"p50 {np.percentile(lat, 50) * 1e3:.0f} ms, p99 {np.percentile(lat, 99) * 1e3:.0f} ms "
                  f"(n = {lat.size} windows)")
        else:
            print("  latency: no window after the first one was scored in the live run (too slow)")

        print(f"\nestimated RSS of a daemon serving {beds} bed(s): {rss0 + model_mb + per_bed * beds:.0f} MB "
              f"(process {rss0:.0f} MB + model {model_mb:.0f} MB + {beds} x {per_bed:.1f} MB); windows of "
              f"{WINDOW_SAMPLES} samples")
    return 0
