"""Local flood of the catch-up endpoint: daemon memory and responsiveness (issue 15, item 10).

``python -m ictal.alarms.bench_flood`` starts a publisher in a child process (a journal of ``--events``
events, its open-file limit set to ``--nofile``, like a daemon under the usual 1024), then:

1. pipelines ``--pipelined`` catch-up requests ``{"since": 0}`` from one DEALER socket that never
   reads its replies, and reports the child's resident memory (VmRSS) before and after;
2. opens ``--idle`` raw TCP connections to the catch-up port that never speak, and reports how many
   the child kept, its open descriptors, and whether a polite REQ client (as ``ictal alarms watch``)
   is still answered, and how fast.

Prints a table with the machine line; asserts nothing. ``--pythonpath DIR`` runs the child on another
checkout's ``alarms`` package (e.g. the code before the fix, exported with ``git archive``), so both
can be measured on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

_CHILD = r"""
import resource, sys, time
from pathlib import Path
nofile = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from ictal.alarms.config import JournalConfig, PublisherConfig
from ictal.alarms.journal import Journal
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent, ModelInfo, Probability
journal = Journal(JournalConfig(path=Path(sys.argv[1]) / "journal.sqlite3"))
n = int(sys.argv[2])
def event(i):
    return AlarmEvent(kind="onset", bed_id=f"bed{i % 8}", onset_s=float(i), stream_time_s=float(i) + 10.0,
                      probability=Probability(peak=0.95, mean=0.9), model=ModelInfo(model_id="bench", stack="bimamba2"))
for start in range(0, n, 5000):
    journal.append_many([event(i) for i in range(start, min(n, start + 5000))])
publisher = AlarmPublisher(PublisherConfig(pub_endpoint="tcp://127.0.0.1:*", catchup_endpoint="tcp://127.0.0.1:*"),
                           journal)
print(publisher.catchup_endpoint, flush=True)
sys.stdin.read()
"""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _polite(endpoint: str, timeout_s: float) -> float | None:
    """Seconds for one REQ round trip of ``{"since": <head - 10>}``; None without a reply in ``timeout_s``."""
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(endpoint)
    try:
        t0 = time.perf_counter()
        req.send(b'{"since": 0, "limit": 10}')
        if not req.poll(int(timeout_s * 1000)):
            return None
        json.loads(req.recv())
        return time.perf_counter() - t0
    finally:
        req.close(linger=0)
        ctx.term()


def _machine() -> str:
    load = os.getloadavg()
    return (f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"libzmq {zmq.zmq_version()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the flood benchmark."""
    parser.add_argument("--events", type=int, default=20_005, help="Events in the journal (default 20005).")
    parser.add_argument("--pipelined", type=int, default=400, help="Pipelined requests (default 400).")
    parser.add_argument("--idle", type=int, default=1100, help="Idle TCP connections (default 1100).")
    parser.add_argument("--nofile", type=int, default=1024, help="Open-file limit of the child (default 1024).")
    parser.add_argument("--settle", type=float, default=5.0, help="Seconds to let each flood act (default 5).")
    parser.add_argument("--pythonpath", type=Path, default=None,
                        help="Run the child on the alarms package under this directory (default: this one).")


def run(args: argparse.Namespace) -> int:
    """Run the floods and print the table."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.idle + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.idle + 200), hard))
    code_dir = args.pythonpath or Path(__file__).resolve().parents[1]
    rows: list[tuple[str, str, str]] = [("machine", _machine(), ""), ("child code", str(code_dir), "")]
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, tmp, str(args.events), str(args.nofile)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 cwd=code_dir, env={**os.environ, "PYTHONPATH": str(code_dir)})
        ctx = zmq.Context()
        idle: list[socket.socket] = []
        try:
            endpoint = child.stdout.readline().strip()
            if not endpoint:
                raise RuntimeError("the publisher child did not start")
            port = int(endpoint.rpartition(":")[2])
            time.sleep(1.0)
            rows.append(("child RSS at start", f"{_rss_mb(child.pid):.0f}", "MB"))
            rows.append(("polite round trip, quiet", f"{(_polite(endpoint, 10.0) or float('nan')) * 1e3:.1f}", "ms"))
            greedy = ctx.socket(zmq.DEALER)
            greedy.setsockopt(zmq.LINGER, 0)
            greedy.setsockopt(zmq.RCVHWM, 1)
            greedy.connect(endpoint)
            t0 = time.perf_counter()
            for _ in range(args.pipelined):
                greedy.send_multipart([b"", b'{"since": 0}'])
            peak = 0.0
            while time.perf_counter() - t0 < args.settle:
                peak = max(peak, _rss_mb(child.pid))
                time.sleep(0.1)
            during = _polite(endpoint, 30.0)
            rows.append((f"child RSS peak, {args.pipelined} pipelined requests unread", f"{peak:.0f}", "MB"))
            rows.append(("polite round trip during the pipelining",
                         "no reply in 30 s" if during is None else f"{during * 1e3:.1f}", "" if during is None else "ms"))
            greedy.close(linger=0)
            time.sleep(1.0)
            rows.append(("child RSS after the pipelining peer left", f"{_rss_mb(child.pid):.0f}", "MB"))
            fds_before = _fds(child.pid)
            refused = 0
            for _ in range(args.idle):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=2.0))
                except OSError:
                    refused += 1
            time.sleep(args.settle)
            still_open = 0
            for s in idle:
                s.setblocking(False)
                try:
                    while s.recv(4096):  # the ZMTP greeting may come before the end of the stream
                        pass
                except BlockingIOError:
                    still_open += 1  # nothing more to read, not closed
                except OSError:
                    pass  # reset by the child: closed
            rows.append((f"idle connections opened / kept by the child (limit {args.nofile} files)",
                         f"{args.idle - refused} / {still_open}", ""))
            rows.append(("child open descriptors before / with them", f"{fds_before} / {_fds(child.pid)}", ""))
            with_idle = _polite(endpoint, 30.0)
            rows.append(("polite round trip with the idle connections",
                         "no reply in 30 s" if with_idle is None else f"{with_idle * 1e3:.1f}",
                         "" if with_idle is None else "ms"))
            rows.append(("child RSS with the idle connections", f"{_rss_mb(child.pid):.0f}", "MB"))
        finally:
            for s in idle:
                s.close()
            ctx.term()
            child.stdin.close()
            child.terminate()
            child.wait(timeout=30)
    width = max(len(r[0]) for r in rows)
    print("alarms catch-up flood")
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>14} {unit}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ictal.alarms.bench_flood``."""
    parser = argparse.ArgumentParser(prog="python -m ictal.alarms.bench_flood", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
