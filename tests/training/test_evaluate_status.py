"""Every evaluated recording is scored or named unscored with its reason, and unscored ones stay out
of the figures; a 10 s clip is scored by holding its last input sample; the rated-span AUC."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.detector import FS_HZ
from ictal.detector.config import FrontendConfig
from ictal.detector.resample import StreamingResampler
from ictal.streaming.edf import load_canonical
from ictal.training.evaluate import (
    SCORED,
    TOO_SHORT,
    UNUSABLE,
    DaemonPathRunner,
    complete_short_recording,
    evaluate,
    recording_status,
)
from ictal.training.segments import WindowResult, auc_vs_seizure

THRESHOLDS = AlarmThresholds(tau_on=0.6, tau_off=0.45, min_duration_s=2.0)


class ConstantScorer:
    """Probability 0.1 everywhere: the test is about where probabilities exist, not their values."""

    max_batch = 8

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[2]), 0.1, dtype=np.float32)


class Quality:
    problems = ["Cz flat"]


def test_status_names_too_short_and_unusable_with_the_numbers():
    n = 5 * 256
    none = np.full(n, np.nan, dtype=np.float32)
    status, reason = recording_status(none, None, signal_s=5.0, min_history_s=10.0)
    assert status == TOO_SHORT and "5.000 s of signal" in reason and "needs 10 s" in reason
    probs = np.full(40 * 256, 0.2, dtype=np.float32)
    status, reason = recording_status(probs, np.zeros(probs.size, bool), 40.0, 10.0, [Quality()])
    assert status == UNUSABLE and "unusable signal for 40.0 s" in reason and "Cz flat" in reason
    usable = np.zeros(probs.size, bool)
    usable[-1] = True  # one usable sample is enough to be scored
    assert recording_status(probs, usable, 40.0, 10.0) == (SCORED, None)


def test_a_10_s_clip_at_200_hz_needs_one_held_sample_to_reach_its_first_window(shared_data):
    rec = load_canonical(shared_data / "labelled" / "grond_lpd_01.edf", FrontendConfig())
    assert rec.fs == 200.0 and rec.data.shape[1] == 2000
    # the causal resampler gives 2559 of the 2560 samples of [0, 10) s: 3.9 ms short of a 10 s history
    assert StreamingResampler(200.0, FS_HZ, 1).n_out_for(2000) == 2559
    done, held = complete_short_recording(rec, 10.0)
    assert held == 1 and done.data.shape[1] == 2001
    np.testing.assert_array_equal(done.data[:, :2000], rec.data)
    np.testing.assert_array_equal(done.data[:, 2000], rec.data[:, 1999])
    # a recording long enough for its first window is left as it is (evaluate = serve on it)
    same, held = complete_short_recording(rec, 5.0)
    assert same is rec and held == 0
    # a recording really shorter than the history is not stretched to it
    same, held = complete_short_recording(rec, 12.0)
    assert same is rec and held == 0


@pytest.fixture(scope="module")
def short_and_long(shared_data, tmp_path_factory):
    """grond_lpd_01 (10 s) scored at min history 10 s; at 12 s it is too short and must say so."""
    out = tmp_path_factory.mktemp("status")
    ckpt = out / "ckpt"
    ckpt.mkdir()
    (ckpt / "metadata.json").write_text(json.dumps({"model_id": "constant"}))
    runner = DaemonPathRunner(ConstantScorer(), FrontendConfig(), THRESHOLDS, hop_s=4.0, min_history_s=12.0)
    report = evaluate(ckpt, shared_data, out / "eval", hop_s=4.0, runner=runner,
                      include=["labelled__grond_lpd_01", "labelled__iiic_01"])
    return out / "eval", report


def test_a_recording_shorter_than_min_history_is_listed_with_its_reason_and_left_out(short_and_long):
    out, report = short_and_long
    data = json.loads((out / "report.json").read_text())
    meta = data["meta"]
    assert meta["n_recordings"] == 2 and meta["n_scored"] == 1 and meta["n_unscored"] == 1
    (u,) = meta["unscored"]
    assert u["recording_id"] == "labelled__grond_lpd_01" and u["status"] == "too_short"
    assert "too short for min_history_s" in u["reason"] and "needs 12 s" in u["reason"]
    assert meta["unscored_by_status"] == {"too_short": 1}
    # figures cover the scored recording only: its duration, and only it in the csv_bi lists
    assert meta["duration_s"] == pytest.approx(50.0)
    assert (out / "ref.list").read_text().split() == ["ref/labelled__iiic_01.csv_bi"]
    row = next(r for r in data["recordings"] if r["recording_id"] == "labelled__grond_lpd_01")
    assert row["status"] == "too_short" and row["first_prob_s"] is None and row["false_alarms"] is None
    # its rated span is listed, unscored, and no rate claims it
    span = next(w for w in data["segments"]["windows"] if w["recording_id"] == "labelled__grond_lpd_01")
    assert span["scored"] is False and span["max_prob"] is None
    lpd = next(c for c in data["segments"]["classes"] if c["label"] == "lpd")
    assert lpd["windows"] == 1 and lpd["scored"] == 0 and lpd["rate"] is None
    md = (out / "report.md").read_text()
    assert "Unscored recordings" in md and "too short for min_history_s" in md
    assert "unscored 1 (too short for min_history_s: 1" in md
    from ictal.training.evaluate import load_scored

    assert [r.recording_id for r in load_scored(out)] == ["labelled__iiic_01"]


def test_an_unscored_timeline_says_so(short_and_long):
    out, report = short_and_long
    from ictal.training.evaluate_metrics import ScoredRecording
    from ictal.training.report_plots import plot_timeline

    assert (out / report.plots["timelines"]["labelled__grond_lpd_01"]).is_file()
    # the note is drawn: the same recording plotted with and without it gives different images
    rec = ScoredRecording("x", 10.0, np.full(2560, np.nan, np.float32), np.zeros(2560, np.int8), [])
    a = plot_timeline(rec, [], THRESHOLDS, out / "a.png")
    b = plot_timeline(rec, [], THRESHOLDS, out / "b.png", note="NOT SCORED (too_short): too short")
    assert a.read_bytes() != b.read_bytes()


def test_the_printed_header_counts_unscored_recordings(short_and_long):
    from ictal.commands.evaluate import summary_lines

    _, report = short_and_long
    text = summary_lines(report)
    first = text.splitlines()[0]
    assert first.startswith("2 recordings, 1 scored (") and "1 unscored" in first and "min history 12 s" in first
    assert "unscored (0 reference seizures not counted): labelled__grond_lpd_01: too short" in text


def test_the_printed_summary_gives_no_sensitivity_without_seizures(short_and_long):
    """Healthy EEG only: the sensitivity is undefined, printed as n/a, never 0.00% nor nan%."""
    import copy

    from ictal.commands.evaluate import summary_lines

    _, report = short_and_long
    healthy = copy.deepcopy(report)
    for kind in ("overlap", "taes"):
        healthy.scores["nedc"][kind]["labels"]["seiz"].update(targets=0, hits=0, sensitivity=0.0)
    healthy.scores["szcore"]["sensitivity"] = None
    healthy.latency.update(n=0, p50_s=None, p90_s=None)
    text = summary_lines(healthy)
    assert "alarm latency (alarm leaves daemon - annotated onset): n/a (no detected seizure)" in text
    assert "NEDC OVERLAP: 0/0 seizures, sensitivity n/a (no seizures)," in text
    assert "NEDC TAES: sensitivity n/a (no seizures)," in text
    assert "SzCORE: sensitivity n/a (no seizures)," in text
    assert "n/a%" not in text and not re.search(r"\bnan\b", text)


def _spans(label: str, scores_by_rec: dict[str, list[float]]) -> list[WindowResult]:
    return [WindowResult(rec, 0.0, 10.0, label, True, p, False, False, False)
            for rec, ps in scores_by_rec.items() for p in ps]


def test_rated_span_auc_is_mann_whitney_with_a_cluster_bootstrap_interval():
    seizures = _spans("seizure", {"s1": [0.9], "s2": [0.8], "s3": [0.4]})
    lpd = _spans("lpd", {"n1": [0.5], "n2": [0.3], "n3": [0.2, 0.1]})
    unscored = [WindowResult("n9", 0.0, 10.0, "lpd", False, None, False, False, False)]
    a = auc_vs_seizure(seizures + lpd + unscored, "lpd")
    # 12 pairs: 0.9 and 0.8 beat all 4, 0.4 beats 3 of 4 -> 11/12
    assert a.auc == pytest.approx(11 / 12)
    assert (a.n_seizure_spans, a.n_seizure_recordings, a.n_spans, a.n_recordings) == (3, 3, 4, 3)
    assert 0.0 <= a.ci_low <= a.auc <= a.ci_high == 1.0 and a.ci_low < 0.9
    assert auc_vs_seizure(seizures + lpd, "lpd") == a  # seeded: reproducible
    # perfect separation: the interval collapses to 1; ties count half
    assert auc_vs_seizure(_spans("seizure", {"s": [0.9]}) + _spans("gpd", {"g": [0.1, 0.2]}), "gpd").ci_low == 1.0
    tie = auc_vs_seizure(_spans("seizure", {"s": [0.5]}) + _spans("gpd", {"g": [0.5]}), "gpd")
    assert tie.auc == 0.5
    # one side missing: no figure claimed
    none = auc_vs_seizure(lpd, "lpd")
    assert np.isnan(none.auc) and np.isnan(none.ci_low) and none.n_seizure_spans == 0


def test_spans_of_one_recording_resample_together():
    # one seizure recording with 9 spans (as hms_1628180742) against 3 lpd recordings: resampling spans
    # would shrink the interval; resampling recordings keeps the single seizure recording's spans together
    seizures = _spans("seizure", {"hms": [0.6, 0.7, 0.8, 0.9, 0.95, 0.65, 0.75, 0.85, 0.55]})
    lpd = _spans("lpd", {"a": [0.5], "b": [0.7], "c": [0.2]})
    a = auc_vs_seizure(seizures + lpd, "lpd")
    assert a.n_seizure_recordings == 1 and a.n_recordings == 3
    # only the lpd recordings vary: an interval within [min, max] of the three leave-in AUCs
    per_rec = [np.mean([(p > n) + 0.5 * (p == n) for p in [0.6, 0.7, 0.8, 0.9, 0.95, 0.65, 0.75, 0.85, 0.55]])
               for n in (0.5, 0.7, 0.2)]
    assert min(per_rec) - 1e-9 <= a.ci_low <= a.ci_high <= max(per_rec) + 1e-9
