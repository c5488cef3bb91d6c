"""The double-banana montage: exact derivation, native bipolar input (CHB-MIT), node geometry, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend
from ictal.detector.model import build_model
from ictal.detector.montage import (
    DOUBLE_BANANA,
    DOUBLE_BANANA_CHANNELS,
    ELECTRODE_POSITIONS,
    MontageError,
    channel_mirror,
    channel_positions,
    derivation_name,
    map_montage,
    montage_channels,
)
from tests.detector.model_configs import small_config

CHBMIT_CLIP = "bipolar/chbmit/chb01_sz01_ictal.edf"
# The 23 labels of every CHB-MIT clip (and of the CHB-MIT originals), in file order.
CHBMIT_LABELS = (
    "EEG FP1-F7", "EEG F7-T7", "EEG T7-P7", "EEG P7-O1", "EEG FP1-F3", "EEG F3-C3", "EEG C3-P3", "EEG P3-O1",
    "EEG FP2-F4", "EEG F4-C4", "EEG C4-P4", "EEG P4-O2", "EEG FP2-F8", "EEG F8-T8", "EEG T8-P8", "EEG P8-O2",
    "EEG FZ-CZ", "EEG CZ-PZ", "EEG P7-T7", "EEG T7-FT9", "EEG FT9-FT10", "EEG FT10-T8", "EEG T8-P8",
)
TEN_TEN = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}


def _referential_labels(order: np.ndarray) -> list[str]:
    """TUSZ-style labels in a shuffled order, with 10-10 names for T3/T4/T5/T6, plus an EKG."""
    return [f"EEG {TEN_TEN.get(CANONICAL_CHANNELS[i], CANONICAL_CHANNELS[i]).upper()}-REF" for i in order] + ["EKG"]


def test_double_banana_from_referential_input_is_the_electrode_difference_exactly():
    rng = np.random.default_rng(3)
    order = rng.permutation(19)
    labels = _referential_labels(order)
    data = rng.normal(0.0, 80.0, (20, 1000)) * 10.0 ** rng.uniform(-2, 2, (20, 1))
    mapping = map_montage(labels, "rec.edf", montage="double_banana")
    out = mapping.apply(data)
    assert out.dtype == np.float32 and out.shape == (18, 1000)
    assert mapping.channels == DOUBLE_BANANA_CHANNELS and mapping.ignored == ("EKG",)
    row_of = {CANONICAL_CHANNELS[i]: row for row, i in enumerate(order)}
    for k, (a, b) in enumerate(DOUBLE_BANANA):
        expected = (data[row_of[a]] - data[row_of[b]]).astype(np.float32)
        assert np.array_equal(out[k], expected), DOUBLE_BANANA_CHANNELS[k]


def test_derivation_after_a_midline_repair_is_the_difference_with_the_repaired_electrode():
    names = [name for name in CANONICAL_CHANNELS if name != "Cz"]
    row = {name: i for i, name in enumerate(names)}
    data = np.random.default_rng(0).normal(0, 50, (18, 300))
    mapping = map_montage([f"EEG {n}-REF" for n in names], "rec.edf", repair_missing=["Cz"], montage="double_banana")
    assert mapping.repairs == {"Cz": ("C3", "C4")}
    cz = data[[row["C3"], row["C4"]]].mean(axis=0)
    out = mapping.apply(data)
    assert np.array_equal(out[DOUBLE_BANANA_CHANNELS.index("Fz-Cz")], (data[row["Fz"]] - cz).astype(np.float32))
    assert np.array_equal(out[DOUBLE_BANANA_CHANNELS.index("Cz-Pz")], (cz - data[row["Pz"]]).astype(np.float32))


def test_10_10_names_map_to_10_20_in_derivations():
    assert derivation_name("EEG T7-P7") == "T3-T5"
    assert derivation_name("EEG T8-P8") == "T4-T6"
    assert derivation_name("EEG P8-O2") == "T6-O2"
    assert derivation_name("EEG FP1-F7") == "Fp1-F7"
    assert derivation_name("EEG T7-FT9") is None  # FT9 is not one of the 19 electrodes
    assert derivation_name("EEG FP1-REF") is None and derivation_name("EKG") is None


def test_chbmit_labels_are_read_natively_and_the_duplicate_and_extra_derivations_ignored():
    data = np.arange(23 * 5, dtype=np.float64).reshape(23, 5)
    mapping = map_montage(CHBMIT_LABELS, "chb01_03.edf", montage="double_banana")
    assert mapping.derivations == ()  # read, not derived
    np.testing.assert_array_equal(mapping.apply(data), data[:18].astype(np.float32))
    assert mapping.ignored == ("EEG P7-T7", "EEG T7-FT9", "EEG FT9-FT10", "EEG FT10-T8",
                               "EEG T8-P8 (repeated; the first is used)")
    assert "T4-T6<-EEG T8-P8" in mapping.describe()


def test_a_referential_montage_cannot_be_derived_from_bipolar_input():
    with pytest.raises(MontageError, match="cannot be derived from bipolar") as info:
        map_montage(CHBMIT_LABELS, "chb01_03.edf", montage="referential")
    assert "double_banana" in str(info.value) and "EEG FP1-F7" in str(info.value)


def test_a_bipolar_recording_missing_derivations_names_every_missing_one():
    labels = [label for label in CHBMIT_LABELS if label not in ("EEG F3-C3", "EEG CZ-PZ")]
    with pytest.raises(MontageError, match=r"lacks 2 of the 18 double-banana derivations: F3-C3, Cz-Pz"):
        map_montage(labels, "short.edf", montage="double_banana")


def test_referential_input_missing_an_electrode_names_it_for_the_double_banana():
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS if name != "O2"]
    with pytest.raises(MontageError, match=r"missing \(the double_banana montage derives .*\): O2"):
        map_montage(labels, "rec.edf", montage="double_banana")


def test_unknown_montage_is_refused():
    with pytest.raises(ValueError, match="unknown montage 'laplacian'"):
        map_montage(CHBMIT_LABELS, "x", montage="laplacian")


def test_a_derivation_sits_at_the_midpoint_of_its_electrodes_and_mirrors_to_the_mirrored_pair():
    positions = channel_positions("double_banana")
    assert positions.shape == (18, 2)
    for k, (a, b) in enumerate(DOUBLE_BANANA):
        np.testing.assert_allclose(positions[k], (np.array(ELECTRODE_POSITIONS[a]) + ELECTRODE_POSITIONS[b]) / 2)
    mirror = channel_mirror(DOUBLE_BANANA_CHANNELS)
    assert DOUBLE_BANANA_CHANNELS[mirror[DOUBLE_BANANA_CHANNELS.index("Fp1-F7")]] == "Fp2-F8"
    assert DOUBLE_BANANA_CHANNELS[mirror[DOUBLE_BANANA_CHANNELS.index("T3-T5")]] == "T4-T6"
    assert mirror[DOUBLE_BANANA_CHANNELS.index("Fz-Cz")] == DOUBLE_BANANA_CHANNELS.index("Fz-Cz")
    np.testing.assert_array_equal(mirror[mirror], np.arange(18))  # an involution
    flipped = positions[mirror] * np.array([-1.0, 1.0])
    np.testing.assert_allclose(flipped, positions)  # the mirror of a node lies at (-x, y)
    assert channel_positions("referential").shape == (19, 2)


def test_hemisphere_flip_of_derivations_equals_the_derivations_of_the_flipped_electrodes():
    from ictal.training.augment import hemisphere_flip

    rng = np.random.default_rng(1)
    labels = [f"EEG {name}-REF" for name in CANONICAL_CHANNELS]
    x = rng.normal(0, 30, (19, 64))
    derive = map_montage(labels, "x", montage="double_banana").apply
    flip = lambda w, montage: hemisphere_flip(w, 1.0, np.random.default_rng(0), montage)  # noqa: E731
    np.testing.assert_array_equal(flip(derive(x), "double_banana"), derive(flip(x, "referential")))
    with pytest.raises(ValueError, match="double_banana montage has 18 rows, the window has 19"):
        hemisphere_flip(x, 1.0, rng, "double_banana")


def test_the_frontend_has_the_rows_of_its_montage():
    assert Frontend(FrontendConfig(montage="double_banana"), 256.0).n_channels == 18
    assert Frontend(FrontendConfig(), 256.0).n_channels == 19
    assert montage_channels("double_banana") == DOUBLE_BANANA_CHANNELS


def test_load_canonical_reads_a_chbmit_clip_as_the_double_banana(shared_data):
    from ictal.streaming.edf import load_canonical, read_edf

    path = shared_data / CHBMIT_CLIP
    raw = read_edf(path)
    assert tuple(raw.labels) == CHBMIT_LABELS
    rec = load_canonical(path, FrontendConfig(montage="double_banana"))
    assert rec.data.shape == (18, 2560) and rec.fs == 256
    np.testing.assert_array_equal(rec.data, np.stack(raw.signals[:18]).astype(np.float32))
    with pytest.raises(MontageError, match="cannot be derived from bipolar"):
        load_canonical(path, FrontendConfig())


def _bipolar_checkpoint(tmp_path):
    torch.manual_seed(0)
    config = small_config(n_chans=18)
    model = build_model(config).eval()
    return save_checkpoint(tmp_path / "bipolar", model, config, FrontendConfig(montage="double_banana")), model


def test_a_bipolar_checkpoint_records_its_derivations_and_round_trips(tmp_path):
    path, model = _bipolar_checkpoint(tmp_path)
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["montage"] == list(DOUBLE_BANANA_CHANNELS)
    loaded = load_checkpoint(path, backend="reference", montage="double_banana")
    x = torch.randn(1, 18, loaded.model_config.n_times)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_a_checkpoint_trained_on_one_montage_refuses_the_other_naming_both(tmp_path):
    path, _ = _bipolar_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="trained on the double_banana montage .*feeds the referential"):
        load_checkpoint(path, backend="reference", montage="referential")
    config = small_config()
    referential = save_checkpoint(tmp_path / "ref", build_model(config), config, FrontendConfig())
    with pytest.raises(CheckpointError, match="trained on the referential montage .*Fp1.*feeds the double_banana "
                                              r"montage \(Fp1-F7"):
        load_checkpoint(referential, backend="reference", montage="double_banana")


def test_metadata_montage_must_be_the_rows_of_the_frontend_montage(tmp_path):
    path, _ = _bipolar_checkpoint(tmp_path)
    meta = path / "metadata.json"
    metadata = json.loads(meta.read_text())
    metadata["montage"] = list(CANONICAL_CHANNELS)
    meta.write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="lists the referential rows but frontend_config.montage is "
                                              "'double_banana'"):
        load_checkpoint(path, backend="reference")


def test_saving_refuses_a_model_whose_node_count_is_not_the_montage_row_count(tmp_path):
    config = small_config()  # 19 nodes
    with pytest.raises(ValueError, match=r"n_chans = 19 does not match the front-end's montage 'double_banana' "
                                         r"\(18 rows"):
        save_checkpoint(tmp_path / "bad", build_model(config), config, FrontendConfig(montage="double_banana"))


def test_the_daemon_names_both_montages_when_its_frontend_differs_from_the_checkpoint():
    from ictal.streaming.daemon import frontend_differences

    lines = frontend_differences(FrontendConfig(montage="double_banana"), FrontendConfig())
    assert lines == ["montage: checkpoint 'double_banana', daemon config 'referential'"]
