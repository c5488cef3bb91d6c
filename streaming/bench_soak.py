"""`ictal bench soak`: many beds x hours of real EEG through the real daemon: RSS slope, lost events.

Prints figures with units and the machine; asserts nothing (``tests/reliability/test_soak.py`` runs a
short soak and asserts on the returned :class:`SoakResult`).

What runs
---------
The production daemon (``streaming.daemon.Daemon``: bed threads, front-end, ring buffers, scheduler,
scoring loop, post-processor, journal with fsync, ZeroMQ publisher, metrics endpoint) in a child
process of its own (``python -m ictal.streaming.bench_soak --child CONFIG``), so that its RSS is measured
alone. Bed ``k`` replays a real EEGMAT recording (``SubjectKK_1.edf``, 500 Hz, 182 s; the files are
looped) through ``EdfReplaySource`` paced at ``--speed`` times real time: "as fast as the machine
allows" is the fastest pace at which no window is skipped (``ictal_windows_skipped_total`` is
reported; raise or lower ``--speed`` accordingly). The model is, by default, a constant-probability
stand-in (0.95: every bed is in alarm, and ``max_duration_s`` re-announces the alarm every
``--alarm-every-s`` of stream, so that hours of seizure-free EEG still produce a steady flow of
onset/offset events to count); ``--checkpoint`` runs a real model instead (then CPU-bound: minutes of
EEG, not hours, on a CPU).

A subscriber (``alarms.subscriber.AlarmSubscriber``: catch-up then live, heartbeat-checked) runs in
this process for the whole soak. When every bed has replayed ``--hours`` of EEG, the bed list is
emptied by a SIGHUP reload (every open alarm is closed, reason ``bed_removed``), the metrics are
scraped and the journal is read; then SIGTERM.

Figures
-------
- stream hours per bed, wall time, pace achieved (stream seconds per wall second, all beds);
- windows scored and skipped, events per kind;
- RSS of the daemon: after warm-up, at the end, peak; slope in MB per stream hour (least squares over
  the samples after the first ``--warmup-fraction`` of the run) and in MB per wall hour;
- consistency: journal sequence contiguous; subscriber == journal (same events, no gap, no duplicate);
  metrics == journal (onsets per bed = ``ictal_alarms_raised_total``; events per kind =
  ``ictal_events_published_total``; samples received per bed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ictal.detector.machine import cpu_model

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "background" / "eegmat"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ictal bench soak``."""
    parser.add_argument("--beds", type=int, default=4, help="Beds served by the daemon (default 4).")
    parser.add_argument("--hours", type=float, default=24.0, help="Hours of EEG replayed per bed (default 24).")
    parser.add_argument("--speed", type=float, default=300.0,
                        help="Replay pace, times real time, per bed (default 300; lower it if windows are skipped).")
    parser.add_argument("--hop-s", type=float, default=4.0, help="Scheduler hop in seconds (default 4).")
    parser.add_argument("--alarm-every-s", type=float, default=600.0,
                        help="Stream seconds between re-announced alarms (max_duration_s; default 600).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="Folder of EEGMAT SubjectNN_1.edf files (default ../shared/data/background/eegmat).")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="Score with this checkpoint instead of the constant stand-in (CPU-bound).")
    parser.add_argument("--rss-every-s", type=float, default=2.0, help="Wall seconds between RSS samples.")
    parser.add_argument("--warmup-fraction", type=float, default=0.2,
                        help="Share of the run excluded from the RSS slope (default 0.2).")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the journal, config and log here.")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


# -- the daemon child -------------------------------------------------------------------------------

class ConstantScorer:
    """Probability 0.95 for every sample: scoring costs nothing, every bed is in alarm."""

    model_id = "soak-constant"
    stack = "none"
    backend = "reference"
    device = "cpu"

    def __init__(self, frontend_config, max_batch: int) -> None:
        self.frontend_config = frontend_config
        self.max_batch = max_batch

    def warmup(self) -> None:
        """Nothing to warm up."""

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[-1]), 0.95, dtype=np.float32)


