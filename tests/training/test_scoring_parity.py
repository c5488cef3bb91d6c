"""Parity with NEDC EEG Eval v6.0.0 on ten real TUSZ ref/hyp pairs (../shared/data/nedc_parity).

The expected figures are parsed from what the official tool printed (expected/summary*.txt); every
number of the per-label blocks is compared at the precision NEDC printed it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ictal.training.scoring import nedc_dpalign, nedc_epoch, nedc_overlap, nedc_taes
from ictal.training.scoring.report import load_pairs

SECTIONS = {
    "dpalign": "NEDC DP ALIGNMENT SCORING SUMMARY",
    "epoch": "NEDC EPOCH SCORING SUMMARY",
    "overlap": "NEDC OVERLAP SCORING SUMMARY",
    "taes": "NEDC TAES SCORING SUMMARY",
}
SCORERS = {
    "dpalign": nedc_dpalign.score,
    "epoch": nedc_epoch.score,
    "overlap": nedc_overlap.score,
    "taes": nedc_taes.score,
}
# NEDC's row names -> LabelStats fields
FIELDS = {
    "Targets": "targets",
    "Hits": "hits",
    "Misses": "misses",
    "False Alarms": "false_alarms",
    "Insertions": "insertions",
    "Deletions": "deletions",
    "True Positives (TP)": "tp",
    "True Negatives (TN)": "tn",
    "False Positives (FP)": "fp",
    "False Negatives (FN)": "fn",
    "Sensitivity (TPR, Recall)": "sensitivity",
    "Specificity (TNR)": "specificity",
    "Precision (PPV)": "precision",
    "Negative Pred. Value (NPV)": "npv",
    "Miss Rate (FNR)": "miss_rate",
    "False Positive Rate (FPR)": "fpr",
    "False Discovery Rate (FDR)": "fdr",
    "False Omission Rate (FOR)": "false_omission_rate",
    "Accuracy": "accuracy",
    "Misclassification Rate": "misclassification_rate",
    "Prevalence": "prevalence",
    "F1 Score (F Ratio)": "f1",
    "Matthews (MCC)": "mcc",
    "False Alarm Rate": "fa_per_24h",
}
ROW = re.compile(r"^\s*(?P<name>[^:]+):\s+(?P<value>-?\d+(?:\.(?P<dec>\d+))?)(?P<pct>%)?")


def _section(text: str, scorer: str) -> str:
    start = text.index(SECTIONS[scorer])
    end = text.index("=" * 20, start)
    return text[start:end]


def expected_rows(parity_dir: Path, scorer: str, label: str) -> list[tuple[str, str, int, bool]]:
    """(row name, printed number, decimals, is_percent) of a label block of expected/summary.txt."""
    section = _section((parity_dir / "expected" / "summary.txt").read_text(), scorer)
    start = section.index(f"LABEL: {label.upper()}")
    end = min(i for i in (section.find("LABEL:", start + 1), section.find("SUMMARY:", start)) if i > 0)
    rows = []
    for line in section[start:end].splitlines()[1:]:
        m = ROW.match(line)
        if m:
            rows.append((m["name"].strip(), m["value"], len(m["dec"] or ""), m["pct"] is not None))
    return rows


def expected_totals(parity_dir: Path, scorer: str) -> dict[str, tuple[str, int]]:
    """Total Duration / Total False Alarms / Total False Alarm Rate of a section's SUMMARY block."""
    section = _section((parity_dir / "expected" / "summary.txt").read_text(), scorer)
    out = {}
    for line in section[section.index("SUMMARY:") :].splitlines():
        m = ROW.match(line)
        if m and m["name"].strip().startswith("Total "):
            out[m["name"].strip()] = (m["value"], len(m["dec"] or ""))
    return out


def per_file_expected(parity_dir: Path, name: str) -> list[dict[str, float]]:
    """The '(Hit: ..  Miss: ..)' line of every file of expected/summary_<name>.txt."""
    text = (parity_dir / "expected" / f"summary_{name}.txt").read_text()
    out = []
    for body in re.findall(r"\((Hit:[^)]*)\)", text):
        pairs = re.findall(r"([A-Za-z ]+):\s+(-?[\d.]+)", body)
        out.append({k.strip(): float(v) for k, v in pairs})
    return out


@pytest.fixture(scope="module")
def parity_dir(shared_data: Path) -> Path:
    return shared_data / "nedc_parity"


@pytest.fixture(scope="module")
def pairs(parity_dir: Path):
    return load_pairs(parity_dir / "ref.list", parity_dir / "hyp.list")


