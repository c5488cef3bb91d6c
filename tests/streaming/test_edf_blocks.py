"""streaming.edf block reading (open_canonical / CanonicalStream / read_annotations): the same samples,
annotations and refusals as the whole-file read, and only the data records a block needs are read."""

from __future__ import annotations

from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.config import FrontendConfig
from ictal.detector.montage import MontageError
from ictal.streaming.edf import (
    EdfFormatError,
    load_canonical,
    open_canonical,
    read_annotations,
    read_edf,
)
from tests.reliability.edf_surgery import header_bytes, num_signals, read_field, set_field, signal_index


def _all_edf(shared_data: Path) -> list[Path]:
    files = sorted(shared_data.rglob("*.edf"))
    assert len(files) >= 147, f"expected the 147 EDF files of {shared_data}, found {len(files)}"
    return files


def test_blocks_of_every_shared_file_equal_the_whole_file_read_sample_for_sample(shared_data):
    loaded = 0
    for path in _all_edf(shared_data):
        try:
            whole = load_canonical(path)
        except MontageError as exc:
            with pytest.raises(MontageError) as info:
                open_canonical(path)
            assert str(info.value) == str(exc), path
            continue
        with open_canonical(path) as stream:
            assert (stream.fs, stream.n_samples, stream.duration_s) == (
                whole.fs, whole.data.shape[1], whole.duration_s), path
            assert stream.annotations == whole.annotations, path
            assert stream.montage == whole.montage, path
            # 777 samples: blocks that start and end inside data records (records hold 200-500 samples)
            blocks = list(stream.blocks(777))
            assert [first for first, _ in blocks] == list(range(0, stream.n_samples, 777)), path
            got = np.concatenate([data for _, data in blocks], axis=1)
            assert got.dtype == np.float32 and got.shape == whole.data.shape, path
            np.testing.assert_array_equal(got, whole.data, err_msg=str(path))
        loaded += 1
    assert loaded == 126, f"expected 126 loadable shared files (147 minus 21 bipolar), found {loaded}"


def test_any_sample_range_equals_the_same_slice_of_the_whole_file(shared_data):
    path = shared_data / "background" / "eegmat" / "Subject00_1.edf"  # 500 Hz, 1 s records
    whole = load_canonical(path).data
    rng = np.random.default_rng(7)
    with open_canonical(path) as stream:
        for _ in range(40):
            start, stop = sorted(int(v) for v in rng.integers(0, stream.n_samples + 1, 2))
            np.testing.assert_array_equal(stream.read(start, stop), whole[:, start:stop])
        assert stream.read(5, 5).shape == (19, 0)
        with pytest.raises(ValueError, match=r"samples \[0, 91001\) requested; expected a range within \[0, 91000\]"):
            stream.read(0, stream.n_samples + 1)
    with pytest.raises(ValueError, match="closed"):
        stream.read(0, 10)


def test_annotations_read_alone_equal_those_of_the_whole_file_read(shared_data):
    with_annotations = 0
    for path in _all_edf(shared_data):
        annotations = read_annotations(path)
        assert annotations == read_edf(path).annotations, path
        with_annotations += bool(annotations)
    assert with_annotations >= 100  # the labelled files and the CHB-MIT clips carry EDF+ annotations


def test_a_stream_reads_only_the_data_records_it_serves(shared_data, tmp_path):
    # The file loses its second half after it was opened: the first half is still served (it was
    # never read before), the second half is an error naming the records, not a silent short read.
    path = tmp_path / "shrinking.edf"
    path.write_bytes((shared_data / "labelled" / "iiic_01.edf").read_bytes())  # 50 records of 1 s at 200 Hz
    whole = load_canonical(path).data
    stream = open_canonical(path)
    raw = path.read_bytes()
    record_bytes = (len(raw) - header_bytes(raw)) // 50
    path.write_bytes(raw[:header_bytes(raw) + 25 * record_bytes])
    np.testing.assert_array_equal(stream.read(0, 25 * 200), whole[:, :25 * 200])
    with pytest.raises(EdfFormatError, match=r"shrinking\.edf: data records 26 to 30 of 50 hold 0 bytes; expected "
                       rf"{5 * record_bytes} \(the file shrank"):
        stream.read(25 * 200, 30 * 200)
    stream.close()
    assert stream.closed


