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

``--mode stream`` measures the daemon's stream mode (``detector.mode: stream``): the preset is built
causal (``direction: causal``, front-end normalisation ``running``), the bed path yields hops
(``streaming.pipeline.StreamHop``) and the model cost is one ``Detector.step`` of a hop per bed
(batched over beds, states stacked), instead of a 60 s window per bed and hop. ``--json`` prints one
JSON object on stdout (the tables go to stderr): ``mode``, ``preset``, ``stack``, ``hop_s``,
``cpu_ms_per_bed_second`` (front-end + preparation + model, CPU ms per second of one bed's signal at
``--hop-s`` and batch ``--max-batch``), ``beds_realtime_estimate`` (``1000 / cpu_ms_per_bed_second``),
``latency_p50_s``/``latency_p99_s`` (live run; null when no latency was measured), ``rss_mb_per_bed``
(memory run), ``machine``; a figure that could not be measured is null, never NaN.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.detector import CANONICAL_CHANNELS, FS_HZ, WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.detector.machine import cpu_model
from ictal.streaming.bed import BedSession
from ictal.streaming.chunk import Chunk
from ictal.streaming.edf import CanonicalRecording, load_canonical
from ictal.streaming.sources.base import Source

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
    parser.add_argument("--mode", choices=("window", "stream"), default="window",
                        help="The daemon's detector.mode to measure (stream: a causal model, one step per hop).")
    parser.add_argument("--json", action="store_true",
                        help="Print one JSON object of the headline figures on stdout (tables on stderr).")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch intra-op threads (default: the daemon's rule, detector.threads null: 1 in "
                        "stream mode on a CPU, else PyTorch's default).")


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


class _ConstantState:
    """A stream state of nothing (the memory run's constant scorer in stream mode)."""

    batch = 1


class _ConstantScorer:
    max_batch = 64
    direction = "causal"
    stream_multiple_samples = 1

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[2]), 0.05, dtype=np.float32)

    def init_state(self, batch: int) -> _ConstantState:
        return _ConstantState()

    def step(self, x: np.ndarray, state: _ConstantState) -> tuple[np.ndarray, _ConstantState]:
        return np.full((x.shape[0], x.shape[2]), 0.05, dtype=np.float32), state


def _frontend_for(mode: str) -> FrontendConfig:
    """The front-end of the bench's random checkpoint: ``running`` normalisation for stream mode (its requirement)."""
    return FrontendConfig(normalisation="running") if mode == "stream" else FrontendConfig()


def _load_model(args: argparse.Namespace, work: Path):
    from ictal.detector.inference import Detector

    note = ""
    checkpoint = args.checkpoint
    if checkpoint is None:
        import torch
        import yaml

        from ictal.detector.checkpoint import save_checkpoint
        from ictal.detector.config import ModelConfig
        from ictal.detector.model import build_model

        config = ModelConfig.model_validate(yaml.safe_load(Path(args.model_config).read_text()))
        if args.mode == "stream":
            config = config.model_copy(update={"direction": "causal"})
        torch.manual_seed(0)
        checkpoint = work / "checkpoint"
        save_checkpoint(checkpoint, build_model(config), config, _frontend_for(args.mode))
        note = (f"randomly initialised {config.name} preset ({args.model_config.name}, direction "
                f"{config.direction}); no trained checkpoint used")
    t0 = time.perf_counter()
    detector = Detector.from_checkpoint(checkpoint, device=args.device, max_batch=args.max_batch)
    if args.mode == "stream" and detector.direction != "causal":
        raise SystemExit(f"ictal bench daemon: --mode stream needs a causal checkpoint ({checkpoint} is "
                         f"{detector.direction})")
    detector.warmup((1,))
    load_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in detector.model.parameters())
    return detector, note or f"checkpoint {checkpoint}", load_s, n_params


