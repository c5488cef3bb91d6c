"""Checkpoints: safetensors + JSON, round trip, clear refusal of mismatching, corrupt or truncated files."""

from __future__ import annotations

import json
import pickle
import re

import pytest
import torch

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, weights_id
from ictal.detector.config import FrontendConfig
from ictal.detector.model import build_model
from tests.detector.model_configs import small_config


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = small_config()
    model = build_model(config).eval()
    frontend = FrontendConfig(notch_hz=50.0)
    path = save_checkpoint(
        tmp_path / "ckpt", model, config, frontend, extra={"training": {"recordings": 3, "hours": 1.5}}
    )
    return path, model, config, frontend


def test_round_trip_gives_identical_outputs(saved):
    path, model, config, frontend = saved
    loaded = load_checkpoint(path, backend="reference")
    x = torch.randn(2, 19, config.n_times)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert loaded.model_config == config
    assert loaded.frontend_config == frontend
    assert not loaded.model.training


def test_metadata_records_configs_montage_training_and_the_weights_hash(saved):
    path, model, config, frontend = saved
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["model_config"]["d_electrode"] == config.d_electrode
    assert metadata["stack"] == config.stack
    assert metadata["frontend_config"]["notch_hz"] == 50.0
    assert metadata["montage"] == list(CANONICAL_CHANNELS)
    assert metadata["training"] == {"recordings": 3, "hours": 1.5}
    assert metadata["thresholds"] is None and isinstance(metadata["code_version"], str)
    assert metadata["checkpoint_id"] == weights_id(model.state_dict())
    assert load_checkpoint(path).checkpoint_id == metadata["checkpoint_id"]
    assert load_checkpoint(path).thresholds is None


def test_thresholds_added_to_the_metadata_later_are_returned_and_keep_the_id(saved):
    path, *_ = saved
    before = load_checkpoint(path).checkpoint_id
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["thresholds"] = {"tau_on": 0.8, "tau_off": 0.5}
    (path / "metadata.json").write_text(json.dumps(metadata))
    loaded = load_checkpoint(path)
    assert loaded.thresholds == {"tau_on": 0.8, "tau_off": 0.5}
    assert loaded.checkpoint_id == before


def test_checkpoint_id_changes_with_the_weights(saved, tmp_path):
    path, model, config, frontend = saved
    with torch.no_grad():
        model.decoder.head.bias += 1.0
    other = save_checkpoint(tmp_path / "other", model, config, frontend)
    assert load_checkpoint(other).checkpoint_id != load_checkpoint(path).checkpoint_id


def test_loading_never_unpickles(saved, monkeypatch):
    path, *_ = saved

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_checkpoint(path)
    raw = (path / "metadata.json").read_bytes()
    assert json.loads(raw)["format"] == "ictal-checkpoint"
    assert not (path / "model.safetensors").read_bytes().startswith(b"\x80")  # not a pickle stream


def test_a_config_that_does_not_match_the_weights_names_the_first_mismatching_tensor(saved):
    path, _, config, _ = saved
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["model_config"]["d_electrode"] = 16
    (path / "metadata.json").write_text(json.dumps(metadata))
    expected = build_model(small_config(d_electrode=16)).state_dict()
    found = build_model(config).state_dict()
    first = next(name for name in expected if expected[name].shape != found[name].shape)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert f"'{first}'" in message
    assert f"expected shape {tuple(expected[first].shape)}" in message
    assert f"found {tuple(found[first].shape)}" in message


def test_a_config_with_more_layers_than_the_weights_names_the_missing_tensor(saved):
    path, *_ = saved
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["model_config"]["tcn_dilations"] = [1, 4, 16]
    (path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match=r"'encoder\.stages\.0\.3\.conv\.weight'.*missing"):
        load_checkpoint(path)


