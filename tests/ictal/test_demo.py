"""`ictal demo`: it runs to its summary on the built-in input, and says clearly when it cannot run."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ictal.cli import main

MICRO = {
    "kind": "model", "name": "micro-demo", "backend": "reference", "tcn_widths": [8, 8, 8, 8],
    "tcn_dilations": [1, 2], "d_electrode": 4, "similarity_heads": 1,
    "node_stack": {"n_layers": 1, "d_model": 8, "d_state": 4, "n_heads": 1, "expand": 1},
    "edge_stack": {"n_layers": 1, "d_model": 4, "d_state": 4, "n_heads": 1, "expand": 1},
    "top_k": 2, "lpe_k": 2, "gnn_hidden": 4, "decoder_widths": [4, 4, 4, 4], "dropout": 0.0,
}


def test_demo_replays_the_builtin_input_into_the_daemon_and_ends_with_a_summary(tmp_path, shared_data):
    model = tmp_path / "micro.yaml"
    model.write_text(yaml.safe_dump(MICRO))
    result = subprocess.run(
        [sys.executable, "-m", "ictal", "demo", "--untrained", "--untrained-config", str(model), "--speed", "10"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "iiic_01.edf at 10x" in out
    assert "metrics: http://127.0.0.1:" in out
    assert "stream_connected" in out  # an event as the subscriber saw it
    summary = out[out.index("\nsummary"):]
    scored = int(summary.split("windows scored: ")[1].split(";")[0])
    assert scored >= 1
    assert "alarms raised: " in summary and "daemon exit code after SIGTERM: 0" in summary
    assert "10000 samples per channel received" in summary  # 50 s at 200 Hz, all of it
    assert "bed demo-bed is monitored (alarms can be raised" in out  # the state, as the heartbeats said it
    assert "bed states seen: " in summary and "monitored" in summary.split("bed states seen: ")[1].split("\n")[0]
    assert "seizure marked in the recording: 20.0-30.0 s" in summary  # its EDF+ annotations
    assert "nan" not in out.lower().replace("nano", "")
    work = Path(out.split("daemon config: ")[1].split()[0]).parent
    assert work.name.startswith("ictal-demo-") and not work.exists()  # the working folder is removed


def test_demo_says_a_recording_is_too_short_to_score_before_starting_anything(tmp_path, capsys, shared_data):
    short = shared_data / "labelled" / "grond_gpd_01.edf"  # a 10 s clip
    before = set(Path(tempfile.gettempdir()).glob("ictal-demo-*"))
    code = main(["demo", "--untrained", "--edf", str(short)])
    assert code == 2
    err = capsys.readouterr().err
    assert "10.0 s long, too short to score" in err and "at least 14 s" in err
    assert set(Path(tempfile.gettempdir()).glob("ictal-demo-*")) <= before  # no working folder made


def test_demo_without_a_checkpoint_says_how_to_make_one(tmp_path, monkeypatch, capsys, shared_data):
    monkeypatch.chdir(tmp_path)
    code = main(["demo", "--checkpoint", str(tmp_path / "nothing")])
    assert code == 2
    err = capsys.readouterr().err
    assert "not found" in err and "ictal train --config configs/train/cpu_small.yaml" in err
    assert "ictal demo --untrained" in err


def test_demo_without_the_builtin_input_asks_for_an_edf(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ICTAL_SHARED_DATA", str(tmp_path / "absent"))
    code = main(["demo", "--untrained"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(Path("labelled") / "iiic_01.edf") in err and "--edf FILE" in err


def test_bedside_time_to_alarm_undoes_the_replay_pace():
    from ictal.streaming.demo import bedside_time_to_alarm

    # onset at 30 s, decided at 46 s of signal; at 4x the 16 s of signal took 4 s of wall time, plus 0.5 s
    event = {"kind": "onset", "bed_id": "b", "onset_s": 30.0, "stream_time_s": 46.0, "probability": {"peak": 0.9, "mean": 0.85},
             "onset_wall_time": "2026-12-03T10:00:00+00:00", "wall_time": "2026-12-03T10:00:04.500000+00:00",
             "min_duration_wall_time": "2026-12-03T10:00:04+00:00", "window_end_s": 46.0}
    bedside = bedside_time_to_alarm(event, speed=4.0, marked_onset_s=20.0)
    assert bedside["signal_s"] == 16.0
    assert abs(bedside["processing_s"] - 0.5) < 1e-6
    assert abs(bedside["from_detected_onset_s"] - 16.5) < 1e-6
    assert abs(bedside["from_marked_onset_s"] - 26.5) < 1e-6  # 46 - 20 + 0.5
    assert "from_marked_onset_s" not in bedside_time_to_alarm(event, speed=4.0, marked_onset_s=None)


def test_bedside_time_to_alarm_waits_for_the_window_that_decided_it():
    """With lookahead the minimum duration completes at a sample older than the deciding window's end:
    at the bedside the alarm waits for that end in real time, not at the replay's pace."""
    from ictal.streaming.demo import bedside_time_to_alarm

    # onset 21 s, minimum duration done at 26 s, decided by the window ending at 30 s (lookahead 2 s,
    # hop 4 s); at 4x the 9 s from onset to the window end took 2.25 s of wall time, plus 0.5 s
    event = {"kind": "onset", "bed_id": "b", "onset_s": 21.0, "stream_time_s": 26.0, "window_end_s": 30.0,
             "onset_wall_time": "2026-12-03T10:00:00+00:00", "wall_time": "2026-12-03T10:00:02.750000+00:00"}
    bedside = bedside_time_to_alarm(event, speed=4.0, marked_onset_s=20.0)
    assert bedside["signal_s"] == 9.0
    assert abs(bedside["processing_s"] - 0.5) < 1e-6
    assert abs(bedside["from_detected_onset_s"] - 9.5) < 1e-6
    assert abs(bedside["from_marked_onset_s"] - 10.5) < 1e-6  # 30 - 20 + 0.5
    from ictal.streaming.demo import summary

    text = summary(Path("x.edf"), 4.0, [event], {}, 0, [(20.0, 30.0)], "input: x is held out")
    assert "minimum duration done at 26.0 s, decided by the window ending at 30.0 s" in text
    assert "9.5 s after the detected onset (9.0 s of signal + 0.50 s processing), 10.5 s after the marked" in text
    assert "  input: x is held out" in text
    from ictal.streaming.demo import describe

    live = describe({**event, "probability": {"peak": 0.9, "mean": 0.85}})  # the line printed as the alarm arrives
    assert "minimum duration done at 26.0 s, decided by the window ending at 30.0 s, published " in live


