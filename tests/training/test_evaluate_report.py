"""``training.evaluate`` end to end on real files through the daemon path (a deterministic stand-in scorer):
the files written, their agreement with the daemon's events, and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.thresholds import save_thresholds
from ictal.cli import main
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import run_recording
from ictal.training.evaluate import DaemonPathRunner, EvaluationError, detected_events, evaluate, load_scored
from ictal.training.scoring.annotations import read_csv_bi

THRESHOLDS = AlarmThresholds(tau_on=0.6, tau_off=0.45, min_duration_s=2.0, merge_gap_s=4.0)
FILES = ["labelled__hms_1628180742", "background__eegmat__Subject00_2"]


class AmplitudeScorer:
    """A deterministic stand-in for the model: probability rises with the mean |amplitude| of the last second."""

    max_batch = 8

    def predict(self, windows: np.ndarray) -> np.ndarray:
        energy = np.abs(windows).mean(axis=1)  # (B, 15360)
        c = np.cumsum(np.pad(energy, ((0, 0), (256, 0)), mode="edge"), axis=1)
        smooth = (c[:, 256:] - c[:, :-256]) / 256  # trailing 1 s mean
        return (1.0 / (1.0 + np.exp(-(smooth - 0.75) * 8.0))).astype(np.float32)


@pytest.fixture(scope="module")
def evaluated(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    ckpt = out / "ckpt"
    ckpt.mkdir()
    (ckpt / "metadata.json").write_text(json.dumps({"model_id": "stand-in"}))
    th_file = save_thresholds(out / "th.json", THRESHOLDS, target_fa_per_24h=1.0, dataset="x", checkpoint_id="y")
    runner = DaemonPathRunner(AmplitudeScorer(), FrontendConfig(), THRESHOLDS, hop_s=4.0, min_history_s=60.0)
    report = evaluate(ckpt, shared_data, out / "report", hop_s=4.0, thresholds_file=th_file, include=FILES,
                      runner=runner)
    return out / "report", report, shared_data


def test_hypothesis_files_hold_the_daemon_events(evaluated):
    out, report, shared = evaluated
    direct = run_recording(shared / "labelled" / "hms_1628180742.edf", AmplitudeScorer(), FrontendConfig(),
                           THRESHOLDS, 4.0, min_history_s=60.0)
    expected = [(e.onset_s, e.offset_s) for e in detected_events(direct.events)]
    assert expected, "the stand-in scorer must raise events on this file for the comparison to mean anything"
    hyp = read_csv_bi(out / "hyp" / "labelled__hms_1628180742.csv_bi")
    assert [(e.start_s, min(e.stop_s, 90.0)) for e in hyp.events] == [(a, min(b, 90.0)) for a, b in expected]
    probs = np.load(out / "probs" / "labelled__hms_1628180742.npy")
    assert probs.shape == (90 * 256,)
    np.testing.assert_array_equal(probs[direct.first_index:direct.first_index + direct.probabilities.size],
                                  direct.probabilities)
    assert report.meta["rerun_mismatches"] == []


def test_reference_files_and_lists_score_like_the_report(evaluated, capsys):
    out, report, _ = evaluated
    ref = read_csv_bi(out / "ref" / "labelled__hms_1628180742.csv_bi")
    # nine overlapping rated seizure windows (20-30 ... 60-70 s) merge into one reference seizure
    assert [(e.start_s, e.stop_s, e.label) for e in ref.events] == [(20.0, 70.0, "seiz")]
    assert read_csv_bi(out / "ref" / "background__eegmat__Subject00_2.csv_bi").events == []
    assert main(["score", "--ref", str(out / "ref.list"), "--hyp", str(out / "hyp.list"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["nedc"]["overlap"] == report.scores["nedc"]["overlap"]
    assert scored["szcore"] == report.scores["szcore"]


def test_report_json_markdown_and_plots(evaluated):
    out, report, _ = evaluated
    data = json.loads((out / "report.json").read_text())
    assert data["meta"]["n_recordings"] == 2 and data["meta"]["hop_s"] == 4.0
    assert data["meta"]["thresholds"]["tau_on"] == 0.6
    assert [r["budget_fa_per_24h"] for r in data["sensitivity_at_fa"]] == [1.0, 2.5, 5.0, 10.0]
    bg = data["background_only"]
    assert bg["n_recordings"] == 1 and bg["duration_s"] == pytest.approx(62.0)
    eeg = next(r for r in data["recordings"] if r["recording_id"] == FILES[1])
    assert bg["false_alarms"] == eeg["false_alarms"] == eeg["events"]  # every alarm on EEGMAT is false
    exact = bg["fa_per_24h_exact"]  # Poisson over the 62 s: even 0 FA leaves a wide upper limit
    assert exact["n_units"] == bg["false_alarms"] and exact["lo"] <= bg["fa_per_24h"] < exact["hi"]
    assert exact["hi"] >= -np.log(0.025) / 62.0 * 86400 - 1e-6
    hms = next(r for r in data["recordings"] if r["recording_id"] == FILES[0])
    assert data["latency"]["n"] == hms["hits"] == 1
    for lat in data["latency"]["seizures"]:
        # the alarm leaves the daemon at the end of the window that completed the minimum duration:
        # on the hop grid (60 + 4k s, lookahead 0), at or after the sample that completed it
        assert lat["latency_s"] == pytest.approx(lat["alarm_leaves_s"] - 20.0)
        assert lat["alarm_leaves_s"] >= lat["min_duration_met_s"] > lat["event_onset_s"]
        assert lat["alarm_leaves_s"] - lat["min_duration_met_s"] <= 4.0
        assert (lat["alarm_leaves_s"] - 60.0) % 4.0 == pytest.approx(0.0)
        assert lat["hypothesis_onset_latency_s"] == pytest.approx(lat["event_onset_s"] - 20.0)
    assert data["latency"]["p50_s"] == pytest.approx(data["latency"]["seizures"][0]["latency_s"])
    # only the rated windows of the HMS file (20-70 s) and all of EEGMAT are labelled; with min history 60 s
    # and hop 4 s the first probability is at 56 s, so 56-70 s of the seizure are scored samples
    assert data["sample_level"]["n_positive"] == (70 - 56) * 256
    assert all(r["first_prob_s"] == 56.0 and r["status"] == "scored" for r in data["recordings"])
    assert (out / data["plots"]["sensitivity_vs_fa"]).stat().st_size > 10_000
    assert all((out / p).is_file() for p in data["plots"]["timelines"].values())
    assert data["segments"]["tau_on"] == 0.6 and len(data["segments"]["windows"]) == 9
    md = (out / "report.md").read_text()
    assert "NEDC OVERLAP" in md and "NEDC TAES" in md and "Rated windows" in md and "Zyma" in md


def test_stored_probabilities_load_back_for_tuning(evaluated):
    out, report, _ = evaluated
    recs = load_scored(out)
    assert [r.recording_id for r in recs] == FILES
    assert [len(r.events) for r in recs] == [row["events"] for row in report.recordings]
    assert recs[0].usable is not None and recs[0].usable.shape == recs[0].probs.shape


def test_evaluate_cli_errors_name_the_problem(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "metadata.json").write_text("{}")
    code = main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "o")])
    assert code == 2
    assert "dataset folder" in capsys.readouterr().err


def test_dataset_layout_is_guessed_from_the_folder(shared_data, tmp_path):
    from ictal.training.evaluate import EvaluationError, dataset_config

    assert dataset_config(shared_data).format == "rated_windows"
    (tmp_path / "tusz" / "edf" / "eval").mkdir(parents=True)
    assert dataset_config(tmp_path / "tusz").format == "tusz"
    (tmp_path / "bids").mkdir()
    assert dataset_config(tmp_path / "bids").format == "edf_folder"
    assert dataset_config(tmp_path / "bids", "tusz").format == "tusz"
    with pytest.raises(EvaluationError, match="not found"):
        dataset_config(tmp_path / "absent")


def test_a_file_the_detector_cannot_read_is_skipped_with_its_reason(shared_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "metadata.json").write_text("{}")
    runner = DaemonPathRunner(AmplitudeScorer(), FrontendConfig(), AlarmThresholds(), hop_s=30.0)
    report = evaluate(ckpt, shared_data / "quirks", tmp_path / "out", hop_s=30.0, runner=runner, plots=False)
    assert [r["recording_id"] for r in report.recordings] == ["neonatal_burst_malformed_header"]
    # a recording the daemon path cannot read is unscored, with its reason, and counted as such
    (unscored,) = report.meta["unscored"]
    assert unscored["recording_id"] == "neonatal_bipolar_8ch" and unscored["status"] == "not_evaluated"
    assert "bipolar" in unscored["reason"]
    assert report.meta["n_recordings"] == 2 and report.meta["n_scored"] == 1 and report.meta["n_unscored"] == 1
    assert report.meta["skipped"] == []  # discovery left nothing out
    with pytest.raises(EvaluationError, match="none of the 1 recordings"):
        evaluate(ckpt, shared_data / "quirks", tmp_path / "out2", hop_s=30.0, runner=runner, plots=False,
                 include=["neonatal_bipolar_8ch"])


def test_report_says_when_the_checkpoint_does_not_know_its_training_data(evaluated):
    out, report, _ = evaluated
    prov = json.loads((out / "report.json").read_text())["meta"]["provenance"]
    assert prov["known"] is False and prov["n_recordings"] == 2
    assert prov["warning"].startswith("WARNING: provenance of checkpoint stand-in unknown")
    assert prov["warning"] in (out / "report.md").read_text()


def test_report_counts_and_names_the_training_recordings_of_the_checkpoint(repo_root, shared_data, tmp_path):
    """The demo checkpoint's metadata (its provenance) with the stand-in scorer: both files are training ones."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    meta = json.loads((repo_root / "checkpoints/demo/metadata.json").read_text())
    (ckpt / "metadata.json").write_text(json.dumps(meta))
    warned = []
    runner = DaemonPathRunner(AmplitudeScorer(), FrontendConfig(), THRESHOLDS, hop_s=4.0, min_history_s=60.0)
    evaluate(ckpt, shared_data, tmp_path / "report", hop_s=4.0, include=FILES, runner=runner, plots=False,
             warn=warned.append)
    line = (f"WARNING: 2 of 2 recordings are training recordings of checkpoint {meta['checkpoint_id']}: figures on "
            "them are not held-out")
    assert warned == [line]
    prov = json.loads((tmp_path / "report" / "report.json").read_text())["meta"]["provenance"]
    assert prov["known"] and prov["n_train"] == 2 and sorted(prov["train"]) == sorted(FILES)
    assert prov["warning"] == line and prov["n_evaluation"] == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert line in md and all(f in md.split(line, 1)[1].split("\n", 2)[1] for f in FILES)


