"""Channel labels of EDF files and LSL streams -> the canonical 19-channel montage."""

from __future__ import annotations

from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.montage import MontageError, canonical_name, map_montage


def _labels(path: Path) -> list[str]:
    return [signal.label for signal in edfio.read_edf(path).signals]


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("EEG FP1-REF", "Fp1"),
        ("EEG Fp1-LE", "Fp1"),
        ("Fp1", "Fp1"),
        ("EEG Fp1-Ref", "Fp1"),
        ("EEG Fp1-AR", "Fp1"),
        ("eeg fp1-ref", "Fp1"),
        ("FP1", "Fp1"),
        ("  EEG FZ-REF ", "Fz"),
        ("EEG T7-REF", "T3"),
        ("T8", "T4"),
        ("p7", "T5"),
        ("EEG P8-LE", "T6"),
        ("EEG O2", "O2"),
    ],
)
def test_label_variants_map_to_canonical_names(label: str, name: str) -> None:
    assert canonical_name(label) == name


@pytest.mark.parametrize(
    "label", ["EKG", "ECG ECG", "ECG EKG-Ref", "EEG A2-A1", "EEG Effort-Ref", "F7-C3", "EEG T1-REF", "Photic"]
)
def test_non_eeg_and_non_canonical_labels_are_not_channels(label: str) -> None:
    assert canonical_name(label) is None


def test_real_files_of_every_naming_style_map_to_the_canonical_order(shared_data: Path) -> None:
    for path in [
        shared_data / "labelled" / "iiic_01.edf",  # EEG FP1-REF ... + EKG
        shared_data / "background" / "eegmat" / "Subject00_2.edf",  # EEG Fp1 ... + EEG A2-A1, ECG ECG
        shared_data / "quirks" / "neonatal_burst_malformed_header.edf",  # EEG Fp1-Ref ... + Effort
    ]:
        labels = _labels(path)
        mapping = map_montage(labels, source=path.name)
        assert [canonical_name(labels[i]) for i in mapping.indices] == list(CANONICAL_CHANNELS)
        assert mapping.repairs == {}
        assert len(mapping.ignored) == len(labels) - 19
    eegmat = map_montage(_labels(shared_data / "background" / "eegmat" / "Subject00_2.edf"))
    assert set(eegmat.ignored) == {"EEG A2-A1", "ECG ECG"}


def test_apply_reorders_rows_into_canonical_order() -> None:
    names = list(reversed(CANONICAL_CHANNELS))
    labels = ["EKG"] + [f"EEG {n}-REF" for n in names]
    labels = [{"T3": "EEG T7-REF", "T4": "T8", "T5": "P7-Ref", "T6": "eeg p8"}.get(n, lab)
              for n, lab in zip(["EKG", *names], labels, strict=True)]
    mapping = map_montage(labels, source="aliases")
    data = np.arange(len(labels), dtype=np.float64)[:, None] * np.ones((1, 7))
    out = mapping.apply(data)
    assert out.shape == (19, 7) and out.dtype == np.float32
    for row, name in enumerate(CANONICAL_CHANNELS):
        assert out[row, 0] == 1 + names.index(name)
    assert mapping.ignored == ("EKG",)


def test_missing_channels_error_names_every_missing_one_and_what_was_found() -> None:
    missing = {"Fz", "T5", "O2"}
    labels = [f"EEG {n}-REF" for n in CANONICAL_CHANNELS if n not in missing] + ["EKG"]
    with pytest.raises(MontageError) as info:
        map_montage(labels, source="rec.edf")
    message = str(info.value)
    assert "rec.edf" in message and "3 of the 19" in message
    for name in missing:
        assert name in message.split("(found")[0]
    assert "EEG Fp1-REF" in message and "EKG" in message


def test_duplicate_channel_is_an_error() -> None:
    labels = [f"EEG {n}-REF" for n in CANONICAL_CHANNELS] + ["EEG T7-REF"]
    with pytest.raises(MontageError, match="T3"):
        map_montage(labels)


def test_real_bipolar_file_is_rejected_as_bipolar_naming_missing_channels(shared_data: Path) -> None:
    path = shared_data / "quirks" / "neonatal_bipolar_8ch.edf"
    with pytest.raises(MontageError) as info:
        map_montage(_labels(path), source=path.name)
    message = str(info.value)
    assert "bipolar" in message and path.name in message and "F7-C3" in message
    missing_part = message.split("missing:")[1].split("(found")[0]
    assert [n.strip() for n in missing_part.split(",")] == list(CANONICAL_CHANNELS)


def test_missing_midline_channel_is_repaired_only_when_allowed_and_reported() -> None:
    labels = [f"EEG {n}-REF" for n in CANONICAL_CHANNELS if n != "Cz"]
    with pytest.raises(MontageError, match="Cz") as info:
        map_montage(labels)
    assert "repair_missing" in str(info.value)
    mapping = map_montage(labels, repair_missing=["Cz"])
    assert mapping.repairs == {"Cz": ("C3", "C4")}
    assert "Cz = mean(C3, C4)" in mapping.describe()
    data = np.random.default_rng(0).normal(0, 20, (18, 100))
    out = mapping.apply(data)
    c3, c4 = labels.index("EEG C3-REF"), labels.index("EEG C4-REF")
    np.testing.assert_allclose(out[CANONICAL_CHANNELS.index("Cz")], (data[c3] + data[c4]) / 2, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(out[CANONICAL_CHANNELS.index("Fp1")], data[0].astype(np.float32))


def test_repair_needs_its_neighbours_and_error_names_them() -> None:
    labels = [f"EEG {n}-REF" for n in CANONICAL_CHANNELS if n not in ("Pz", "P3")]
    with pytest.raises(MontageError) as info:
        map_montage(labels, repair_missing=["Pz"])
    assert "P3" in str(info.value) and "Pz" in str(info.value)


def test_only_midline_channels_can_be_repaired() -> None:
    with pytest.raises(ValueError, match="T3"):
        map_montage(CANONICAL_CHANNELS, repair_missing=["T3"])


def test_apply_rejects_data_of_the_wrong_shape() -> None:
    mapping = map_montage(CANONICAL_CHANNELS)
    with pytest.raises(ValueError, match=r"\(19, n_samples\)"):
        mapping.apply(np.zeros((18, 10)))
