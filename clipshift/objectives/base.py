"""ObjectiveConfig, the Objective interface and the registry of objectives by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from clipshift.data.table import Batch
from clipshift.errors import UserError

ObjectiveName = Literal[
    "clip", "siglip", "supervised", "supervised-cosine", "supervised-texthead", "dynamic", "clip-classname"
]


class ObjectiveConfig(BaseModel):
    """What the model is trained to do (the model is chosen by ModelConfig)."""

    model_config = ConfigDict(extra="forbid")

    name: ObjectiveName = Field("clip", description="training objective")
    dynamic_k: int = Field(50, ge=2, description="dynamic: classes per step (present ones + sampled top-up)")
    dynamic_weighting: Literal["uniform", "frequency", "sqrt"] = Field(
        "uniform", description="dynamic: how absent classes are sampled (∝ 1, count, √count)"
    )
    dynamic_head: Literal["linear", "cosine"] = Field("cosine", description="dynamic: classifier head")
    templates: list[str] | None = Field(
        None, description="class-name templates ('a photo of a {}.') for clip-classname and texthead"
    )
    texthead_from: str | None = Field(
        None, description="supervised-texthead: local CLIP checkpoint (file or run dir) for the text tower"
    )


class Objective(nn.Module):
    """A training loss over a model's output dict. `model_kind` says which model the trainer builds
    (`build_clip` or `build_classifier` with `head`); `texts` what the text tower reads; `forward` the loss.

    The trainer passes a per-step `torch.Generator` to `forward`: every random choice an objective makes
    comes from it, so a run is a function of (seed, step) and resumes bit-identically."""

    name: ClassVar[str] = ""
    model_kind: ClassVar[Literal["clip", "classifier"]] = "clip"
    head: str | None = None

    def __init__(self, cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.cfg = cfg
        self.class_counts = np.asarray(class_counts, dtype=np.int64)
        self.rank = rank
        self.world_size = world_size

    @property
    def templates(self) -> list[str]:
        from clipshift.world.captions import world_templates

        return list(self.cfg.templates) if self.cfg.templates else world_templates()

    def texts(self, batch: Batch, class_names: list[str]) -> list[str]:
        """What the text tower reads for this batch: the captions, unless an objective says otherwise."""
        return list(batch.texts)

    def corpus(self, class_names: list[str]) -> list[str]:
        """Texts beyond the captions that `texts` may produce (a vocab tokenizer should know their words)."""
        return []

    def model_overrides(self) -> dict[str, Any]:
        """Extra open_clip CLIP constructor arguments this objective needs (passed to build_clip)."""
        return {}

    def text_embeddings(self, class_names: list[str]) -> torch.Tensor:
        raise NotImplementedError(f"objective {self.name!r} has no text head")

    def forward(self, out: dict[str, torch.Tensor], batch: Batch, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, model_kind={self.model_kind!r}, head={self.head!r}"


OBJECTIVES: dict[str, type[Objective]] = {}
_O = TypeVar("_O", bound=type[Objective])


def register(cls: _O) -> _O:
    """Class decorator: make an objective selectable by its `name`."""
    OBJECTIVES[cls.name] = cls
    return cls


def build_objective(
    cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1
) -> Objective:
    """The objective named by `cfg.name`; `class_counts` (samples per label) feeds frequency weighting."""
    if cfg.name not in OBJECTIVES:
        raise UserError(f"unknown objective {cfg.name!r}; choose from {', '.join(sorted(OBJECTIVES))}")
    if cfg.name == "supervised-texthead":
        if not cfg.texthead_from:
            raise UserError(
                "objective 'supervised-texthead' needs objective.texthead_from: a local CLIP checkpoint "
                "(a clipshift run directory or its checkpoints/final.pt) to embed the class names with"
            )
        if not Path(cfg.texthead_from).expanduser().exists():
            raise UserError(f"objective.texthead_from = {cfg.texthead_from!r}: no such file or directory")
    return OBJECTIVES[cfg.name](cfg, class_counts, rank=rank, world_size=world_size)
