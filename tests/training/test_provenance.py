"""Provenance: a checkpoint knows its training data, and evaluate / tune warn when they reuse it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import yaml

from ictal.detector.checkpoint import (
    CheckpointError,
    check_provenance,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from ictal.detector.config import FrontendConfig
from ictal.detector.model import build_model
from ictal.training.config import DataConfig, TrainConfig
from ictal.training.evaluate import dataset_config, provenance_check, select_recordings
from ictal.training.provenance import MAX_LISTED_IDS, build_provenance, format_warning, id_hash, overlap
from tests.detector.model_configs import small_config

DEMO_ID = "951ea1f5276c4d49"


def _data(root="data", **update) -> DataConfig:
    return DataConfig.model_validate({"format": "rated_windows", "root": root, **update})


SPLITS = [("a__r1", "train"), ("a__r0", "train"), ("b__r2", "dev"), ("c__r3", "eval"), ("c__r4", "eval")]


def test_build_provenance_lists_each_split_sorted_with_the_dataset_and_split_rule():
    prov = build_provenance(_data(split_seed=7, dev_fraction=0.1, eval_recordings=["c__*"]), SPLITS)
    assert prov["train_recordings"] == ["a__r0", "a__r1"]
    assert prov["validation_recordings"] == ["b__r2"]
    assert prov["evaluation_recordings"] == ["c__r3", "c__r4"]
    assert prov["dataset"] == {"format": "rated_windows", "root": "data"}
    assert prov["split"]["seed"] == 7 and prov["split"]["dev_fraction"] == 0.1
    assert prov["split"]["eval_recordings"] == ["c__*"]
    assert "__" in prov["recording_id_rule"] and "hashed" not in prov


def test_lists_longer_than_the_limit_are_stored_as_sorted_hashes_and_still_matched():
    prov = build_provenance(_data(), SPLITS, max_listed=1)
    assert "train_recordings" not in prov and "evaluation_recordings" not in prov
    assert prov["train_recording_hashes"] == sorted([id_hash("a__r0"), id_hash("a__r1")])
    assert prov["validation_recordings"] == ["b__r2"]  # one id: within the limit, listed
    assert prov["hashed"] == ["train", "evaluation"] and "SHA-256" in prov["hash_rule"]
    result = overlap(prov, ["a__r1", "zz", "c__r4"])
    assert result.known and result.train == ["a__r1"] and result.evaluation == ["c__r4"]
    assert MAX_LISTED_IDS == 5000


def test_build_provenance_refuses_a_duplicate_id_or_an_unknown_split():
    with pytest.raises(ValueError, match="twice"):
        build_provenance(_data(), [("a", "train"), ("a", "eval")])
    with pytest.raises(ValueError, match="split must be one of"):
        build_provenance(_data(), [("a", "test")])


def test_warning_counts_training_recordings_for_evaluate_and_held_out_ones_for_tune():
    prov = build_provenance(_data(), SPLITS)
    result = overlap(prov, ["a__r0", "a__r1", "c__r3", "new"])
    assert (result.train, result.evaluation, result.n_recordings) == (["a__r0", "a__r1"], ["c__r3"], 4)
    line = format_warning(result, "abc", "evaluate")
    assert line == ("WARNING: 2 of 4 recordings are training recordings of checkpoint abc: figures on them "
                    "are not held-out")
    tune_line = format_warning(result, "abc", "tune")
    assert "2 of 4 recordings are training recordings of checkpoint abc" in tune_line
    assert "1 of 4 recordings are marked for evaluation (held out) by checkpoint abc" in tune_line
    assert "\n" not in tune_line
    assert format_warning(overlap(prov, ["new", "c__r3"]), "abc", "evaluate") is None
    assert format_warning(overlap(prov, ["new"]), "abc", "tune") is None


def test_unknown_provenance_is_a_warning_not_silence():
    result = overlap(None, ["x", "y"])
    assert not result.known and result.train == [] and result.n_recordings == 2
    line = format_warning(result, "abc", "evaluate")
    assert line.startswith("WARNING: provenance of checkpoint abc unknown") and "2 recordings" in line


@pytest.mark.parametrize("bad, match", [
    ({"dataset": {}, "split": {}}, "recording_id_rule"),
    ({"dataset": {}, "split": {}, "recording_id_rule": "r", "train_recordings": [],
      "train_recording_hashes": [], "validation_recordings": [], "evaluation_recordings": []}, "exactly one"),
    ({"dataset": {}, "split": {}, "recording_id_rule": "r", "train_recordings": [1],
      "validation_recordings": [], "evaluation_recordings": []}, "list of strings"),
    ({"dataset": {}, "split": {}, "recording_id_rule": "r", "train_recording_hashes": ["nothex"],
      "validation_recordings": [], "evaluation_recordings": []}, "SHA-256"),
])
def test_malformed_provenance_is_refused_naming_the_key(bad, match):
    with pytest.raises(ValueError, match=match):
        check_provenance(bad)


def _tiny_checkpoint(path, provenance=None):
    config = small_config()
    return save_checkpoint(path, build_model(config), config, FrontendConfig(), provenance=provenance)


def test_checkpoint_saves_and_loads_provenance_and_refuses_a_malformed_one(tmp_path):
    prov = build_provenance(_data(), SPLITS)
    loaded = load_checkpoint(_tiny_checkpoint(tmp_path / "ok", prov), backend="reference")
    assert loaded.provenance == prov and loaded.provenance_known
    meta_path = tmp_path / "ok" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["provenance"]["evaluation_recordings"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="evaluation_recordings"):
        read_metadata(tmp_path / "ok")
    with pytest.raises(ValueError, match="provenance"):
        _tiny_checkpoint(tmp_path / "bad", {"dataset": {}})


def test_old_checkpoint_without_provenance_loads_with_a_warning_that_its_data_is_unknown(tmp_path, caplog):
    path = _tiny_checkpoint(tmp_path / "old")
    assert "provenance" not in json.loads((path / "metadata.json").read_text())
    with caplog.at_level(logging.WARNING, logger="ictal.detector.checkpoint"):
        loaded = load_checkpoint(path, backend="reference")
    assert loaded.provenance is None and not loaded.provenance_known
    assert any("training data is unknown" in r.getMessage() and loaded.checkpoint_id in r.getMessage()
               for r in caplog.records)
    checked = provenance_check(path, ["labelled__iiic_01"], "evaluate")
    assert checked["known"] is False and "unknown" in checked["warning"]


def test_demo_checkpoint_provenance_is_the_split_of_its_recipe_and_keeps_its_id(repo_root, shared_data):
    """The shipped provenance was derived from configs/train/demo.yaml: the same split code gives it."""
    config = TrainConfig.model_validate(yaml.safe_load((repo_root / "configs/train/demo.yaml").read_text()))
    data = config.data.model_copy(update={"root": shared_data})
    from ictal.training.datasets import discover

    expected = build_provenance(data, [(r.recording_id, r.split) for r in discover(data).recordings])
    meta = read_metadata(repo_root / "checkpoints/demo")
    for key in ("train_recordings", "validation_recordings", "evaluation_recordings"):
        assert meta["provenance"][key] == expected[key], key
    assert len(expected["train_recordings"]) == 66 and len(expected["evaluation_recordings"]) == 59
    assert meta["checkpoint_id"] == DEMO_ID  # the id is the weights' hash: metadata edits leave it


def test_evaluating_the_demo_checkpoint_on_shared_data_warns_about_its_training_recordings(repo_root, shared_data):
    """What `ictal evaluate --checkpoint checkpoints/demo --data ../shared/data` scores, checked quickly."""
    recordings, _ = select_recordings(dataset_config(shared_data))
    ids = [r.recording_id for r in recordings]
    checked = provenance_check(repo_root / "checkpoints/demo", ids, "evaluate")
    demo_train = read_metadata(repo_root / "checkpoints/demo")["provenance"]["train_recordings"]
    assert checked["known"] and checked["n_train"] == len(set(ids) & set(demo_train)) == 66
    assert checked["warning"] == (f"WARNING: 66 of {len(ids)} recordings are training recordings of checkpoint "
                                  f"{DEMO_ID}: figures on them are not held-out")
    assert "labelled__iiic_01" in checked["train"]  # the demo's own input
    assert checked["n_evaluation"] == 59


@pytest.mark.slow
def test_ictal_evaluate_and_tune_on_two_demo_files_warn_in_console_and_report(repo_root, shared_data, tmp_path):
    """A real run (about 25 s on 2 CPU cores): one training and one held-out recording of the demo."""
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    out = tmp_path / "eval"
    run = subprocess.run(
        [sys.executable, "-m", "ictal", "evaluate", "--checkpoint", str(repo_root / "checkpoints/demo"),
         "--data", str(shared_data), "--include", "labelled__iiic_01", "--include", "labelled__iiic_03",
         "--out", str(out), "--no-plots", "--quiet", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    line = f"WARNING: 1 of 2 recordings are training recordings of checkpoint {DEMO_ID}: figures on them are not held-out"
    assert line in run.stderr and line in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["provenance"]["train"] == ["labelled__iiic_01"]
    assert report["meta"]["provenance"]["n_train"] == 1
    markdown = (out / "report.md").read_text()
    assert line in markdown and "labelled__iiic_01" in markdown

    tune = subprocess.run(
        [sys.executable, "-m", "ictal", "tune", "--checkpoint", str(repo_root / "checkpoints/demo"),
         "--data", str(shared_data), "--from-eval", str(out), "--target-fa", "1000",
         "--out", str(tmp_path / "t.json")], capture_output=True, text=True, env=env, timeout=300)
    assert tune.returncode in (0, 3), tune.stderr
    assert f"1 of 2 recordings are training recordings of checkpoint {DEMO_ID}" in tune.stderr
    assert f"1 of 2 recordings are marked for evaluation (held out) by checkpoint {DEMO_ID}" in tune.stderr
