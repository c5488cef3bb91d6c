"""Benchmark: the /metrics endpoint of a child process under a local flood, old server against new.

Run: ``PYTHONPATH=. python tests/reliability/bench_metrics_flood.py [--idle 1100] [--half-sent 200]``

For each server (prometheus_client's ``start_http_server``, the pre-issue-15 endpoint, and
``alarms.metrics.serve_metrics``) a child process serves an ``IctalMetrics`` registry with its
descriptor limit set to 1024 (systemd's default soft ``LimitNOFILE``); the benchmark opens ``--idle``
silent connections and ``--half-sent`` unfinished requests, then scrapes. It prints the child's
descriptors, threads and RSS (from /proc) before and after, the scrape's status and time, and the
machine. It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHILD = r"""
import resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from ictal.alarms.config import MetricsConfig
from ictal.alarms.metrics import IctalMetrics, serve_metrics
metrics = IctalMetrics()
metrics.samples_received.labels(bed="bed-01").inc(1)
if sys.argv[1] == "old":
    from prometheus_client import start_http_server
    server, _ = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    port = server.server_port
else:
    port = serve_metrics(MetricsConfig(port=0), metrics).port
print(port, flush=True)
time.sleep(3600)
"""


def _proc(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(fields["Threads"]),
            "rss_mb": int(fields["VmRSS"].split()[0]) / 1024}


def _scrape(port: int) -> tuple[str, float]:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            response.read()
            return str(response.status), time.monotonic() - t0
    except OSError as exc:
        return type(exc).__name__, time.monotonic() - t0


def run(kind: str, idle: int, half_sent: int) -> dict[str, object]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    socks: list[socket.socket] = []
    try:
        port = int(child.stdout.readline())
        _scrape(port)
        before = _proc(child.pid)
        opened = 0
        for i in range(idle + half_sent):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                if i >= idle:
                    sock.sendall(b"GET /metr")
                socks.append(sock)
                opened += 1
            except OSError:
                break
        time.sleep(1.0)
        during = _proc(child.pid)
        status, seconds = _scrape(port)
        return {"kind": kind, "opened": opened, "before": before, "during": during, "scrape": status,
                "scrape_s": seconds}
    finally:
        for sock in socks:
            sock.close()
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--half-sent", type=int, default=200)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.idle + args.half_sent + 512), hard))
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load {os.getloadavg()[0]:.2f}; child RLIMIT_NOFILE 1024; "
          f"flood: {args.idle} idle + {args.half_sent} half-sent connections")
    print(f"{'server':<12}{'opened':>8}{'fds before':>12}{'fds during':>12}{'threads b/d':>14}"
          f"{'RSS MB b/d':>14}{'scrape':>16}{'scrape s':>10}")
    for kind in ("old", "new"):
        r = run(kind, args.idle, args.half_sent)
        b, d = r["before"], r["during"]
        threads = f"{b['threads']}/{d['threads']}"
        rss = f"{b['rss_mb']:.0f}/{d['rss_mb']:.0f}"
        print(f"{kind:<12}{r['opened']:>8}{b['fds']:>12}{d['fds']:>12}{threads:>14}{rss:>14}{r['scrape']:>16}{r['scrape_s']:>10.3f}")


if __name__ == "__main__":
    main()
