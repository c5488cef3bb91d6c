"""streaming.edf: every shared recording loads (or fails as promised); units, annotations, rates."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.config import FrontendConfig
from ictal.detector.montage import MontageError
from ictal.streaming.edf import EdfFormatError, load_canonical, read_edf
from tests.reliability.edf_surgery import read_field, set_field, signal_index

EXPECTED_FAILURES = {"neonatal_bipolar_8ch.edf": "bipolar"}
"""Files refused by the referential front-end, by name, with the text their error must contain."""


def _expected_failure(path: Path) -> str | None:
    """The promised refusal of a shared file, or None when it must load.

    Every CHB-MIT clip (``bipolar/chbmit/``) is a double-banana bipolar recording: the referential
    front-end refuses it as bipolar (../shared/data/README.md says so).
    """
    if path.name in EXPECTED_FAILURES:
        return EXPECTED_FAILURES[path.name]
    if path.parent.name == "chbmit" and path.parent.parent.name == "bipolar":
        return "bipolar"
    return None


def _all_edf(shared_data: Path) -> list[Path]:
    files = sorted(shared_data.rglob("*.edf"))
    assert len(files) >= 147, f"expected the 147 EDF files of {shared_data}, found {len(files)}"
    return files


def test_every_shared_file_loads_or_fails_with_the_promised_message(shared_data):
    refused = []
    for path in _all_edf(shared_data):
        expected = _expected_failure(path)
        if expected is not None:
            with pytest.raises(MontageError, match=expected) as info:
                load_canonical(path)
            # the refusal names every referential channel the front-end needs as missing
            missing = str(info.value).split("missing:")[1]
            assert all(name in missing for name in CANONICAL_CHANNELS), (path, str(info.value))
            refused.append(path)
            continue
        rec = load_canonical(path)
        assert rec.data.shape[0] == 19 and rec.data.dtype == np.float32, path
        assert rec.fs in (200.0, 256.0, 500.0), (path, rec.fs)
        assert np.isfinite(rec.data).all(), path
        header = read_edf(path)
        assert rec.data.shape[1] == pytest.approx(header.duration_s * rec.fs), path
    # the neonatal 8-derivation file and the 20 CHB-MIT clips; nothing else is refused
    assert len(refused) == 21, [p.name for p in refused]


def test_bipolar_file_is_rejected_naming_every_missing_channel(shared_data):
    with pytest.raises(MontageError) as info:
        load_canonical(shared_data / "quirks" / "neonatal_bipolar_8ch.edf")
    message = str(info.value)
    assert "bipolar" in message
    for name in CANONICAL_CHANNELS:
        assert name in message.split("missing:")[1], f"{name} not named as missing in: {message}"


def test_malformed_edf_plus_online_header_loads_as_continuous_recording(shared_data):
    path = shared_data / "quirks" / "neonatal_burst_malformed_header.edf"
    header = read_edf(path)
    assert header.reserved == "EDF+C_Online"
    assert header.annotations == []
    rec = load_canonical(path)
    assert rec.fs == 256.0
    assert rec.data.shape == (19, 211 * 256)
    assert set(rec.montage.ignored) == {"ECG EKG-Ref", "EEG Effort-Ref"}
    std = rec.data.std(axis=1)
    cz = CANONICAL_CHANNELS.index("Cz")
    assert std[cz] < 0.1 * np.median(std), "Cz was the reference and should be nearly flat"


def test_non_eeg_channels_are_ignored_and_channels_reordered(shared_data):
    path = shared_data / "background" / "eegmat" / "Subject00_2.edf"
    header = read_edf(path)
    rec = load_canonical(path)
    assert set(rec.montage.ignored) == {"EEG A2-A1", "ECG ECG"}
    assert rec.fs == 500.0
    t3 = header.labels.index("EEG T3")
    np.testing.assert_allclose(rec.data[CANONICAL_CHANNELS.index("T3")], header.signals[t3], atol=1e-3)


def test_annotations_match_the_manifest(shared_data):
    with open(shared_data / "labelled" / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    checked = 0
    for row in rows:
        rec = load_canonical(shared_data / row["file"])
        assert rec.fs == float(row["fs"]) and rec.duration_s == pytest.approx(float(row["duration_s"]))
        assert len(rec.annotations) >= 1, row["file"]
        onset_s, duration_s, text = rec.annotations[0]
        windows = [[float(v) for v in w.split("-")] for w in row["rated_windows"].split(";")]
        start, stop = min(w[0] for w in windows), max(w[1] for w in windows)  # union of rated windows
        assert (onset_s, duration_s) == pytest.approx((start, stop - start)), row["file"]
        assert text in {"seiz", "lpd", "gpd", "lrda", "grda", "other", "tie"}
        assert (text == "seiz") == (row["seizure"] == "1"), (row["file"], rec.annotations)
        checked += 1
    assert checked == len(rows)


def _write_edf(path: Path, labels, rates, dimension="uV", seconds=4, value=None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    signals, data = [], {}
    for label, fs in zip(labels, rates, strict=True):
        x = rng.normal(0, 0.05, int(seconds * fs)) if value is None else np.full(int(seconds * fs), value)
        data[label] = x
        signals.append(edfio.EdfSignal(x, fs, label=label, physical_dimension=dimension, physical_range=(-1, 1)))
    edfio.Edf(signals).write(path)
    return data


def test_millivolt_file_is_scaled_to_microvolts(tmp_path):
    path = tmp_path / "mv.edf"
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS]
    _write_edf(path, labels, [256] * 19, dimension="mV")
    header = read_edf(path)
    rec = load_canonical(path)
    np.testing.assert_allclose(rec.data[0], header.signals[0] * 1000.0, rtol=1e-5)


def test_differing_rates_among_eeg_channels_are_an_error(tmp_path):
    path = tmp_path / "rates.edf"
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS] + ["EKG"]
    rates = [256] * 18 + [128, 512]
    _write_edf(path, labels, rates)
    with pytest.raises(ValueError, match=r"differing sampling rates .*EEG O2-REF: 128 Hz"):
        load_canonical(path)


def test_non_eeg_channel_at_another_rate_is_accepted(tmp_path):
    path = tmp_path / "ekg.edf"
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS] + ["EKG"]
    _write_edf(path, labels, [256] * 19 + [512])
    rec = load_canonical(path)
    assert rec.fs == 256 and rec.data.shape == (19, 4 * 256)


def test_missing_midline_channel_is_repaired_only_when_allowed(tmp_path):
    path = tmp_path / "nocz.edf"
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS if name != "Cz"]
    _write_edf(path, labels, [256] * 18)
    with pytest.raises(MontageError, match="Cz"):
        load_canonical(path)
    rec = load_canonical(path, FrontendConfig(repair_missing=["Cz"]))
    c3, c4, cz = (CANONICAL_CHANNELS.index(n) for n in ("C3", "C4", "Cz"))
    np.testing.assert_allclose(rec.data[cz], (rec.data[c3] + rec.data[c4]) / 2, atol=1e-4)


def test_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="nowhere.edf"):
        read_edf("/nonexistent/nowhere.edf")


def _iiic_01_with(shared_data: Path, tmp_path: Path, edit) -> Path:
    raw = (shared_data / "labelled" / "iiic_01.edf").read_bytes()
    path = tmp_path / "edited.edf"
    path.write_bytes(edit(raw))
    return path


def test_bytes_after_the_declared_records_are_an_error_naming_the_sizes(shared_data, tmp_path):
    path = _iiic_01_with(shared_data, tmp_path, lambda raw: raw + b"\x00" * 100)
    with pytest.raises(EdfFormatError, match=r"edited\.edf: the file holds 411432 bytes: .*50 complete data "
                       r"records and a truncated last record \(100 of its 8114 bytes\); expected 411332 bytes"):
        read_edf(path)


def test_a_missing_whole_record_is_an_error_not_a_shorter_recording(shared_data, tmp_path):
    path = _iiic_01_with(shared_data, tmp_path, lambda raw: raw[:-8114])
    with pytest.raises(EdfFormatError, match=r"49 complete data records; expected .* \+ 50 data records"):
        load_canonical(path)


def test_unknown_number_of_records_is_taken_from_the_file_size(shared_data, tmp_path):
    path = _iiic_01_with(shared_data, tmp_path, lambda raw: set_field(raw, "num_data_records", "-1"))
    original = read_edf(shared_data / "labelled" / "iiic_01.edf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # edfio's "updating header" warning is expected and not passed on
        rec = read_edf(path)
    assert rec.duration_s == original.duration_s == 50.0
    np.testing.assert_array_equal(rec.signals[2], original.signals[2])


def test_inverted_physical_range_is_allowed_and_inverts_the_samples(shared_data, tmp_path):
    raw = (shared_data / "labelled" / "iiic_01.edf").read_bytes()
    c3 = signal_index(raw, "EEG C3-REF")
    pmin, pmax = read_field(raw, "physical_min", c3), read_field(raw, "physical_max", c3)
    assert float(pmin) == -float(pmax), "the test assumes a symmetric range"
    path = _iiic_01_with(shared_data, tmp_path,
                         lambda r: set_field(set_field(r, "physical_min", pmax, c3), "physical_max", pmin, c3))
    original = read_edf(shared_data / "labelled" / "iiic_01.edf")
    # EDF calibration x = pmax + (d - dmax) (pmax - pmin) / (dmax - dmin): swapping pmin, pmax with
    # pmin = -pmax negates every sample
    np.testing.assert_allclose(read_edf(path).signals[c3], -original.signals[c3], rtol=0, atol=1e-9)
    assert np.abs(original.signals[c3]).max() > 10.0


def test_calibration_beyond_float32_is_refused_by_load_canonical_naming_the_channel(shared_data, tmp_path):
    raw = (shared_data / "labelled" / "iiic_01.edf").read_bytes()
    c3 = signal_index(raw, "EEG C3-REF")
    path = _iiic_01_with(shared_data, tmp_path,
                         lambda r: set_field(set_field(r, "physical_min", "-9e99", c3), "physical_max", "9e99", c3))
    assert np.isfinite(read_edf(path).signals[c3]).all()  # finite in float64: read_edf returns it
    with pytest.raises(EdfFormatError, match=r"edited\.edf: channel 'EEG C3-REF' reaches .* float32 range"):
        load_canonical(path)


def test_every_format_error_is_an_edf_format_error_and_a_value_error(shared_data, tmp_path):
    path = _iiic_01_with(shared_data, tmp_path, lambda raw: set_field(raw, "num_signals", "0"))
    with pytest.raises(EdfFormatError) as info:
        load_canonical(path)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"{path}: number of signals (ns) is 0; expected at least 1"
