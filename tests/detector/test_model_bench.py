"""`ictal bench model` measures what its table says (run in-process on short windows)."""

from __future__ import annotations

import torch

from ictal.detector.bench_model import HEADER, _format, _measure


def test_bench_times_every_layer_and_eigh_within_the_lpe():
    job = {"preset": "tiny", "stack": "bimamba2", "batches": [1, 2], "repeats": 1, "warmup": 0,
           "device": "cpu", "backend": "reference", "threads": None, "n_times": 512}
    real_eigh = torch.linalg.eigh
    result = _measure(job)
    assert torch.linalg.eigh is real_eigh  # the timing wrapper is removed again
    assert [row["batch"] for row in result["rows"]] == [1, 2]
    assert result["backend"] == "reference" and result["n_times"] == 512 and result["peak_mb"] > 0
    for row in result["rows"]:
        b = row["breakdown"]
        assert 0 < b["eigh"] <= b["lpe"]
        layers = ("encoder", "node_stream", "edge_stream", "adjacency", "lpe", "graph", "rest")
        parts = sum(b[k] for k in layers)
        assert 0 < parts <= row["ms_per_window"] * 1.001
        assert row["cpu_ms_per_window"] > 0
        assert abs(row["windows_per_s"] - 1e3 / row["ms_per_window"]) < 1e-6 * row["windows_per_s"]
    lines = _format(result)
    assert len(lines) == 2 and len(lines[0]) == len(HEADER)
    assert "MISSED 100" in lines[0] or "met 100" in lines[0]


def test_both_modes_give_per_bed_figures_and_stream_mode_needs_a_causal_model():
    import pytest

    job = {"preset": "tiny", "stack": "bimamba2", "batches": [1, 2], "repeats": 1, "warmup": 0,
           "device": "cpu", "backend": "reference", "threads": None, "n_times": 1024, "mode": "both",
           "hop_s": 1.0, "direction": "causal"}
    result = _measure(job)
    assert result["direction"] == "causal"
    modes = [(row["mode"], row["batch"]) for row in result["rows"]]
    assert modes == [("stream", 1), ("stream", 2), ("window", 1), ("window", 2)]
    for row in result["rows"]:
        assert row["cpu_ms_per_bed_second"] > 0 and row["beds_realtime_estimate"] > 0
        assert 0 < row["latency_p50_s"] <= row["latency_p99_s"]
        assert row["rss_mb_per_bed"] >= 0
    stream = [row for row in result["rows"] if row["mode"] == "stream"]
    assert all(row["hop_samples"] == 256 and row["state_mb_per_bed"] > 0.1 for row in stream)
    with pytest.raises(ValueError, match="causal"):
        _measure({**job, "mode": "stream", "direction": "bidirectional"})


def test_bench_model_json_prints_one_object_with_the_contract_keys():
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ictal", "bench", "model", "--presets", "tiny", "--stacks", "gated_deltanet",
         "--batches", "2", "--repeats", "1", "--warmup", "0", "--mode", "stream", "--hop-s", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    obj = json.loads(out)
    for key in ("mode", "preset", "stack", "hop_s", "cpu_ms_per_bed_second", "beds_realtime_estimate",
                "latency_p50_s", "latency_p99_s", "rss_mb_per_bed"):
        assert key in obj, key
    assert (obj["mode"], obj["preset"], obj["stack"], obj["hop_s"], obj["direction"]) == (
        "stream", "tiny", "gated_deltanet", 1.0, "causal")
    assert obj["beds_realtime_estimate"] > 0 and obj["machine"]