def run_child(config_path: Path) -> int:
    """The daemon process of the soak (``--child CONFIG``)."""
    from ictal.config import load_config
    from ictal.streaming.daemon import Daemon, load_detector
    from ictal.streaming.logfmt import configure_logging

    config = load_config(config_path, kind="daemon")
    configure_logging(config.log_level)
    if os.environ.get("ICTAL_SOAK_CHECKPOINT"):
        detector = load_detector(config)
    else:
        detector = ConstantScorer(config.frontend, config.detector.max_batch)
    return Daemon(config, detector, config_path=config_path).run()


# -- the parent -------------------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"VmRSS not found for pid {pid}")


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _machine() -> str:
    cpu = cpu_model()
    load = os.getloadavg()
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
            f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (cores shared with other processes: figures are noisy)")


@dataclass
class SoakResult:
    """What a soak measured (see the module docstring)."""

    beds: list[str]
    fs_hz: dict[str, float]
    stream_hours: dict[str, float]
    wall_s: float
    windows_scored: dict[str, float]
    windows_skipped: dict[str, float]
    journal_kinds: Counter
    journal_seqs: list[int]
    subscriber_seqs: list[int]
    subscriber_duplicates: int
    subscriber_matches_journal: bool
    onsets_journal: dict[str, int]
    onsets_metric: dict[str, float]
    published_metric: dict[str, float]
    samples_metric: dict[str, float]
    rss: list[tuple[float, float, float]] = field(default_factory=list)  # (wall s, stream h per bed, MB)
    slope_mb_per_stream_h: float = float("nan")
    slope_mb_per_wall_h: float = float("nan")
    exit_code: int | None = None
    log_tail: str = ""

    @property
    def journal_contiguous(self) -> bool:
        return self.journal_seqs == list(range(1, len(self.journal_seqs) + 1))

    @property
    def events_lost(self) -> int:
        return len(set(self.journal_seqs) - set(self.subscriber_seqs))


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 3 or max(xs) - min(xs) <= 0:
        return float("nan")
    return float(np.polyfit(np.asarray(xs), np.asarray(ys), 1)[0])


