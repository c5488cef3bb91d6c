"""`ictal bench frontend` runs end to end on real EEG and prints its figures with units."""

from __future__ import annotations

import os

from ictal.cli import main


def test_bench_frontend_prints_speed_memory_and_pacing_figures(shared_data, capsys):
    affinity = os.sched_getaffinity(0)
    edf = shared_data / "labelled" / "hms_1628180742.edf"
    code = main(["bench", "frontend", "--edf", str(edf), "--hours", "0.02", "--memory-s", "61",
                 "--pacing-s", "0.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert os.sched_getaffinity(0) == affinity, "the benchmark must give the CPU affinity back"
    for figure in ("x real time", "ms CPU per window", "MiB", "drift", "machine"):
        assert figure in out, f"{figure!r} missing from:\n{out}"


def test_bench_frontend_names_a_missing_recording(tmp_path, capsys):
    assert main(["bench", "frontend", "--edf", str(tmp_path / "absent.edf")]) == 2
    assert "absent.edf not found" in capsys.readouterr().out