def test_truncated_weights_are_refused_clearly(saved):
    path, *_ = saved
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_corrupt_header_is_refused_clearly(saved):
    path, *_ = saved
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:20] = b"not json!!!!"
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_altered_weight_bytes_are_caught_by_the_hash(saved):
    path, *_ = saved
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(path)


@pytest.mark.parametrize("missing", ["model.safetensors", "metadata.json"])
def test_a_missing_file_is_named(saved, missing):
    path, *_ = saved
    (path / missing).unlink()
    with pytest.raises(CheckpointError, match=missing.replace(".", r"\.") + ".*missing"):
        load_checkpoint(path)


def test_metadata_that_is_not_json_or_not_a_checkpoint_is_refused(saved, tmp_path):
    path, *_ = saved
    (path / "metadata.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_checkpoint(path)
    (path / "metadata.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="found format 'something-else'"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a directory"):
        load_checkpoint(tmp_path / "nowhere")


def test_extra_may_not_override_reserved_keys(saved, tmp_path):
    _, model, config, frontend = saved
    with pytest.raises(ValueError, match="checkpoint_id"):
        save_checkpoint(tmp_path / "x", model, config, frontend, extra={"checkpoint_id": "mine"})


@pytest.mark.parametrize("thresholds", ["tau_on high", [0.8, 0.5], {"tau_on": float("nan")}, {"tau_on": "high"}])
def test_malformed_thresholds_are_refused_naming_them(saved, thresholds):
    path, *_ = saved
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["thresholds"] = thresholds
    (path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="thresholds"):
        load_checkpoint(path)


@pytest.mark.parametrize("montage", [list(reversed(CANONICAL_CHANNELS)), list(CANONICAL_CHANNELS[:18]), None])
def test_a_checkpoint_for_another_montage_is_refused(saved, montage):
    path, *_ = saved
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["montage"] = montage
    (path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="montage"):
        load_checkpoint(path)


def test_deeply_nested_metadata_is_refused_clearly(saved):
    path, *_ = saved
    (path / "metadata.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(path)


def test_lookahead_is_written_read_and_given_to_the_detector(tmp_path, caplog):
    from ictal.detector.inference import Detector

    torch.manual_seed(0)
    config = small_config()
    model = build_model(config).eval()
    path = save_checkpoint(tmp_path / "la", model, config, FrontendConfig(), lookahead_s=2.5)
    assert json.loads((path / "metadata.json").read_text())["lookahead_s"] == 2.5
    loaded = load_checkpoint(path)
    assert loaded.lookahead_s == 2.5 and loaded.lookahead_declared
    assert Detector.from_checkpoint(path, device="cpu").lookahead_s == 2.5


def test_a_checkpoint_without_lookahead_is_read_as_zero_and_says_so(saved, caplog):
    from ictal.detector.inference import Detector

    path = saved[0]
    metadata = json.loads((path / "metadata.json").read_text())
    del metadata["lookahead_s"]
    (path / "metadata.json").write_text(json.dumps(metadata))
    loaded = load_checkpoint(path)
    assert loaded.lookahead_s == 0.0 and not loaded.lookahead_declared
    with caplog.at_level("WARNING"):
        assert Detector.from_checkpoint(path, device="cpu").lookahead_s == 0.0
    assert "declares no lookahead_s" in caplog.text


@pytest.mark.parametrize("value, message", [(-1.0, r"\[0, 30\]"), (31.0, r"\[0, 30\]"), (0.001, "whole number"),
                                            ("2", "number of seconds"), (True, "number of seconds")])
def test_an_impossible_lookahead_is_refused_by_name(saved, value, message):
    path = saved[0]
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["lookahead_s"] = value
    (path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="lookahead_s") as info:
        load_checkpoint(path)
    assert re.search(message, str(info.value)), str(info.value)
    with pytest.raises(ValueError, match="lookahead_s"):
        save_checkpoint(path.parent / "bad", saved[1], saved[2], saved[3], lookahead_s=-1.0)
