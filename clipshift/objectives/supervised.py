"""Supervised classification on the image tower: cross-entropy with a linear, cosine or frozen text head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from clipshift.data.table import Batch
from clipshift.errors import UserError
from clipshift.objectives.base import (
    Objective,
    ObjectiveConfig,
    ObjectiveOptions,
    OptionsT,
    TemplateOptions,
    class_templates,
    register,
)


def known(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Rows whose label the head can score (-1 = unknown, and labels beyond the head, are left out)."""
    return (labels >= 0) & (labels < n_classes)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE over the known rows; exactly 0 (still attached to the graph) when there are none.
    Written without boolean indexing so it never synchronises with the GPU."""
    labels = labels.to(logits.device)
    keep = known(labels, logits.shape[1])
    total = F.cross_entropy(
        logits.float(), torch.where(keep, labels, -100), ignore_index=-100, reduction="sum"
    )
    return total / keep.sum().clamp(min=1)


class _Supervised(Objective[OptionsT]):
    """Cross-entropy of a classifier's logits over the known labels: the captions never reach it."""

    model_kind = "classifier"
    reads_captions = False

    def forward(self, out: dict[str, torch.Tensor], batch: Batch, generator: torch.Generator) -> torch.Tensor:
        return masked_cross_entropy(out["logits"], batch.labels)


@register
class Supervised(_Supervised[ObjectiveOptions]):
    name = "supervised"
    head = "linear"


@register
class SupervisedCosine(_Supervised[ObjectiveOptions]):
    """Wen et al.'s SL baseline: cosine classifier with a learnable temperature (init 1/0.07, ≤ 100)."""

    name = "supervised-cosine"
    head = "cosine"


class TextHeadOptions(TemplateOptions):
    texthead_from: str | None = Field(
        None, description="supervised-texthead: local CLIP checkpoint (file or run dir) for the text tower"
    )


@register
class SupervisedTextHead(_Supervised[TextHeadOptions]):
    """Cosine classifier whose prototypes are frozen CLIP text embeddings of the class names (Wen et al.'s
    'frozen head'): only the image tower and the temperature learn. `texthead_from` is checked when the
    objective is built, not when the config is read: in a study it may be a run that trains first."""

    name = "supervised-texthead"
    head = "texthead"
    Options = TextHeadOptions

    def __init__(self, cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1):
        super().__init__(cfg, class_counts, rank, world_size)
        source = self.options.texthead_from
        if not source:
            raise UserError(
                "objective 'supervised-texthead' needs objective.texthead_from: a local CLIP checkpoint "
                "(a clipshift run directory or its checkpoints/final.pt) to embed the class names with"
            )
        from clipshift.models.checkpoints import resolve_checkpoint

        if ":" not in source and not Path(source).expanduser().exists():
            raise UserError(f"objective.texthead_from = {source!r}: no such file or directory")
        try:  # the one checkpoint resolver: a run directory, a checkpoint file or ARCH:PATH
            self.source = resolve_checkpoint(source)
        except UserError as e:
            raise UserError(f"objective.texthead_from = {source!r}: {e}") from None
        if self.source.kind != "clip":
            raise UserError(
                f"objective.texthead_from = {source!r}: a classifier; a CLIP checkpoint is needed"
            )

    @property
    def templates(self) -> list[str]:
        return class_templates(self.options)

    def text_embeddings(self, class_names: list[str]) -> torch.Tensor:
        """(C, D) class-name embeddings from the text tower of `texthead_from`, template-ensembled."""
        from clipshift.models.factory import class_text_embeddings, load_clip

        model, tokenizer = load_clip(self.source)
        return class_text_embeddings(model, tokenizer, class_names, self.templates)
