"""Threshold tuning: the best feasible thresholds of a constructed case, the unreachable case, the files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ictal.alarms.config import AlarmsConfig, AlarmThresholds
from ictal.alarms.thresholds import load_thresholds, load_thresholds_file, resolve_thresholds
from ictal.cli import main
from ictal.training.datasets.base import Recording
from ictal.training.evaluate import EvaluatedRecording, checkpoint_thresholds, write_recordings
from ictal.training.evaluate_metrics import ScoredRecording, tau_on_grid
from ictal.training.scoring.annotations import Event
from ictal.training.tune import choose, tune, write_checkpoint_thresholds, write_thresholds

RATE = 4.0
BASE = AlarmThresholds(tau_on=0.8, tau_off=0.5, min_duration_s=10.0, merge_gap_s=5.0, max_duration_s=600.0,
                       refractory_s=0.0)


def _rec(rid: str, pieces: list[tuple[float, float, float]], ref: list[Event], duration_s: float = 3600.0):
    p = np.full(int(duration_s * RATE), 0.1, dtype=np.float32)
    for start, stop, value in pieces:
        p[int(start * RATE):int(stop * RATE)] = value
    return ScoredRecording(rid, duration_s, p, np.zeros(p.size, np.int8), ref, RATE)


def _case() -> list[ScoredRecording]:
    """2 h: seizure 1 peaks at 0.75 (100 s), seizure 2 at 0.625 (60 s); a 0.6875 artefact of 30 s and a
    0.9375 artefact of 12 s. One false alarm is 12 FA/24h. Detecting seizure 2 needs tau_on <= 0.625,
    which also raises the 30 s artefact; the 12 s artefact is silent with a minimum duration >= 15 s."""
    a = _rec("a", [(1000, 1100, 0.75), (2000, 2030, 0.6875)], [Event(1000.0, 1100.0, "seiz")])
    b = _rec("b", [(500, 560, 0.625), (3000, 3012, 0.9375)], [Event(500.0, 560.0, "seiz")])
    return [a, b]


def test_tune_without_false_alarms_detects_only_the_strong_seizure_with_a_long_minimum_duration():
    result = tune(_case(), 0.0, BASE)
    b = result.best
    assert result.reachable and b is not None
    assert (b.counts.hits, b.counts.targets, b.counts.false_alarms) == (1, 2, 0)
    assert b.thresholds.min_duration_s == 15.0  # shortest that keeps the 12 s artefact silent
    assert 0.6875 < b.tau_on <= 0.75
    assert b.tau_on == max(t for t in tau_on_grid(_case()) if t <= 0.75)  # most margin among equals
    assert b.thresholds.tau_off == b.tau_on  # smallest gap among equals


def test_tune_with_a_budget_of_one_false_alarm_buys_the_weak_seizure():
    result = tune(_case(), 12.5, BASE)
    b = result.best
    assert b is not None and b.sensitivity == 1.0
    assert b.counts.false_alarms == 1 and b.fa_per_24h == pytest.approx(12.0)
    assert b.tau_on <= 0.625 and b.thresholds.min_duration_s == 15.0
    assert b.tau_on == max(t for t in tau_on_grid(_case()) if t <= 0.625)
    # nothing in the grid does better within the budget
    assert all(p.sensitivity < 1.0 or p.fa_per_24h >= b.fa_per_24h for p in result.points if p.fa_per_24h <= 12.5)


def test_an_unreachable_target_reports_the_lowest_reachable_rate():
    # a 60 s plateau at 1.0 on a third hour raises an alarm whatever tau_on and minimum duration
    recs = _case() + [_rec("c", [(100, 160, 1.0)], [])]
    result = tune(recs, 5.0, BASE)
    assert not result.reachable and result.best is None
    assert result.lowest.counts.false_alarms == 1
    assert result.lowest.fa_per_24h == pytest.approx(1 / 10800 * 86400)
    assert "unreachable" in result.message() and "8.000 FA/24h" in result.message()
    with pytest.raises(ValueError, match="unreachable"):
        write_thresholds("unused.json", result, dataset="d", checkpoint_id="c")


def test_without_seizures_the_most_permissive_thresholds_within_budget_are_chosen():
    recs = [_rec("c", [(100, 130, 0.5)], [])]
    best, _ = choose(tune(recs, 0.0, BASE).points, 0.0)
    assert best is not None and best.counts.false_alarms == 0
    assert best.tau_on > 0.5  # 0.5 for 30 s must stay silent...
    assert best.tau_on == min(t for t in tau_on_grid(recs) if t > 0.5)  # ...but no higher than needed
    with pytest.raises(ValueError, match="target FA/24h"):
        choose(tune(recs, 0.0, BASE).points, -1.0)


def test_thresholds_file_and_checkpoint_metadata_round_trip(tmp_path):
    result = tune(_case(), 12.5, BASE)
    path = write_thresholds(tmp_path / "th.json", result, dataset="case", checkpoint_id="ck")
    assert load_thresholds(path) == result.best.thresholds
    content = load_thresholds_file(path)
    assert content.provenance.target_fa_per_24h == 12.5
    assert content.provenance.extra["achieved_fa_per_24h"] == pytest.approx(12.0)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "metadata.json").write_text(json.dumps({"model_config": {"name": "tiny"}}))
    write_checkpoint_thresholds(ckpt, path)
    meta = json.loads((ckpt / "metadata.json").read_text())
    assert meta["model_config"] == {"name": "tiny"}  # the rest of the metadata is kept
    assert checkpoint_thresholds(ckpt) == result.best.thresholds


def _eval_dir(tmp_path, recs: list[ScoredRecording]):
    evaluated = [EvaluatedRecording(Recording(r.recording_id, tmp_path / f"{r.recording_id}.edf", r.recording_id,
                                              "eval", []), r, 0, True) for r in recs]
    write_recordings(tmp_path / "eval", evaluated)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "metadata.json").write_text(json.dumps({"checkpoint_id": EVAL_CKPT, "thresholds": BASE.model_dump()}))
    # what `ictal evaluate` writes in report.json's meta (training.evaluate_report.build_report)
    meta = {"checkpoint": str(ckpt), "checkpoint_id": EVAL_CKPT, "dataset": str(tmp_path / "data"),
            "hop_s": 4.0, "min_history_s": 10.0, "thresholds": BASE.model_dump()}
    (tmp_path / "eval" / "report.json").write_text(json.dumps({"meta": meta}))
    return tmp_path / "eval", ckpt


EVAL_CKPT = "e0a1c2d3e4f50617"


def test_ictal_tune_from_stored_probabilities_writes_the_file_and_the_checkpoint(tmp_path, capsys):
    eval_dir, ckpt = _eval_dir(tmp_path, _case())
    out = tmp_path / "tuned.json"
    code = main(["tune", "--from-eval", str(eval_dir), "--target-fa", "12.5", "--out", str(out),
                 "--write-checkpoint"])
    assert code == 0
    assert "sensitivity 100.00% (2/2)" in capsys.readouterr().out
    tuned = load_thresholds(out)
    assert tuned.min_duration_s == 15.0 and tuned.tau_on <= 0.625
    # the daemon's config resolves the file to the same thresholds
    assert resolve_thresholds(AlarmsConfig(thresholds_file=out)) == tuned
    assert tuned.merge_gap_s == BASE.merge_gap_s  # untuned rules kept from the checkpoint's thresholds
    assert checkpoint_thresholds(ckpt) == tuned


def test_ictal_tune_exits_non_zero_and_writes_nothing_when_unreachable(tmp_path, capsys):
    eval_dir, ckpt = _eval_dir(tmp_path, _case() + [_rec("c", [(100, 160, 1.0)], [])])
    out = tmp_path / "tuned.json"
    code = main(["tune", "--checkpoint", str(ckpt), "--from-eval", str(eval_dir), "--target-fa", "5",
                 "--out", str(out)])
    assert code == 3
    err = capsys.readouterr().err
    assert "unreachable" in err and "lowest reachable is 8.000 FA/24h" in err
    assert not out.exists()


def test_ictal_tune_from_eval_stamps_the_evaluations_checkpoint_and_recordings(tmp_path, capsys):
    eval_dir, ckpt = _eval_dir(tmp_path, _case())
    out = tmp_path / "tuned.json"
    # neither --checkpoint nor --data: both come from the evaluation's report.json
    assert main(["tune", "--from-eval", str(eval_dir), "--target-fa", "12.5", "--out", str(out)]) == 0
    provenance = load_thresholds_file(out).provenance
    assert provenance.checkpoint_id == EVAL_CKPT
    assert provenance.recordings == ["a", "b"]
    assert provenance.dataset == str(tmp_path / "data")
    assert f"thresholds for checkpoint {EVAL_CKPT} (2 recordings)" in capsys.readouterr().out


def test_ictal_tune_from_eval_refuses_another_checkpoint_or_dataset_naming_both(tmp_path, capsys):
    eval_dir, _ = _eval_dir(tmp_path, _case())
    other = tmp_path / "other"
    other.mkdir()
    (other / "metadata.json").write_text(json.dumps({"checkpoint_id": "0ther0ther0ther0"}))
    out = tmp_path / "tuned.json"
    code = main(["tune", "--checkpoint", str(other), "--from-eval", str(eval_dir), "--target-fa", "12.5",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "0ther0ther0ther0" in err and EVAL_CKPT in err
    code = main(["tune", "--data", str(tmp_path / "elsewhere"), "--from-eval", str(eval_dir), "--target-fa", "12.5",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "elsewhere" in err and str(tmp_path / "data") in err
    (eval_dir / "report.json").unlink()
    code = main(["tune", "--from-eval", str(eval_dir), "--target-fa", "12.5", "--out", str(out)])
    assert code == 2 and "report.json" in capsys.readouterr().err
    assert not out.exists()
    # without --from-eval both are still needed
    code = main(["tune", "--target-fa", "1", "--out", str(out)])
    assert code == 2 and "--checkpoint and --data required" in capsys.readouterr().err


def test_a_choice_without_hysteresis_or_below_the_floor_is_written_and_said(tmp_path, capsys):
    eval_dir, _ = _eval_dir(tmp_path, _case())
    out = tmp_path / "tuned.json"
    # 15 s chosen on this case: a floor of 20 s flags it
    assert main(["tune", "--from-eval", str(eval_dir), "--target-fa", "12.5", "--out", str(out),
                 "--min-duration-floor-s", "20"]) == 0
    content = load_thresholds_file(out)
    err = capsys.readouterr().err
    assert content.thresholds.min_duration_s == 15.0
    assert "ictal tune: warning: min_duration_s 15 s is below the floor of 20 s" in err
    assert any("below the floor of 20 s" in w for w in content.provenance.extra["warnings"])
    # on ties the choice takes the smallest gap: here 0, which is said too
    assert content.thresholds.tau_off == content.thresholds.tau_on == 0.625
    assert "ictal tune: warning: no hysteresis: tau_off 0.625 equals tau_on 0.625" in err
    assert any("no hysteresis" in w for w in content.provenance.extra["warnings"])
    assert main(["tune", "--from-eval", str(eval_dir), "--target-fa", "12.5", "--out", str(out),
                 "--min-duration-floor-s", "10"]) == 0
    err = capsys.readouterr().err
    assert "below the floor" not in err and "no hysteresis" in err


def test_tune_warnings_name_a_choice_without_hysteresis():
    result = tune(_case(), 12.5, BASE, gaps=(0.0,))
    assert result.best.thresholds.tau_off == result.best.thresholds.tau_on
    assert any("no hysteresis" in w for w in result.warnings())
    assert tune(_case(), 12.5, BASE, gaps=(0.2,)).warnings(1.0) == []


def _labelled(rid: str, seizure: tuple[float, float] | None, level: float, duration_s: float = 1800.0):
    """A recording at RATE Hz: p = level inside its seizure, 0.3 / 0.1 alternating elsewhere; labels 1/0."""
    n = int(duration_s * RATE)
    p = np.where(np.arange(n) % 2 == 0, 0.3, 0.1).astype(np.float32)
    y = np.zeros(n, np.int8)
    ref = []
    if seizure is not None:
        a, b = int(seizure[0] * RATE), int(seizure[1] * RATE)
        p[a:b], y[a:b] = level, 1
        ref = [Event(seizure[0], seizure[1], "seiz")]
    return ScoredRecording(rid, duration_s, p, y, ref, RATE)


RECIPE = {"format": "ictal-checkpoint", "model_config": {"name": "tiny"}, "stack": "bimamba2",
          "frontend_config": {"normalisation": "window_robust"}, "montage": "referential", "lookahead_s": 2.0,
          "serving": {"hop_s": 4.0}}


def _crossval_candidate(tmp_path, train_ids: list[str], held_out: list[str] | None = None):
    """A crossval candidate folder (2 folds, their evals and fold checkpoints) and the final checkpoint."""
    folds = [[_labelled("s1", (600, 700), 0.6), _labelled("b1", None, 0)],
             [_labelled("s2", (300, 360), 0.7), _labelled("b2", None, 0)]]
    cand = tmp_path / "cv" / "cand"
    for i, recs in enumerate(folds):
        run = cand / f"fold_{i}"
        evaluated = [EvaluatedRecording(Recording(r.recording_id, tmp_path / f"{r.recording_id}.edf", r.recording_id,
                                                  "eval", []), r, 0, True) for r in recs]
        write_recordings(run / "eval", evaluated)
        ckpt = run / "checkpoints" / "last"
        ckpt.mkdir(parents=True)
        (ckpt / "metadata.json").write_text(json.dumps({"checkpoint_id": f"f{i}" * 8, **RECIPE}))
        meta = {"checkpoint": str(ckpt), "checkpoint_id": f"f{i}" * 8, "dataset": str(tmp_path / "data")}
        (run / "eval" / "report.json").write_text(json.dumps({"meta": meta}))
    final = tmp_path / "final"
    final.mkdir()
    provenance = {"dataset": str(tmp_path / "data"), "split": "recording", "train_recordings": train_ids,
                  "validation_recordings": [], "evaluation_recordings": held_out or [],
                  "recording_id_rule": "path"}
    (final / "metadata.json").write_text(json.dumps({"checkpoint_id": "ab" * 8, "thresholds": BASE.model_dump(),
                                                     "provenance": provenance, **RECIPE}))
    return cand, final


def test_ictal_tune_from_crossval_calibrates_and_tunes_on_out_of_fold_probabilities(tmp_path, capsys):
    cand, final = _crossval_candidate(tmp_path, ["s1", "b1", "s2", "b2"])
    out = tmp_path / "th.json"
    code = main(["tune", "--checkpoint", str(final), "--from-crossval", str(cand), "--target-fa", "10",
                 "--calibrate", "--write-checkpoint", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "out-of-fold: 4 recordings from 2 folds" in printed.out
    meta = json.loads((final / "metadata.json").read_text())
    cal = meta["calibration"]
    assert cal["checkpoint_id"] == "ab" * 8 and "out-of-fold" in cal["fitted_on"]["source"]
    assert sorted(cal["fitted_on"]["recordings"]) == ["b1", "b2", "s1", "s2"]
    assert cal["temperature"] < 1.0  # the seizure probabilities 0.6-0.7 are under-confident for labels of 1
    content = load_thresholds_file(out)
    assert content.provenance.extra["from_crossval"] == str(cand)
    assert content.provenance.extra["calibration"] == pytest.approx(cal["temperature"])
    tuned = load_thresholds(out)
    assert checkpoint_thresholds(final) == tuned
    # both seizures found, no false alarm: tau_on lies above the calibrated background and below the seizures
    assert "sensitivity 100.00% (2/2)" in printed.out


def test_ictal_tune_from_crossval_refuses_another_recipe_or_held_out_recordings(tmp_path, capsys):
    cand, final = _crossval_candidate(tmp_path, ["s1", "b1", "s2"], held_out=["b2"])
    args = ["tune", "--checkpoint", str(final), "--from-crossval", str(cand), "--target-fa", "10",
            "--out", str(tmp_path / "th.json")]
    assert main(args) == 2
    assert "held out by checkpoint" in capsys.readouterr().err and not (tmp_path / "th.json").exists()
    meta = json.loads((final / "metadata.json").read_text())
    meta["frontend_config"] = {"normalisation": "fixed_gain"}
    (final / "metadata.json").write_text(json.dumps(meta))
    assert main(args) == 2
    assert "differ in 'frontend_config'" in capsys.readouterr().err
    assert main(["tune", "--from-crossval", str(cand), "--target-fa", "10"]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
    assert main(["tune", "--checkpoint", str(final), "--from-crossval", str(tmp_path), "--target-fa", "10"]) == 2
    assert "no fold_*/eval/report.json" in capsys.readouterr().err