def measure_frontend(recording: CanonicalRecording, hop_s: float, frontend: FrontendConfig | None = None,
                     mode: str = "window", multiple: int = 1) -> tuple[float, float, list]:
    """Front-end seconds per second of signal (chunks) and seconds per window (hop) prepared; the windows."""
    session = BedSession("bench", frontend or FrontendConfig(), recording.fs, AlarmThresholds(), hop_s=hop_s,
                         mode=mode, stream_multiple_samples=multiple)
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


LAST_CPU_S_PER_ITEM: list[float] = [float("nan")]
"""CPU seconds (the process, all threads) per window or bed-hop of the last :func:`measure_inference` or
:func:`measure_steps` call: the model's work, which other processes on the machine barely change."""


def measure_inference(detector, windows: list, batch: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds per window of ``detector.predict`` at batch size ``batch``: median and min of ``repeats`` calls.

    The calls run in a thread of their own, as in the daemon's scoring loop: on this machine torch's
    CPU kernels called from the main thread (2 OpenMP threads on 2 busy cores) measured 5-10x slower
    than the same calls from another thread, which would misstate the daemon's capacity.
    """
    data = np.stack([windows[i % len(windows)].data for i in range(batch)])
    times: list[float] = []
    cpu: list[float] = []

    def calls() -> None:
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            detector.predict(data)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)

    thread = threading.Thread(target=calls, name="bench-scoring")
    thread.start()
    thread.join()
    LAST_CPU_S_PER_ITEM[0] = float(np.median(cpu)) / batch
    return float(np.median(times)) / batch, float(np.min(times)) / batch


def measure_steps(detector, hop_s: float, batch: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds per bed-hop of ``detector.step`` over one hop of ``batch`` beds' stacked states: median, min.

    The states are first warmed by a step (a bed in the middle of its stream), and the calls run in a
    thread of their own, as in :func:`measure_inference`.
    """
    hop = round(hop_s * FS_HZ)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (batch, len(CANONICAL_CHANNELS), hop)).astype(np.float32)
    times: list[float] = []

    cpu: list[float] = []

    def calls() -> None:
        _, state = detector.step(x, detector.init_state(batch))
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            _, state = detector.step(x, state)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)

    thread = threading.Thread(target=calls, name="bench-scoring")
    thread.start()
    thread.join()
    LAST_CPU_S_PER_ITEM[0] = float(np.median(cpu)) / batch
    return float(np.median(times)) / batch, float(np.min(times)) / batch


