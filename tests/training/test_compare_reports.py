"""``ictal compare``: evaluation reports of two detectors on real recordings side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ictal.training.evaluate import evaluate
from tests.training.test_evaluate_hypotheses import INCLUDE, _hypotheses


@pytest.fixture(scope="module")
def reports(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    evaluate(None, shared_data, tmp / "a", include=INCLUDE, hypotheses=_hypotheses(tmp / "events_only"), plots=False)
    evaluate(None, shared_data, tmp / "b", include=INCLUDE, hypotheses=_hypotheses(tmp / "with_probs", probs=True),
             probs_rate_hz=1.0, plots=False)
    evaluate(None, shared_data, tmp / "c", include=INCLUDE[:1], hypotheses=_hypotheses(tmp / "fewer"), plots=False)
    return tmp


def _compare(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "ictal", "compare", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, cwd=cwd)


def test_compare_prints_a_row_per_report_with_intervals_and_draws_the_chart(reports):
    proc = _compare(reports / "a", reports / "b" / "report.json", "--plot", reports / "chart.png")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| events_only") or
            line.startswith("| with_probs")]
    assert len(rows) == 2
    a = json.loads((reports / "a" / "report.json").read_text())
    fa = a["confidence_intervals"]["overlap_fa_per_24h"]
    assert f"{fa['value']:.2f} [{fa['lo']:.2f}, {fa['hi']:.2f}]" in rows[0]
    assert "75.0% (no interval: 4 patients with seizures, fewer than 5)" in rows[0]
    assert "| n/a |" in rows[0] and "0.625 (no interval" in rows[1]  # AUROC only where probabilities were given
    assert "WARNING" not in proc.stdout
    png = (reports / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_compare_warns_when_reports_scored_different_recordings_and_writes_out(reports):
    out = reports / "cmp" / "table.md"
    proc = _compare(reports / "a", reports / "c", "--out", out)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.splitlines()[2].startswith("WARNING: the reports scored different recordings (4 in common of 8")
    assert (reports / "cmp" / "table.png").is_file() and "![intervals](table.png)" in text


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    proc = _compare(bad, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{bad}: keys ['hello'], expected the meta and scores" in proc.stderr
    proc = _compare(tmp_path / "missing", cwd=tmp_path)
    assert proc.returncode == 2 and "cannot read" in proc.stderr
