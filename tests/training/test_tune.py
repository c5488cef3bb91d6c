"""Threshold tuning: the best feasible thresholds of a constructed case, the unreachable case, the files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alarms.config import AlarmsConfig, AlarmThresholds
from alarms.thresholds import load_thresholds, load_thresholds_file, resolve_thresholds
from ictal.cli import main
from training.datasets.base import Recording
from training.evaluate import EvaluatedRecording, checkpoint_thresholds, write_recordings
from training.evaluate_metrics import ScoredRecording, tau_on_grid
from training.scoring.annotations import Event
from training.tune import choose, tune, write_checkpoint_thresholds, write_thresholds

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
    (ckpt / "metadata.json").write_text(json.dumps({"thresholds": BASE.model_dump()}))
    return tmp_path / "eval", ckpt


def test_ictal_tune_from_stored_probabilities_writes_the_file_and_the_checkpoint(tmp_path, capsys):
    eval_dir, ckpt = _eval_dir(tmp_path, _case())
    out = tmp_path / "tuned.json"
    code = main(["tune", "--checkpoint", str(ckpt), "--data", str(tmp_path), "--from-eval", str(eval_dir),
                 "--target-fa", "12.5", "--out", str(out), "--write-checkpoint"])
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
    code = main(["tune", "--checkpoint", str(ckpt), "--data", str(tmp_path), "--from-eval", str(eval_dir),
                 "--target-fa", "5", "--out", str(out)])
    assert code == 3
    err = capsys.readouterr().err
    assert "unreachable" in err and "lowest reachable is 8.000 FA/24h" in err
    assert not out.exists()
