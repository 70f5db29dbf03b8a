"""Contrastive image-text objectives on open_clip's own losses: CLIP (InfoNCE), SigLIP, and CLIP with
class-name prompts in place of captions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from clipshift.data.table import Batch
from clipshift.objectives.base import (
    Objective,
    ObjectiveConfig,
    ObjectiveOptions,
    OptionsT,
    TemplateOptions,
    class_templates,
    register,
)


def _scale(out: dict[str, torch.Tensor]) -> torch.Tensor:
    # the trainer keeps ln(scale) in [0, ln 100] on the parameter itself (train.schedule.clamp_logit_scales)
    return out["logit_scale"]


class _InfoNCE(Objective[OptionsT]):
    """Symmetric InfoNCE over the (global) batch: open_clip's ClipLoss. Under DDP each rank gathers the
    others' features with gradient and scores its own rows against all (local_loss + gather_with_grad:
    the exact full-batch gradient at 1/world_size of the logits)."""

    model_kind = "clip"

    def __init__(self, cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1):
        super().__init__(cfg, class_counts, rank, world_size)
        from open_clip.loss import ClipLoss

        self.loss = ClipLoss(
            local_loss=world_size > 1,
            gather_with_grad=True,
            cache_labels=True,
            rank=rank,
            world_size=world_size,
        )

    def forward(self, out: dict[str, torch.Tensor], batch: Batch, generator: torch.Generator) -> torch.Tensor:
        return self.loss(out["image_features"], out["text_features"], _scale(out))


@register
class ClipObjective(_InfoNCE[ObjectiveOptions]):
    """CLIP: InfoNCE between images and their captions."""

    name = "clip"


@register
class SigLipObjective(Objective[ObjectiveOptions]):
    """Pairwise sigmoid loss (open_clip's SigLipLoss). The model needs a learnable logit bias, initialised
    as in the SigLIP paper (bias -10, scale 10): `model_overrides()` asks build_clip for both."""

    name = "siglip"
    model_kind = "clip"

    def __init__(self, cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1):
        super().__init__(cfg, class_counts, rank, world_size)
        from open_clip.loss import SigLipLoss

        self.loss = SigLipLoss(rank=rank, world_size=world_size)

    def model_overrides(self) -> dict[str, Any]:
        return {"init_logit_bias": -10.0, "init_logit_scale": math.log(10)}

    def forward(self, out: dict[str, torch.Tensor], batch: Batch, generator: torch.Generator) -> torch.Tensor:
        bias = out.get("logit_bias")
        if bias is None:
            raise ValueError("siglip needs a model with a logit bias (build_clip with model_overrides())")
        return self.loss(out["image_features"], out["text_features"], _scale(out), bias)


@register
class ClipClassNameObjective(_InfoNCE[TemplateOptions]):
    """CLIP trained on class-name prompts instead of captions (language supervision without descriptive
    text): sample i reads `templates[index_i % T].format(class_names[label_i])`, a deterministic choice
    per row; rows without a label keep their caption (so it still reads captions).

    Note: two images of the same class in a batch get identical or near-identical texts, yet InfoNCE's
    targets say each image matches only its own text — the targets are ambiguous, the loss cannot reach
    zero and same-class pairs are pushed apart. That is the published setup's nature (the loss is kept
    plain on purpose); with C classes and batch B, expect about B/C duplicates per class."""

    name = "clip-classname"
    Options = TemplateOptions

    @property
    def templates(self) -> list[str]:
        return class_templates(self.options)

    def texts(self, batch: Batch, class_names: list[str]) -> list[str]:
        ts = self.templates
        n = len(class_names)
        rows = zip(batch.texts, batch.labels.tolist(), batch.index.tolist())
        return [ts[i % len(ts)].format(class_names[y]) if 0 <= y < n else text for text, y, i in rows]

    def corpus(self, class_names: list[str]) -> list[str]:
        return [t.format(c) for c in class_names for t in self.templates]
