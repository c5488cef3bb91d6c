"""`python -m tests.alarms.bench_metrics_scrape`: size and cost of a /metrics scrape, plain and HTTPS with basic auth.

Prints a table of figures with units and the machine; asserts nothing. Builds the daemon's metric
composition (``IctalMetrics`` and ``streaming.daemon_metrics.DaemonMetrics`` in one registry) with
``--beds`` beds registered and 19 channels of quality each, serves it on loopback and scrapes it
``--scrapes`` times; HTTPS uses a throw-away self-signed certificate (the ``openssl`` command).
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmThresholds, MetricsBasicAuthConfig, MetricsConfig, MetricsTLSConfig
from ictal.alarms.metrics import IctalMetrics, serve_metrics
from ictal.alarms.metrics_auth import BasicAuth, hash_password
from ictal.streaming.daemon_metrics import DaemonMetrics

CHANNELS = [f"ch{i:02d}" for i in range(19)]


def _machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _metrics(n_beds: int) -> IctalMetrics:
    metrics = IctalMetrics()
    daemon_metrics = DaemonMetrics(metrics.registry)
    metrics.set_model_info(stack="bench", backend="none", device="cpu", checkpoint_id="bench")
    for i in range(n_beds):
        bed = f"bed-{i:03d}"
        metrics.set_thresholds(bed, AlarmThresholds())
        metrics.set_channel_quality(bed, dict.fromkeys(CHANNELS, True))
        metrics.set_probability(bed, 0.1)
        daemon_metrics.bed_monitored.labels(bed=bed).set(1)
        for state in ("connecting", "monitored", "not_monitored"):
            daemon_metrics.bed_state.labels(bed=bed, state=state).set(state == "monitored")
    return metrics


def _scrape_times(url: str, n: int, headers: dict[str, str], context: ssl.SSLContext | None) -> tuple[np.ndarray, int]:
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            size = len(response.read())
        times.append(time.perf_counter() - t0)
    return np.asarray(times), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, default=64)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args(argv)
    metrics = _metrics(args.beds)
    series = sum(len(family.samples) for family in metrics.registry.collect())
    server = serve_metrics(MetricsConfig(port=0), metrics)
    try:
        plain, size = _scrape_times(server.url, args.scrapes, {}, None)
    finally:
        server.close()
    rows = [("machine", _machine(), ""), ("load average (1, 5, 15 min)", " ".join(f"{x:.2f}" for x in os.getloadavg()), ""),
            (f"series in one scrape, {args.beds} beds", f"{series:,}", "samples"),
            ("exposition size", f"{size / 1024:.1f}", "KiB"),
            ("plain HTTP scrape p50", f"{np.percentile(plain, 50) * 1e3:.2f}", "ms"),
            ("plain HTTP scrape p99", f"{np.percentile(plain, 99) * 1e3:.2f}", "ms")]
    t0 = time.perf_counter()
    hashed = hash_password("bench-password")
    auth = BasicAuth(MetricsBasicAuthConfig(username="prom", password_hash=hashed))
    header = "Basic " + base64.b64encode(b"prom:bench-password").decode()
    t1 = time.perf_counter()
    auth.check(header)
    t2 = time.perf_counter()
    for _ in range(1000):
        auth.check(header)
    t3 = time.perf_counter()
    rows += [("pbkdf2_sha256 hash (600,000 iterations)", f"{(t1 - t0) * 1e3:.0f}", "ms"),
             ("basic auth: first check of a header", f"{(t2 - t1) * 1e3:.0f}", "ms"),
             ("basic auth: header seen before", f"{(t3 - t2) / 1000 * 1e6:.1f}", "us")]
    openssl = shutil.which("openssl")
    if openssl is None:
        rows.append(("HTTPS scrape", "skipped: no openssl command", ""))
    else:
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                            "-out", str(cert)], check=True, capture_output=True)
            config = MetricsConfig(host="127.0.0.1", port=0, tls=MetricsTLSConfig(certfile=cert, keyfile=key),
                                   basic_auth=MetricsBasicAuthConfig(username="prom", password_hash=hashed))
            server = serve_metrics(config, metrics)
            try:
                context = ssl.create_default_context(cafile=str(cert))
                _scrape_times(server.url, 1, {"Authorization": header}, context)  # the one slow check
                secure, _ = _scrape_times(server.url, args.scrapes, {"Authorization": header}, context)
            finally:
                server.close()
        rows += [("HTTPS + basic auth scrape p50 (new TLS session each)", f"{np.percentile(secure, 50) * 1e3:.2f}", "ms"),
                 ("HTTPS + basic auth scrape p99", f"{np.percentile(secure, 99) * 1e3:.2f}", "ms")]
    width = max(len(r[0]) for r in rows)
    print("ictal bench metrics")
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>14} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
