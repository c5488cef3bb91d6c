"""`python -m ictal.detector.bench_quality`: the cost table prints its figures, this module beside a baseline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_the_cost_table_prints_a_figure_per_rate_and_case_for_both_modules(shared_data: Path, repo_root: Path):
    baseline = repo_root / "detector" / "quality.py"
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    out = subprocess.run(
        [sys.executable, "-m", "ictal.detector.bench_quality", "--cost", "--repeats", "2", "--data", str(shared_data),
         "--baseline", str(baseline)],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    rows = re.findall(r"^\s+(this|baseline)\s+(200|500) Hz .+?\s+(\d+\.\d+) ms CPU per window$", out, re.M)
    assert len(rows) == 8, out
    assert "per 60 s window of 19 channels" in out
