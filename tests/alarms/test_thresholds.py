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


def test_thresholds_in_force_order_file_then_checkpoint_then_config(tmp_path):
    from alarms.thresholds import thresholds_in_force

    tuned_in_checkpoint = {"tau_on": 0.6, "tau_off": 0.4, "min_duration_s": 4.0}
    configured = AlarmThresholds(tau_on=0.9, tau_off=0.7)
    # Without a file: the checkpoint's tuned thresholds win over the config's.
    thresholds, source = thresholds_in_force(AlarmsConfig(thresholds=configured), tuned_in_checkpoint)
    assert source == "checkpoint" and thresholds.tau_on == 0.6 and thresholds.min_duration_s == 4.0
    # The site may insist on its own.
    config = AlarmsConfig(thresholds=configured, use_checkpoint_thresholds=False)
    assert thresholds_in_force(config, tuned_in_checkpoint) == (configured, "config")
    # A checkpoint without tuned thresholds: the config's.
    assert thresholds_in_force(AlarmsConfig(thresholds=configured), None) == (configured, "config")
    # A thresholds file beats both.
    path = tmp_path / "t.json"
    file_thresholds = AlarmThresholds(tau_on=0.7, tau_off=0.2)
    save_thresholds(path, file_thresholds, target_fa_per_24h=1.0, dataset="d", checkpoint_id="c")
    thresholds, source = thresholds_in_force(AlarmsConfig(thresholds_file=path), tuned_in_checkpoint)
    assert thresholds == file_thresholds and source == f"file {path}"
    with pytest.raises(ValueError, match="tuned thresholds are invalid"):
        thresholds_in_force(AlarmsConfig(), {"tau_on": 0.3, "tau_off": 0.5})
