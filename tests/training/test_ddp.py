"""DDP on CPU: two processes with the gloo backend train in step and end with the same weights."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from tests.training.test_train import make_config
from tests.training.tusz_fixture import build_tusz_tree


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, config_json: str, out: str) -> None:
    """One DDP process, with the environment torchrun would give it."""
    from ictal.training.config import TrainConfig
    from ictal.training.train import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train(TrainConfig.model_validate_json(config_json), max_steps=3)
    weights = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    save_file(weights, os.path.join(out, f"rank{rank}.safetensors"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump({"step": result.global_step, "loss": result.final_loss}, handle)


def test_two_gloo_processes_end_with_identical_weights(shared_data, repo_root, tmp_path):
    tusz_root = tmp_path / "tusz"
    build_tusz_tree(shared_data, tusz_root, faults=False)
    config = make_config(repo_root, tusz_root, tmp_path / "ddp", steps_per_epoch=3, epochs=1)
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"enabled": False})})
    mp.spawn(_rank_main, args=(2, _free_port(), config.model_dump_json(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between the ranks"
    # Both ranks took the 3 steps, rank 0 wrote the checkpoint, and training moved the weights.
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text())["step"] == 3
    saved = load_file(str(tmp_path / "ddp/checkpoints/last/model.safetensors"))
    for key in rank0:
        assert torch.equal(saved[key], rank0[key])
    state = json.loads((tmp_path / "ddp/checkpoints/last/training_state.json").read_text())
    assert state["world_size"] == 2 and state["global_step"] == 3
    from ictal.detector.model import build_model

    torch.manual_seed(config.seed)
    initial = build_model(config.model).state_dict()
    assert any(not torch.equal(initial[k], rank0[k]) for k in rank0)


@pytest.mark.slow
def test_torchrun_launches_ictal_train_on_two_processes(shared_data, repo_root, tmp_path):
    import subprocess
    import sys

    import yaml

    tusz_root = tmp_path / "tusz"
    build_tusz_tree(shared_data, tusz_root, faults=False)
    config = make_config(repo_root, tusz_root, tmp_path / "run", steps_per_epoch=2, epochs=1)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
               str(_free_port()), "-m", "ictal", "train", "--config", str(path), "--no-progress"]
    done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((tmp_path / "run/checkpoints/last/training_state.json").read_text())
    assert state["world_size"] == 2 and state["global_step"] == 2
