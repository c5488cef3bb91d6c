"""Issue 22: the fusion no longer bounds the features the read-out sees; old checkpoints still load."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from ictal.detector.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ictal.detector.config import FrontendConfig
from ictal.detector.inference import Detector
from ictal.detector.model import build_model
from ictal.detector.model.fusion import GatedFusion
from tests.detector.model_configs import small_config


def _fused_norms(fusion: GatedFusion, scale: float) -> torch.Tensor:
    torch.manual_seed(1)
    u = torch.randn(2, 19, 8, 16) * scale
    x = torch.randn(2, 8, 19, 16) * scale
    with torch.no_grad():
        return fusion(u, x).norm(dim=-1)


def test_layernorm_fusion_bounds_every_fused_vector_whatever_the_evidence():
    torch.manual_seed(0)
    fusion = GatedFusion(16, 16, norm="layernorm")
    small, large = _fused_norms(fusion, 1.0), _fused_norms(fusion, 1000.0)
    # the cause of the 0.96 ceiling: a LayerNorm'd vector of width 16 has norm sqrt(16) = 4 (before its affine)
    assert float(large.max()) <= math.sqrt(16) * 1.01 + 1e-3
    assert float(large.mean()) == pytest.approx(float(small.mean()), rel=0.05)


def test_unnormalised_fusion_grows_with_its_inputs():
    torch.manual_seed(0)
    fusion = GatedFusion(16, 16, norm="none")
    small, large = _fused_norms(fusion, 1.0), _fused_norms(fusion, 1000.0)
    assert float(large.mean()) > 100 * float(small.mean())


def test_unknown_fusion_norm_is_refused_naming_it():
    with pytest.raises(ValueError, match="'batchnorm'"):
        GatedFusion(16, 16, norm="batchnorm")  # type: ignore[arg-type]


def test_new_models_have_no_fusion_layernorm_and_reach_confident_logits():
    """A model of the new architecture fits p > 0.999 on a window it is trained on (no ceiling)."""
    torch.manual_seed(0)
    config = small_config()
    assert config.fusion_norm == "none"
    model = build_model(config)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.fusion.modules())
    x = torch.randn(2, 19, config.n_times)
    y = torch.tensor([[1.0], [0.0]]).expand(2, config.n_times)
    # lr 1e-2: at 3e-2 Adam's first steps can kill every unit (p stays 0.5), an optimiser failure, not a ceiling
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(x))
    assert float(p[0].min()) > 0.999 and float(p[1].max()) < 0.001


@pytest.fixture()
def old_checkpoint(tmp_path):
    """A checkpoint as written before issue 22: LayerNorm weights, no ``fusion_norm`` in its model_config."""
    torch.manual_seed(0)
    config = small_config(fusion_norm="layernorm")
    path = save_checkpoint(tmp_path / "old", build_model(config), config, FrontendConfig())
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["model_config"]["fusion_norm"]
    meta_path.write_text(json.dumps(meta))
    return path


def test_a_checkpoint_written_before_the_fix_loads_with_its_layernorm_and_says_so(old_checkpoint, caplog):
    with caplog.at_level(logging.WARNING, logger="ictal.detector.checkpoint"):
        loaded = load_checkpoint(old_checkpoint)
    assert loaded.model_config.fusion_norm == "layernorm"
    assert isinstance(loaded.model.fusion.norm, torch.nn.LayerNorm)
    assert "fusion_norm" in caplog.text and "retrain" in caplog.text
    probs = Detector.from_checkpoint(old_checkpoint, device="cpu").predict(np.zeros((1, 19, 256), np.float32))
    assert probs.shape == (1, 256)


def test_layernorm_weights_declared_as_the_new_architecture_are_refused_naming_the_tensor(old_checkpoint):
    meta_path = old_checkpoint / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["model_config"]["fusion_norm"] = "none"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"fusion\.norm\.(weight|bias)"):
        load_checkpoint(old_checkpoint)
