"""Dataset discovery (TUSZ v2, EDF+/BIDS folders, rated windows), labels and patient-level splits."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ictal.training.config import DataConfig
from ictal.training.datasets import LabelSpan, Recording, assign_splits, check_patient_splits, discover
from ictal.training.datasets.edf_folder import discover_edf_folder
from ictal.training.datasets.labels import (
    build_labels,
    label_for_text,
    seizure_events,
    spans_from_annotations,
)
from ictal.training.datasets.rated_windows import discover_rated_windows
from ictal.training.datasets.tusz import discover_tusz
from tests.training.tusz_fixture import USABLE, build_tusz_tree


def test_tusz_discovery_takes_split_patient_and_terms_from_the_tree(shared_data, tmp_path):
    build_tusz_tree(shared_data, tmp_path, faults=False)
    index = discover_tusz(tmp_path)
    assert index.skipped == []
    found = {(r.split, r.patient) for r in index.recordings}
    assert found == {(split, patient) for split, patient, *_ in USABLE}
    hms = next(r for r in index.recordings if r.patient == "aaaaaaaa")
    assert [(s.onset_s, s.offset_s, s.label) for s in hms.annotations] == [
        (0.0, 20.0, "bckg"), (20.0, 70.0, "seiz"), (70.0, 90.0, "bckg")]
    assert hms.recording_id == "train__aaaaaaaa__s001_2020__01_tcp_ar__aaaaaaaa_s001_t000"


def test_tusz_faulty_files_are_skipped_each_with_its_reason(shared_data, tmp_path):
    bad = build_tusz_tree(shared_data, tmp_path)
    index = discover_tusz(tmp_path / "edf")
    reasons = {s.path: s.reason for s in index.skipped}
    assert "04_tcp_le_a" in reasons[bad["montage"]] and "01_tcp_ar" in reasons[bad["montage"]]
    assert "unreadable annotations" in reasons[bad["csv_bi"]] and "abc" in reasons[bad["csv_bi"]]
    assert "no term annotation file" in reasons[bad["missing"]]
    # The corrupt EDF has valid terms: discovery keeps it, the cache skips it (see test_cache).
    assert bad["edf"] in {r.path for r in index.recordings}
    assert len(index.recordings) == len(USABLE) + 1


def test_tusz_patient_in_two_splits_is_refused(shared_data, tmp_path):
    build_tusz_tree(shared_data, tmp_path, faults=False)
    moved = tmp_path / "edf" / "dev" / "aaaaaaaa"
    shutil.copytree(tmp_path / "edf" / "train" / "aaaaaaaa", moved)
    with pytest.raises(ValueError, match="aaaaaaaa in \\['dev', 'train'\\]"):
        discover(DataConfig(format="tusz", root=tmp_path))


def test_tusz_root_without_splits_is_named(tmp_path):
    (tmp_path / "edf" / "other").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="not a TUSZ v2 tree.*other"):
        discover_tusz(tmp_path)


def test_rated_windows_label_only_the_rated_time(shared_data):
    from ictal.streaming.edf import read_edf

    index = discover_rated_windows(shared_data)
    iiic = next(r for r in index.recordings if r.patient == "iiic_01")
    assert iiic.annotations is None and iiic.default_label == "unknown" and iiic.has_seizure_hint
    spans = spans_from_annotations(read_edf(iiic.path).annotations, iiic.edf_annotation_labels)
    labels = build_labels(spans, 50 * 256, 256.0, iiic.default_label)
    assert (labels[:20 * 256] == -1).all() and (labels[30 * 256:] == -1).all()
    assert (labels[20 * 256:30 * 256] == 1).all()
    lpd = next(r for r in index.recordings if r.patient == "iiic_05")
    spans = spans_from_annotations(read_edf(lpd.path).annotations, lpd.edf_annotation_labels)
    labels = build_labels(spans, 50 * 256, 256.0, lpd.default_label)
    assert set(np.unique(labels[20 * 256:30 * 256])) == {0}  # LPD is rated, not seizure: background
    assert (labels[:20 * 256] == -1).all()
    eegmat = [r for r in index.recordings if r.source == "all_background"]
    assert len(eegmat) == 24 and all(r.annotations == [] and r.default_label == "bckg" for r in eegmat)
    assert {r.patient for r in eegmat if "Subject03" in r.path.name} == {"eegmat_Subject03"}


def test_grond_clips_of_one_subject_are_one_patient(shared_data):
    """The data README's five GROND subjects with two clips: one patient each, so a fold keeps both."""
    index = discover_rated_windows(shared_data)
    patient = {r.path.stem: r.patient for r in index.recordings}
    pairs = [("grond_gpd_19", "grond_grda_03"), ("grond_lpd_01", "grond_lrda_09"),
             ("grond_lrda_12", "grond_grda_10"), ("grond_gpd_16", "grond_grda_04"),
             ("grond_lrda_01", "grond_grda_16")]
    for a, b in pairs:
        assert patient[a] == patient[b] and patient[a].startswith("sub-S"), (a, b, patient[a], patient[b])
    grond = {p for stem, p in patient.items() if stem.startswith("grond_")}
    assert len(grond) == 70  # 75 clips of 70 subjects
    assert patient["iiic_01"] == "iiic_01"  # no subject in the IIIC source: the file is the patient


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_patient_level_split_puts_no_patient_on_both_sides(shared_data, seed):
    index = discover(DataConfig(format="rated_windows", root=shared_data, split_seed=seed, dev_fraction=0.3))
    train = {r.patient for r in index.recordings if r.split == "train"}
    dev = {r.patient for r in index.recordings if r.split == "dev"}
    assert train and dev and not train & dev
    assert {r.split for r in index.recordings} == {"train", "dev"}
    # Both recordings of one EEGMAT subject stay together.
    for patient in {r.patient for r in index.recordings}:
        assert len({r.split for r in index.recordings if r.patient == patient}) == 1
    # The stratified draw gives dev a seizure patient and keeps some in train.
    assert any(r.has_seizure_hint for r in index.recordings if r.split == "dev")
    assert any(r.has_seizure_hint for r in index.recordings if r.split == "train")