def soak(beds: int, hours: float, speed: float, *, hop_s: float = 4.0, alarm_every_s: float = 600.0,
         data: Path = DEFAULT_DATA, checkpoint: Path | None = None, rss_every_s: float = 2.0,
         warmup_fraction: float = 0.2, workdir: Path | None = None, progress=print) -> SoakResult:
    """Run one soak and return its figures (see the module docstring).

    Raises
    ------
    FileNotFoundError
        If the EEGMAT files are missing.
    RuntimeError
        If the daemon exits before the end.
    """
    from ictal.alarms.subscriber import AlarmSubscriber

    files = sorted(Path(data).glob("Subject*_1.edf"))
    if not files:
        raise FileNotFoundError(f"no EEGMAT SubjectNN_1.edf file in {data}")
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="ictal-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    bed_ids = [f"soak-{k:02d}" for k in range(beds)]
    pub, catchup, metrics_port = _free_port(), _free_port(), _free_port()
    config = {
        "kind": "daemon",
        "log_level": "WARNING",
        "beds": [{"bed_id": bed, "source": {"type": "edf", "path": str(files[k % len(files)]), "speed": speed,
                                             "loop": True, "chunk_s": 0.25}}
                 for k, bed in enumerate(bed_ids)],
        "scheduler": {"hop_s": hop_s},
        "detector": {"checkpoint": str(checkpoint or folder / "none"), "device": "cpu", "max_batch": 8},
        "alarms": {
            "thresholds": {"tau_on": 0.8, "tau_off": 0.5, "min_duration_s": 10.0, "max_duration_s": alarm_every_s,
                           "merge_gap_s": 0.0, "refractory_s": 0.0},
            "journal": {"path": str(folder / "journal.sqlite3")},
            "publisher": {"pub_endpoint": f"tcp://127.0.0.1:{pub}", "catchup_endpoint": f"tcp://127.0.0.1:{catchup}",
                          "heartbeat_s": 1.0},
            "metrics": {"port": metrics_port},
        },
    }
    config_path = folder / "daemon.yaml"
    config_path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if checkpoint is not None:
        env["ICTAL_SOAK_CHECKPOINT"] = "1"
    log_path = folder / "daemon.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ictal.streaming.bench_soak", "--child", str(config_path)],
                                cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.monotonic()

    def scrape() -> dict | None:
        try:
            return _scrape(url)
        except OSError:
            return None

    try:
        while scrape() is None:
            if proc.poll() is not None:
                raise RuntimeError(f"the soak daemon exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        subscriber = AlarmSubscriber(f"tcp://127.0.0.1:{pub}", f"tcp://127.0.0.1:{catchup}",
                                     heartbeat_timeout_s=10.0, request_timeout_s=30.0)
        received: list[dict] = []
        stop = threading.Event()
        thread = threading.Thread(target=lambda: received.extend(
            e.model_dump(mode="json") for e in subscriber.iter_events(stop)), daemon=True)
        thread.start()
        fs = {bed: 500.0 for bed in bed_ids}
        rss: list[tuple[float, float, float]] = []
        last_print = 0.0
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the soak daemon exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            values = scrape() or {}
            stream_h = min(values.get(("ictal_samples_received_total", (("bed", bed),)), 0.0) / fs[bed] / 3600
                           for bed in bed_ids)
            rss.append((time.monotonic() - t0, stream_h, _rss_mb(proc.pid)))
            if time.monotonic() - last_print > 30:
                last_print = time.monotonic()
                progress(f"  {time.monotonic() - t0:7.0f} s wall: {stream_h:6.2f} h of EEG per bed, daemon RSS "
                         f"{rss[-1][2]:.1f} MB")
            if stream_h >= hours:
                break
            time.sleep(rss_every_s)
        wall_s = time.monotonic() - t0
        config["beds"] = []  # SIGHUP: every bed stops, every open alarm is closed (reason bed_removed)
        config_path.write_text(yaml.safe_dump(config))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (scrape() or {}).get(("ictal_beds", ()), 1.0) != 0.0:
            time.sleep(0.5)
        time.sleep(2.0)  # the last events reach the subscriber
        values = scrape() or {}
        journal = _catch_up_all(f"tcp://127.0.0.1:{catchup}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not received or received[-1]["journal_seq"] < journal[-1]["journal_seq"]):
            time.sleep(0.2)
        stop.set()
        thread.join(timeout=10)
        subscriber_dups = subscriber.duplicates
        subscriber.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    by_seq = {e["journal_seq"]: e for e in journal}
    sub_seqs = [e["journal_seq"] for e in received if e.get("journal_seq") is not None]
    matches = all(by_seq.get(e["journal_seq"]) == e for e in received if e.get("journal_seq") is not None)
    kinds = Counter(e["kind"] for e in journal)
    after = [(w, h, m) for w, h, m in rss if w >= warmup_fraction * wall_s]
    return SoakResult(
        beds=bed_ids, fs_hz=fs,
        stream_hours={bed: values.get(("ictal_samples_received_total", (("bed", bed),)), 0.0) / fs[bed] / 3600
                      for bed in bed_ids},
        wall_s=wall_s,
        windows_scored={bed: values.get(("ictal_windows_scored_total", (("bed", bed),)), 0.0) for bed in bed_ids},
        windows_skipped={bed: values.get(("ictal_windows_skipped_total", (("bed", bed),)), 0.0) for bed in bed_ids},
        journal_kinds=kinds, journal_seqs=[e["journal_seq"] for e in journal], subscriber_seqs=sub_seqs,
        subscriber_duplicates=subscriber_dups, subscriber_matches_journal=matches,
        onsets_journal={bed: sum(e["kind"] == "onset" and e.get("bed_id") == bed for e in journal) for bed in bed_ids},
        onsets_metric={bed: values.get(("ictal_alarms_raised_total", (("bed", bed),)), 0.0) for bed in bed_ids},
        published_metric={kind: values.get(("ictal_events_published_total", (("kind", kind),)), 0.0)
                          for kind in sorted(set(kinds) | {"heartbeat"})},
        samples_metric={bed: values.get(("ictal_samples_received_total", (("bed", bed),)), 0.0) for bed in bed_ids},
        rss=rss,
        slope_mb_per_stream_h=_slope([h for _, h, _ in after], [m for _, _, m in after]),
        slope_mb_per_wall_h=_slope([w / 3600 for w, _, _ in after], [m for _, _, m in after]),
        exit_code=proc.returncode, log_tail=log_path.read_text()[-2000:],
    )


def _catch_up_all(endpoint: str) -> list[dict]:
    import zmq

    context = zmq.Context()
    events: list[dict] = []
    since = 0
    try:
        while True:
            sock = context.socket(zmq.REQ)
            sock.setsockopt(zmq.RCVTIMEO, 30000)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            try:
                sock.send(json.dumps({"since": since}).encode())
                reply = json.loads(sock.recv())
            finally:
                sock.close()
            if not reply.get("ok"):
                raise RuntimeError(f"catch-up refused: {reply}")
            events += reply["events"]
            if not reply["more"] or not reply["events"]:
                return events
            since = reply["events"][-1]["journal_seq"]
    finally:
        context.term()


def report(result: SoakResult, speed: float, machine: str) -> str:
    """The figures as a table (units in the row names)."""
    beds = len(result.beds)
    per_bed_h = min(result.stream_hours.values())
    total_stream_s = sum(result.stream_hours.values()) * 3600
    rss = [m for _, _, m in result.rss]
    warm = next((m for w, _, m in result.rss if w >= 0.2 * result.wall_s), rss[0])
    published_total = sum(v for k, v in result.published_metric.items() if k != "heartbeat")
    journal_total = sum(v for k, v in result.journal_kinds.items() if k != "heartbeat")
    onsets_ok = all(result.onsets_journal[b] == result.onsets_metric[b] for b in result.beds)
    rows = [
        ("machine", machine),
        ("beds x EEG per bed", f"{beds} x {per_bed_h:.2f} h (EEGMAT SubjectNN_1, 500 Hz, looped)"),
        ("replay pace asked", f"{speed:g} x real time per bed"),
        ("wall time", f"{result.wall_s:.0f} s"),
        ("pace achieved", f"{total_stream_s / result.wall_s:.0f} s of EEG per wall second (all beds)"),
        ("windows scored / skipped", f"{sum(result.windows_scored.values()):.0f} / "
                                     f"{sum(result.windows_skipped.values()):.0f}"),
        ("events journaled", ", ".join(f"{k} {v}" for k, v in sorted(result.journal_kinds.items()))),
        ("journal sequence", f"1..{len(result.journal_seqs)}, contiguous: {result.journal_contiguous}"),
        ("subscriber", f"{len(result.subscriber_seqs)} journaled events received, lost {result.events_lost}, "
                       f"duplicates dropped {result.subscriber_duplicates}, identical to journal: "
                       f"{result.subscriber_matches_journal}"),
        ("metrics vs journal", f"onsets per bed equal: {onsets_ok}; events published (non-heartbeat) "
                               f"{published_total:.0f} vs journaled {journal_total}"),
        ("daemon RSS", f"{rss[0]:.1f} MB at start, {warm:.1f} MB after warm-up, {rss[-1]:.1f} MB at the end, "
                       f"peak {max(rss):.1f} MB ({len(rss)} samples)"),
        ("RSS slope after warm-up", f"{result.slope_mb_per_stream_h:+.3f} MB per hour of EEG per bed; "
                                    f"{result.slope_mb_per_wall_h:+.2f} MB per wall hour"),
        ("daemon exit code", str(result.exit_code)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``ictal bench soak`` (and of the daemon child with ``--child``)."""
    if args.child is not None:
        return run_child(args.child)
    machine = _machine()
    print(f"ictal bench soak: {args.beds} beds x {args.hours:g} h of EEG at {args.speed:g} x real time; "
          f"{'checkpoint ' + str(args.checkpoint) if args.checkpoint else 'constant stand-in model (0.95)'}",
          flush=True)
    result = soak(args.beds, args.hours, args.speed, hop_s=args.hop_s, alarm_every_s=args.alarm_every_s,
                  data=args.data, checkpoint=args.checkpoint, rss_every_s=args.rss_every_s,
                  warmup_fraction=args.warmup_fraction, workdir=args.workdir,
                  progress=lambda line: print(line, flush=True))
    print(report(result, args.speed, machine), flush=True)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m ictal.streaming.bench_soak")
    add_arguments(_parser)
    _args = _parser.parse_args()
    sys.exit(run(_args))
