"""`ictal score`: table, JSON, and clear errors for lists that do not pair up."""

from __future__ import annotations

import json
from pathlib import Path

from ictal.cli import main
from ictal.training.scoring.annotations import Annotation, Event, write_csv_bi


def _lists(tmp_path: Path, ref_names: list[str], hyp_names: list[str]) -> tuple[Path, Path]:
    for folder, names, events in (
        ("ref", ref_names, [Event(40.0, 60.0, "seiz")]),
        ("hyp", hyp_names, [Event(50.0, 70.0, "seiz")]),
    ):
        (tmp_path / folder).mkdir(exist_ok=True)
        for name in names:
            write_csv_bi(tmp_path / folder / f"{name}.csv_bi", Annotation(100.0, events))
    ref_list = tmp_path / "ref.list"
    hyp_list = tmp_path / "hyp.list"
    ref_list.write_text("".join(f"ref/{n}.csv_bi\n" for n in ref_names))
    hyp_list.write_text("".join(f"hyp/{n}.csv_bi\n" for n in hyp_names))
    return ref_list, hyp_list


def test_score_prints_a_row_per_scorer_and_label(tmp_path, capsys):
    ref_list, hyp_list = _lists(tmp_path, ["rec_a"], ["rec_a"])
    assert main(["score", "--ref", str(ref_list), "--hyp", str(hyp_list)]) == 0
    out = capsys.readouterr().out
    for title in ("NEDC DP alignment", "NEDC EPOCH", "NEDC OVERLAP", "NEDC TAES", "SzCORE"):
        assert title in out
    assert out.count("SEIZ") == 4 and out.count("BCKG") == 4


def test_score_json_gives_taes_fractions_of_the_hand_case(tmp_path, capsys):
    ref_list, hyp_list = _lists(tmp_path, ["rec_a", "rec_b"], ["rec_a", "rec_b"])
    assert main(["score", "--ref", str(ref_list), "--hyp", str(hyp_list), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_files"] == 2 and report["duration_s"] == 200.0
    taes = report["nedc"]["taes"]["labels"]["seiz"]
    # per file: hyp 50-70 against ref 40-60 -> hit 0.5, FA 0.5
    assert (taes["targets"], taes["hits"], taes["false_alarms"]) == (2.0, 1.0, 1.0)
    assert taes["fa_per_24h"] == 1.0 / 200.0 * 86400
    assert report["nedc"]["overlap"]["labels"]["seiz"]["sensitivity"] == 1.0
    assert report["szcore"]["tp"] == 2


def test_score_refuses_lists_of_different_lengths(tmp_path, capsys):
    ref_list, hyp_list = _lists(tmp_path, ["rec_a", "rec_b"], ["rec_a"])
    assert main(["score", "--ref", str(ref_list), "--hyp", str(hyp_list)]) == 2
    err = capsys.readouterr().err
    assert "lists 2 files" in err and "lists 1" in err


def test_score_refuses_a_pair_of_different_recordings(tmp_path, capsys):
    ref_list, hyp_list = _lists(tmp_path, ["rec_a", "rec_b"], ["rec_a", "rec_c"])
    assert main(["score", "--ref", str(ref_list), "--hyp", str(hyp_list)]) == 2
    err = capsys.readouterr().err
    assert "entry 2 pairs different recordings" in err and "rec_b.csv_bi" in err and "rec_c.csv_bi" in err


def test_score_reports_a_malformed_file_with_its_line(tmp_path, capsys):
    ref_list, hyp_list = _lists(tmp_path, ["rec_a"], ["rec_a"])
    bad = tmp_path / "hyp" / "rec_a.csv_bi"
    bad.write_text(bad.read_text().replace("50.0000", "fifty"))
    assert main(["score", "--ref", str(ref_list), "--hyp", str(hyp_list)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:7" in err and "'fifty'" in err