class _TimedScorer:
    """Wraps a detector and records (batch size, seconds) of every ``predict`` and ``step`` call."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.calls: list[tuple[int, float]] = []
        for name in ("model_id", "stack", "backend", "device", "max_batch", "lookahead_s", "frontend_config",
                     "direction", "stream_multiple_samples", "init_state"):
            setattr(self, name, getattr(detector, name))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.detector.predict(windows)
        self.calls.append((windows.shape[0], time.perf_counter() - t0))
        return out

    def step(self, x: np.ndarray, state):
        t0 = time.perf_counter()
        out = self.detector.step(x, state)
        self.calls.append((x.shape[0], time.perf_counter() - t0))
        return out


def live_run(detector, recording: CanonicalRecording, beds: int, hop_s: float, seconds: float,
             max_batch: int, work: Path, mode: str = "window") -> dict:
    """Serve ``beds`` simulated beds with the real daemon for ``seconds``; scored, due, skipped, latencies."""
    from ictal.alarms.config import AlarmsConfig, JournalConfig, MetricsConfig, PublisherConfig
    from ictal.streaming.config import (
        BedConfig,
        DaemonConfig,
        DetectorRuntimeConfig,
        EdfSourceConfig,
        SchedulerConfig,
    )
    from ictal.streaming.daemon import Daemon
    from ictal.streaming.notify import SystemdNotifier

    config = DaemonConfig(
        beds=[BedConfig(bed_id=f"sim-{i:03d}", source=EdfSourceConfig(path=recording.path)) for i in range(beds)],
        scheduler=SchedulerConfig(hop_s=hop_s),
        frontend=detector.frontend_config,
        detector=DetectorRuntimeConfig(checkpoint=work, max_batch=max_batch, queue_windows=2, mode=mode),
        alarms=AlarmsConfig(journal=JournalConfig(path=work / f"journal-{beds}.sqlite3"),
                            publisher=PublisherConfig(pub_endpoint="tcp://127.0.0.1:*",
                                                      catchup_endpoint="tcp://127.0.0.1:*"),
                            metrics=MetricsConfig(port=0)),
    )
    offsets = {f"sim-{i:03d}": (i * 7.0) % max(1.0, recording.duration_s - 1) for i in range(beds)}

    # window mode: the first 60 s at once (the first full window is due at once); stream mode: the first
    # min_history_s (the first hop is due at once; 60 s at once would queue 13 hops and skip most)
    preroll_s = 60.0 if mode == "window" else config.scheduler.min_history_s

    def source(bed: BedConfig, frontend: FrontendConfig) -> Source:
        return SimulatedBedSource(recording, speed=1.0, preroll_s=preroll_s, offset_s=offsets[bed.bed_id])

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
    threads_left = daemon.threads_left_running()
    due = beds * (1 + elapsed / hop_s)  # the preroll window, then one per hop of real time
    n_windows = sum(b for b, _ in timed.calls)
    model_s = sum(t for _, t in timed.calls)
    return {"beds": beds, "seconds": elapsed, "scored": scored, "skipped": skipped, "due": due,
            "latencies": np.asarray(latencies), "model_s_per_window": model_s / max(1, n_windows),
            "mean_batch": n_windows / max(1, len(timed.calls)), "threads_left": threads_left}


def memory_run(recording: CanonicalRecording, beds: int, hours: float, hop_s: float, mode: str = "window") -> dict:
    """RSS while ``beds`` bed paths take ``hours`` of signal each (constant scorer)."""
    from ictal.streaming.stream_step import HopTask, step_hops

    scorer = _ConstantScorer()
    before = _rss_mb()
    sessions = [BedSession(f"mem-{i}", _frontend_for(mode), recording.fs, AlarmThresholds(), hop_s=hop_s, mode=mode)
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
                if windows and mode == "stream":
                    for hop in windows:
                        (out,), _ = step_hops(scorer, [HopTask(hop, session.stream_state, session.stream_state_end)])
                        session.keep_stream_state(hop, out)
                        session.score(hop, out.probs)
                elif windows:
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
    slope = float(np.polyfit(hours_arr[steady], rss[steady], 1)[0]) if steady.sum() >= 2 else None
    ring_mb = sessions[0].pipeline.ring.capacity * len(CANONICAL_CHANNELS) * 4 / 2**20
    return {"beds": beds, "hours": hours, "before": before, "after_warmup": float(rss[steady][0]) if steady.any()
            else float(rss[0]), "end": float(rss[-1]), "slope": slope, "wall": wall, "ring_mb": ring_mb}


def _figure(value: float | None, digits: int = 3) -> float | None:
    """A figure for the JSON object: rounded, or None (never NaN or infinity)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def run(args: argparse.Namespace) -> int:
    """Run the three parts and print their tables (on stderr with ``--json``, which prints the JSON object)."""
    out = sys.stderr if args.json else sys.stdout

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    data = args.data or Path(os.environ.get("ICTAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / \
        "background" / "eegmat" / "Subject00_1.edf"
    if not data.is_file():
        print(f"ictal bench daemon: {data} not found; pass --data FILE (a 19-channel EDF)", file=sys.stderr)
        return 2
    hops = [float(h) for h in args.hops.split(",")]
    stream = args.mode == "stream"
    unit = "hop" if stream else "window"
    machine = _machine()
    say(f"machine: {machine}")
    say(f"mode: {args.mode} ({'one model step per hop per bed, state carried' if stream else 'one 60 s window per hop per bed'})")
    from ictal.streaming.config import DaemonConfig
    from ictal.streaming.daemon import apply_model_threads

    threads = apply_model_threads(DaemonConfig.model_validate(
        {"kind": "daemon", "detector": {"mode": args.mode, "device": args.device, "threads": args.threads}}))
    say(f"model threads: {threads} (torch intra-op; the daemon's detector.threads rule unless --threads)")
    recording = load_canonical(data, _frontend_for(args.mode))
    say(f"data: {data} ({recording.duration_s:.0f} s at {recording.fs:g} Hz, real EEG: EEGMAT, Zyma et al. 2019)")
    with tempfile.TemporaryDirectory(prefix="ictal-bench-daemon-") as tmp:
        work = Path(tmp)
        say(f"\n3. memory (run first, before the model and the live run allocate): {args.memory_beds} bed(s) x "
            f"{args.memory_hours:g} h of signal each through the bed path (scoring replaced by a constant)")
        mem = memory_run(recording, args.memory_beds, args.memory_hours, args.hop_s, mode=args.mode)
        per_bed = (mem["end"] - mem["before"]) / mem["beds"]
        say(f"  RSS before the beds {mem['before']:.0f} MB, after 10 simulated min {mem['after_warmup']:.0f} MB, "
            f"after {mem['hours']:g} h {mem['end']:.0f} MB ({mem['wall']:.0f} s of wall time)")
        slope = ("not measured (fewer than two RSS samples after the first 10 simulated minutes: "
                 "use --memory-hours 0.5 or more)" if mem["slope"] is None
                 else f"{mem['slope']:+.2f} MB per simulated hour (all beds)")
        say(f"  memory per bed {per_bed:.1f} MB (ring buffer alone {mem['ring_mb']:.1f} MB); RSS slope after "
            f"warm-up {slope}")
        rss0 = _rss_mb()
        detector, note, load_s, n_params = _load_model(args, work)
        model_mb = _rss_mb() - rss0
        say(f"model: {note}; {n_params / 1e6:.2f} M parameters; stack {detector.stack}, backend "
            f"{detector.backend}, device {detector.device}; load + warm-up {load_s:.1f} s; RSS +{model_mb:.0f} MB")

        say("\n1. cost of one bed")
        multiple = int(getattr(detector, "stream_multiple_samples", 1)) if stream else 1
        fe_per_s, prep_per_window, windows = measure_frontend(recording, args.hop_s, detector.frontend_config,
                                                              args.mode, multiple)
        say(f"  front-end (chunks of 0.25 s)          {fe_per_s * 1e3:8.2f} ms per s of signal")
        say(f"  {unit} preparation (normalise+quality) {prep_per_window * 1e3:8.1f} ms per {unit}")
        if stream:
            step = {hop: measure_steps(detector, hop, args.max_batch) for hop in sorted(set(hops) | {args.hop_s})}
            infer1, infer1_min = measure_steps(detector, args.hop_s, 1)
            inferb, inferb_min = measure_steps(detector, args.hop_s, args.max_batch)
            model_cpu_per_item = LAST_CPU_S_PER_ITEM[0]
            say(f"  model step of {args.hop_s:g} s, batch 1           {infer1 * 1e3:8.1f} ms per bed-hop (median of 3; "
                f"min {infer1_min * 1e3:.1f})")
            say(f"  model step of {args.hop_s:g} s, batch {args.max_batch:<3d}         {inferb * 1e3:8.1f} ms per bed-hop "
                f"(median of 3; min {inferb_min * 1e3:.1f})")
        else:
            infer1, infer1_min = measure_inference(detector, windows, 1)
            inferb, inferb_min = measure_inference(detector, windows, args.max_batch)
            model_cpu_per_item = LAST_CPU_S_PER_ITEM[0]
            step = {hop: (inferb, inferb_min) for hop in hops}
            say(f"  model, batch 1                         {infer1 * 1e3:8.0f} ms per window (median of 3; "
                f"min {infer1_min * 1e3:.0f})")
            say(f"  model, batch {args.max_batch:<3d}                     {inferb * 1e3:8.0f} ms per window (median of 3; "
                f"min {inferb_min * 1e3:.0f})")
        say(f"\n   hop_s | beds served in real time, estimate at batch {args.max_batch} (median; best) | "
            f"{unit}s per s per bed")
        capacity = {}
        for hop in hops:
            cost, cost_min = step[hop]
            capacity[hop] = 1.0 / (fe_per_s + (prep_per_window + cost) / hop)
            best = 1.0 / (fe_per_s + (prep_per_window + cost_min) / hop)
            say(f"   {hop:5g} | {capacity[hop]:8.1f} beds; {best:6.1f} beds{'':30s}| {1 / hop:.3f}")
        cpu_s_per_bed_s = fe_per_s + (prep_per_window + inferb) / args.hop_s
        model_cpu_ms = model_cpu_per_item / args.hop_s * 1e3
        say(f"  at hop {args.hop_s:g} s: {cpu_s_per_bed_s * 1e3:.1f} ms per second of one bed's signal (wall time of "
            f"front-end + preparation + model at batch {args.max_batch}); the model's CPU time alone (all threads): "
            f"{model_cpu_ms:.2f} ms per second of signal")

        beds = args.live_beds or max(1, int(1.0 / cpu_s_per_bed_s))
        say(f"\n2. live run: the daemon serving {beds} simulated bed(s) at hop {args.hop_s:g} s for "
            f"{args.live_seconds:g} s (first {'10' if stream else '60'} s of each bed at once, then real time)")
        live = live_run(detector, recording, beds, args.hop_s, args.live_seconds, args.max_batch, work, mode=args.mode)
        lat = live["latencies"]
        kept_up = live["skipped"] == 0 and live["scored"] >= 0.9 * live["due"] - beds
        say(f"  {unit}s due {live['due']:.0f}, scored {live['scored']}, skipped {live['skipped']} -> "
            f"{'served in real time' if kept_up else 'NOT served in real time'}")
        say(f"  model time in the live run: {live['model_s_per_window'] * 1e3:.1f} ms per {unit} (mean batch "
            f"{live['mean_batch']:.1f})")
        p50 = float(np.percentile(lat, 50)) if lat.size else None
        p99 = float(np.percentile(lat, 99)) if lat.size else None
        if lat.size:
            say(f"  latency, chunk completing a {unit} -> probabilities at the post-processor: "
                f"p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms (n = {lat.size} {unit}s)")
        else:
            say(f"  latency: no {unit} after the first one was scored in the live run (too slow)")

        say(f"\nestimated RSS of a daemon serving {beds} bed(s): {rss0 + model_mb + per_bed * beds:.0f} MB "
            f"(process {rss0:.0f} MB + model {model_mb:.0f} MB + {beds} x {per_bed:.1f} MB); windows of "
            f"{WINDOW_SAMPLES} samples")
    if args.json:
        preset = detector.checkpoint.model_config.name
        print(json.dumps({
            "mode": args.mode, "preset": preset, "stack": detector.stack, "backend": detector.backend,
            "device": str(detector.device), "hop_s": args.hop_s, "max_batch": args.max_batch, "threads": threads,
            # work per bed: front-end and preparation (single-threaded, timed) + the model's CPU time
            "cpu_ms_per_bed_second": _figure((fe_per_s + prep_per_window / args.hop_s) * 1e3 + model_cpu_ms),
            "wall_ms_per_bed_second": _figure(cpu_s_per_bed_s * 1e3),
            "beds_realtime_estimate": _figure(1.0 / cpu_s_per_bed_s, 1),
            "latency_p50_s": _figure(p50), "latency_p99_s": _figure(p99),
            "rss_mb_per_bed": _figure(per_bed, 2), "rss_slope_mb_per_h": _figure(mem["slope"], 2),
            "model_cpu_ms_per_bed_second": _figure(model_cpu_ms),
            "live_beds": beds, "live_kept_up": bool(kept_up), "machine": machine,
        }))
    if live["threads_left"]:
        # a batch abandoned at the live run's shutdown is still in native code: finalising the interpreter
        # under it aborts the process (as `ictal serve` does, end without finalisation; output flushed)
        say(f"(threads still in native code after the live run: {', '.join(live['threads_left'])}; exiting "
            "without interpreter finalisation)")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
