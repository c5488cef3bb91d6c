"""`ictal bench alarms` runs end to end on tiny sizes and prints every figure with its unit."""

from __future__ import annotations

import argparse

from ictal.alarms import bench_alarms
from ictal.commands.bench import BENCHMARKS


def test_bench_alarms_prints_its_table(tmp_path, capsys):
    assert BENCHMARKS["alarms"][0] == "ictal.alarms.bench_alarms"  # what `ictal bench alarms` runs
    parser = argparse.ArgumentParser()
    bench_alarms.add_arguments(parser)
    args = parser.parse_args(["--events", "20", "--catchup", "300", "--hours", "0.05", "--dir", str(tmp_path)])
    assert bench_alarms.run(args) == 0
    out = capsys.readouterr().out
    for figure in ("events/s", "journal append latency p99 (goal < 5 ms)", "catch-up of 300 events",
                   "post-processor, 0.05 h at 256 Hz", "machine"):
        assert figure in out
    assert list(tmp_path.iterdir()) == []  # the temporary journal is removed
