"""TrainConfig: one run's full description (data, model, objective, optimisation, run settings)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clipshift.data.config import DEFAULT_DATA, DataConfig, WorldData
from clipshift.models.factory import ModelConfig
from clipshift.objectives import ObjectiveConfig

# Where a run computes: `auto` is CUDA when torch sees a GPU, else the CPU (`train.data.wants_cuda`).
# Training runs and evaluation studies' runs take the same values.
Device = Literal["auto", "cpu", "cuda"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimConfig(_Strict):
    batch_size: int = Field(256, ge=1, description="global batch size (split across DDP ranks)")
    lr: float = Field(2e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(
        0.1,
        ge=0,
        description="decoupled weight decay; as open_clip's trainer, not on 1-D parameters (gains, biases, "
        "norms), on names containing bn/ln/bias, or on the logit scale",
    )
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.98, ge=0, lt=1)
    eps: float = Field(1e-6, gt=0)
    warmup: float = Field(
        0.05, ge=0, description="warm-up steps: a fraction of all steps if < 1, else a number of steps"
    )
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm (None: off)")


class TrainConfig(_Strict):
    """Everything a run depends on. In a study its run id hashes what the run reads of it
    (`train.identity.run_reads`): settings that cannot reach the run are left out."""

    data: DataConfig = Field(default_factory=lambda: WorldData.model_validate(DEFAULT_DATA))
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    epochs: int = Field(1, ge=1, description="passes over the training data")
    seed: int = Field(0, ge=0, description="model init, data order and every sampled choice")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines")
    checkpoint_every: int = Field(0, ge=0, description="steps between resumable checkpoints (0: per epoch)")
    device: Device = "auto"
    precision: Literal["auto", "fp32", "amp"] = Field("auto", description="auto: AMP on CUDA, fp32 on CPU")
    snapshots: list[float] = Field(
        default_factory=list,
        description="fractions of training (0 < f < 1) after which the model is also kept as "
        "checkpoints/at-<f>.pt (0.5 -> at-0.50.pt; same format as final.pt), e.g. for convergence checks",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads (default: torch's choice). On CPU, float results differ in the last "
        "bits between thread counts, so a study fixes it in each run's config",
    )

    @field_validator("snapshots")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        return snapshot_fractions(v)


def snapshot_fractions(v: list[float]) -> list[float]:
    """Snapshot fractions, checked (each in (0, 1), distinct to two decimals) and sorted."""
    names: set[str] = set()
    for f in v:
        if not 0 < f < 1:
            raise ValueError(f"{f} is not a fraction of training between 0 and 1 (the end is final.pt)")
        if snapshot_label(f) in names:  # the files are named to two decimals
            raise ValueError(f"{f}: another snapshot has the same name at-{snapshot_label(f)}.pt")
        names.add(snapshot_label(f))
    return sorted(v)


def snapshot_label(fraction: float) -> str:
    """A snapshot's name: the fraction to two decimals (0.5 -> '0.50'; its file is at-0.50.pt)."""
    return f"{fraction:.2f}"


# Settings that cannot change a run's numbers: how often it logs and writes checkpoints (resume is
# bit-exact), which snapshots of the model it keeps, where decoded images are cached, and whether a world
# split is streamed (the same rows bit for bit). A resumed run may change them and a study's run id leaves
# them out. `threads` is not among them (see TrainConfig.threads).
NUMERICS_FREE: tuple[str, ...] = (
    "log_every",
    "checkpoint_every",
    "snapshots",
    "data.cache_dir",
    "data.stream",
)


def first_difference(
    old: Any, new: Any, ignore: tuple[str, ...] = (), prefix: str = ""
) -> tuple[str, Any, Any] | None:
    """The first dotted path (in `new`'s key order) where two config mappings differ, with both values;
    None when they agree outside `ignore`."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*new, *(k for k in old if k not in new)]:
            path = f"{prefix}{key}"
            if path in ignore:
                continue
            diff = first_difference(old.get(key), new.get(key), ignore, f"{path}.")
            if diff is not None:
                return diff
        return None
    return None if old == new else (prefix.rstrip("."), old, new)
