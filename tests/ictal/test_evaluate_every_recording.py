"""`ictal evaluate` with default options scores every recording of a folder of 10 s rated clips and
healthy EEG, or names why not; no probability comes before the output-position contract allows.

Runs the shipped checkpoint (checkpoints/demo) on the real EEG of ../shared/data (skipped when that
folder is absent): four 10 s GROND clips (one per hard-negative class), two 50 s IIIC segments (a
seizure and a hard negative) and two 62 s EEGMAT recordings of healthy adults.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ictal.cli import main

INCLUDE = ["labelled__grond_lpd_01", "labelled__grond_gpd_01", "labelled__grond_lrda_01", "labelled__grond_grda_01",
           "labelled__iiic_01", "labelled__iiic_05",
           "background__eegmat__Subject00_2", "background__eegmat__Subject01_2"]


@pytest.fixture(scope="module")
def evaluated(shared_data, repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("every") / "eval"
    argv = ["evaluate", "--checkpoint", str(repo_root / "checkpoints" / "demo"), "--data", str(shared_data),
            "--out", str(out), "--quiet"]
    for pattern in INCLUDE:
        argv += ["--include", pattern]
    return out, argv


@pytest.mark.timeout(1200)  # about a minute on a quiet 2-core machine
def test_default_evaluate_scores_every_recording_or_names_why(evaluated, capsys, repo_root):
    out, argv = evaluated
    assert main(argv) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "report.json").read_text())
    meta = data["meta"]
    # the defaults are the daemon's: min history 10 s; the lookahead is the one the demo checkpoint declares
    declared = json.loads((repo_root / "checkpoints" / "demo" / "metadata.json").read_text()).get("lookahead_s", 0.0)
    assert meta["min_history_s"] == 10.0 and meta["lookahead_s"] == declared
    lookahead = meta["lookahead_s"]
    first_allowed = meta["min_history_s"] - meta["hop_s"] - meta["lookahead_s"]
    assert meta["first_probability_s"] == pytest.approx(first_allowed)
    unscored = {u["recording_id"]: u for u in meta["unscored"]}
    rows = {r["recording_id"]: r for r in data["recordings"]}
    assert set(rows) | set(unscored) == set(INCLUDE) and meta["n_recordings"] == len(INCLUDE)
    assert meta["n_scored"] + meta["n_unscored"] == len(INCLUDE)
    for rid in INCLUDE:
        if rid in unscored:
            assert unscored[rid]["reason"], f"{rid} is unscored without a reason"
            continue
        probs = np.load(out / "probs" / f"{rid}.npy")
        finite = np.flatnonzero(np.isfinite(probs))
        assert finite.size, f"{rid} is listed as scored but has no probability"
        first_s = finite[0] / 256
        assert first_s == rows[rid]["first_prob_s"]
        # no probability before the contract's first position ...
        assert first_s >= first_allowed - 1e-9, (rid, first_s)
        # ... and every recording at least min_history_s long has one before 15 s
        if rows[rid]["duration_s"] >= meta["min_history_s"]:
            assert first_s < 15.0, (rid, first_s)
    # with the defaults, the 10 s clips are scored: the window ending at 10 s serves
    # [10 - hop - lookahead, 10 - lookahead), e.g. [6, 10) at lookahead 0 and [4, 8) at 2 s
    lo, hi = 10.0 - meta["hop_s"] - lookahead, 10.0 - lookahead
    for rid in INCLUDE[:4]:
        assert rows[rid]["status"] == "scored" and rows[rid]["first_prob_s"] == pytest.approx(lo)
        assert rows[rid]["held_samples"] == 1  # the 200 Hz clip's last input sample, held once
        assert np.isfinite(np.load(out / "probs" / f"{rid}.npy")[round(lo * 256):round(hi * 256)]).all()
    # rated-segment mode: each span's maximum probability, and an AUC per hard-negative class present
    spans = {w["recording_id"]: w for w in data["segments"]["windows"] if w["recording_id"] in rows}
    assert all(spans[rid]["scored"] and spans[rid]["max_prob"] is not None for rid in INCLUDE[:6])
    aucs = {a["label"]: a for a in data["segments"]["auc_vs_seizure"]}
    assert set(aucs) == {"lpd", "gpd", "lrda", "grda"}
    for a in aucs.values():
        assert a["n_seizure_spans"] == 1 and a["n_spans"] >= 1
        assert a["ci_low"] <= a["auc"] <= a["ci_high"]
    header = next(line for line in printed.splitlines() if line.startswith(f"{len(INCLUDE)} recordings, "))
    assert f"{meta['n_scored']} scored" in header and f"{meta['n_unscored']} unscored" in header
    assert "min history 10 s" in header and f"lookahead {lookahead:g} s" in header
