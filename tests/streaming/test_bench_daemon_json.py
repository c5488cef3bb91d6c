"""`ictal bench daemon --mode window|stream --json` prints one JSON object with the contract keys.

The figures are measured, not asserted (speed goals are read from the benchmark's output, not tested).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

KEYS = ("mode", "preset", "stack", "hop_s", "cpu_ms_per_bed_second", "beds_realtime_estimate", "latency_p50_s",
        "latency_p99_s", "rss_mb_per_bed")


@pytest.mark.parametrize(("mode", "threads"), [("stream", 1), ("window", None)])
def test_bench_daemon_json_prints_one_object_per_mode(shared_data, mode, threads):
    data = shared_data / "background" / "eegmat" / "Subject00_1.edf"
    result = subprocess.run(
        [sys.executable, "-m", "ictal", "bench", "daemon", "--mode", mode, "--json", "--data", str(data),
         "--memory-hours", "0.05", "--memory-beds", "1", "--live-seconds", "4", "--live-beds", "1", "--hops", "4",
         "--max-batch", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    obj = json.loads(result.stdout)  # stdout holds the one object; the tables went to stderr
    for key in KEYS:
        assert key in obj, key
    assert obj["mode"] == mode and obj["preset"] == "tiny" and obj["hop_s"] == 4.0
    assert obj["cpu_ms_per_bed_second"] > 0 and obj["beds_realtime_estimate"] > 0
    assert 0 < obj["latency_p50_s"] <= obj["latency_p99_s"]
    if threads is not None:
        assert obj["threads"] == threads  # the daemon's rule: one model thread in stream mode on a CPU
    assert not re.search(r"\bnan\b", result.stdout + result.stderr, re.IGNORECASE)  # never NaN as a figure
