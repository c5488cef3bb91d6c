"""``ictal evaluate --hypotheses DIR``: another detector's output scored on real recordings with ictal's
scorers and report (no checkpoint), the SzCORE files and bootstrap intervals of the report, and the
progress bar that shows only on a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

from ictal.training.evaluate import EvaluationError, evaluate
from ictal.training.scoring.annotations import Annotation, Event, read_annotation, write_csv_bi
from ictal.training.scoring.bids_tsv import read_events_tsv, write_events_tsv
from ictal.training.scoring.report import score_lists

INCLUDE = ["labelled__iiic_0[1-4]", "labelled__hms_1628180742", "background__eegmat__Subject0[0-2]_2"]
"""7 recordings of 7 patients (ids in the shared data): 4 rated seizures (iiic_01-03 at 20-30 s,
hms_1628180742 at 20-70 s), iiic_04 rated non-seizure, three seizure-free EEGMAT recordings."""


def _hypotheses(folder, probs: bool = False):
    """A detector that finds iiic_01, iiic_02 and hms, misses iiic_03, and raises one false alarm on
    Subject00_2; files named the three ways a recording can be matched, csv_bi and tsv mixed."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv_bi(folder / "iiic_01.csv_bi", Annotation(50.0, [Event(21.0, 29.0, "seiz", 0.9)]))  # EDF stem
    write_events_tsv(folder / "sub-x" / "labelled__iiic_02_events.tsv",  # recording id, in a subfolder
                     Annotation(50.0, [Event(19.0, 31.0, "seiz", 0.8)]))
    write_events_tsv(folder / "iiic_03_events.tsv", Annotation(50.0, []))
    write_csv_bi(folder / "iiic_04.csv_bi", Annotation(50.0, []))
    write_csv_bi(folder / "hms_1628180742.csv_bi", Annotation(90.0, [Event(25.0, 65.0, "fnsz", 0.7)]))
    write_csv_bi(folder / "Subject00_2.csv_bi", Annotation(62.0, [Event(30.0, 40.0, "seiz", 0.6)]))
    write_csv_bi(folder / "Subject01_2.csv_bi", Annotation(62.0, []))
    write_events_tsv(folder / "Subject02_2_events.tsv", Annotation(62.0, []))
    if probs:  # 1 Hz probabilities: high inside the rated seizures of iiic_01/02
        for name, dur in (("iiic_01", 50), ("iiic_02", 50), ("iiic_03", 50), ("iiic_04", 50),
                          ("hms_1628180742", 90), ("Subject00_2", 62), ("Subject01_2", 62), ("Subject02_2", 62)):
            p = np.full(dur, 0.1)
            if name in ("iiic_01", "iiic_02"):
                p[20:30] = 0.9
            np.save(folder / f"{name}.npy", p)
    return folder