def test_repaired_midline_channel_is_the_same_in_blocks(tmp_path):
    path = tmp_path / "nocz.edf"
    rng = np.random.default_rng(0)
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS if name != "Cz"]
    edfio.Edf([edfio.EdfSignal(rng.normal(0, 30, 256 * 20), 256, label=label, physical_dimension="uV",
                               physical_range=(-500, 500)) for label in labels]).write(path)
    config = FrontendConfig(repair_missing=["Cz"])
    with pytest.raises(MontageError, match="Cz"):
        open_canonical(path)
    with open_canonical(path, config) as stream:
        got = np.concatenate([data for _, data in stream.blocks(1000)], axis=1)
    np.testing.assert_array_equal(got, load_canonical(path, config).data)


def test_calibration_beyond_float32_is_refused_before_any_block_with_load_canonicals_message(shared_data, tmp_path):
    raw = (shared_data / "labelled" / "iiic_01.edf").read_bytes()
    c3 = signal_index(raw, "EEG C3-REF")
    path = tmp_path / "huge_range.edf"
    path.write_bytes(set_field(set_field(raw, "physical_min", "-9e99", c3), "physical_max", "9e99", c3))
    with pytest.raises(EdfFormatError) as whole:
        load_canonical(path)
    with pytest.raises(EdfFormatError) as blocks:
        open_canonical(path)
    assert str(blocks.value) == str(whole.value)
    assert "channel 'EEG C3-REF' reaches" in str(blocks.value)


def _with_record_onset(raw: bytes, record: int, onset: int) -> bytes:
    """``raw`` with the timekeeping annotation of data record ``record`` (from 0) set to ``+onset``."""
    ns = num_signals(raw)
    spr = [int(read_field(raw, "samples_per_record", k)) for k in range(ns)]
    ann = signal_index(raw, "EDF Annotations")
    start = header_bytes(raw) + 2 * (record * sum(spr) + sum(spr[:ann]))
    size = 2 * spr[ann]
    old = raw[start:start + size]
    tal_end = old.index(b"\x14\x14\x00") + 3
    assert old[:tal_end] == f"+{record}\x14\x14\x00".encode(), old[:tal_end]  # 1 s records from 0
    new = (f"+{onset}\x14\x14\x00".encode() + old[tal_end:])[:size].ljust(size, b"\x00")
    return raw[:start] + new + raw[start + size:]


def test_edf_plus_d_is_read_as_read_edf_reads_it(shared_data, tmp_path):
    raw = set_field((shared_data / "labelled" / "iiic_01.edf").read_bytes(), "reserved", "EDF+D")
    contiguous = tmp_path / "contiguous.edf"
    contiguous.write_bytes(raw)
    with open_canonical(contiguous) as stream:
        np.testing.assert_array_equal(stream.read(0, stream.n_samples), load_canonical(contiguous).data)
        assert stream.reserved == "EDF+D"
    broken = tmp_path / "discontinuous.edf"
    broken.write_bytes(_with_record_onset(raw, 10, 100))  # records 0-9 then a jump of 90 s
    with pytest.raises(EdfFormatError) as whole:
        load_canonical(broken)
    with pytest.raises(EdfFormatError, match="discontinuous EDF\\+D") as blocks:
        open_canonical(broken)
    assert str(blocks.value) == str(whole.value)
    with pytest.raises(EdfFormatError, match="discontinuous EDF\\+D"):
        read_annotations(broken)


def test_the_memory_benchmarks_synthetic_file_is_a_valid_edf_plus(tmp_path):
    from ictal.streaming.bench_edf_memory import write_synthetic_edf

    path = tmp_path / "synthetic.edf"
    assert write_synthetic_edf(path, 1836 / 3600, 256) == 1836
    with open_canonical(path) as stream:
        assert (stream.fs, stream.n_samples, stream.reserved) == (256.0, 1836 * 256, "EDF+C")
        assert stream.annotations == [(1800.5, 1.0, "hourly mark")]
        assert list(stream.montage.ignored) == ["EKG"]
        block = stream.read(1000 * 256, 1010 * 256)
    assert 25.0 < float(block.std()) < 35.0  # 30 uV rms noise at 0.1 uV per bit
