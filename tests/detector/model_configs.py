"""Small model configs for fast tests of detector.model, detector.checkpoint and detector.inference."""

from __future__ import annotations

from pathlib import Path

from ictal.config import load_config
from ictal.detector.config import ModelConfig, StackConfig

MODEL_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"


def small_config(stack: str = "bimamba2", n_times: int = 256, **changes) -> ModelConfig:
    """A model of a few thousand parameters on 1 s windows (L = 16 steps after the encoder)."""
    values = dict(
        name="test",
        stack=stack,
        backend="reference",
        n_times=n_times,
        tcn_widths=[8, 8, 16, 16],
        tcn_kernel=3,
        tcn_dilations=[1, 4],
        d_electrode=8,
        similarity_heads=2,
        node_stack=StackConfig(n_layers=1, d_model=8, d_state=4, n_heads=1, chunk_size=8),
        edge_stack=StackConfig(n_layers=1, d_model=4, d_state=4, n_heads=1, chunk_size=8),
        edge_pool=2,
        lpe_k=4,
        gnn_hidden=8,
        decoder_widths=[8, 8, 4, 4],
        dropout=0.0,
    )
    values.update(changes)
    return ModelConfig(**values)


def preset(name: str, stack: str, **changes) -> ModelConfig:
    """A preset of configs/model/ (``tiny``/``full``), with fields replaced by ``changes``."""
    config = load_config(MODEL_CONFIGS / f"{name}_{stack}.yaml")
    assert isinstance(config, ModelConfig)
    return ModelConfig.model_validate({**config.model_dump(), **changes})
