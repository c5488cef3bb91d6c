"""A double-banana model trains on the CHB-MIT clips and is evaluated on them through the daemon path."""

from __future__ import annotations

import json

from ictal.cli import main
from ictal.detector.montage import DOUBLE_BANANA_CHANNELS


# about 50 s on a shared 2-core machine (5 steps of 60 s windows, then 2 recordings scored): the check, so
# it runs with the default test command
def test_ictal_train_and_evaluate_a_bipolar_model_on_chbmit(repo_root, shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)  # the config's data root is relative to the repository root
    config = repo_root / "configs" / "train" / "chbmit_bipolar_smoke.yaml"
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "5", "--no-progress",
                 "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", f"out_dir={run}",
                 "--set", "eval.enabled=false"]) == 0
    assert "trained 5 steps" in capsys.readouterr().out
    checkpoint = run / "checkpoints" / "last"
    metadata = json.loads((checkpoint / "metadata.json").read_text())
    assert metadata["montage"] == list(DOUBLE_BANANA_CHANNELS)
    assert metadata["frontend_config"]["montage"] == "double_banana" and metadata["model_config"]["n_chans"] == 18

    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(shared_data / "bipolar" / "chbmit"),
                 "--out", str(out), "--no-plots", "--quiet", "--include", "chb02_sz01_*"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["n_scored"] == 2 and report["meta"]["n_unscored"] == 0
    scored = {r["recording_id"]: r for r in report["recordings"]}
    assert set(scored) == {"chb02_sz01_ictal", "chb02_sz01_preictal"}
    assert scored["chb02_sz01_ictal"]["ref_seizures"] == 1 and scored["chb02_sz01_preictal"]["ref_seizures"] == 0
    assert all(0.0 <= r["max_prob"] <= 1.0 for r in scored.values())
