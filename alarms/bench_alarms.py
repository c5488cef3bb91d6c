"""`ictal bench alarms`: journal + publish throughput, journal-append latency, catch-up, post-processor.

Prints a table of figures with units and the machine; asserts nothing. Uses a temporary directory
(or ``--dir``: put it on the disk the daemon's journal will live on, fsync cost depends on it) and
loopback ports chosen by the system.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmThresholds, JournalConfig, PublisherConfig
from ictal.alarms.journal import Journal
from ictal.alarms.postprocess import detect_events
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent, ModelInfo, Probability
from ictal.alarms.subscriber import AlarmSubscriber


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ictal bench alarms`."""
    parser.add_argument("--events", type=int, default=2000, help="Events published one by one (default 2000).")
    parser.add_argument("--catchup", type=int, default=100_000, help="Journal size for the catch-up (100000).")
    parser.add_argument("--hours", type=float, default=24.0, help="Hours of 256 Hz probability for the "
                        "post-processor figure (default 24).")
    parser.add_argument("--dir", type=Path, default=None, help="Directory of the journal (default: a temp dir).")


def _event(i: int) -> AlarmEvent:
    return AlarmEvent(kind="onset", bed_id=f"bed{i % 8}", onset_s=float(i), stream_time_s=float(i) + 10.0,
                      probability=Probability(peak=0.95, mean=0.9),
                      model=ModelInfo(model_id="bench", stack="bimamba2"), thresholds=AlarmThresholds())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw_fsync_latencies(directory: Path, n: int) -> np.ndarray:
    """Seconds per 1 KiB append + os.fsync on ``directory``'s disk: the floor under a durable append."""
    out = np.empty(n)
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        for i in range(n):
            t0 = time.perf_counter()
            f.write(b"x" * 1024)
            f.flush()
            os.fsync(f.fileno())
            out[i] = time.perf_counter() - t0
    return out


def _machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table."""
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        journal = Journal(JournalConfig(path=Path(tmp) / "bench.sqlite3"))
        config = PublisherConfig(pub_endpoint=f"tcp://127.0.0.1:{_free_port()}",
                                 catchup_endpoint=f"tcp://127.0.0.1:{_free_port()}", heartbeat_s=5.0)
        publisher = AlarmPublisher(config, journal)
        events = [_event(i) for i in range(args.events)]
        append_s = np.empty(args.events)
        t_all = time.perf_counter()
        for i, event in enumerate(events):
            t0 = time.perf_counter()
            journal.append(event)
            append_s[i] = time.perf_counter() - t0
        append_total = time.perf_counter() - t_all
        # a new event each time (an event_id is journaled once); building it is part of the figure
        t_pub = time.perf_counter()
        for i in range(args.events):
            publisher.publish(_event(i))
        publish_total = time.perf_counter() - t_pub

        # fill the journal up to --catchup events (bulk, one transaction per 10 000), then catch up
        missing = max(0, args.catchup - journal.last_seq)
        for start in range(0, missing, 10_000):
            journal.append_many([_event(i) for i in range(start, min(missing, start + 10_000))])
        subscriber = AlarmSubscriber(publisher.pub_endpoint, publisher.catchup_endpoint, since=0,
                                     request_timeout_s=60.0)
        t_cu = time.perf_counter()
        caught = subscriber.catch_up()
        catchup_total = time.perf_counter() - t_cu
        subscriber.close()
        publisher.close()
        size = journal.size_bytes()
        journal.close()

    fsync_s = _raw_fsync_latencies(args.dir or Path(tempfile.gettempdir()), min(200, args.events))
    rng = np.random.default_rng(0)
    n = int(args.hours * 3600 * 256)
    # smoothed noise with seizure-like bumps, so the state machine sees many transitions
    probs = np.clip(np.repeat(rng.random(n // 256 + 1), 256)[:n] ** 6, 0.0, 1.0)
    t_pp = time.perf_counter()
    found = detect_events(probs, 256.0, AlarmThresholds(min_duration_s=2.0, merge_gap_s=2.0, refractory_s=0.0))
    pp_total = time.perf_counter() - t_pp

    rows = [
        ("machine", _machine(), ""),
        ("journal directory", str(args.dir or tempfile.gettempdir()), ""),
        ("journal append (fsync), one by one", f"{args.events / append_total:,.0f}", "events/s"),
        ("journal append latency p50", f"{np.percentile(append_s, 50) * 1e3:.2f}", "ms"),
        ("journal append latency p99 (goal < 5 ms)", f"{np.percentile(append_s, 99) * 1e3:.2f}", "ms"),
        ("journal append latency max", f"{append_s.max() * 1e3:.2f}", "ms"),
        ("disk floor: raw write + fsync of 1 KiB, p50", f"{np.percentile(fsync_s, 50) * 1e3:.2f}", "ms"),
        ("disk floor: raw write + fsync of 1 KiB, p99", f"{np.percentile(fsync_s, 99) * 1e3:.2f}", "ms"),
        ("journal + publish, one by one", f"{args.events / publish_total:,.0f}", "events/s"),
        (f"catch-up of {len(caught):,} events over REQ/REP", f"{catchup_total:.2f}", "s"),
        ("catch-up rate", f"{len(caught) / catchup_total:,.0f}", "events/s"),
        ("journal size", f"{size / 2**20:.1f}", "MiB"),
        (f"post-processor, {args.hours:g} h at 256 Hz ({len(found)} events)", f"{pp_total:.3f}", "s"),
    ]
    width = max(len(r[0]) for r in rows)
    print("ictal bench alarms")
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>14} {unit}")
    return 0
