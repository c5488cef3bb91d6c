"""Config files: every shipped file validates; typos and bad values are named with their file."""

from __future__ import annotations

from pathlib import Path

import pytest

from alarms.config import PublisherConfig
from ictal.config import ConfigError, load_config
from streaming.config import DaemonConfig

CONFIG_FILES = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


def test_shipped_configs_exist_for_every_kind():
    kinds = {load_config(path).kind for path in CONFIG_FILES}
    assert kinds == {"daemon", "model", "train"}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_shipped_config_validates(path):
    config = load_config(path)
    assert config.kind in {"daemon", "model", "train"}


def test_typo_in_nested_key_names_key_and_file(tmp_path):
    bad = tmp_path / "daemon.yaml"
    bad.write_text("kind: daemon\nalarms:\n  thresholds:\n    tau_onn: 0.9\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    message = str(info.value)
    assert str(bad) in message
    assert "alarms.thresholds.tau_onn" in message


def test_wrong_value_names_key_and_value(tmp_path):
    bad = tmp_path / "daemon.yaml"
    bad.write_text("kind: daemon\nscheduler:\n  hop_s: -1\n")
    with pytest.raises(ConfigError, match=r"scheduler\.hop_s.*found: -1"):
        load_config(bad)


def test_missing_or_unknown_kind_is_refused(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("beds: []\n")
    with pytest.raises(ConfigError, match="kind"):
        load_config(bad)


def test_kind_mismatch_is_refused(repo_root):
    with pytest.raises(ConfigError, match="expected a 'train' config"):
        load_config(repo_root / "configs" / "daemon.yaml", kind="train")


def test_invalid_yaml_is_reported_with_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("kind: daemon\nbeds: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_tau_off_above_tau_on_is_refused():
    with pytest.raises(ValueError, match="tau_off must be <= tau_on"):
        DaemonConfig.model_validate({"alarms": {"thresholds": {"tau_on": 0.5, "tau_off": 0.6}}})


def test_duplicate_bed_ids_are_refused():
    bed = {"bed_id": "b1", "source": {"type": "lsl", "name": "x"}}
    with pytest.raises(ValueError, match="repeated: b1"):
        DaemonConfig.model_validate({"beds": [bed, bed]})


def test_non_loopback_alarm_socket_needs_curve():
    with pytest.raises(ValueError, match="CURVE"):
        PublisherConfig(pub_endpoint="tcp://0.0.0.0:5556")
    assert PublisherConfig(pub_endpoint="tcp://localhost:5556").pub_endpoint.endswith("5556")
