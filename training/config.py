"""Configuration of training runs (the `kind: train` files in configs/train/)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from alarms.config import AlarmThresholds
from detector.config import FrontendConfig, ModelConfig


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Where recordings come from and how they are split."""

    format: Literal["tusz", "edf_folder", "rated_windows"] = Field(description="Dataset layout.")
    root: Path = Field(description="Dataset root directory.")
    cache_dir: Path = Field(Path("cache"), description="Preprocessing cache (memory-mapped arrays).")
    split_seed: int = Field(0, description="Seed of the patient-level split when the layout has none.")
    dev_fraction: float = Field(0.2, ge=0, lt=1, description="Patients held out for dev when not given.")


class OptimConfig(StrictModel):
    """Optimiser and schedule."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    warmup_steps: int = Field(100, ge=0)
    epochs: int = Field(10, ge=1)
    steps_per_epoch: int = Field(500, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    grad_clip: float = Field(1.0, gt=0)
    loss: Literal["focal", "bce"] = "focal"
    seizure_fraction: float = Field(0.5, ge=0, le=1, description="Share of sampled windows with seizure.")


class TrainConfig(StrictModel):
    """A training run."""

    kind: Literal["train"] = "train"
    model: ModelConfig = Field(default_factory=ModelConfig)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    thresholds: AlarmThresholds = Field(default_factory=AlarmThresholds)
    target_fa_per_24h: float = Field(1.0, gt=0, description="FA/24h at which dev sensitivity picks the best.")
    out_dir: Path = Field(Path("runs/train"), description="Checkpoints and logs.")
    seed: int = 0
    device: str = "auto"
