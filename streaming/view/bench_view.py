"""Benchmark: does the EEG page slow scoring? Scoring latency without the view, and with it and N viewers.

``python -m ictal.streaming.view.bench_view [--beds 4] [--viewers 4] [--seconds 60] [--checkpoint DIR]``

Two runs of the real daemon (``streaming.daemon.Daemon``: bed threads, scoring loop, journal,
publisher), each on ``--beds`` beds replaying a real recording in real time (looped):

1. without the view;
2. with the view attached (``streaming.view.live.attach_view``: the tapped sources, the scoring
   observer, the journal feed) and ``--viewers`` clients, each doing what a page in "follow live" does:
   one server-sent-events connection read continuously, and a 10 s EEG page of its bed fetched every
   second.

Scoring latency is the daemon's own (``ictal_scoring_latency_seconds``): from the arrival of the chunk
completing a window to its probabilities, measured here per window through ``ScoringLoop.on_scored``.
Printed: windows scored, latency p50/p95/p99/max, process CPU seconds, bytes sent to the viewers, the
machine and its load. Asserts nothing.

Without ``--checkpoint`` the scorer is a stand-in with a fixed cost per batch (``--scorer-ms``, numpy
work that, like PyTorch, releases the GIL), so the figures show the view's own cost rather than a slow
CPU model's queue; with it, the checkpoint's model (``detector.inference.Detector``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmsConfig, JournalConfig, MetricsConfig, PublisherConfig
from ictal.detector.machine import cpu_model
from ictal.streaming.config import (
    BedConfig,
    DaemonConfig,
    DetectorRuntimeConfig,
    EdfSourceConfig,
    SchedulerConfig,
)
from ictal.streaming.daemon import Daemon
from ictal.streaming.view.config import ViewConfig
from ictal.streaming.view.hub import ViewHub
from ictal.streaming.view.live import attach_view
from ictal.streaming.view.server import ViewServer

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EDF = REPO_ROOT.parent / "shared" / "data" / "labelled" / "hms_1628180742.edf"


class FixedCostScorer:
    """Stand-in model: ``cost_ms`` of numpy work per batch (GIL released, as in PyTorch), then p = 0.1."""

    max_batch = 32

    def __init__(self, cost_ms: float) -> None:
        self.cost_ms = cost_ms
        self.model_id, self.stack, self.backend, self.device = "fixed-cost", "none", "numpy", "cpu"
        self._a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
        t0 = time.perf_counter()
        for _ in range(10):
            self._a @ self._a
        self._reps = max(1, int(cost_ms / 1000 / ((time.perf_counter() - t0) / 10)))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        for _ in range(self._reps):
            self._a @ self._a
        return np.full((windows.shape[0], windows.shape[2]), 0.1, np.float32)


def _config(tmp: Path, edf: Path, beds: int) -> DaemonConfig:
    return DaemonConfig(
        beds=[BedConfig(bed_id=f"bed-{i + 1}", source=EdfSourceConfig(path=edf, speed=1.0, loop=True))
              for i in range(beds)],
        scheduler=SchedulerConfig(hop_s=4.0),
        detector=DetectorRuntimeConfig(checkpoint=tmp / "unused"),
        alarms=AlarmsConfig(
            journal=JournalConfig(path=tmp / "journal.sqlite3"),
            publisher=PublisherConfig(pub_endpoint="tcp://127.0.0.1:*", catchup_endpoint="tcp://127.0.0.1:*"),
            metrics=MetricsConfig(port=0)),
    )


def _viewer(port: int, bed: str, stop: threading.Event, counts: dict, t_start: float) -> None:
    """What a page following a bed live asks: one SSE stream, and its last 10 s of EEG every second
    (stream time is about the time since the start: real-time replay)."""
    sse = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    sse.request("GET", "/api/updates")
    stream = sse.getresponse()
    page = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def read_stream() -> None:
        while not stop.is_set():
            try:
                data = stream.read1(65536)
            except (OSError, AttributeError, http.client.HTTPException):
                return  # the connection was closed at the end of the run (AttributeError: by close())
            if not data:
                return
            counts["bytes"] += len(data)

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    while not stop.wait(1.0):
        end_s = time.monotonic() - t_start
        page.request("GET", f"/api/beds/{bed}/eeg?start_s={end_s - 12:.2f}&duration_s=12",
                     headers={"Accept-Encoding": "gzip"})  # as a browser
        counts["bytes"] += len(page.getresponse().read())
        counts["pages"] += 1
    sse.close()
    page.close()


def _run(scorer, edf: Path, beds: int, seconds: float, viewers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(_config(Path(tmp), edf, beds), scorer)
        latencies: list[float] = []
        daemon.scoring.on_scored = lambda bed, pending, result: latencies.append(time.monotonic() - pending.arrived_mono)
        feed = server = None
        stop = threading.Event()
        counts = {"bytes": 0, "pages": 0}
        threads = []
        if viewers:
            hub = ViewHub(10.0)
            feed = attach_view(daemon, hub)
            server = ViewServer(hub, ViewConfig(port=0)).start()
        daemon.start()
        t_start = time.monotonic()
        try:
            if viewers:
                for i in range(viewers):
                    t = threading.Thread(target=_viewer, args=(server.port, f"bed-{i % beds + 1}", stop, counts, t_start),
                                         daemon=True)
                    t.start()
                    threads.append(t)
            cpu0 = time.process_time()
            time.sleep(seconds)
            cpu = time.process_time() - cpu0
        finally:
            stop.set()
            for t in threads:
                t.join(5)
            daemon.shutdown()
            if feed is not None:
                feed.close()
            if server is not None:
                server.close()
        warm = latencies[beds * 2:]  # the first windows of each bed wait for the warm-up batch
        return {"windows": len(latencies), "lat": np.asarray(warm or [np.nan]) * 1000, "cpu_s": cpu, **counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beds", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of each run (default 60)")
    parser.add_argument("--edf", type=Path, default=DEFAULT_EDF, help="recording replayed on every bed")
    parser.add_argument("--checkpoint", type=Path, default=None, help="score with this checkpoint's model")
    parser.add_argument("--scorer-ms", type=float, default=30.0, help="stand-in model's cost per batch (ms)")
    args = parser.parse_args(argv)
    if args.checkpoint is not None:
        from ictal.detector.inference import Detector

        scorer = Detector.from_checkpoint(args.checkpoint, device="cpu")
        what = f"checkpoint {args.checkpoint}"
    else:
        scorer = FixedCostScorer(args.scorer_ms)
        what = f"stand-in scorer, {args.scorer_ms:g} ms per batch"
    print(f"machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.beds} beds replaying {args.edf.name} in real time, hop 4 s, {what}, {args.seconds:g} s per run")
    print(f"{'run':<22}{'windows':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU s':>8}"
          f"{'to viewers':>12}")
    for viewers in (0, args.viewers):
        r = _run(scorer, args.edf, args.beds, args.seconds, viewers)
        lat = r["lat"]
        name = "no view" if viewers == 0 else f"view + {viewers} viewers"
        sent = "-" if viewers == 0 else f"{r['bytes'] / 1e6:.1f} MB"
        print(f"{name:<22}{r['windows']:>8}{np.percentile(lat, 50):>9.1f}{np.percentile(lat, 95):>9.1f}"
              f"{np.percentile(lat, 99):>9.1f}{lat.max():>9.1f}{r['cpu_s']:>8.1f}{sent:>12}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
