"""Fuzzing and hostile checkpoints for ``detector.checkpoint.load_checkpoint`` (tested from outside).

Contract: a checkpoint directory loads into the model its weights were saved from, or
``CheckpointError`` (a ValueError) is raised naming the checkpoint; altered weights never load, a
model for another config never loads, and nothing is unpickled (see test_security.py for payloads).

Bugs found by these tests (fixed in detector/checkpoint.py by its owner, commit 16aac7e):
- ``metadata.json`` nested 100000 deep raises RecursionError (``read_metadata`` catches only
  OSError/UnicodeDecodeError/JSONDecodeError);
- ``thresholds`` in the metadata is passed through unchecked: a string (or NaN ``tau_on``) comes back
  as ``LoadedCheckpoint.thresholds`` (documented "dict or None");
- a ``montage`` other than the canonical 19 channels in their order is accepted silently, although
  it says the model was trained on another channel order.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ictal.detector.config import FrontendConfig
from ictal.detector.model import build_model
from tests.detector.model_configs import small_config

FUZZ = settings(max_examples=60, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, str]:
    torch.manual_seed(0)
    config = small_config()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small", build_model(config).eval(), config,
                           FrontendConfig())
    return path, json.loads((path / "metadata.json").read_text())["checkpoint_id"]


def _copy(source: Path, tmp: Path, name: str) -> Path:
    target = tmp / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def _load_or_refuse(path: Path, original_id: str):
    """Load; a refusal must be a CheckpointError naming the checkpoint; a load must be the original weights."""
    try:
        loaded = load_checkpoint(path, backend="reference")
    except CheckpointError as exc:
        assert str(path) in str(exc), f"CheckpointError naming no checkpoint: {exc}"
        return None
    assert loaded.checkpoint_id == original_id, "altered weights loaded"
    assert loaded.thresholds is None or isinstance(loaded.thresholds, dict), loaded.thresholds
    assert loaded.metadata.get("montage") == list(CANONICAL_CHANNELS), loaded.metadata.get("montage")
    return loaded


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)
META_KEYS = ["format", "format_version", "checkpoint_id", "model_config", "stack", "frontend_config", "training",
             "code_version"]


@FUZZ
@given(key=st.sampled_from(META_KEYS), value=JSON_VALUES, nested=st.booleans(), field_index=st.integers(0, 60))
def test_any_metadata_value_loads_the_original_model_or_is_refused(source, tmp_path, key, value, nested,
                                                                   field_index):
    path = _copy(source[0], tmp_path, "meta")
    metadata = json.loads((path / "metadata.json").read_text())
    if nested and isinstance(metadata.get(key), dict) and metadata[key]:
        field = sorted(metadata[key])[field_index % len(metadata[key])]
        metadata[key][field] = value
    else:
        metadata[key] = value
    (path / "metadata.json").write_text(json.dumps(metadata))
    _load_or_refuse(path, source[1])


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1, exclude_max=True)))
def test_flipped_or_cut_weight_bytes_never_load_altered_weights(source, tmp_path, flips, cut):
    path = _copy(source[0], tmp_path, "bytes")
    data = bytearray((path / "model.safetensors").read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    (path / "model.safetensors").write_bytes(bytes(data))
    _load_or_refuse(path, source[1])


def _rewrite_header(path: Path, edit) -> None:
    raw = (path / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


def _first_tensor(header: dict) -> str:
    return sorted(k for k in header if k != "__metadata__")[0]


HOSTILE = {
    "header_length_2_62": lambda p: (p / "model.safetensors").write_bytes(
        struct.pack("<Q", 2**62) + (p / "model.safetensors").read_bytes()[8:]),
    "offsets_past_the_end": lambda p: _rewrite_header(
        p, lambda h: h[_first_tensor(h)].update(data_offsets=[0, 10**12])),
    "shape_of_10**18_elements": lambda p: _rewrite_header(
        p, lambda h: h[_first_tensor(h)].update(shape=[10**9, 10**9])),
    "dtype_unknown": lambda p: _rewrite_header(p, lambda h: h[_first_tensor(h)].update(dtype="Q99")),
    "empty_weights_file": lambda p: (p / "model.safetensors").write_bytes(b""),
    "weights_is_a_directory": lambda p: ((p / "model.safetensors").unlink(), (p / "model.safetensors").mkdir()),
    "metadata_is_a_directory": lambda p: ((p / "metadata.json").unlink(), (p / "metadata.json").mkdir()),
    "checkpoint_id_edited": lambda p: _edit_meta(p, checkpoint_id="0123456789abcdef"),
    "format_version_2": lambda p: _edit_meta(p, format_version=2),
    "other_stack_same_weights": lambda p: _edit_model(p, stack="gated_deltanet"),
    "wider_model_same_weights": lambda p: _edit_model(p, d_electrode=16),
    "deeper_tcn_same_weights": lambda p: _edit_model(p, tcn_widths=[8, 8, 16, 16, 16]),
    "unknown_model_key": lambda p: _edit_model(p, hidden_layers=3),
    "frontend_not_a_mapping": lambda p: _edit_meta(p, frontend_config="notch 50"),
}


def _edit_meta(path: Path, **changes) -> None:
    metadata = json.loads((path / "metadata.json").read_text())
    metadata.update(changes)
    (path / "metadata.json").write_text(json.dumps(metadata))


def _edit_model(path: Path, **changes) -> None:
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["model_config"].update(changes)
    metadata.update({k: v for k, v in changes.items() if k == "stack"})
    (path / "metadata.json").write_text(json.dumps(metadata))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_checkpoint_is_refused_naming_it(source, tmp_path, name):
    path = _copy(source[0], tmp_path, name)
    HOSTILE[name](path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, backend="reference")
    assert str(path) in str(info.value)


def test_a_checkpoint_for_another_config_names_the_first_mismatching_tensor(source, tmp_path):
    path = _copy(source[0], tmp_path, "wider")
    _edit_model(path, d_electrode=16)
    with pytest.raises(CheckpointError, match=r"first mismatching tensor '[\w.]+': expected shape \(.*\), found"):
        load_checkpoint(path, backend="reference")


def test_deeply_nested_metadata_is_refused_clearly(source, tmp_path):
    path = _copy(source[0], tmp_path, "deep")
    (path / "metadata.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CheckpointError):
        load_checkpoint(path, backend="reference")


@pytest.mark.parametrize("thresholds", ["rm -rf /", [0.8, 0.5], {"tau_on": float("nan")}, {"tau_on": "high"}])
def test_malformed_thresholds_in_metadata_are_refused(source, tmp_path, thresholds):
    path = _copy(source[0], tmp_path, "thr")
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["thresholds"] = thresholds
    (path / "metadata.json").write_text(json.dumps(metadata))  # NaN written as NaN, which json reads back
    with pytest.raises(CheckpointError, match="thresholds"):
        load_checkpoint(path, backend="reference")


@pytest.mark.parametrize("montage", [list(reversed(CANONICAL_CHANNELS)), ["Cz"] * 19, CANONICAL_CHANNELS[:18]])
def test_a_checkpoint_for_another_montage_is_refused(source, tmp_path, montage):
    path = _copy(source[0], tmp_path, "montage")
    _edit_meta(path, montage=list(montage))
    with pytest.raises(CheckpointError, match="montage"):
        load_checkpoint(path, backend="reference")


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(flips=st.lists(st.tuples(st.floats(0, 0.05), st.integers(0, 255)), min_size=1, max_size=6),
       key=st.sampled_from(META_KEYS), value=JSON_VALUES)
def test_long_fuzz_of_checkpoints(source, tmp_path_factory, flips, key, value):
    path = _copy(source[0], tmp_path_factory.getbasetemp(), "long")
    data = bytearray((path / "model.safetensors").read_bytes())
    for where, byte in flips:  # the first 5 %: header and first tensors
        data[int(where * len(data))] = byte
    (path / "model.safetensors").write_bytes(bytes(data))
    _edit_meta(path, **{key: value})
    _load_or_refuse(path, source[1])
