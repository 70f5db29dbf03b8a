"""Supervised classification on the image tower: cross-entropy with a linear, cosine or frozen text head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipshift.data.table import Batch
from clipshift.objectives.base import Objective, register


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


class _Supervised(Objective):
    model_kind = "classifier"

    def forward(self, out: dict[str, torch.Tensor], batch: Batch, generator: torch.Generator) -> torch.Tensor:
        return masked_cross_entropy(out["logits"], batch.labels)


@register
class Supervised(_Supervised):
    name = "supervised"
    head = "linear"


@register
class SupervisedCosine(_Supervised):
    """Wen et al.'s SL baseline: cosine classifier with a learnable temperature (init 1/0.07, ≤ 100)."""

    name = "supervised-cosine"
    head = "cosine"


@register
class SupervisedTextHead(_Supervised):
    """Cosine classifier whose prototypes are frozen CLIP text embeddings of the class names (Wen et al.'s
    'frozen head'): only the image tower and the temperature learn."""

    name = "supervised-texthead"
    head = "texthead"

    def text_embeddings(self, class_names: list[str]) -> torch.Tensor:
        """(C, D) class-name embeddings from the text tower of `texthead_from`, template-ensembled."""
        from clipshift.models.factory import class_text_embeddings, load_clip

        assert self.cfg.texthead_from is not None  # build_objective checks it
        model, tokenizer = load_clip(self.cfg.texthead_from)
        return class_text_embeddings(model, tokenizer, class_names, self.templates)
