"""One classification result from class scores: the metrics of `logits` on a set, its '1 vs N confusable'
accuracies, and the metrics again on each of its class subsets (`subset/<name>/…`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from clipshift.evaluate.confusable import confusable_accuracy
from clipshift.evaluate.datasets import EvalData
from clipshift.evaluate.metrics import classification_metrics, collapse
from clipshift.evaluate.result import EvalResult


def scored_result(
    name: str,
    task: str,
    logits: torch.Tensor,
    data: EvalData,
    min_group_size: int = 1,
    info: dict[str, Any] | None = None,
    confusable_n: Sequence[int] = (),
) -> EvalResult:
    """Metrics of `logits` on `data`, `acc1_vs{N}_confusable` for each N of `confusable_n` below C − 1 when
    the set has confusable classes, plus the metrics on every class subset (`subset/<name>/…`; not the
    confusable ones, whose classes are those of the full label space)."""
    metrics, per_class, confusion = classification_metrics(logits, data.labels, data.groups, min_group_size)
    n_classes = logits.shape[1]
    # N ≥ C − 1 puts every other class among the rivals: that is acc1 itself, not another metric
    ns = [n for n in confusable_n if n < n_classes - 1]
    if data.confusable is not None and ns:
        metrics.update(confusable_accuracy(logits, data.labels, data.confusable, ns))
    for sname, members in data.subsets.items():
        lut = np.full(n_classes, -1, dtype=np.int64)
        for j, cols in enumerate(members):
            lut[cols] = j
        lab = np.where(data.labels >= 0, lut[np.clip(data.labels, 0, n_classes - 1)], -1)
        keep = np.flatnonzero(lab >= 0)
        if len(keep) == 0:
            continue
        groups = {k: (v[0][keep], v[1]) for k, v in data.groups.items()}
        m, _, _ = classification_metrics(
            collapse(logits[torch.as_tensor(keep)], members), lab[keep], groups, min_group_size
        )
        metrics.update({f"subset/{sname}/{k}": v for k, v in m.items()})
    return EvalResult(
        dataset=name,
        task=task,
        metrics=metrics,
        per_class=per_class,
        confusion=confusion,
        class_names=list(data.class_names),
        info={"source": data.source, **data.info, **(info or {})},
    )
