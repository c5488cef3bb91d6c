"""`ictal serve` refuses a corrupt, truncated, pickled or mismatching checkpoint and does not start half-working.

Real ``python -m ictal serve`` processes: each must exit with code 2 and a message naming the checkpoint
and what is wrong, before binding any port or writing the journal (a daemon that publishes heartbeats
without a model would look healthy to its subscribers).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.reliability.helpers import REPO_ROOT, free_port


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    from tests.ictal.test_serve_e2e import micro_checkpoint

    return micro_checkpoint(tmp_path_factory.mktemp("ckpt") / "micro")


def _truncate(path: Path) -> str:
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return "corrupt or truncated"


def _pickle(path: Path) -> str:
    (path / "model.safetensors").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return "not a readable safetensors file"


def _other_config(path: Path) -> str:
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["model_config"]["d_electrode"] = 16
    (path / "metadata.json").write_text(json.dumps(metadata))
    return "first mismatching tensor"


def _bad_metadata(path: Path) -> str:
    (path / "metadata.json").write_text("{not json")
    return "not readable JSON"


CASES = {
    "truncated": (_truncate, []),
    "pickled": (_pickle, [pytest.mark.slow]),
    "other_config": (_other_config, [pytest.mark.slow]),
    "bad_metadata": (_bad_metadata, [pytest.mark.slow]),
}


@pytest.mark.parametrize("case", [pytest.param(name, marks=marks, id=name) for name, (_, marks) in CASES.items()])
def test_serve_refuses_a_broken_checkpoint_before_binding_anything(good_checkpoint, tmp_path, case):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(good_checkpoint, checkpoint)
    expected = CASES[case][0](checkpoint)
    pub, catchup, metrics = free_port(), free_port(), free_port()
    config = yaml.safe_load((REPO_ROOT / "configs" / "daemon.yaml").read_text())
    config["detector"].update({"checkpoint": str(checkpoint), "device": "cpu"})
    config["alarms"]["journal"]["path"] = str(tmp_path / "state" / "journal.sqlite3")
    config["alarms"]["publisher"].update({"pub_endpoint": f"tcp://127.0.0.1:{pub}",
                                          "catchup_endpoint": f"tcp://127.0.0.1:{catchup}"})
    config["alarms"]["metrics"]["port"] = metrics
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "ictal", "serve", "--config", str(path)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=180,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert str(checkpoint) in result.stderr and expected in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "state" / "journal.sqlite3").exists(), "the journal was opened by a refused daemon"
    for port in (pub, catchup, metrics):  # nothing was bound: each port is still free
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
