"""Hostile EDF files (truncated, corrupt headers, NaN-producing ranges, garbage annotations).

Each file is a copy of a real recording (``labelled/iiic_01.edf``: 20 signals + EDF Annotations,
200 Hz, 50 records of 1 s) with one thing broken. Every file is loaded by
``streaming.edf.load_canonical`` in a child process limited to ``LOAD_MEM_MB`` of address space and
``LOAD_TIMEOUT_S`` per file, and the expected behaviour is asserted:

- a broken file gives a ValueError whose message names the file and the field (or the thing) that
  is wrong: never another exception type, never a silent load of wrong numbers, never a hang, never
  more memory than the bound;
- a file whose only oddity is in a field the reader does not need (version, start date) or that the
  EDF specification allows (``num_data_records = -1``) loads the same samples as the original.

Cases marked ``xfail(strict=True)`` are bugs found by these tests in ``streaming/edf.py`` (which
passes edfio's exceptions through, and edfio's warnings are silent); the reason says what happens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.edf_surgery import (
    header_bytes,
    num_signals,
    read_field,
    set_field,
    signal_index,
)
from tests.reliability.helpers import LOAD_MEM_MB, assert_clear_error, bounded_loads

SOURCE = "labelled/iiic_01.edf"
C3 = "EEG C3-REF"


def _annotation_garbage(raw: bytes) -> bytes:
    """Binary bytes in the first data record of the EDF Annotations signal."""
    ann = signal_index(raw, "EDF Annotations")
    spr = [int(read_field(raw, "samples_per_record", k)) for k in range(num_signals(raw))]
    offset = header_bytes(raw) + 2 * sum(spr[:ann])
    out = bytearray(raw)
    out[offset : offset + 40] = bytes(range(200, 240))
    return bytes(out)


def _c3(raw: bytes) -> int:
    return signal_index(raw, C3)


# name -> (builder, words the message must contain one of, xfail reason or None)
ERROR_CASES: dict[str, tuple[Callable[[bytes], bytes], tuple[str, ...], str | None]] = {
    "empty_file": (lambda r: b"", ("empty", "header", "0 bytes"), None),
    "cut_in_fixed_header": (lambda r: r[:100], ("header", "truncat"), None),
    "cut_in_signal_headers": (lambda r: r[:3000], ("header", "truncat"), None),
    "header_only_no_records": (lambda r: r[: header_bytes(r)], ("record", "no samples", "no data"), None),
    "cut_mid_record": (lambda r: r[:-1000], ("truncat", "record"), None),
    "bytes_in_header_too_small": (lambda r: set_field(r, "bytes_in_header", "256"), ("header", "bytes"),
                                  None),
    "bytes_in_header_huge": (lambda r: set_field(r, "bytes_in_header", "99999999"), ("header", "bytes"),
                             None),
    "bytes_in_header_negative": (lambda r: set_field(r, "bytes_in_header", "-9999999"), ("header", "bytes"),
                                 None),
    "bytes_in_header_not_a_number": (lambda r: set_field(r, "bytes_in_header", "abc"), ("header", "bytes"),
                                     None),
    "num_signals_zero": (lambda r: set_field(r, "num_signals", "0"), ("signals", "ns"), None),
    "num_signals_huge": (lambda r: set_field(r, "num_signals", "9999"), ("signals", "ns", "header"), None),
    "num_signals_not_a_number": (lambda r: set_field(r, "num_signals", "ab"), ("signals", "ns"), None),
    "num_records_not_a_number": (lambda r: set_field(r, "num_data_records", "abc"), ("records",), None),
    "num_records_huge": (lambda r: set_field(r, "num_data_records", "99999999"), ("records",), None),
    "num_records_negative": (lambda r: set_field(r, "num_data_records", "-5"), ("records",), None),
    "record_duration_zero": (lambda r: set_field(r, "data_record_duration", "0"), ("duration",), None),
    "record_duration_negative": (lambda r: set_field(r, "data_record_duration", "-1"), ("duration",), None),
    "record_duration_huge": (lambda r: set_field(r, "data_record_duration", "1e308"), ("duration",), None),
    "record_duration_nan": (lambda r: set_field(r, "data_record_duration", "nan"), ("duration",), None),
    "record_duration_not_a_number": (lambda r: set_field(r, "data_record_duration", "abc"), ("duration",),
                                     None),
    "samples_per_record_huge": (lambda r: set_field(r, "samples_per_record", "99999999", _c3(r)),
                                ("samples", "record"), None),
    "samples_per_record_zero": (lambda r: set_field(r, "samples_per_record", "0", _c3(r)),
                                ("samples", "record"), None),
    "samples_per_record_negative": (lambda r: set_field(r, "samples_per_record", "-200", _c3(r)),
                                    ("samples", "record"), None),
    "samples_per_record_not_a_number": (lambda r: set_field(r, "samples_per_record", "abc", _c3(r)),
                                        ("samples", "record"), None),
    "physical_min_equals_max": (
        lambda r: set_field(set_field(r, "physical_min", "100", _c3(r)), "physical_max", "100", _c3(r)),
        ("physical",), None),
    "digital_min_equals_max": (
        lambda r: set_field(set_field(r, "digital_min", "0", _c3(r)), "digital_max", "0", _c3(r)),
        ("digital",), None),
    "physical_min_nan": (lambda r: set_field(r, "physical_min", "nan", _c3(r)), ("physical",), None),
    "physical_max_inf": (lambda r: set_field(r, "physical_max", "inf", _c3(r)), ("physical",), None),
    "physical_max_not_a_number": (lambda r: set_field(r, "physical_max", "abc", _c3(r)), ("physical",), None),
    "digital_min_not_a_number": (lambda r: set_field(r, "digital_min", "abc", _c3(r)), ("digital",), None),
    "digital_min_not_an_integer": (lambda r: set_field(r, "digital_min", "-3.5e4", _c3(r)), ("digital",),
                                   None),
    "annotation_signal_binary": (_annotation_garbage, ("annotation",), None),
    "label_binary": (lambda r: set_field(r, "label", b"\xff\xfe\x00EEG", _c3(r)), ("C3",), None),
    "physical_dimension_binary": (lambda r: set_field(r, "physical_dimension", b"\xff\xfe", _c3(r)),
                                  ("physical dimension",), None),
    "physical_dimension_not_a_voltage": (lambda r: set_field(r, "physical_dimension", "degC", _c3(r)),
                                         ("physical dimension",), None),
}

# Oddities in fields the reader does not need, or that the EDF specification allows: same samples.
BENIGN_CASES: dict[str, Callable[[bytes], bytes]] = {
    "version_binary": lambda r: set_field(r, "version", b"\x00\xff"),
    "startdate_impossible": lambda r: set_field(r, "startdate", "99.99.99"),
    "num_records_unknown_minus_one": lambda r: set_field(r, "num_data_records", "-1"),
    "patient_field_binary": lambda r: set_field(r, "patient", bytes(range(128, 208))),
}


@pytest.fixture(scope="module")
def hostile_results(shared_data, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    raw = (shared_data / SOURCE).read_bytes()
    folder = tmp_path_factory.mktemp("hostile_edf")
    paths = []
    for name, (build, _, _) in ERROR_CASES.items():
        paths.append(folder / f"{name}.edf")
        paths[-1].write_bytes(build(raw))
    for name, build in BENIGN_CASES.items():
        paths.append(folder / f"{name}.edf")
        paths[-1].write_bytes(build(raw))
    original = folder / "original.edf"
    original.write_bytes(raw)
    paths.append(original)
    return folder, bounded_loads("edf", paths)


def _error_params():
    for name, (_, words, reason) in ERROR_CASES.items():
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(name, words, id=name, marks=marks)


@pytest.mark.parametrize(("name", "words"), list(_error_params()))
def test_hostile_edf_gives_a_clear_error_in_bounded_memory_and_time(hostile_results, name, words):
    folder, results = hostile_results
    path = folder / f"{name}.edf"
    assert_clear_error(results[str(path)], path, words)


@pytest.mark.parametrize("name", list(BENIGN_CASES))
def test_oddities_in_unused_or_allowed_fields_load_the_same_samples(hostile_results, name):
    folder, results = hostile_results
    result, original = results[str(folder / f"{name}.edf")], results[str(folder / "original.edf")]
    assert original["outcome"] == "ok", f"the untouched copy of {SOURCE} failed to load: {original}"
    assert result["outcome"] == "ok", f"{name}: {result['type']}: {result['message']}"
    assert (result["shape"], result["fs"], result["max_abs_uv"]) == (
        original["shape"], original["fs"], original["max_abs_uv"]), f"{name} loaded other samples: {result}"
    assert result["finite"]


def test_every_hostile_load_stayed_within_the_memory_bound(hostile_results):
    _, results = hostile_results
    over = {Path(p).name: r["message"] for p, r in results.items() if r["outcome"] in ("memory", "timeout")}
    assert not over, f"loads that exceeded {LOAD_MEM_MB} MB or the time limit: {over}"
    assert len(results) == len(ERROR_CASES) + len(BENIGN_CASES) + 1


def test_edf_surgery_edits_only_the_named_field(shared_data):
    raw = (shared_data / SOURCE).read_bytes()
    c3 = signal_index(raw, C3)
    edited = set_field(raw, "physical_max", "123", c3)
    diff = np.flatnonzero(np.frombuffer(raw, np.uint8) != np.frombuffer(edited, np.uint8))
    assert read_field(edited, "physical_max", c3) == b"123".ljust(8)
    assert read_field(edited, "physical_max", c3 + 1) == read_field(raw, "physical_max", c3 + 1)
    assert diff.size > 0 and diff.max() - diff.min() < 8


def _outcome(load, path: Path):
    """("ok", samples) or ("error", exception class name, message) of one load."""
    try:
        return ("ok", load(path))
    except (ValueError, OSError) as exc:  # MontageError and EdfFormatError are ValueErrors
        return ("error", type(exc).__name__, str(exc))


def _blocks(path: Path) -> np.ndarray:
    from ictal.streaming.edf import open_canonical

    with open_canonical(path) as stream:
        return np.concatenate([data for _, data in stream.blocks(333)], axis=1)


def test_block_reader_refuses_every_hostile_file_as_load_canonical_does_and_reads_the_benign_ones_alike(
        shared_data, tmp_path):
    from ictal.streaming.edf import load_canonical

    raw = (shared_data / SOURCE).read_bytes()
    cases = {name: build for name, (build, _, _) in ERROR_CASES.items()} | BENIGN_CASES | {"original": lambda r: r}
    for name, build in cases.items():
        path = tmp_path / f"{name}.edf"
        path.write_bytes(build(raw))
        whole = _outcome(lambda p: load_canonical(p).data, path)
        blocks = _outcome(_blocks, path)
        assert whole[0] == blocks[0], f"{name}: load_canonical gave {whole[:3]!r}, the block reader {blocks[:3]!r}"
        if whole[0] == "ok":
            np.testing.assert_array_equal(blocks[1], whole[1], err_msg=name)
        else:
            assert blocks == whole, name
    assert sum(1 for name in cases if name in ERROR_CASES) == len(ERROR_CASES)