def test_split_is_reproducible_for_a_seed_and_changes_with_it(shared_data):
    def dev_of(seed):
        index = discover(DataConfig(format="rated_windows", root=shared_data, split_seed=seed))
        return {r.patient for r in index.recordings if r.split == "dev"}

    assert dev_of(5) == dev_of(5)
    assert len({frozenset(dev_of(s)) for s in range(4)}) > 1


def test_check_patient_splits_names_the_shared_patient(tmp_path):
    recs = [Recording("a", tmp_path / "a.edf", "p1", "train", []), Recording("b", tmp_path / "b.edf", "p1", "dev", [])]
    with pytest.raises(ValueError, match="p1 in \\['dev', 'train'\\]"):
        check_patient_splits(recs)


def test_assign_splits_refuses_a_fraction_out_of_range(tmp_path):
    with pytest.raises(ValueError, match="dev_fraction"):
        assign_splits([Recording("a", tmp_path / "a.edf", "p1", None, [])], 1.0, 0)


def test_edf_folder_reads_bids_events_and_patient_ids(shared_data, tmp_path):
    eeg = tmp_path / "sub-07" / "ses-01" / "eeg"
    eeg.mkdir(parents=True)
    edf = eeg / "sub-07_ses-01_task-szMonitoring_run-00_eeg.edf"
    shutil.copyfile(shared_data / "background/eegmat/Subject02_2.edf", edf)
    (eeg / "sub-07_ses-01_task-szMonitoring_run-00_events.tsv").write_text(
        "onset\tduration\teventType\tconfidence\tchannels\n12.5\t10.0\tsz_foc_ia\tn/a\tn/a\n40\t5\tbckg\tn/a\tn/a\n")
    plain = tmp_path / "Subject04_1.edf"
    shutil.copyfile(shared_data / "background/eegmat/Subject04_2.edf", plain)
    broken = tmp_path / "sub-08" / "sub-08_run-00_eeg.edf"
    broken.parent.mkdir()
    shutil.copyfile(shared_data / "background/eegmat/Subject05_2.edf", broken)
    (broken.parent / "sub-08_run-00_events.tsv").write_text("onset\tduration\teventType\nsoon\t3\tsz\n")
    index = discover_edf_folder(tmp_path)
    by_patient = {r.patient: r for r in index.recordings}
    assert set(by_patient) == {"07", "Subject04"}
    assert [(s.onset_s, s.offset_s, s.label) for s in by_patient["07"].annotations] == [
        (12.5, 22.5, "seiz"), (40.0, 45.0, "bckg")]
    assert by_patient["Subject04"].annotations is None and by_patient["Subject04"].source == "edf_plus"
    assert len(index.skipped) == 1 and "line 2" in index.skipped[0].reason and "'soon'" in index.skipped[0].reason


def test_label_texts_follow_tusz_and_szcore_conventions():
    assert label_for_text("seiz") == "seiz"
    assert label_for_text("FNSZ") == "seiz"
    assert label_for_text("sz_foc_a_m") == "seiz"
    assert label_for_text("bckg") == "bckg"
    assert label_for_text("[Total time]+182.000") is None
    assert label_for_text("tie", {"tie": "unknown"}) == "unknown"


def test_build_labels_precedence_and_sample_boundaries():
    spans = [LabelSpan(0.0, 4.0, "bckg"), LabelSpan(1.0, 2.0, "seiz"), LabelSpan(1.5, 3.0, "unknown")]
    labels = build_labels(spans, 5 * 4, 4.0, default="unknown")
    assert labels.dtype == np.int8 and labels.shape == (20,)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [-1] * 4 + [0] * 4 + [-1] * 4
    assert seizure_events(labels, 4.0) == [(1.0, 2.0)]
    with pytest.raises(ValueError, match="onset < offset"):
        build_labels([LabelSpan(3.0, 3.0, "seiz")], 10, 4.0)


def test_point_annotations_do_not_label_samples():
    spans = spans_from_annotations([(0.0, None, "seiz"), (1.0, 0.0, "seiz"), (2.0, 1.0, "seiz")])
    assert spans == [LabelSpan(2.0, 3.0, "seiz")]