@pytest.fixture(scope="module")
def summaries(pairs):
    return {name: fn(pairs) for name, fn in SCORERS.items()}


@pytest.mark.parametrize("label", ["seiz", "bckg"])
@pytest.mark.parametrize("scorer", list(SCORERS))
def test_every_printed_number_of_each_label_matches_nedc(parity_dir, summaries, scorer, label):
    rows = expected_rows(parity_dir, scorer, label)
    assert len(rows) == len(FIELDS), f"{scorer}/{label}: parsed {len(rows)} rows, expected {len(FIELDS)}"
    stats = summaries[scorer].labels[label]
    mismatches = []
    for name, printed, decimals, pct in rows:
        assert name in FIELDS, f"unknown NEDC row {name!r}"
        value = getattr(stats, FIELDS[name]) * (100.0 if pct else 1.0)
        mine = f"{value:.{decimals}f}"
        if mine != printed:
            mismatches.append(f"{name}: NEDC {printed}, ours {mine}")
    assert not mismatches, f"{scorer}/{label}: " + "; ".join(mismatches)


@pytest.mark.parametrize("scorer", list(SCORERS))
def test_total_duration_and_total_false_alarms_match_nedc(parity_dir, summaries, scorer):
    totals = expected_totals(parity_dir, scorer)
    summary = summaries[scorer]
    value, dec = totals["Total Duration"]
    assert f"{summary.duration_s:.{dec}f}" == value
    value, dec = totals["Total False Alarms"]
    assert f"{summary.total_false_alarms:.{dec}f}" == value
    value, dec = totals["Total False Alarm Rate"]
    assert f"{summary.total_fa_per_24h:.{dec}f}" == value


def test_taes_per_file_fractions_match_nedc(parity_dir, summaries):
    expected = per_file_expected(parity_dir, "taes")
    per_file = summaries["taes"].per_file
    assert len(expected) == len(per_file) == 10
    for i, (exp, counts) in enumerate(zip(expected, per_file, strict=True)):
        hit = sum(c.hits for c in counts.values())
        miss = sum(c.misses for c in counts.values())
        fa = sum(c.false_alarms for c in counts.values())
        got = {"Hit": hit, "Miss": miss, "False Alarms": fa, "Total": miss + fa}
        for key, value in got.items():
            assert f"{value:.4f}" == f"{exp[key]:.4f}", f"file {i} {key}: NEDC {exp[key]}, ours {value}"


def test_overlap_and_dpalign_per_file_counts_match_nedc(parity_dir, summaries):
    for i, (exp, counts) in enumerate(
        zip(per_file_expected(parity_dir, "ovlp"), summaries["overlap"].per_file, strict=True)
    ):
        got = (
            sum(c.hits for c in counts.values()),
            sum(c.misses for c in counts.values()),
            sum(c.false_alarms for c in counts.values()),
        )
        assert got == (exp["Hit"], exp["Miss"], exp["False Alarms"]), f"overlap file {i}"
    for i, (exp, counts) in enumerate(
        zip(per_file_expected(parity_dir, "dpalign"), summaries["dpalign"].per_file, strict=True)
    ):
        subs = sum(c.misses - c.deletions for c in counts.values())
        got = (
            sum(c.hits for c in counts.values()),
            subs,
            sum(c.insertions for c in counts.values()),
            sum(c.deletions for c in counts.values()),
        )
        assert got == (exp["Hit"], exp["Sub"], exp["Ins"], exp["Del"]), f"dpalign file {i}"


def test_ictal_score_json_subprocess_reports_the_nedc_seiz_figures(parity_dir):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ictal",
            "score",
            "--ref",
            str(parity_dir / "ref.list"),
            "--hyp",
            str(parity_dir / "hyp.list"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["n_files"] == 10
    assert set(report["nedc"]) == set(SCORERS)
    for scorer in SCORERS:
        seiz = report["nedc"][scorer]["labels"]["seiz"]
        for name, printed, decimals, pct in expected_rows(parity_dir, scorer, "seiz"):
            value = seiz[FIELDS[name]] * (100.0 if pct else 1.0)
            assert f"{value:.{decimals}f}" == printed, f"{scorer} {name}"
    sz = report["szcore"]
    assert set(sz) >= {"sensitivity", "precision", "f1", "fp_per_24h", "tp", "fp", "ref_events"}
    assert sz["tp"] + sz["fn"] == sz["ref_events"]
