"""csv_bi / tse readers, the csv_bi writer and list files (training.scoring.annotations)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ictal.training.scoring.annotations import (
    Annotation,
    AnnotationError,
    Event,
    read_annotation,
    read_csv_bi,
    read_list,
    read_tse,
    write_csv_bi,
)

GOOD_CSV = """# version = csv_v1.0.0
# bname = rec_s001_t000
# duration = 120.5000 secs
# montage_file = nedc_eas_default_montage.txt
#
channel,start_time,stop_time,label,confidence
TERM,10.2500,30.0000,seiz,1.0000
TERM,40.0000,41.5000,bckg,0.5000
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_bi_reader_gives_duration_and_events_in_file_order(tmp_path):
    ann = read_csv_bi(_write(tmp_path, "rec_s001_t000.csv_bi", GOOD_CSV))
    assert ann.duration_s == 120.5
    assert ann.events == [Event(10.25, 30.0, "seiz", 1.0), Event(40.0, 41.5, "bckg", 0.5)]


def test_reader_dispatches_on_extension_and_rejects_unknown(tmp_path):
    assert read_annotation(_write(tmp_path, "a.csv_bi", GOOD_CSV)).duration_s == 120.5
    with pytest.raises(AnnotationError, match=r"\.txt"):
        read_annotation(_write(tmp_path, "a.txt", GOOD_CSV))


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("TERM,abc,30.0000,seiz,1.0000", r"start time is 'abc'"),
        ("TERM,10.0,x9,seiz,1.0000", r"stop time is 'x9'"),
        ("TERM,30.0,10.0,seiz,1.0000", r"stop time 10.0 is before start time 30.0"),
        ("TERM,10.0,30.0,seiz", r"4 fields"),
        ("FP1-F7,10.0,30.0,seiz,1.0", r"channel 'FP1-F7', expected 'TERM'"),
        ("TERM,10.0,30.0,seiz,high", r"confidence is 'high'"),
        ("TERM,10.0,30.0,,1.0", r"empty label"),
    ],
)
def test_malformed_csv_bi_row_names_file_and_line(tmp_path, bad_line, message):
    text = GOOD_CSV.replace("TERM,40.0000,41.5000,bckg,0.5000", bad_line)
    path = _write(tmp_path, "bad.csv_bi", text)
    with pytest.raises(AnnotationError, match=message) as info:
        read_csv_bi(path)
    assert f"{path}:8" in str(info.value)


def test_missing_duration_header_is_an_error(tmp_path):
    path = _write(tmp_path, "nodur.csv_bi", GOOD_CSV.replace("# duration = 120.5000 secs\n", ""))
    with pytest.raises(AnnotationError, match="duration") as info:
        read_csv_bi(path)
    assert str(path) in str(info.value)


def test_non_numeric_duration_and_event_past_duration_are_errors(tmp_path):
    path = _write(tmp_path, "d.csv_bi", GOOD_CSV.replace("120.5000 secs", "long secs"))
    with pytest.raises(AnnotationError, match=r"d.csv_bi:3: duration is 'long'"):
        read_csv_bi(path)
    path = _write(tmp_path, "e.csv_bi", GOOD_CSV.replace("120.5000 secs", "35.0000 secs"))
    with pytest.raises(AnnotationError, match="ends after the duration 35.0"):
        read_csv_bi(path)


def test_wrong_column_header_is_an_error(tmp_path):
    path = _write(tmp_path, "h.csv_bi", GOOD_CSV.replace("channel,start_time", "chan,begin"))
    with pytest.raises(AnnotationError, match=r"h.csv_bi:6: found 'chan,begin"):
        read_csv_bi(path)


def test_tse_reader_takes_duration_from_last_stop(tmp_path):
    text = "version = tse_v1.0.0\n\n0.0000 10.2500 bckg 1.0000\n10.2500 30.0000 SEIZ 0.9000\n30.0000 64.0000 bckg 1.0\n"
    ann = read_annotation(_write(tmp_path, "rec.tse_bi", text))
    assert ann.duration_s == 64.0
    assert ann.events[1] == Event(10.25, 30.0, "seiz", 0.9)
    assert len(ann.events) == 3
    assert read_tse(_write(tmp_path, "rec.tse", text)) == ann


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = tse_v2.0.0\n0 1 seiz 1\n", r"expected 'version = tse_v1.0.0'"),
        ("version = tse_v1.0.0\n0 1 seiz\n", r":2: 3 fields"),
        ("version = tse_v1.0.0\n5 1 seiz 1\n", r":2: stop time 1.0 is before start time 5.0"),
        ("", "empty file"),
    ],
)
def test_malformed_tse_is_an_error(tmp_path, text, message):
    with pytest.raises(AnnotationError, match=message):
        read_tse(_write(tmp_path, "bad.tse", text))


def test_csv_bi_written_then_read_is_identical(tmp_path):
    ann = read_csv_bi(_write(tmp_path, "in.csv_bi", GOOD_CSV))
    out = tmp_path / "out.csv_bi"
    write_csv_bi(out, ann, bname="rec_s001_t000")
    assert read_csv_bi(out) == ann
    assert "# bname = rec_s001_t000" in out.read_text()
    assert "TERM,10.2500,30.0000,seiz,1.0000" in out.read_text()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e5, allow_nan=False),
            st.floats(0, 1e3, allow_nan=False),
            st.sampled_from(["seiz", "bckg"]),
            st.floats(0, 1, allow_nan=False),
        ),
        max_size=6,
    )
)
def test_csv_bi_round_trip_is_exact_for_any_times(tmp_path_factory, rows):
    events = [Event(s, s + d, lab, c) for s, d, lab, c in rows]
    duration = max([e.stop_s for e in events], default=0.0) + 1.0
    ann = Annotation(duration, events)
    path = tmp_path_factory.mktemp("rt") / "x.csv_bi"
    write_csv_bi(path, ann)
    assert read_csv_bi(path) == ann


def test_list_file_resolves_relative_paths_against_its_folder_in_order(tmp_path):
    sub = tmp_path / "lists"
    sub.mkdir()
    lst = _write(sub, "ref.list", "# comment\n../b.csv_bi\n\n/abs/a.csv_bi\nc.csv_bi\n")
    assert read_list(lst) == [
        tmp_path.resolve() / "b.csv_bi",
        Path("/abs/a.csv_bi"),
        sub.resolve() / "c.csv_bi",
    ]
    assert read_list(lst)[0].resolve() == (tmp_path / "b.csv_bi").resolve()


def test_empty_list_file_is_an_error(tmp_path):
    with pytest.raises(AnnotationError, match="names no file"):
        read_list(_write(tmp_path, "empty.list", "\n# nothing\n"))
