"""Fuzzing and hostile files for the TUSZ annotation readers (``training.scoring.annotations``).

Contract of ``read_annotation`` for ANY bytes: it returns an ``Annotation`` whose events have finite
times from 0 to ``MAX_TIME_S``, ``stop >= start``, confidence in [0, 1] and a non-empty label, or it
raises ``AnnotationError`` (a ValueError) whose message names the file. Nothing else escapes, memory
stays bounded and nothing hangs.

Bugs these tests found (fixed in training/scoring/annotations.py): a binary or Latin-1 file raised
UnicodeDecodeError naming no file; ``float()`` read ``1_0`` as 10 s; confidences of 5 or -1 were
accepted; a time of 1e308 s was accepted (the EPOCH scorer then loops ~4e308 times); a file of any
size was read.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ictal.training.scoring.annotations import (
    MAX_FILE_BYTES,
    MAX_TIME_S,
    Annotation,
    AnnotationError,
    read_annotation,
    read_list,
)
from tests.reliability.helpers import assert_clear_error, bounded_loads

SUFFIXES = (".csv_bi", ".tse", ".tse_bi", ".csv")
CSV_HEAD = "# version = csv_v1.0.0\n# duration = {duration} secs\n#\nchannel,start_time,stop_time,label,confidence\n"
FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_LONG = settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check_contract(path: Path) -> Annotation | None:
    try:
        ann = read_annotation(path)
    except AnnotationError as exc:
        assert str(path) in str(exc), f"AnnotationError naming no file: {exc}"
        return None
    for event in ann.events:
        assert math.isfinite(event.start_s) and math.isfinite(event.stop_s)
        assert 0 <= event.start_s <= event.stop_s <= MAX_TIME_S, event
        assert 0.0 <= event.confidence <= 1.0, event
        assert event.label and event.label == event.label.lower(), event
    assert 0 <= ann.duration_s <= MAX_TIME_S
    return ann


# Tokens that reach the numeric and label parsers, including every spelling float() accepts but a
# TUSZ file never holds.
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["1_0", "nan", "inf", "-inf", "1e308", "1e-400", "+5", ".5", "5.", "0x10", "１２",
                     "", " ", "1,5", "1e", "e5", "-0"]),
)
LABELS = st.one_of(st.sampled_from(["seiz", "bckg", "SEIZ", "", " "]), st.text(max_size=8))


@st.composite
def csv_bi_texts(draw) -> str:
    rows = draw(st.lists(st.tuples(st.sampled_from(["TERM", "FP1-F7", ""]), NUMBERS, NUMBERS, LABELS, NUMBERS),
                         max_size=5))
    body = "".join(f"{c},{a},{b},{lab},{conf}\n" for c, a, b, lab, conf in rows)
    return CSV_HEAD.format(duration=draw(NUMBERS)) + body


@st.composite
def tse_texts(draw) -> str:
    rows = draw(st.lists(st.tuples(NUMBERS, NUMBERS, LABELS, NUMBERS), max_size=5))
    return "version = tse_v1.0.0\n\n" + "".join(f"{a} {b} {lab} {conf}\n" for a, b, lab, conf in rows)


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_any_bytes_give_an_annotation_or_an_annotation_error(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _check_contract(path)


@FUZZ
@given(text=st.one_of(csv_bi_texts(), tse_texts()), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_structured_rows_with_hostile_fields_keep_the_contract(tmp_path, text, encoding):
    suffix = ".csv_bi" if text.startswith("#") else ".tse"
    path = tmp_path / f"rows{suffix}"
    path.write_bytes(text.encode(encoding, errors="replace"))
    _check_contract(path)


@FUZZ
@given(data=st.binary(max_size=1024))
def test_any_list_file_gives_paths_or_an_annotation_error(tmp_path, data):
    path = tmp_path / "fuzz.list"
    path.write_bytes(data)
    try:
        paths = read_list(path)
    except AnnotationError as exc:
        assert str(path) in str(exc)
        return
    assert paths and all(p.is_absolute() for p in paths)


@pytest.mark.slow
@FUZZ_LONG
@given(text=st.one_of(csv_bi_texts(), tse_texts(), st.binary(max_size=4096).map(lambda b: b.decode("latin-1"))))
def test_long_fuzz_of_the_annotation_readers(tmp_path, text):
    path = tmp_path / ("long.csv_bi" if text.startswith("#") else "long.tse")
    path.write_bytes(text.encode("utf-8", errors="replace"))
    _check_contract(path)


# -- hostile files, each with its expected error, loaded under the memory and time bound -------------

GOOD = CSV_HEAD.format(duration="100.0000")
HOSTILE: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "binary.csv_bi": (bytes(range(256)) * 16, ("utf-8",)),
    "binary.tse": (b"\x00\x01\xff" * 100, ("utf-8",)),
    "latin1_label.csv_bi": ((GOOD + "TERM,1.0,2.0,s\xe9iz,1.0\n").encode("latin-1"), ("utf-8",)),
    "underscore_number.csv_bi": ((GOOD + "TERM,1_0,20.0,seiz,1.0\n").encode(), ("start time", "1_0")),
    "confidence_above_one.csv_bi": ((GOOD + "TERM,1.0,2.0,seiz,5.0\n").encode(), ("confidence",)),
    "confidence_negative.tse": (b"version = tse_v1.0.0\n0 1 seiz -1\n", ("confidence",)),
    "time_1e308.csv_bi": (CSV_HEAD.format(duration="1e308").encode(), ("duration",)),
    "stop_1e308.tse": (b"version = tse_v1.0.0\n0 1e308 seiz 1\n", ("stop time",)),
    "time_nan.csv_bi": ((GOOD + "TERM,nan,2.0,seiz,1.0\n").encode(), ("start time",)),
    "duration_negative.csv_bi": (CSV_HEAD.format(duration="-5").encode(), ("duration",)),
    "nul_in_row.csv_bi": ((GOOD + "TERM,1.0,2.0,seiz,1\x00\n").encode(), ("confidence",)),
    "one_10mb_line.csv_bi": (GOOD.encode() + b"TERM," + b"9" * 10_000_000 + b",1,seiz,1\n", ("start time",)),
}


@pytest.fixture(scope="module")
def hostile_annotations(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("hostile_annotations")
    paths = []
    for name, (data, _) in HOSTILE.items():
        paths.append(folder / name)
        paths[-1].write_bytes(data)
    many = folder / "200k_events.csv_bi"
    many.write_text(CSV_HEAD.format(duration="500000.0") + "".join(
        f"TERM,{2 * k}.0,{2 * k + 1}.0,seiz,1.0\n" for k in range(200_000)))
    paths.append(many)
    return folder, bounded_loads("annotation", paths, mem_mb=1024, timeout_s=30)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_annotation_file_gives_a_clear_error(hostile_annotations, name):
    folder, results = hostile_annotations
    assert_clear_error(results[str(folder / name)], folder / name, HOSTILE[name][1])


def test_annotation_file_over_the_size_limit_is_refused_without_reading_it(tmp_path):
    huge = tmp_path / "sparse_1gb.csv_bi"
    with huge.open("wb") as handle:  # sparse: no disk used, but 1 GiB to read
        handle.truncate(1 << 30)
    result = bounded_loads("annotation", [huge], mem_mb=512)[str(huge)]
    assert_clear_error(result, huge, (f"at most {MAX_FILE_BYTES}",))
    grown = result["peak_rss_mb"] - result["rss_before_mb"]
    assert grown < 50, f"refusing a 1 GiB file took {grown:.0f} MB"


def test_large_valid_annotation_file_loads_in_bounded_memory(hostile_annotations):
    folder, results = hostile_annotations
    result = results[str(folder / "200k_events.csv_bi")]
    assert result["outcome"] == "ok", result
    assert result["shape"] == [200_000] and result["duration_s"] == 500000.0
    grown = result["peak_rss_mb"] - result["rss_before_mb"]
    assert grown < 400, f"200k events took {grown:.0f} MB"


def test_byte_order_mark_and_crlf_line_ends_are_read_like_plain_utf8(tmp_path):
    text = GOOD + "TERM,1.0000,2.0000,seiz,1.0000\n"
    plain = tmp_path / "plain.csv_bi"
    plain.write_text(text)
    windows = tmp_path / "windows.csv_bi"
    windows.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert read_annotation(windows) == read_annotation(plain)
    assert len(read_annotation(plain).events) == 1


def test_error_line_numbers_survive_crlf_line_ends(tmp_path):
    path = tmp_path / "crlf.csv_bi"
    path.write_bytes((GOOD + "TERM,1.0,2.0,seiz,1.0\nTERM,3.0,x,seiz,1.0\n").replace("\n", "\r\n").encode())
    with pytest.raises(AnnotationError, match=r"crlf.csv_bi:6: stop time is 'x'"):
        read_annotation(path)
