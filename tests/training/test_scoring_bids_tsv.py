"""SzCORE / BIDS ``_events.tsv``: reading, writing, the BIDS layout, and scoring tsv files like csv_bi.

Real annotations: ../shared/data/nedc_parity (ten TUSZ ref/hyp csv_bi pairs scored by NEDC EEG Eval
v6.0.0); converted to tsv they must give the same NEDC figures, and the szcore-evaluation figures are
checked against the package itself where it is importable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ictal.training.scoring.annotations import Annotation, AnnotationError, Event, read_annotation, read_list
from ictal.training.scoring.bids_tsv import (
    bids_layout,
    bids_path,
    read_events_tsv,
    recording_name,
    subject_of,
    write_events_tsv,
)
from ictal.training.scoring.report import load_named_pairs, score_lists, score_pairs
from ictal.training.scoring.szcore_dataset import score_dataset
from tests.conftest import SHARED_DATA

PARITY = SHARED_DATA / "nedc_parity"
needs_parity = pytest.mark.skipif(not (PARITY / "ref.list").is_file(),
                                  reason=f"real NEDC parity annotations not found at {PARITY}")

HEADER = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration"


def _tsv(tmp_path: Path, rows: list[str], name: str = "sub-01_ses-01_task-szMonitoring_run-00_events.tsv",
         header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_reads_seizure_subtypes_as_seiz_and_the_recording_duration(tmp_path):
    path = _tsv(tmp_path, [
        "10.00\t20.00\tsz_foc_ia\t0.80\tFp1,F7\t2024-01-01 10:00:00\t300.00",
        "100.00\t5.50\tsz\tn/a\tn/a\tn/a\t300.00",
        "200.00\t10.00\tbckg\tn/a\tn/a\tn/a\t300.00",
    ])
    ann = read_annotation(path)
    assert ann.duration_s == 300.0
    assert ann.events == [Event(10.0, 30.0, "seiz", 0.8), Event(100.0, 105.5, "seiz", 1.0),
                          Event(200.0, 210.0, "bckg", 1.0)]


@pytest.mark.parametrize(("row", "message"), [
    ("10\t5\tspike\tn/a\tn/a\tn/a\t300", r"eventType 'spike', expected 'bckg', 'sz'"),
    ("10\t5\tsz\t1.5\tn/a\tn/a\t300", r"confidence is 1.5"),
    ("n/a\t5\tsz\tn/a\tn/a\tn/a\t300", r"onset is 'n/a'"),
    ("10\t5\tsz\tn/a\tn/a\tn/a\tn/a", r"recordingDuration is 'n/a'"),
    ("290\t11\tsz\tn/a\tn/a\tn/a\t300", r"ends after the recordingDuration 300.0 s"),
    ("10\t5\tsz\tn/a\tn/a\tyesterday\t300", r"dateTime 'yesterday'"),
    ("10\t5\tsz\tn/a\tn/a\t300", r"6 tab-separated fields, expected 7"),
])
def test_malformed_rows_are_errors_naming_file_line_found_and_expected(tmp_path, row, message):
    path = _tsv(tmp_path, [row])
    with pytest.raises(AnnotationError, match=message) as info:
        read_events_tsv(path)
    assert f"{path}:2:" in str(info.value)


def test_header_without_recording_duration_and_file_without_rows_are_errors(tmp_path):
    with pytest.raises(AnnotationError, match="lacks recordingDuration"):
        read_events_tsv(_tsv(tmp_path, ["1\t2\tsz"], header="onset\tduration\teventType"))
    with pytest.raises(AnnotationError, match="no event row"):
        read_events_tsv(_tsv(tmp_path, []))
    with pytest.raises(AnnotationError, match="recordingDuration 200.0, expected 300.0"):
        read_events_tsv(_tsv(tmp_path, ["1\t2\tsz\tn/a\tn/a\tn/a\t300", "5\t2\tsz\tn/a\tn/a\tn/a\t200"]))


def test_two_decimal_rounding_past_the_duration_is_clipped(tmp_path):
    ann = read_events_tsv(_tsv(tmp_path, ["290.00\t10.01\tsz\tn/a\tn/a\tn/a\t300.00"]))
    assert ann.events[0].stop_s == 300.0


def test_write_then_read_round_trips_and_an_empty_recording_is_one_bckg_row(tmp_path):
    ann = Annotation(1289.0, [Event(42.2786, 81.776, "seiz", 1.0), Event(133.804, 162.1105, "fnsz", 0.5)])
    path = tmp_path / "a" / "x_events.tsv"
    write_events_tsv(path, ann)
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    assert lines[2].split("\t")[2] == "sz_foc"  # TUSZ fnsz -> SzCORE focal seizure
    back = read_events_tsv(path)
    assert back.duration_s == 1289.0
    assert [e.label for e in back.events] == ["seiz", "seiz"]
    for a, b in zip(ann.events, back.events, strict=True):
        assert a.start_s == b.start_s and math.isclose(a.stop_s, b.stop_s, abs_tol=1e-9)
    empty = tmp_path / "e_events.tsv"
    write_events_tsv(empty, Annotation(60.0, []))
    assert read_events_tsv(empty) == Annotation(60.0, [Event(0.0, 60.0, "bckg", 1.0)])


def test_recording_names_pair_csv_bi_with_tsv_and_subjects_come_from_bids_or_tusz_names():
    assert recording_name("x/aaaaaasf_s001_t000.csv_bi") == "aaaaaasf_s001_t000"
    assert recording_name("x/aaaaaasf_s001_t000_events.tsv") == "aaaaaasf_s001_t000"
    assert subject_of("sub-07_ses-01_task-szMonitoring_run-02_events.tsv") == "sub-07"
    assert subject_of("aaaaaasf_s001_t000.csv_bi") == "aaaaaasf"


def test_bids_layout_numbers_runs_per_subject_and_keeps_colliding_labels_apart():
    lay = bids_layout([("r1", "chb_01"), ("r2", "chb_01"), ("r3", "chb01"), ("r4", "")])
    assert lay["r1"] == bids_path("chb01", 0)
    assert lay["r2"].name == "sub-chb01_ses-01_task-szMonitoring_run-01_events.tsv"
    assert lay["r3"].parts[0] == "sub-chb01x2"
    assert lay["r4"].parts[0] == "sub-unknown"
    with pytest.raises(ValueError, match="letters and digits"):
        bids_path("a_b", 0)


def test_szcore_dataset_averages_per_subject_and_ignores_undefined_subjects():
    # subject A: one seizure found; subject B: one seizure missed; subject C: no seizure, one FP event
    a = (Annotation(600.0, [Event(100, 160, "seiz")]), Annotation(600.0, [Event(110, 150, "seiz")]))
    b = (Annotation(600.0, [Event(100, 160, "seiz")]), Annotation(600.0, []))
    c = (Annotation(600.0, []), Annotation(600.0, [Event(300, 320, "seiz")]))
    out = score_dataset([a, b, c], ["A", "B", "C"])
    assert out["n_subjects"] == 3
    assert out["event"]["sensitivity"] == pytest.approx(0.5)  # mean of A (1) and B (0); C undefined
    assert out["event"]["sensitivity_std"] == pytest.approx(0.5)
    assert out["pooled"]["event"]["sensitivity"] == pytest.approx(0.5)
    assert out["event"]["fp_per_24h"] == pytest.approx(86400 / 600 / 3)  # one FP in C's 600 s, mean of 3
    assert out["sample"]["sensitivity"] == pytest.approx((40 / 60 + 0) / 2)


def _tsv_lists(tmp_path: Path) -> tuple[Path, Path]:
    """The parity pairs written as a BIDS tree of tsv files, with list files of them."""
    refs, hyps = read_list(PARITY / "ref.list"), read_list(PARITY / "hyp.list")
    lay = bids_layout([(recording_name(r), subject_of(r)) for r in refs])
    ref_lines, hyp_lines = [], []
    for r, h in zip(refs, hyps, strict=True):
        rel = lay[recording_name(r)]
        write_events_tsv(tmp_path / "ref" / rel, read_annotation(r))
        write_events_tsv(tmp_path / "hyp" / rel, read_annotation(h))
        ref_lines.append(f"ref/{rel}")
        hyp_lines.append(f"hyp/{rel}")
    (tmp_path / "ref.list").write_text("\n".join(ref_lines) + "\n")
    (tmp_path / "hyp.list").write_text("\n".join(hyp_lines) + "\n")
    return tmp_path / "ref.list", tmp_path / "hyp.list"


@needs_parity
def test_real_tusz_pairs_as_tsv_give_the_same_nedc_figures_as_csv_bi(tmp_path):
    ref_list, hyp_list = _tsv_lists(tmp_path)
    from_csv = score_lists(PARITY / "ref.list", PARITY / "hyp.list").to_dict()
    from_tsv = score_lists(ref_list, hyp_list).to_dict()
    for name in ("dpalign", "epoch", "overlap", "taes"):
        for label in ("seiz", "bckg"):
            a, b = from_csv["nedc"][name]["labels"][label], from_tsv["nedc"][name]["labels"][label]
            for key, value in a.items():
                if isinstance(value, float):
                    assert b[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (name, label, key)
                else:
                    assert b[key] == value, (name, label, key)
    assert from_tsv["szcore"] == from_csv["szcore"]
    # TUSZ patients and BIDS subjects group the recordings the same way: 8 subjects in 10 recordings
    assert from_tsv["szcore_evaluation"]["n_subjects"] == from_csv["szcore_evaluation"]["n_subjects"] == 8


@needs_parity
def test_mixed_lists_pair_csv_bi_references_with_tsv_hypotheses(tmp_path):
    lines = []
    for h in read_list(PARITY / "hyp.list"):  # <recording>_events.tsv pairs with <recording>.csv_bi
        write_events_tsv(tmp_path / f"{recording_name(h)}_events.tsv", read_annotation(h))
        lines.append(f"{recording_name(h)}_events.tsv")
    (tmp_path / "hyp.list").write_text("\n".join(lines) + "\n")
    pairs, subjects = load_named_pairs(PARITY / "ref.list", tmp_path / "hyp.list")
    assert len(pairs) == 10 and subjects[0] == "aaaaaasf"
    mixed = score_pairs(pairs).nedc["overlap"].labels["seiz"]
    pure = score_lists(PARITY / "ref.list", PARITY / "hyp.list").nedc["overlap"].labels["seiz"]
    assert (mixed.targets, mixed.hits, mixed.false_alarms) == (pure.targets, pure.hits, pure.false_alarms) == (
        183, 168, 0)  # NEDC EEG Eval v6.0.0 on these files (expected/summary.txt)


def _perturbed(ann: Annotation) -> Annotation:
    """Drop every other seizure and add a false one: event scores that are not all 100 %."""
    events = [e for i, e in enumerate(ann.events) if i % 2 == 0]
    start = ann.duration_s * 0.95
    events.append(Event(start, min(ann.duration_s, start + 20.0), "seiz", 1.0))
    return Annotation(ann.duration_s, events)


@needs_parity
def test_szcore_figures_equal_the_szcore_evaluation_package_on_real_files(tmp_path):
    evaluate_dataset = pytest.importorskip(
        "szcore_evaluation.evaluate", reason="szcore-evaluation (Python >= 3.12) not installed").evaluate_dataset
    refs, hyps = read_list(PARITY / "ref.list"), read_list(PARITY / "hyp.list")
    lay = bids_layout([(recording_name(r), subject_of(r)) for r in refs])
    for variant, make_hyp in (("as_is", lambda a: a), ("perturbed", _perturbed)):
        root = tmp_path / variant
        pairs, subjects = [], []
        for r, h in zip(refs, hyps, strict=True):
            rel = lay[recording_name(r)]
            write_events_tsv(root / "ref" / rel, read_annotation(r))
            write_events_tsv(root / "hyp" / rel, make_hyp(read_annotation(h)))
            pairs.append((read_events_tsv(root / "ref" / rel), read_events_tsv(root / "hyp" / rel)))
            subjects.append(rel.parts[0])
        ours = score_dataset(pairs, subjects)
        for avg, check in ((True, "mean"), (False, "pooled")):
            lib = evaluate_dataset(root / "ref", root / "hyp", root / f"lib_{avg}.json", avg_per_subject=avg)
            assert json.loads((root / f"lib_{avg}.json").read_text())  # the package wrote its file
            for kind in ("sample", "event"):
                got = ours[kind] if check == "mean" else ours["pooled"][kind]
                for metric, lib_key in (("sensitivity", "sensitivity"), ("precision", "precision"),
                                        ("f1", "f1"), ("fp_per_24h", "fpRate")):
                    keys = [(metric, lib_key)] + ([(f"{metric}_std", f"{lib_key}_std")] if avg else [])
                    for k, lk in keys:
                        assert got[k] == pytest.approx(lib[f"{kind}_results"][lk], rel=1e-12), (variant, kind, k)


@needs_parity
def test_ictal_score_takes_bids_tsv_lists_and_prints_the_per_subject_szcore_figures(tmp_path, capsys):
    from ictal.cli import main

    ref_list, hyp_list = _tsv_lists(tmp_path)
    assert main(["score", "--ref", str(ref_list), "--hyp", str(hyp_list), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nedc"]["overlap"]["labels"]["seiz"]["hits"] == 168
    sz = data["szcore_evaluation"]
    assert sz["n_subjects"] == 8 and sz["event"]["sensitivity"] == 1.0 and sz["event"]["sensitivity_std"] == 0.0
    assert [s["subject"] for s in sz["subjects"]][0] == "sub-aaaaaasf"
    assert main(["score", "--ref", str(ref_list), "--hyp", str(hyp_list)]) == 0
    text = capsys.readouterr().out
    assert "mean +- std over 8 subjects" in text and "sample-based: sensitivity 86.58% +- 8.41%" in text