def test_summary_without_figures_prints_no_nan():
    from ictal.streaming.demo import summary

    text = summary(Path("x.edf"), 4.0, [], {}, 0, [])
    assert "nan" not in text
    assert "none observed" in text and "the file marks no seizure" in text
    assert "bed states seen: none reported" in text


def test_the_demo_says_whether_its_input_is_a_training_recording_of_the_checkpoint(repo_root, tmp_path, monkeypatch):
    """From checkpoints/demo's provenance: the built-in input iiic_01 is a training recording (in-sample
    alarm, said so), iiic_03 is held out, a file outside the shared folder is in neither list."""
    from ictal.detector.checkpoint import read_metadata
    from ictal.streaming.demo import DEFAULT_INPUT, input_provenance, recording_id_of

    monkeypatch.setenv("ICTAL_SHARED_DATA", str(tmp_path / "shared"))
    ckpt = repo_root / "checkpoints" / "demo"
    prov = read_metadata(ckpt)["provenance"]
    builtin = tmp_path / "shared" / DEFAULT_INPUT
    assert recording_id_of(builtin) == "labelled__iiic_01" and "labelled__iiic_01" in prov["train_recordings"]
    assert "is a TRAINING recording of checkpoint" in input_provenance(builtin, ckpt)
    assert "in-sample, not evidence of detection" in input_provenance(builtin, ckpt)
    held = input_provenance(tmp_path / "shared" / "labelled" / "iiic_03.edf", ckpt)
    assert held.startswith("input: labelled__iiic_03 is held out") and "TRAINING" not in held
    other = input_provenance(tmp_path / "elsewhere" / "bed7.edf", ckpt)
    assert f"not among the {len(prov['train_recordings'])} training recordings" in other
    assert recording_id_of(tmp_path / "elsewhere" / "bed7.edf") is None
