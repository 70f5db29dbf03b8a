"""Dynamic classification (Wen et al., NeurIPS 2024, "What makes CLIP more robust to long-tailed
pre-training data?"): each step's loss is a softmax over only K classes — those present in the batch,
topped up with absent classes sampled without replacement — which mimics CLIP's per-batch, shifting
label space (its text "classes" are the batch's captions) inside a supervised classifier."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from clipshift.data.table import Batch
from clipshift.objectives.base import Objective, ObjectiveConfig, ObjectiveOptions, register, scored_measures
from clipshift.objectives.supervised import known


def sampling_weights(class_counts: np.ndarray, weighting: str, n_classes: int) -> torch.Tensor | None:
    """Weights for topping up: None (uniform), ∝ count (`frequency`) or ∝ √count (`sqrt`)."""
    if weighting == "uniform":
        return None
    counts = np.zeros(n_classes, dtype=np.float64)
    m = min(n_classes, len(class_counts))
    counts[:m] = np.asarray(class_counts[:m], dtype=np.float64)
    if weighting == "frequency":
        return torch.from_numpy(counts)
    if weighting == "sqrt":
        return torch.from_numpy(np.sqrt(counts))
    raise ValueError(f"unknown weighting {weighting!r}")


def dynamic_classes(
    labels: torch.Tensor,
    k: int,
    n_classes: int,
    weights: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(classes, targets) for one step. `labels`: the batch's known labels (CPU int64).

    classes = the present classes ∪ (K - #present) absent ones drawn without replacement with
    probability ∝ `weights` (uniform if None; present classes get weight 0), sorted; if K or more
    classes are present, exactly those. targets = each label's position in `classes`. Classes whose
    weight is 0 (never seen in the training data under frequency weighting) are drawn uniformly only
    when the positive-weight ones run out, so the set always reaches min(K, n_classes)."""
    labels = labels.detach().to("cpu", torch.int64)
    present = torch.unique(labels)  # sorted
    need = min(k, n_classes) - len(present)
    if need > 0:
        w = torch.ones(n_classes, dtype=torch.float64) if weights is None else weights.double().clone()
        w[present] = 0.0
        drawn: list[torch.Tensor] = []
        take = min(need, int((w > 0).sum()))
        if take:
            drawn.append(torch.multinomial(w, take, replacement=False, generator=generator))
        if take < need:
            rest = torch.ones(n_classes, dtype=torch.float64)
            rest[present] = 0.0
            if drawn:
                rest[drawn[0]] = 0.0
            drawn.append(torch.multinomial(rest, need - take, replacement=False, generator=generator))
        classes = torch.sort(torch.cat([present, *drawn])).values
    else:
        classes = present
    return classes, torch.searchsorted(classes, labels)


class DynamicOptions(ObjectiveOptions):
    dynamic_k: int = Field(50, ge=2, description="dynamic: classes per step (present ones + sampled top-up)")
    dynamic_weighting: Literal["uniform", "frequency", "sqrt"] = Field(
        "uniform", description="dynamic: how absent classes are sampled (∝ 1, count, √count)"
    )
    dynamic_head: Literal["linear", "cosine"] = Field("cosine", description="dynamic: classifier head")


@register
class DynamicObjective(Objective[DynamicOptions]):
    """Cross-entropy over the K chosen prototypes' logits only. Slicing the head's full logits equals
    scoring only those prototypes (each logit depends on its own prototype alone, for linear and cosine
    heads), and the other prototypes get no gradient this step. Rows with unknown labels are left out
    before the classes are chosen. Under DDP each rank chooses from its local batch, as in the paper's
    code."""

    name = "dynamic"
    model_kind = "classifier"
    reads_captions = False
    Options = DynamicOptions

    def __init__(self, cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1):
        super().__init__(cfg, class_counts, rank, world_size)
        self.head = self.options.dynamic_head
        self.k = self.options.dynamic_k
        self._weights: dict[int, torch.Tensor | None] = {}

    def weights(self, n_classes: int) -> torch.Tensor | None:
        if n_classes not in self._weights:
            self._weights[n_classes] = sampling_weights(
                self.class_counts, self.options.dynamic_weighting, n_classes
            )
        return self._weights[n_classes]

    def choose(
        self, labels: torch.Tensor, n_classes: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows kept, classes, targets) for a batch's labels."""
        labels = labels.detach().cpu()
        keep = known(labels, n_classes)
        classes, targets = dynamic_classes(
            labels[keep], self.k, n_classes, self.weights(n_classes), generator
        )
        return keep, classes, targets

    def measures(self, labels: np.ndarray, batches: np.ndarray, n_classes: int) -> dict[str, float]:
        """Classes scored per step, max(present, min(K, C)) as `dynamic_classes` chooses them, and the share
        of steps topped up (present < min(K, C): K bound). Under DDP each rank chooses from its own slice
        of the global batch, as the loop splits it."""
        from clipshift.data.measures import classes_per_batch

        steps, size = batches.shape
        local_bs = size // self.world_size  # as the loop slices it (rows beyond world_size * local_bs idle)
        local = batches[:, : local_bs * self.world_size].reshape(steps * self.world_size, local_bs)
        y = labels.copy()
        y[y >= n_classes] = -1  # rows beyond the head are left out (supervised.known)
        present = classes_per_batch(y, local)
        k = min(self.k, n_classes)
        return {
            **scored_measures(np.maximum(present, k).astype(float), n_classes),
            "objective/topped_up_share": float(np.mean(present < k)) if len(present) else float("nan"),
        }

    @classmethod
    def inert(
        cls, options: ObjectiveOptions, class_probs: np.ndarray, batch_size: int
    ) -> tuple[str, str] | None:
        """K cannot act when a batch already holds K classes on average (dynamic then scores the classes
        present, with no top-up) or when K reaches the label space (every step scores every class)."""
        from clipshift.data.measures import expected_classes_per_batch, simulated_classes_per_batch

        assert isinstance(options, DynamicOptions)
        k = options.dynamic_k
        if k >= len(class_probs):
            return (
                f"dynamic_k = {k}",
                f"the data have {len(class_probs)} classes, so every step scores all of them",
            )
        mean = expected_classes_per_batch(class_probs, batch_size)
        if k > mean:
            return None
        share = float(np.mean(simulated_classes_per_batch(class_probs, batch_size) >= k))
        return f"dynamic_k = {k}", (
            f"a batch of {batch_size} holds {mean:.1f} classes on average (at least {k} in "
            f"{np.floor(share * 1000) / 10:.1f} % of batches), and dynamic scores the classes present"
        )

    def forward(self, out: dict[str, torch.Tensor], batch: Batch, generator: torch.Generator) -> torch.Tensor:
        logits = out["logits"]
        keep, classes, targets = self.choose(batch.labels, logits.shape[1], generator)
        if not bool(keep.any()):
            return logits.sum() * 0.0
        dev = logits.device
        chosen = logits[keep.to(dev)][:, classes.to(dev)]
        return F.cross_entropy(chosen.float(), targets.to(dev))
