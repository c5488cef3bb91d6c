"""`ictal serve` (a real process) refuses thresholds that are not for its checkpoint, or that the config
contradicts: exit 2 naming both ids / both sources, before any socket is bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.thresholds import save_thresholds
from tests.ictal.test_serve_e2e import micro_checkpoint
from tests.reliability.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
FOREIGN = "0123456789abcdef"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return micro_checkpoint(tmp_path_factory.mktemp("ckpt") / "micro")


def _config(tmp_path: Path, checkpoint: Path, **alarms) -> Path:
    config = yaml.safe_load((REPO / "configs" / "daemon.yaml").read_text())
    config["beds"] = [{"bed_id": "bed-th", "source": {"type": "lsl", "name": "ictal-thr-none", "resolve_timeout_s": 1.0}}]
    config["detector"].update({"checkpoint": str(checkpoint), "device": "cpu", "max_batch": 2, "warmup": False})
    config["alarms"]["journal"]["path"] = str(tmp_path / "journal.sqlite3")
    config["alarms"]["publisher"].update({"pub_endpoint": f"tcp://127.0.0.1:{free_port()}",
                                          "catchup_endpoint": f"tcp://127.0.0.1:{free_port()}"})
    config["alarms"]["metrics"]["port"] = free_port()
    config["alarms"].update(alarms)
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _serve(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ictal", "serve", "--config", str(config)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_serve_with_a_thresholds_file_of_another_checkpoint_exits_2_naming_both_ids(tmp_path, checkpoint):
    own_id = json.loads((checkpoint / "metadata.json").read_text())["checkpoint_id"]
    assert own_id != FOREIGN
    th = save_thresholds(tmp_path / "th.json", AlarmThresholds(tau_on=0.9, tau_off=0.6), target_fa_per_24h=1.0,
                         dataset="d", checkpoint_id=FOREIGN, recordings=["r1"])
    done = _serve(_config(tmp_path, checkpoint, thresholds_file=str(th)), tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert FOREIGN in done.stderr and own_id in done.stderr and "accept_thresholds_of_checkpoint" in done.stderr
    assert "event=start_refused" in done.stderr + done.stdout
    assert not (tmp_path / "journal.sqlite3").exists()  # refused before the journal was opened


def test_serve_with_config_thresholds_against_the_checkpoints_exits_2(tmp_path, checkpoint):
    import shutil

    tuned = tmp_path / "tuned"
    shutil.copytree(checkpoint, tuned)
    meta = json.loads((tuned / "metadata.json").read_text())
    meta["thresholds"] = {"tau_on": 0.9084, "tau_off": 0.9084, "min_duration_s": 2.0}
    (tuned / "metadata.json").write_text(json.dumps(meta))
    done = _serve(_config(tmp_path, tuned, thresholds={"tau_on": 0.97, "min_duration_s": 10.0}), tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "tau_on=0.97" in done.stderr and "tau_on=0.9084" in done.stderr
    assert "use_checkpoint_thresholds" in done.stderr
