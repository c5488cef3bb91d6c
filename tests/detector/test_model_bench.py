"""`ictal bench model` measures what its table says (run in-process on short windows)."""

from __future__ import annotations

import torch

from detector.bench_model import HEADER, _format, _measure


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
