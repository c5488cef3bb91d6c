"""Training end to end on a TUSZ-layout fixture: cache -> train -> checkpoint -> resume; overfit check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from ictal.cli import main
from ictal.config import load_config
from ictal.detector.config import FrontendConfig, ModelConfig
from ictal.training.config import TrainConfig
from tests.training.tusz_fixture import build_tusz_tree

N_TIMES = 256  # 1 s windows: the model takes any multiple of 16, and CPU tests stay fast


def small_model(**update) -> ModelConfig:
    """A model of a few thousand parameters with the real architecture (for speed, not accuracy)."""
    base = dict(
        name="test", stack="bimamba2", backend="reference", n_times=N_TIMES, tcn_widths=[8, 8, 16, 16],
        tcn_dilations=[1, 2], d_electrode=4, lpe_k=2, top_k=2, gnn_hidden=8, dropout=0.0,
        node_stack={"n_layers": 1, "d_model": 8, "d_state": 4, "n_heads": 1, "chunk_size": 8},
        edge_stack={"n_layers": 1, "d_model": 4, "d_state": 4, "n_heads": 1, "chunk_size": 8},
    )
    base.update(update)
    return ModelConfig.model_validate(base)


@pytest.fixture(scope="module")
def tusz_root(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tusz_train")
    build_tusz_tree(shared_data, root)
    return root


def make_config(repo_root, tusz_root, out_dir, dev_eval: bool = True, **optim) -> TrainConfig:
    """configs/train/cpu_small.yaml pointed at the fixture tree, with a small model and few steps.

    Dev evaluation (when on) scores the first dev recording only (50 s), to keep the tests fast.
    """
    config = load_config(repo_root / "configs/train/cpu_small.yaml", kind="train")
    data = config.data.model_copy(update={"format": "tusz", "root": tusz_root, "cache_dir": tusz_root / "cache"})
    optim = config.optim.model_copy(update={"steps_per_epoch": 2, "epochs": 2, "batch_size": 2,
                                            "warmup_steps": 1, **optim})
    return TrainConfig.model_validate({**config.model_dump(), "data": data.model_dump(), "model": small_model(),
                                       "optim": optim.model_dump(), "out_dir": out_dir,
                                       # 1 s windows: a 0.25 s served span (the daemon's 4 s hop does not fit)
                                       "serving": {"hop_s": 0.25, "lookahead_s": 0.0, "min_history_s": 1.0},
                                       "eval": {"enabled": dev_eval, "batch_size": 25, "max_dev_hours": 0.01},
                                       "log": {"every_steps": 1, "tensorboard": False, "progress_bar": False}})


def test_train_writes_checkpoints_and_a_resumed_run_continues_steps_and_weights(repo_root, tusz_root, tmp_path):
    from ictal.training.train import train

    straight = train(make_config(repo_root, tusz_root, tmp_path / "straight"))
    assert straight.global_step == 4 and straight.epoch == 2
    ckpts = tmp_path / "straight" / "checkpoints"
    assert {p.name for p in ckpts.iterdir()} >= {"epoch_001", "epoch_002", "last", "best"}
    for name in ("epoch_001", "last", "best"):
        files = {p.name for p in (ckpts / name).iterdir()}
        assert {"model.safetensors", "metadata.json", "training_state.safetensors", "training_state.json"} <= files
        assert not any(f.endswith((".pt", ".pth", ".pkl", ".bin")) for f in files)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    dev_rows = [r for r in rows if r["kind"] == "dev"]
    assert len(dev_rows) == 2 and dev_rows[0]["dev_seizures"] == 1 and np.isfinite(dev_rows[0]["dev_loss"])
    assert (tmp_path / "straight" / "metrics.csv").read_text().startswith("kind,step,epoch,loss")

    # Interrupted after 3 steps (mid-epoch), then resumed: the same 4 steps, the same weights (dev
    # evaluation is off here: it never touches the weights nor the generators of training).
    config = make_config(repo_root, tusz_root, tmp_path / "interrupted", dev_eval=False)
    first = train(config, max_steps=3)
    state = json.loads((tmp_path / "interrupted/checkpoints/last/training_state.json").read_text())
    assert first.global_step == 3 and state["global_step"] == 3 and state["epoch"] == 1
    assert state["step_in_epoch"] == 1
    moved = {k: v.clone() for k, v in first.model.state_dict().items()}
    resumed = train(config, resume=tmp_path / "interrupted/checkpoints/last")
    assert resumed.global_step == 4 and resumed.epoch == 2
    final = resumed.model.state_dict()
    assert any(not torch.equal(moved[k], final[k]) for k in final)  # the fourth step did train
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=1e-6, msg=f"{key} differs after resume")


def test_resume_refuses_a_checkpoint_of_another_model(repo_root, tusz_root, tmp_path):
    from ictal.training.train import train

    config = make_config(repo_root, tusz_root, tmp_path / "a", dev_eval=False)
    train(config, max_steps=1)
    other = TrainConfig.model_validate({**config.model_dump(), "model": small_model(d_electrode=8)})
    with pytest.raises(ValueError, match="d_electrode"):
        train(other, resume=tmp_path / "a/checkpoints/last")


def test_loss_goes_down_on_a_fixed_batch(repo_root, tusz_root):
    from ictal.detector.model import build_model
    from ictal.training.cache import Cache, build_cache
    from ictal.training.config import DataConfig
    from ictal.training.datasets import discover
    from ictal.training.losses import weighted_bce
    from ictal.training.sampler import WindowDataset, WindowSampler

    index = discover(DataConfig(format="tusz", root=tusz_root))
    build_cache(index.recordings, tusz_root / "cache", FrontendConfig(), progress=False, log=lambda text: None)
    cache = Cache(tusz_root / "cache", FrontendConfig())
    dataset = WindowDataset(WindowSampler(cache, cache.split("train"), N_TIMES, 0.5), FrontendConfig(), None, 2, 0)
    x = torch.stack([dataset[i][0] for i in range(2)])
    y = torch.stack([dataset[i][1] for i in range(2)])
    assert (y == 1).any() and (y == 0).any()
    torch.manual_seed(0)
    model = build_model(small_model(tcn_widths=[16, 16, 32, 32], d_electrode=8, gnn_hidden=16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = weighted_bce(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"loss did not halve on a fixed batch: {losses[0]:.4f} -> {losses[-1]:.4f}"


def test_ictal_train_command_runs_the_cpu_recipe(repo_root, tusz_root, tmp_path, capsys):
    config = make_config(repo_root, tusz_root, tmp_path / "cli", dev_eval=False, grad_accum=2, batch_size=1)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["train", "--config", str(path), "--max-steps", "1", "--no-progress"]) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert (tmp_path / "cli/checkpoints/last/model.safetensors").is_file()
    row = json.loads((tmp_path / "cli/metrics.jsonl").read_text().splitlines()[0])
    assert row["step"] == 1 and row["windows_per_s"] > 0 and np.isfinite(row["loss"])
    missing = tmp_path / "no_such_checkpoint"
    assert main(["train", "--config", str(path), "--resume", str(missing), "--no-progress"]) == 2
    assert "no_such_checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: train\ndata: {format: tusz, root: /nonexistent}\noptim: {lr: -1}\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_dev_sweep_scores_overlap_hits_and_false_alarms_over_labelled_time_only():
    from ictal.alarms.config import AlarmThresholds
    from ictal.training.validation import sweep_operating_points

    fs = 16.0
    t = np.arange(int(600 * fs)) / fs
    labels = np.zeros(t.size, dtype=np.int8)
    labels[(t >= 100) & (t < 160)] = 1
    labels[(t >= 300) & (t < 400)] = -1  # unrated: an alarm here is neither a hit nor a false alarm
    probs = np.full(t.size, 0.05)
    probs[(t >= 105) & (t < 150)] = 0.95  # detects the seizure
    probs[(t >= 200) & (t < 230)] = 0.95  # false alarm in background
    probs[(t >= 320) & (t < 360)] = 0.95  # inside unrated time
    rules = AlarmThresholds(tau_on=0.8, tau_off=0.5, min_duration_s=10, merge_gap_s=5, refractory_s=0)
    points, n_seizures, labelled_s = sweep_operating_points([(probs, labels)], fs, rules, taus=(0.9, 0.98))
    assert n_seizures == 1 and labelled_s == pytest.approx(500.0)
    assert points[0] == pytest.approx((0.9, 1.0, 86400 / 500))
    assert points[1] == pytest.approx((0.98, 0.0, 0.0))


def test_non_finite_gradients_skip_the_update_and_stop_the_run_when_they_persist(repo_root, tusz_root, tmp_path,
                                                                                   monkeypatch, capsys):
    import ictal.training.train as train_module

    monkeypatch.setattr(train_module, "MAX_BAD_STEPS", 2)
    monkeypatch.setattr(train_module, "loss_from_config",
                        lambda optim: lambda logits, labels: logits.float().mean() * float("nan"))
    config = make_config(repo_root, tusz_root, tmp_path / "nan", dev_eval=False)
    with pytest.raises(FloatingPointError, match="2 optimizer steps in a row had a non-finite gradient"):
        train_module.train(config)
    assert "step 1: non-finite gradient norm (nan); update skipped" in capsys.readouterr().err


def test_train_writes_the_provenance_of_the_recordings_it_read_into_each_checkpoint(repo_root, tusz_root, tmp_path):
    """metadata.provenance lists the cache's train / dev / eval ids; files the cache skipped are not in it."""
    from ictal.detector.checkpoint import load_checkpoint
    from ictal.training.provenance import format_warning, overlap
    from ictal.training.train import train

    config = make_config(repo_root, tusz_root, tmp_path / "p", dev_eval=False)
    result = train(config, max_steps=1)
    loaded = load_checkpoint(result.last_checkpoint, backend="reference")
    prov = loaded.provenance
    manifest = json.loads((tusz_root / "cache" / "manifest.json").read_text())
    by_split = {s: sorted(e["recording_id"] for e in manifest["recordings"] if e["split"] == s)
                for s in ("train", "dev", "eval")}
    assert prov["train_recordings"] == by_split["train"] and len(by_split["train"]) >= 3
    assert prov["validation_recordings"] == by_split["dev"] and len(by_split["dev"]) == 2
    assert prov["evaluation_recordings"] == by_split["eval"] and len(by_split["eval"]) >= 1
    assert prov["dataset"] == {"format": "tusz", "root": str(tusz_root)}
    assert prov["split"]["seed"] == config.data.split_seed
    listed = set(prov["train_recordings"]) | set(prov["validation_recordings"]) | set(prov["evaluation_recordings"])
    skipped = {s["path"] for s in manifest["skipped"]}
    assert skipped and not any(rid.split("__")[-1] in path for path in skipped for rid in listed)
    # the ids are those evaluate reports: scoring the train split warns with its count
    from ictal.training.evaluate import dataset_config, select_recordings

    recs, _ = select_recordings(dataset_config(tusz_root, "tusz"), split="train")
    found = overlap(prov, [r.recording_id for r in recs])
    assert sorted(found.train) == by_split["train"]
    assert format_warning(found, loaded.checkpoint_id).startswith(
        f"WARNING: {len(by_split['train'])} of {len(recs)} recordings are training recordings of checkpoint "
        f"{loaded.checkpoint_id}")
