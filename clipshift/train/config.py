"""TrainConfig: one run's full description (data, model, objective, optimisation, run settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clipshift.data.config import DataConfig, WorldData
from clipshift.models.factory import ModelConfig
from clipshift.objectives import ObjectiveConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimConfig(_Strict):
    batch_size: int = Field(256, ge=1, description="global batch size (split across DDP ranks)")
    lr: float = Field(2e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(
        0.1, ge=0, description="decoupled weight decay (not on gains, biases, scales)"
    )
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.98, ge=0, lt=1)
    eps: float = Field(1e-6, gt=0)
    warmup: float = Field(
        0.05, ge=0, description="warm-up steps: a fraction of all steps if < 1, else a number of steps"
    )
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm (None: off)")


class TrainConfig(_Strict):
    """Everything a run depends on; its hash is the run id in a study."""

    data: DataConfig = Field(default_factory=lambda: WorldData(kind="world", n=20000))
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    epochs: int = Field(1, ge=1, description="passes over the training data")
    seed: int = Field(0, ge=0, description="model init, data order and every sampled choice")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines")
    checkpoint_every: int = Field(0, ge=0, description="steps between resumable checkpoints (0: per epoch)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "amp"] = Field("auto", description="auto: AMP on CUDA, fp32 on CPU")
    threads: int | None = Field(None, ge=1, description="CPU threads (default: torch's choice)")
