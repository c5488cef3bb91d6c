"""Config files: every shipped file validates; typos and bad values are named with their file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ictal.alarms.config import PublisherConfig
from ictal.config import ConfigError, load_config
from ictal.streaming.config import DaemonConfig

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


def _daemon_file(tmp_path, body: str) -> Path:
    path = tmp_path / "daemon.yaml"
    path.write_text("kind: daemon\n" + body)
    return path


def test_config_check_refuses_a_hop_that_is_not_a_whole_number_of_samples(tmp_path, capsys):
    from ictal.cli import main

    path = _daemon_file(tmp_path, "scheduler:\n  hop_s: 3.3\n")
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "scheduler.hop_s" in err and "844.8 samples" in err and "nearest: 3.30078 s" in err
    # The same value passes as soon as it is a whole number of samples (3.5 s = 896 samples).
    assert main(["config", "check", "--no-preflight",
                 str(_daemon_file(tmp_path, "scheduler:\n  hop_s: 3.5\n"))]) == 0


def _beds(*sources: str) -> str:
    return "beds:\n" + "".join(f"  - {{bed_id: bed-{i}, source: {{type: lsl, {s}}}}}\n"
                               for i, s in enumerate(sources))


@pytest.mark.parametrize("first, second", [
    ("name: amp", "name: amp"),
    ("name: amp, source_id: sn-1", "name: amp"),  # the second could bind to sn-1's stream
    ("source_id: sn-1", "name: other, source_id: sn-1"),
])
def test_two_beds_that_could_select_the_same_stream_are_refused_naming_both(tmp_path, first, second):
    with pytest.raises(ConfigError, match=r"beds 'bed-0' and 'bed-1' \(type 'EEG'") as info:
        load_config(_daemon_file(tmp_path, _beds(first, second)))
    assert "same LSL stream" in str(info.value)


@pytest.mark.parametrize("first, second", [
    ("name: amp, source_id: sn-1", "name: amp, source_id: sn-2"),  # same name, told apart by source_id
    ("name: amp", "name: amp, stream_type: EEG2"),
    ("name: amp-1", "name: amp-2"),
])
def test_beds_on_distinct_streams_are_accepted(tmp_path, first, second):
    assert len(load_config(_daemon_file(tmp_path, _beds(first, second))).beds) == 2


@pytest.mark.parametrize("selector", ["name: \"amp'1\"", "name: ''", "source_id: \"a'\""])
def test_an_lsl_selector_that_cannot_be_quoted_is_refused(tmp_path, selector):
    with pytest.raises(ConfigError, match="non-empty and contain no quote"):
        load_config(_daemon_file(tmp_path, _beds(selector)))


def test_a_hop_that_does_not_fit_beside_the_checkpoints_lookahead_is_refused(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "metadata.json").write_text('{"lookahead_s": 30.0}')
    body = f"detector:\n  checkpoint: {checkpoint}\nscheduler:\n  hop_s: {{hop}}\n"
    with pytest.raises(ConfigError, match=r"scheduler.hop_s: 40 s plus the checkpoint's lookahead_s 30 s"):
        load_config(_daemon_file(tmp_path, body.format(hop=40.0)))
    assert load_config(_daemon_file(tmp_path, body.format(hop=30.0))).scheduler.hop_s == 30.0


@pytest.mark.parametrize(("text", "expected"), [
    ("kind: daemon\nalarms:\n  thresholds:\n    tau_onn: 0.9\n",
     "unknown key 'alarms.thresholds.tau_onn' (did you mean 'tau_on'?)"),
    ("kind: daemon\nscheduler:\n  hop: 4\n", "unknown key 'scheduler.hop' (did you mean 'hop_s'?)"),
    ("kind: daemon\nbeds:\n  - bed_id: a\n    sorce: {kind: lsl, stream_name: x}\n", "(did you mean 'source'?)"),
    ("kind: train\nmodel:\n  directon: causal\n", "unknown key 'model.directon' (did you mean 'direction'?)"),
])
def test_an_unknown_key_gets_the_closest_known_key_of_its_section(tmp_path, text, expected):
    bad = tmp_path / "c.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert expected in str(info.value)


def test_an_unknown_key_far_from_every_field_is_not_given_a_guess(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("kind: daemon\nscheduler:\n  zzzzzz: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "did you mean" not in str(info.value) and "check its spelling" in str(info.value)


def test_a_misspelt_kind_key_or_value_is_named(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("knd: daemon\nbeds: []\n")
    with pytest.raises(ConfigError, match="found key 'knd': a misspelling of 'kind'"):
        load_config(bad)
    bad.write_text("kind: deamon\n")
    with pytest.raises(ConfigError, match=r"found: 'deamon'\) \(did you mean 'daemon'\?\)"):
        load_config(bad)
    bad.write_text("beds: []\n")
    with pytest.raises(ConfigError, match="top-level keys found: 'beds'"):
        load_config(bad)
