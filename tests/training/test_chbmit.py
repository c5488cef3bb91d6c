"""CHB-MIT for training and evaluation: summary files, clip folders, bipolar cache, padded 10 s windows."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ictal.detector.config import FrontendConfig
from ictal.training.config import DataConfig
from ictal.training.datasets import discover
from ictal.training.datasets.base import SEIZURE, UNKNOWN
from ictal.training.datasets.chbmit import discover_chbmit, is_chbmit_layout, parse_summary, patient_of

# The layout of PhysioNet's chb01-summary.txt (chb01) and of the later cases (chb06 onwards write
# "Seizure N Start Time"); times are those of the CHB-MIT records chb01_03 and chb06_01.
SUMMARY_CHB01 = """\
Data Sampling Rate: 256 Hz
*************************

Channels in EDF Files:
**********************
Channel 1: FP1-F7
Channel 2: F7-T7

File Name: chb01_01.edf
File Start Time: 11:42:54
File End Time: 12:42:54
Number of Seizures in File: 0

File Name: chb01_03.edf
File Start Time: 13:43:04
File End Time: 14:43:04
Number of Seizures in File: 1
Seizure Start Time: 2996 seconds
Seizure End Time: 3036 seconds
"""
SUMMARY_CHB06 = """\
File Name: chb06_01.edf
File Start Time: 04:30:08
File End Time: 8:14:30
Number of Seizures in File: 3
Seizure 1 Start Time: 1724 seconds
Seizure 1 End Time: 1738 seconds
Seizure 2 Start Time: 7461 seconds
Seizure 2 End Time: 7476 seconds
Seizure 3 Start Time: 13525 seconds
Seizure 3 End Time: 13540 seconds
"""


def test_summary_seizure_lines_are_parsed_in_both_variants(tmp_path):
    (tmp_path / "chb01-summary.txt").write_text(SUMMARY_CHB01)
    (tmp_path / "chb06-summary.txt").write_text(SUMMARY_CHB06)
    assert parse_summary(tmp_path / "chb01-summary.txt") == {"chb01_01.edf": [], "chb01_03.edf": [(2996.0, 3036.0)]}
    assert parse_summary(tmp_path / "chb06-summary.txt") == {
        "chb06_01.edf": [(1724.0, 1738.0), (7461.0, 7476.0), (13525.0, 13540.0)]}


def test_a_summary_whose_count_or_pairs_do_not_add_up_is_an_error_naming_the_line(tmp_path):
    bad = tmp_path / "chb01-summary.txt"
    bad.write_text(SUMMARY_CHB01.replace("Seizure End Time: 3036 seconds\n", ""))
    with pytest.raises(ValueError, match=r"chb01-summary.txt line 18: seizure start of chb01_03.edf has no end"):
        parse_summary(bad)
    bad.write_text(SUMMARY_CHB01.replace("Number of Seizures in File: 1", "Number of Seizures in File: 2"))
    with pytest.raises(ValueError, match="says 'Number of Seizures in File: 2' but lists 1"):
        parse_summary(bad)


def test_patients_are_cases_and_chb21_is_chb01():
    assert patient_of("chb02_sz01_ictal.edf") == "chb02"
    assert patient_of("chb21_05.edf") == "chb01"
    with pytest.raises(ValueError, match="not a CHB-MIT name"):
        patient_of("Subject00_1.edf")


def test_the_physionet_layout_takes_its_seizures_from_the_summary(shared_data, tmp_path):
    clip = shared_data / "bipolar" / "chbmit" / "chb01_sz01_ictal.edf"
    case = tmp_path / "chb01"
    case.mkdir()
    (case / "chb01-summary.txt").write_text(SUMMARY_CHB01)
    for name in ("chb01_01.edf", "chb01_03.edf", "chb01_99.edf"):
        os.symlink(clip, case / name)
    (tmp_path / "chb21").mkdir()
    (tmp_path / "chb21" / "chb21-summary.txt").write_text("File Name: chb21_01.edf\nNumber of Seizures in File: 0\n")
    os.symlink(clip, tmp_path / "chb21" / "chb21_01.edf")
    assert is_chbmit_layout(tmp_path)
    index = discover(DataConfig(format="edf_folder", root=tmp_path, dev_fraction=0.0))
    by_id = {r.recording_id: r for r in index.recordings}
    assert sorted(by_id) == ["chb01__chb01_01", "chb01__chb01_03", "chb21__chb21_01"]
    seizure = by_id["chb01__chb01_03"]
    assert [(s.onset_s, s.offset_s, s.label) for s in seizure.annotations] == [(2996.0, 3036.0, "seiz")]
    assert seizure.default_label == "bckg" and seizure.has_seizure_hint
    assert by_id["chb01__chb01_01"].annotations == [] and by_id["chb21__chb21_01"].patient == "chb01"
    assert [s.path.name for s in index.skipped] == ["chb01_99.edf"]
    assert "not listed in the CHB-MIT summary" in index.skipped[0].reason


def test_the_shared_clips_load_with_edf_annotations_and_an_unrated_remainder(shared_data):
    root = shared_data / "bipolar" / "chbmit"
    index = discover_chbmit(root)
    assert len(index.recordings) == 20 and not index.skipped
    assert {r.patient for r in index.recordings} == {"chb01", "chb02"}
    assert all(r.default_label == "unknown" and r.annotations is None for r in index.recordings)
    hints = {r.path.name: r.has_seizure_hint for r in index.recordings}
    assert hints["chb01_sz01_ictal.edf"] and not hints["chb01_sz01_preictal.edf"]
    via_config = discover(DataConfig(format="edf_folder", root=root, unannotated="unknown"))
    assert {r.recording_id for r in via_config.recordings} == {r.recording_id for r in index.recordings}
    assert {r.split for r in via_config.recordings} <= {"train", "dev"}


def test_a_bipolar_clip_is_cached_as_18_derivations_with_its_labels(shared_data, tmp_path):
    from ictal.training.cache import cache_recording

    root = shared_data / "bipolar" / "chbmit"
    recs = {r.path.name: r for r in discover_chbmit(root).recordings}
    config = FrontendConfig(montage="double_banana")
    ictal = cache_recording(recs["chb01_sz01_ictal.edf"], tmp_path, config, 600.0)
    signal = np.load(tmp_path / "recordings" / f"{ictal.recording_id}.signal.npy")
    labels = np.load(tmp_path / "recordings" / f"{ictal.recording_id}.labels.npy")
    assert signal.shape == (18, 2560) and np.isfinite(signal).all()
    assert (labels == SEIZURE).all()
    pre = cache_recording(recs["chb01_sz01_preictal.edf"], tmp_path, config, 600.0)
    labels = np.load(tmp_path / "recordings" / f"{pre.recording_id}.labels.npy")
    assert (labels[: 8 * 256] == 0).all() and (labels[8 * 256:] == UNKNOWN).all()
    post = cache_recording(recs["chb02_sz03_postictal.edf"], tmp_path, config, 600.0)
    assert post.labelled_s == 0.0


def test_a_10_s_clip_becomes_a_left_padded_60_s_window_of_18_rows(shared_data, tmp_path):
    from ictal.training.cache import Cache, build_cache
    from ictal.training.sampler import WindowDataset, WindowSampler

    root = shared_data / "bipolar" / "chbmit"
    index = discover(DataConfig(format="edf_folder", root=root, unannotated="unknown", dev_fraction=0.0,
                                eval_recordings=["chb02_*"]))
    config = FrontendConfig(montage="double_banana")
    build_cache(index.recordings, tmp_path, config, progress=False, log=lambda text: None)
    cache = Cache(tmp_path, config)
    dataset = WindowDataset(WindowSampler(cache, cache.split("train"), 15360, 0.5), config, None, 4, 0)
    for i in range(4):
        x, y = dataset[i]
        assert tuple(x.shape) == (18, 15360) and tuple(y.shape) == (15360,)
        real = np.flatnonzero(np.abs(x.numpy()).sum(axis=0) > 0)
        assert real.size and real[0] >= 15360 - 2560  # the clip's 10 s at the right, zeros before
        assert (y.numpy()[: 15360 - 2560] == UNKNOWN).all()



def test_synthetic_seizures_are_refused_for_the_double_banana_with_the_reason(shared_data, tmp_path):
    from ictal.training.cache import Cache, build_cache
    from ictal.training.config import AugmentConfig
    from ictal.training.sampler import WindowDataset, WindowSampler

    root = shared_data / "bipolar" / "chbmit"
    index = discover(DataConfig(format="edf_folder", root=root, unannotated="unknown", dev_fraction=0.0,
                                eval_recordings=["chb02_*"]))
    config = FrontendConfig(montage="double_banana")
    build_cache(index.recordings[:2], tmp_path, config, progress=False, log=lambda text: None)
    sampler = WindowSampler(Cache(tmp_path, config), Cache(tmp_path, config).split("train"), 15360, 0.5)
    with pytest.raises(ValueError, match="synthetic_seizure_p = 0.5 needs the referential montage"):
        WindowDataset(sampler, config, AugmentConfig(synthetic_seizure_p=0.5), 4, 0)


def test_evaluating_a_referential_checkpoint_on_chbmit_names_the_reason_for_every_clip(shared_data, tmp_path,
                                                                                       capsys):
    from ictal.cli import main
    from ictal.detector.checkpoint import save_checkpoint
    from ictal.detector.model import build_model
    from tests.detector.model_configs import small_config

    config = small_config(n_times=15360)
    checkpoint = save_checkpoint(tmp_path / "ref", build_model(config), config, FrontendConfig())
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(shared_data / "bipolar" / "chbmit"),
                 "--out", str(tmp_path / "eval"), "--no-plots", "--quiet", "--include", "chb02_sz01_*"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("cannot be derived from bipolar derivations") == 2, err
