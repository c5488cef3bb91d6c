"""ictal crossval (issue 21 item 1): folds by patient, fixed before training, the held-out split untouched,
every fold scored through ictal evaluate's daemon path, the choice rule applied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from ictal.cli import main
from ictal.config import load_config
from ictal.training.crossval import CrossValidationError, assign_folds, crossval, exact_pattern, fold_config


@dataclass
class Entry:
    recording_id: str
    patient: str
    split: str
    duration_s: float
    n_seizures: int


def _entries() -> list[Entry]:
    entries = []
    for p in range(10):
        for r in range(2):
            entries.append(Entry(f"p{p}__r{r}", f"p{p}", "train", 600.0 + 60 * p, 1 if p < 4 and r == 0 else 0))
    entries.append(Entry("held__x", "held", "eval", 900.0, 1))
    return entries


def test_folds_keep_patients_whole_spread_seizures_and_leave_the_held_out_split_alone():
    plan = assign_folds(_entries(), k=4, seed=3)
    assert "held" not in plan.patients
    assert set(plan.patients) == {f"p{p}" for p in range(10)}
    for fold, ids in plan.recordings.items():  # a patient's recordings all in one fold
        assert {i.split("__")[0] for i in ids} == {p for p, f in plan.patients.items() if f == fold}
    assert sorted(len(v) for v in plan.seizure_patients.values()) == [1, 1, 1, 1]  # 4 seizure patients, 4 folds
    assert assign_folds(_entries(), k=4, seed=3) == plan  # deterministic
    assert assign_folds(_entries(), k=4, seed=4).patients != plan.patients
    with pytest.raises(CrossValidationError, match="10 training patients cannot fill 11 folds"):
        assign_folds(_entries(), k=11)
    with pytest.raises(CrossValidationError, match="at least 2"):
        assign_folds(_entries(), k=1)


def test_exact_pattern_matches_only_its_id():
    from fnmatch import fnmatchcase

    odd = "labelled__x[1]*?"
    assert fnmatchcase(odd, exact_pattern(odd))
    assert not fnmatchcase("labelled__x1ab", exact_pattern(odd))


def test_fold_config_holds_the_fold_out(repo_root):
    config = load_config(repo_root / "configs" / "train" / "demo.yaml", kind="train")
    plan = assign_folds(_entries(), k=2)
    cfg = fold_config(config, plan, 1, Path("runs/cv/x"))
    assert cfg.data.eval_recordings[: len(config.data.eval_recordings)] == config.data.eval_recordings
    assert cfg.data.eval_recordings[len(config.data.eval_recordings):] == plan.recordings[1]
    assert cfg.data.dev_fraction == 0.0 and cfg.out_dir == Path("runs/cv/x")


def _report(auroc: float, hits: int, targets: int, fas: int) -> dict:
    return {"meta": {"n_scored": 3, "duration_s": 7200.0}, "sample_level": {"auroc": auroc},
            "calibration": {"pooled": {"ece": 0.1}},
            "scores": {"nedc": {"overlap": {"labels": {"seiz": {"targets": targets, "hits": hits,
                                                                  "false_alarms": fas}}}}}}


def test_crossval_writes_the_folds_first_pools_the_figures_and_applies_the_rule(tmp_path, repo_root):
    base = load_config(repo_root / "configs" / "train" / "demo.yaml", kind="train")
    other = base.model_copy(update={"seed": 7})
    calls: list[tuple[str, int]] = []
    aurocs = {"a": [0.6, 0.8], "b": [0.9, 0.7]}

    def fake_cache(config):
        return SimpleNamespace(entries=_entries())

    def fake_train(config, max_steps=None):
        assert (tmp_path / "cv" / "folds.json").is_file()  # written before any training
        calls.append((str(config.out_dir), max_steps))
        return SimpleNamespace(last_checkpoint=Path(config.out_dir) / "checkpoints" / "last")

    def fake_evaluate(checkpoint, data, out_dir, **kw):
        name, fold = Path(out_dir).parts[-3], int(Path(out_dir).parts[-2].split("_")[1])
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "report.json").write_text(json.dumps(_report(aurocs[name][fold], 1 + fold, 2, fold)))

    report = crossval({"a": base, "b": other}, 2, tmp_path / "cv", max_steps=3, train_fn=fake_train,
                      evaluate_fn=fake_evaluate, cache_fn=fake_cache, progress=lambda line: None)
    assert len(calls) == 4 and all(steps == 3 for _, steps in calls)
    a = report["candidates"]["a"]["summary"]
    assert a["auroc"]["mean"] == pytest.approx(0.7) and a["auroc"]["n_folds"] == 2
    assert a["overlap"]["hits"] == 3 and a["overlap"]["targets"] == 4 and a["overlap"]["false_alarms"] == 1
    assert a["overlap"]["fa_per_24h"] == pytest.approx(1 / 4 * 24)
    assert report["chosen"] == "b"  # mean AUROC 0.8 > 0.7
    assert "b (chosen)" in (tmp_path / "cv" / "cv_report.md").read_text()
    # a fold trained and scored with the same config and steps is reused, not trained again
    lines: list[str] = []
    again = crossval({"a": base, "b": other}, 2, tmp_path / "cv", max_steps=3, train_fn=fake_train,
                     evaluate_fn=fake_evaluate, cache_fn=fake_cache, progress=lines.append)
    assert len(calls) == 4 and again == report and sum("reused" in line for line in lines) == 4
    # ... but another step count or another config trains anew
    crossval({"a": base}, 2, tmp_path / "cv", max_steps=5, train_fn=fake_train, evaluate_fn=fake_evaluate,
             cache_fn=fake_cache, progress=lambda line: None)
    assert len(calls) == 6 and calls[-1][1] == 5
    crossval({"a": base.model_copy(update={"seed": 9})}, 2, tmp_path / "cv", max_steps=5, train_fn=fake_train,
             evaluate_fn=fake_evaluate, cache_fn=fake_cache, progress=lambda line: None)
    assert len(calls) == 8
    # the folds are fixed: another seed into the same folder is refused
    with pytest.raises(CrossValidationError, match="another fold assignment"):
        crossval({"a": base}, 2, tmp_path / "cv", seed=1, train_fn=fake_train, evaluate_fn=fake_evaluate,
                 cache_fn=fake_cache, progress=lambda line: None)


def test_ictal_crossval_on_real_chbmit_clips(repo_root, shared_data, tmp_path, monkeypatch, capsys):
    """Two folds (chb01, chb02: one patient each), a real 2-step training each, each fold scored by
    ictal evaluate's daemon path on the other patient's clips."""
    monkeypatch.chdir(repo_root)
    out = tmp_path / "cv"
    code = main(["crossval", "--config", str(repo_root / "configs" / "train" / "chbmit_bipolar_smoke.yaml"),
                 "--folds", "2", "--max-steps", "2", "--device", "cpu", "--out", str(out),
                 "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", f"out_dir={tmp_path / 'runs'}"])
    text = capsys.readouterr().out
    assert code == 0, text
    folds = json.loads((out / "folds.json").read_text())
    assert sorted(folds["patients"]) == ["chb01", "chb02"] and sorted(folds["patients"].values()) == [0, 1]
    report = json.loads((out / "cv_report.json").read_text())
    rows = report["candidates"]["base"]["folds"]
    assert len(rows) == 2
    assert sorted(r["n_recordings"] for r in rows) == [6, 14]  # each fold scored the other patient's clips
    for row in rows:
        scored = json.loads(Path(row["report"]).read_text())
        patient = "chb01" if row["n_recordings"] == 14 else "chb02"
        assert all(r["recording_id"].startswith(patient) for r in scored["recordings"])
    assert report["chosen"] == "base" and "| base (chosen) |" in text
