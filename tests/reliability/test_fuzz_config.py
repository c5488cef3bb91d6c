"""Fuzzing and hostile files for config loading (``ictal.config.load_config``).

Contract for ANY file: ``load_config`` returns a validated config or raises ``ConfigError`` whose
message names the file, promptly and in bounded memory; a config never holds a non-finite number.

Bugs found by this suite and fixed in ``ictal/config.py`` and the shared ``StrictModel`` base:
- a non-UTF-8 file raises UnicodeDecodeError (``read_yaml`` catches only OSError);
- ``kind: [daemon]`` raises TypeError "unhashable type: 'list'" (``found not in CONFIG_KINDS``);
- YAML nested ~600 deep raises RecursionError (not a ConfigError);
- a 300-byte YAML alias bomb that fails validation gives a multi-megabyte error message:
  ``format_validation_error`` appends the full ``repr`` of the offending input (9**9 aliases: no end);
- a duplicated key is accepted silently, the last one winning (``kind: daemon`` then ``kind: model``
  loads a model config);
- ``.inf`` is accepted for every float bounded on one side only (``scheduler.ring_s``,
  ``alarms.thresholds.refractory_s``, ``alarms.publisher.heartbeat_s``, ...);
- ``scheduler.hop_s: 3.3`` (844.8 samples) or ``1e-146`` (0 samples) validates, and every bed stops when it
  opens (``BedPipeline`` needs a whole number of samples, at least one).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ictal.config import ConfigError, load_config
from tests.reliability.helpers import assert_clear_error, bounded_loads

FUZZ = settings(max_examples=100, deadline=3000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID_DAEMON = {
    "kind": "daemon",
    "beds": [{"bed_id": "bed-01", "source": {"type": "lsl", "name": "ictal-replay"}}],
    "scheduler": {"hop_s": 4.0, "ring_s": 120.0},
    "detector": {"checkpoint": "checkpoints/demo", "max_batch": 32},
    "alarms": {
        "thresholds": {"tau_on": 0.8, "tau_off": 0.5, "refractory_s": 60.0},
        "journal": {"path": "j.sqlite3", "retention_days": 30},
        "publisher": {"pub_endpoint": "tcp://127.0.0.1:5556", "catchup_endpoint": "tcp://127.0.0.1:5557",
                      "heartbeat_s": 5.0},
        "metrics": {"host": "127.0.0.1", "port": 9108},
    },
}


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaf_paths(value, (*prefix, i))
    yield prefix


LEAF_PATHS = [p for p in _leaf_paths(VALID_DAEMON) if p and p != ("kind",)]

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(["tcp://0.0.0.0:1", "ipc:///tmp/x", "tcp://[::1]:5", "-1", "1e999"]),
)
JSON_LIKE = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                         max_leaves=10)


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _assert_finite(model: BaseModel, where: str = "") -> None:
    for name, value in model:
        here = f"{where}.{name}" if where else name
        if isinstance(value, BaseModel):
            _assert_finite(value, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _assert_finite(item, f"{here}[{i}]")
                elif isinstance(item, float):
                    assert math.isfinite(item), f"{here}[{i}] = {item} was accepted"
        elif isinstance(value, float):
            assert math.isfinite(value), f"{here} = {value} was accepted"


def _check_contract(path: Path) -> BaseModel | None:
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc), f"ConfigError naming no file: {exc}"
        assert len(str(exc)) < 64_000, f"a {path.stat().st_size}-byte file gave a {len(str(exc))}-char error"
        return None
    return config


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(LEAF_PATHS), JSON_LIKE), min_size=1, max_size=3))
def test_any_value_at_any_key_gives_a_config_or_a_config_error(tmp_path, edits):
    doc = yaml.safe_load(yaml.safe_dump(VALID_DAEMON))
    for leaf, value in edits:
        try:
            _set(doc, leaf, value)
        except (TypeError, KeyError, IndexError):
            continue  # an earlier edit replaced a parent of this path
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _check_contract(path)


@FUZZ
@given(data=st.one_of(st.binary(max_size=256),
                      JSON_LIKE.map(lambda v: yaml.safe_dump({"kind": v}).encode()),
                      st.text(max_size=200).map(lambda t: ("kind: daemon\n" + t).encode("utf-8", "replace"))))
def test_any_bytes_give_a_config_or_a_config_error(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    _check_contract(path)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
@given(edits=st.lists(st.tuples(st.sampled_from(LEAF_PATHS), JSON_LIKE), min_size=1, max_size=4))
def test_long_fuzz_of_config_values(tmp_path, edits):
    doc = yaml.safe_load(yaml.safe_dump(VALID_DAEMON))
    for leaf, value in edits:
        try:
            _set(doc, leaf, value)
        except (TypeError, KeyError, IndexError):
            continue
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _check_contract(path)


# -- hostile files, loaded in a child under the memory and time bound ---------------------------------

def _alias_bomb(levels: int) -> str:
    lines = ["kind: daemon", "l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nbeds: *l{levels - 1}\n"


HOSTILE: dict[str, tuple[bytes, tuple[str, ...], str | None]] = {
    "python_tag.yaml": (b"kind: daemon\nbeds: !!python/object/apply:os.system ['true']\n", ("yaml", "tag"), None),
    "tab_indent.yaml": (b"kind: daemon\n\tbeds: []\n", ("yaml",), None),
    "not_a_mapping.yaml": (b"- kind\n- daemon\n", ("mapping",), None),
    "unknown_kind.yaml": (b"kind: rootkit\n", ("kind",), None),
    "port_bigint.yaml": (b"kind: daemon\nalarms: {metrics: {port: 99999999999999999999999}}\n", ("port",), None),
    "hop_nan.yaml": (b"kind: daemon\nscheduler: {hop_s: .nan}\n", ("hop_s",), None),
    "binary.yaml": (b"\x00\x01\xff\xfe kind", ("utf-8", "decode", "text"), None),
    "kind_is_a_list.yaml": (b"kind: [daemon]\n", ("kind",), None),
    "nested_600_maps.yaml": (("kind: daemon\nbeds: " + "{a: " * 600 + "1" + "}" * 600 + "\n").encode(),
                             ("nest", "deep", "depth", "yaml"), None),
    "nested_1000_lists.yaml": (("kind: daemon\nbeds: " + "[" * 1000 + "]" * 1000 + "\n").encode(),
                               ("nest", "deep", "depth", "yaml"), None),
    "duplicate_key.yaml": (b"kind: daemon\nkind: model\n", ("duplicate", "kind"), None),
    "ring_infinite.yaml": (b"kind: daemon\nscheduler: {ring_s: .inf}\n", ("ring_s",), None),
    "refractory_infinite.yaml": (b"kind: daemon\nalarms: {thresholds: {refractory_s: .inf}}\n",
                                 ("refractory_s",), None),
    "heartbeat_infinite.yaml": (b"kind: daemon\nalarms: {publisher: {heartbeat_s: .inf}}\n", ("heartbeat_s",), None),
}


@pytest.fixture(scope="module")
def hostile_configs(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("hostile_configs")
    paths = []
    for name, (data, _, _) in HOSTILE.items():
        paths.append(folder / name)
        paths[-1].write_bytes(data)
    return folder, bounded_loads("config", paths, mem_mb=1024, timeout_s=10)


def _hostile_params():
    for name, (_, words, reason) in HOSTILE.items():
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(name, words, id=name, marks=marks)


@pytest.mark.parametrize(("name", "words"), list(_hostile_params()))
def test_hostile_config_gives_a_config_error_naming_file_and_key(hostile_configs, name, words):
    folder, results = hostile_configs
    result = results[str(folder / name)]
    assert_clear_error(result, folder / name, words)
    assert "ConfigError" in result["mro"], f"{name}: {result['type']}, expected ConfigError"


def test_yaml_alias_bomb_gives_a_short_error(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(6))
    assert path.stat().st_size < 400
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert len(str(info.value)) < 64_000, f"{len(str(info.value))} characters of error for a 300-byte file"


def test_valid_config_survives_the_fuzz_harness(tmp_path):
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump(VALID_DAEMON))
    config = _check_contract(path)
    assert config is not None and config.beds[0].bed_id == "bed-01"
    _assert_finite(config)


@FUZZ
@given(leaf=st.sampled_from(LEAF_PATHS), value=st.sampled_from([math.inf, -math.inf]))
def test_no_config_holds_a_non_finite_number(tmp_path, leaf, value):
    doc = yaml.safe_load(yaml.safe_dump(VALID_DAEMON))
    _set(doc, leaf, value)
    path = tmp_path / "inf.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = _check_contract(path)
    if config is not None:
        _assert_finite(config)


HOPS = st.one_of(st.floats(-1.0, 61.0, allow_nan=False), st.integers(-2, 15400).map(lambda n: n / 256),
                 st.sampled_from([3.3, 0.1, 1e-9, 59.999, 60.0, 4.0, 0.5]))


@settings(max_examples=100, deadline=None, derandomize=True)  # the first 250.1 Hz filter design takes ~0.1 s
@given(hop_s=HOPS, ring_s=st.floats(0.0, 400.0), min_history_s=st.floats(0.0, 70.0),
       fs=st.sampled_from([100.0, 200.0, 250.1, 256.0, 499.9, 512.0, 4096.0]))
def test_a_scheduler_config_that_validates_never_stops_a_bed_at_run_time(hop_s, ring_s, min_history_s, fs):
    """What ``config check`` accepts, the bed accepts when it opens (at any supported input rate)."""
    from ictal.alarms.config import AlarmThresholds
    from ictal.detector.config import FrontendConfig
    from ictal.detector.resample import rational_rate
    from ictal.streaming.bed import BedSession
    from ictal.streaming.config import SchedulerConfig

    try:
        scheduler = SchedulerConfig(hop_s=hop_s, ring_s=ring_s, min_history_s=min_history_s)
    except ValueError:
        return
    BedSession("bed-fuzz", FrontendConfig(), rational_rate(fs), AlarmThresholds(), hop_s=scheduler.hop_s,
               ring_s=scheduler.ring_s, min_history_s=scheduler.min_history_s)
