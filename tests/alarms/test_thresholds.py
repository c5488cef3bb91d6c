"""The thresholds file written by tuning and read by the daemon."""

from __future__ import annotations

import json

import pytest

from alarms.config import AlarmsConfig, AlarmThresholds
from alarms.thresholds import (
    ThresholdsFileError,
    load_thresholds,
    load_thresholds_file,
    resolve_thresholds,
    save_thresholds,
)


def test_save_then_load_gives_the_same_thresholds_and_provenance(tmp_path):
    tuned = AlarmThresholds(tau_on=0.93, tau_off=0.41, min_duration_s=7.5, merge_gap_s=12.0,
                            max_duration_s=300.0, refractory_s=30.0)
    path = save_thresholds(tmp_path / "thr.json", tuned, target_fa_per_24h=0.5, dataset="tusz-dev",
                           checkpoint_id="ckpt-abc", extra={"achieved_fa_per_24h": 0.47})
    assert load_thresholds(path) == tuned
    full = load_thresholds_file(path)
    assert full.provenance.target_fa_per_24h == 0.5
    assert full.provenance.dataset == "tusz-dev" and full.provenance.checkpoint_id == "ckpt-abc"
    assert full.provenance.extra == {"achieved_fa_per_24h": 0.47}


def test_thresholds_file_overrides_the_config(tmp_path):
    tuned = AlarmThresholds(tau_on=0.9, tau_off=0.2)
    path = save_thresholds(tmp_path / "t.json", tuned, target_fa_per_24h=1.0, dataset="d", checkpoint_id="c")
    assert resolve_thresholds(AlarmsConfig(thresholds_file=path)) == tuned
    assert resolve_thresholds(AlarmsConfig()) == AlarmThresholds()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ThresholdsFileError, match="nope.json: cannot read"):
        load_thresholds(tmp_path / "nope.json")


def test_not_a_thresholds_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"tau_on": 0.5}))
    with pytest.raises(ThresholdsFileError, match="not an ictal thresholds file"):
        load_thresholds(path)
    path.write_text("{not json")
    with pytest.raises(ThresholdsFileError, match="not valid JSON"):
        load_thresholds(path)


def test_invalid_values_name_the_key(tmp_path):
    path = save_thresholds(tmp_path / "t.json", AlarmThresholds(), target_fa_per_24h=1.0, dataset="d",
                           checkpoint_id="c")
    data = json.loads(path.read_text())
    data["thresholds"]["tau_off"] = 0.95
    path.write_text(json.dumps(data))
    with pytest.raises(ThresholdsFileError, match="tau_off must be <= tau_on"):
        load_thresholds(path)
    data["thresholds"]["tau_off"] = 0.5
    data["thresholds"]["tau_onn"] = 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(ThresholdsFileError, match="thresholds.tau_onn"):
        load_thresholds(path)
