"""The thresholds file written by tuning and read by the daemon."""

from __future__ import annotations

import json

import pytest

from ictal.alarms.config import AlarmsConfig, AlarmThresholds
from ictal.alarms.thresholds import (
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


def test_save_creates_the_folder_of_a_new_run(tmp_path):
    """`ictal tune --out runs/new/thresholds.json` before `runs/new` exists: the folder is made."""
    path = save_thresholds(tmp_path / "runs" / "new" / "thresholds.json", AlarmThresholds(tau_on=0.8, tau_off=0.4),
                           target_fa_per_24h=1.0, dataset="d", checkpoint_id="c")
    assert path.is_file() and load_thresholds(path).tau_on == 0.8


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
    from ictal.alarms.thresholds import thresholds_in_force

    tuned_in_checkpoint = {"tau_on": 0.6, "tau_off": 0.4, "min_duration_s": 4.0}
    configured = AlarmThresholds(tau_on=0.9, tau_off=0.7)
    # Without a file and without alarms.thresholds written out: the checkpoint's tuned thresholds.
    thresholds, source = thresholds_in_force(AlarmsConfig(), tuned_in_checkpoint)
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


def _file(tmp_path, checkpoint_id, **kw):
    return save_thresholds(tmp_path / f"th-{checkpoint_id}.json", AlarmThresholds(tau_on=0.7, tau_off=0.3),
                           target_fa_per_24h=1.0, dataset="d", checkpoint_id=checkpoint_id, **kw)


def test_config_thresholds_written_out_while_the_checkpoints_would_win_is_an_error():
    from ictal.alarms.thresholds import ThresholdsPrecedenceError, thresholds_in_force

    tuned = {"tau_on": 0.6, "tau_off": 0.4, "min_duration_s": 4.0}
    # written out, even equal to the defaults, is a choice the operator made: never silently replaced
    for configured in (AlarmThresholds(tau_on=0.97, tau_off=0.97), AlarmThresholds()):
        config = AlarmsConfig.model_validate({"thresholds": configured.model_dump()})
        with pytest.raises(ThresholdsPrecedenceError, match=r"tau_on=0\.6.*use_checkpoint_thresholds") as err:
            thresholds_in_force(config, tuned, "ckpt-1")
        assert f"tau_on={configured.tau_on}" in str(err.value) and "ckpt-1" in str(err.value)
    explicit = AlarmsConfig.model_validate({"thresholds": {"tau_on": 0.97, "tau_off": 0.9},
                                            "use_checkpoint_thresholds": False})
    assert thresholds_in_force(explicit, tuned, "ckpt-1")[0].tau_on == 0.97


def test_config_thresholds_written_out_with_a_thresholds_file_is_an_error(tmp_path):
    from ictal.alarms.thresholds import ThresholdsPrecedenceError, thresholds_in_force

    path = _file(tmp_path, "ckpt-1")
    config = AlarmsConfig.model_validate({"thresholds": {"tau_on": 0.97}, "thresholds_file": str(path)})
    with pytest.raises(ThresholdsPrecedenceError, match="thresholds_file"):
        thresholds_in_force(config, None, "ckpt-1")


def test_a_thresholds_file_of_another_checkpoint_is_refused_naming_both_ids(tmp_path):
    from ictal.alarms.thresholds import ThresholdsFileError, ThresholdsMismatchError, thresholds_in_force

    path = _file(tmp_path, "aaaa1111")
    with pytest.raises(ThresholdsMismatchError) as err:
        thresholds_in_force(AlarmsConfig(thresholds_file=path), None, "bbbb2222")
    message = str(err.value)
    assert "aaaa1111" in message and "bbbb2222" in message and str(path) in message
    assert isinstance(err.value, ThresholdsFileError)  # every caller that refused bad files refuses this
    # accepting another id than the file's does not accept it
    config = AlarmsConfig(thresholds_file=path, accept_thresholds_of_checkpoint="cccc3333")
    with pytest.raises(ThresholdsMismatchError, match="cccc3333"):
        thresholds_in_force(config, None, "bbbb2222")
    # the file's own checkpoint: used, not foreign
    thresholds, source = thresholds_in_force(AlarmsConfig(thresholds_file=path), None, "aaaa1111")
    assert thresholds.tau_on == 0.7 and source == f"file {path}" and source.foreign_checkpoint_id is None


def test_an_accepted_foreign_thresholds_file_is_used_and_the_source_says_so(tmp_path):
    from ictal.alarms.thresholds import thresholds_in_force

    path = _file(tmp_path, "aaaa1111")
    config = AlarmsConfig(thresholds_file=path, accept_thresholds_of_checkpoint="aaaa1111")
    thresholds, source = thresholds_in_force(config, {"tau_on": 0.5, "tau_off": 0.4}, "bbbb2222")
    assert thresholds.tau_on == 0.7
    assert source.kind == "file" and source.foreign_checkpoint_id == "aaaa1111"
    assert "aaaa1111" in source and "bbbb2222" in source and "accept_thresholds_of_checkpoint" in source


def test_recordings_are_listed_or_hashed_and_version_1_files_are_still_read(tmp_path):
    from ictal.alarms.thresholds import MAX_LISTED_RECORDINGS, recording_hash

    listed = load_thresholds_file(_file(tmp_path, "a", recordings=["r2", "r1", "r2"]))
    assert listed.version == 2 and listed.provenance.recordings == ["r1", "r2"]
    assert listed.provenance.tuned_on(["r1", "r3"]) == ["r1"]
    many = [f"rec{i:05d}" for i in range(MAX_LISTED_RECORDINGS + 1)]
    hashed = load_thresholds_file(_file(tmp_path, "b", recordings=many)).provenance
    assert hashed.recordings is None and len(hashed.recording_hashes) == len(many)
    assert recording_hash("rec00007") in hashed.recording_hashes
    assert hashed.tuned_on(["rec00007", "elsewhere"]) == ["rec00007"]
    old = json.loads(_file(tmp_path, "c").read_text())
    old["version"] = 1
    for key in ("recordings", "recording_hashes"):
        del old["provenance"][key]
    (tmp_path / "v1.json").write_text(json.dumps(old))
    v1 = load_thresholds_file(tmp_path / "v1.json")
    assert v1.version == 1 and v1.provenance.checkpoint_id == "c" and v1.provenance.tuned_on(["x"]) is None
    old["version"] = 3
    (tmp_path / "v3.json").write_text(json.dumps(old))
    with pytest.raises(ThresholdsFileError, match="version 3, expected 1 or 2"):
        load_thresholds_file(tmp_path / "v3.json")


def test_threshold_warnings_flag_no_hysteresis_and_a_short_minimum():
    from ictal.alarms.thresholds import threshold_warnings

    assert threshold_warnings(AlarmThresholds()) == []
    flagged = threshold_warnings(AlarmThresholds(tau_on=0.9084, tau_off=0.9084, min_duration_s=2.0))
    assert len(flagged) == 2 and "no hysteresis" in flagged[0] and "below the floor of 5 s" in flagged[1]