@pytest.fixture(scope="module")
def hyp_report(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hyp")
    folder = _hypotheses(tmp / "other_detector")
    report = evaluate(None, shared_data, tmp / "out", include=INCLUDE, hypotheses=folder, plots=False)
    return tmp / "out", report


def test_hypotheses_are_scored_with_ictals_scorers_without_a_checkpoint(hyp_report):
    out, report = hyp_report
    m = report.meta
    assert m["mode"] == "hypotheses" and m["checkpoint"] is None and m["checkpoint_id"] == "other_detector"
    assert m["n_scored"] == 8 and m["n_unscored"] == 0
    ov = report.scores["nedc"]["overlap"]["labels"]["seiz"]
    assert (ov["targets"], ov["hits"], ov["false_alarms"]) == (4, 3, 1)
    assert report.background_only["false_alarms"] == 1
    # the written files rescore to the same figures, csv_bi and SzCORE tsv alike
    for ref, hyp in (("ref.list", "hyp.list"), ("ref_tsv.list", "hyp_tsv.list")):
        again = score_lists(out / ref, out / hyp).to_dict()["nedc"]["overlap"]["labels"]["seiz"]
        assert (again["targets"], again["hits"], again["false_alarms"]) == (4, 3, 1)
    # no probabilities: sample figures and the sweep are n/a, not zeros
    assert report.sample_level["auroc"] is None and report.sweep == []
    assert all(row["point"] is None for row in report.sensitivity_at_fa)
    assert report.latency["p50_s"] is None and report.latency["hypothesis_onset"]["n"] == 3
    md = (out / "report.md").read_text()
    assert "hypotheses of another detector" in md and "no probabilities given" in md


def test_evaluate_writes_bids_events_files_beside_csv_bi(hyp_report):
    out, _ = hyp_report
    index = {e["recording_id"]: e for e in json.loads((out / "recordings.json").read_text())}
    bids = index["labelled__hms_1628180742"]["bids_events"]
    assert bids == "sub-hms1628180742/ses-01/eeg/sub-hms1628180742_ses-01_task-szMonitoring_run-00_events.tsv"
    ref = read_events_tsv(out / "bids" / "ref" / bids)
    assert ref == read_annotation(out / "ref" / "labelled__hms_1628180742.csv_bi")
    hyp_lines = (out / "bids" / "hyp" / bids).read_text().splitlines()
    assert hyp_lines[1].split("\t")[:3] == ["25.0000", "40.0000", "sz"]
    assert len((out / "ref_tsv.list").read_text().split()) == 8


def test_report_gives_bootstrap_intervals_by_patient_or_says_there_are_too_few(hyp_report):
    out, report = hyp_report
    ci = json.loads((out / "report.json").read_text())["confidence_intervals"]
    assert ci["unit"] == "patient" and ci["n_patients"] == 8 and ci["confidence_level"] == 0.95
    sens = ci["overlap_sensitivity"]
    assert sens["value"] == pytest.approx(0.75)
    # 4 patients with seizures < 5: no interval, and the note says why (never a NaN interval)
    assert sens["lo"] is None and sens["hi"] is None and "4 patients with seizures" in sens["note"]
    fa = ci["overlap_fa_per_24h"]
    assert fa["n_units"] == 8 and fa["lo"] <= fa["value"] <= fa["hi"] and fa["lo"] == 0.0
    assert ci["auroc"]["value"] is None
    # the exact intervals exist whatever the number of patients: Clopper-Pearson over the seizures
    exact = ci["exact"]["overlap_sensitivity"]
    targets = exact["n_units"]
    assert exact["value"] == pytest.approx(0.75) and targets >= 4
    assert 0.0 < exact["lo"] < 0.75 < exact["hi"] <= 1.0
    assert ci["exact"]["overlap_fa_per_24h"]["hi"] > ci["exact"]["overlap_fa_per_24h"]["value"]
    md = (out / "report.md").read_text()
    assert "exact 95% intervals" in md and f"({targets} seizures)" in md
    assert "FA/24h " in md and "[0.00, " in md and "nan" not in md.lower().replace("nanoseconds", "")


def test_probabilities_of_the_other_detector_give_sample_figures(shared_data, tmp_path):
    folder = _hypotheses(tmp_path / "det", probs=True)
    report = evaluate(None, shared_data, tmp_path / "out", include=INCLUDE, hypotheses=folder,
                      probs_rate_hz=1.0, plots=False)
    assert report.meta["hypotheses"]["probabilities"] is True
    assert report.sample_level["auroc"] is not None and report.sample_level["auroc"] > 0.5
    assert report.sweep  # ictal's post-processor swept over the given probabilities


def test_a_recording_without_hypothesis_is_an_error_naming_it(shared_data, tmp_path):
    folder = _hypotheses(tmp_path / "det")
    (folder / "iiic_04.csv_bi").unlink()
    with pytest.raises(EvaluationError, match=r"no hypothesis for recording labelled__iiic_04 .*iiic_04\.csv_bi"):
        evaluate(None, shared_data, tmp_path / "out", include=INCLUDE, hypotheses=folder, plots=False)
    np.save(folder / "iiic_01.npy", np.ones(5))
    with pytest.raises(EvaluationError, match="no rate: give --probs-rate-hz"):
        evaluate(None, shared_data, tmp_path / "out", include=INCLUDE, hypotheses=folder, plots=False)


def _run_cli(args, tty: bool, env) -> tuple[int, str]:
    """Run ``ictal`` with stderr on a pseudo-terminal (``tty``) or a pipe; returns (status, stderr)."""
    cmd = [sys.executable, "-m", "ictal", *args]
    if not tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        return proc.returncode, proc.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_with_count_and_eta_on_a_terminal_and_silence_in_logs(shared_data, tmp_path):
    folder = _hypotheses(tmp_path / "det")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    base = ["evaluate", "--hypotheses", str(folder), "--data", str(shared_data), "--no-plots"]
    base += [x for pat in INCLUDE for x in ("--include", pat)]
    status, err = _run_cli([*base, "--out", str(tmp_path / "a")], tty=True, env=env)
    assert status == 0, err
    assert "8/8" in err and "recording" in err and "<00:00" in err  # tqdm: count and ETA
    assert "labelled__iiic_01:" in err  # a line per recording above the bar
    status, err = _run_cli([*base, "--out", str(tmp_path / "b")], tty=False, env=env)
    assert status == 0, err
    assert err == ""  # logs and CI: nothing until the summary (stdout)


def test_help_describes_the_layouts_itself():
    proc = subprocess.run([sys.executable, "-m", "ictal", "evaluate", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60)
    assert proc.returncode == 0
    assert "training/evaluate.py" not in proc.stdout and ".py" not in proc.stdout
    assert "Layout of --out DIR" in proc.stdout and "Layout of --hypotheses DIR" in proc.stdout
    assert "_events.tsv" in proc.stdout and "--probs-rate-hz" in proc.stdout


def test_cli_needs_exactly_one_of_checkpoint_and_hypotheses(tmp_path, capsys):
    from ictal.cli import main

    base = ["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main(base) == 2
    assert "give --checkpoint CKPT or --hypotheses DIR (found neither)" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(tmp_path), "--hypotheses", str(tmp_path)]) == 2
    assert "(found both)" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(tmp_path), "--probs-rate-hz", "1"]) == 2
    assert "--probs-rate-hz applies to --hypotheses only" in capsys.readouterr().err