def test_report_measures_the_calibration_of_the_served_probabilities(evaluated):
    from ictal.training.calibration import recordings_calibration
    from ictal.training.evaluate import load_scored

    out, report, _ = evaluated
    data = json.loads((out / "report.json").read_text())
    pooled = data["calibration"]["pooled"]
    # the same labelled, scored samples as the sample-level AUROC
    assert pooled["n_positive"] == data["sample_level"]["n_positive"]
    assert pooled["n"] == data["sample_level"]["n_positive"] + data["sample_level"]["n_negative"]
    again = recordings_calibration(load_scored(out))  # recomputed from the stored probabilities
    assert pooled["ece"] == pytest.approx(again.ece) and pooled["brier"] == pytest.approx(again.brier)
    assert 0 <= pooled["ece"] <= 1 and pooled["brier_reference"] > 0
    # rated windows of the HMS file are seizure; their class holds only positives
    seizure = data["calibration"]["by_class"]["seizure"]
    assert seizure["n"] == seizure["n_positive"] > 0
    assert (out / data["plots"]["reliability"]).read_bytes()[:4] == b"\x89PNG"
    assert "ECE" in (out / "report.md").read_text()
    from ictal.commands.evaluate import summary_lines

    assert f"ECE {pooled['ece']:.3f}" in summary_lines(report)
