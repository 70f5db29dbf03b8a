"""Classification and retrieval metrics on logits / embeddings (torch on CPU, no per-sample loops).

Definitions follow CLIP_benchmark so its numbers and ours agree on identical logits: top-k by
`torch.topk` (acc5 only with at least 5 classes), mean per-class recall = the mean over classes that
have samples of (correct / samples), which is sklearn's `balanced_accuracy_score`.

Each metric's unit is declared here, next to the code that computes it; the report reads the units
without torch, so torch is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from clipshift.evaluate.units import declare

if TYPE_CHECKING:
    import torch

Groups = Mapping[str, tuple[np.ndarray, Sequence[str]]]  # factor -> (value code per sample, value names)

declare("acc1", "fraction", "top-1 accuracy")
declare("acc5", "fraction", "top-5 accuracy")
declare("mean_per_class_recall", "fraction", "mean over classes of per-class recall")
declare("n", "count", "scored samples")
declare("n_unscored", "count", "samples whose label is outside the label space")
declare("class_acc", "fraction", "per-class accuracy")
declare("class_pred_count", "count", "predictions of each class")
declare("class_count", "count", "samples of each class (in training, for the `train` result)")


def classification_metrics(
    logits: torch.Tensor | np.ndarray,
    labels: np.ndarray | torch.Tensor,
    groups: Groups | None = None,
    min_group_size: int = 1,
) -> tuple[dict[str, float], dict[str, list[float]], np.ndarray]:
    """(scalar metrics, per-class lists, confusion matrix) of `logits` (N, C) against `labels` (N,).

    Samples whose label is outside [0, C) are not scored (their number is `n_unscored` when > 0).
    Scalars: `acc1`, `acc5` (C ≥ 5), `mean_per_class_recall`, `n`; for each factor of `groups`
    `group_acc/<factor>=<value>` for values with at least `min_group_size` scored samples,
    `worst_group_acc/<factor>`, and `worst_group_acc` (the minimum over every reported group).
    Per class: `class_acc` (recall; NaN for a class without samples), `class_pred_count`, `class_count`.
    """
    import torch

    lg = torch.as_tensor(logits).float()
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    n_classes = int(lg.shape[1])
    keep = (y >= 0) & (y < n_classes)
    n_unscored = int((~keep).sum())
    keep_np = keep.numpy()
    if n_unscored:
        lg, y = lg[keep], y[keep]
    n = int(y.numel())
    pred = lg.argmax(dim=1) if n else torch.zeros(0, dtype=torch.int64)
    correct = (pred == y).numpy()
    metrics: dict[str, float] = {}
    conf = torch.bincount(y * n_classes + pred, minlength=n_classes * n_classes).view(n_classes, n_classes)
    confusion = conf.numpy().astype(np.int64)
    count = confusion.sum(axis=1)
    hits = np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_acc = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    if n:
        metrics["acc1"] = float(correct.mean())
        if n_classes >= 5:
            top5 = lg.topk(5, dim=1, largest=True, sorted=True).indices
            metrics["acc5"] = float((top5 == y[:, None]).any(dim=1).float().mean())
        metrics["mean_per_class_recall"] = float(np.nanmean(class_acc))
    metrics["n"] = float(n)
    if n_unscored:
        metrics["n_unscored"] = float(n_unscored)
    if groups:
        metrics.update(
            group_metrics(correct, {k: (v[0][keep_np], v[1]) for k, v in groups.items()}, min_group_size)
        )
    per_class = {
        "class_acc": class_acc.tolist(),
        "class_pred_count": confusion.sum(axis=0).astype(float).tolist(),
        "class_count": count.astype(float).tolist(),
    }
    return metrics, per_class, confusion


declare("group_acc/*", "fraction", "accuracy within a group of a ground-truth factor")
declare("worst_group_acc", "fraction", "lowest group accuracy")
declare("worst_group_acc/*", "fraction", "lowest group accuracy of one factor")


def group_metrics(correct: np.ndarray, groups: Groups, min_group_size: int = 1) -> dict[str, float]:
    """Per-group accuracy of a boolean `correct` (N,) for each factor's values, worst group per factor,
    and the worst group overall."""
    out: dict[str, float] = {}
    worst_all = np.inf
    c = np.asarray(correct, dtype=np.float64)
    for factor, (codes, names) in groups.items():
        codes = np.asarray(codes).astype(np.int64)
        if len(codes) == 0:
            continue
        size = max(int(codes.max()) + 1, len(names))
        n = np.bincount(codes, minlength=size)
        k = np.bincount(codes, weights=c, minlength=size)
        worst = np.inf
        for v in np.flatnonzero(n >= min_group_size):
            acc = float(k[v] / n[v])
            name = names[int(v)] if v < len(names) else str(v)
            out[f"group_acc/{factor}={name}"] = acc
            worst = min(worst, acc)
        if np.isfinite(worst):
            out[f"worst_group_acc/{factor}"] = float(worst)
            worst_all = min(worst_all, worst)
    if np.isfinite(worst_all):
        out["worst_group_acc"] = float(worst_all)
    return out


def collapse(logits: torch.Tensor, columns: Sequence[Sequence[int]]) -> torch.Tensor:
    """(N, len(columns)) logits: class j scores the max over its member columns (imagenet-testbed's
    ObjectNet convention); a plain column selection when every class has one member."""
    import torch

    if all(len(c) == 1 for c in columns):
        return logits[:, [c[0] for c in columns]]
    out = torch.empty((logits.shape[0], len(columns)), dtype=logits.dtype)
    for j, cols in enumerate(columns):
        out[:, j] = logits[:, list(cols)].max(dim=1).values
    return out


declare("image_retrieval_recall@*", "fraction", "text-to-image recall at k")
declare("text_retrieval_recall@*", "fraction", "image-to-text recall at k")


def retrieval_metrics(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    image_text: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 2048,
) -> dict[str, float]:
    """Recall@k both ways, CLIP_benchmark's names: `image_retrieval_recall@k` (a text finds one of its
    images among the top k) and `text_retrieval_recall@k` (an image finds its text). `image_text[i]` is
    the text row of image i; several images may share one text (identical captions). Similarities are
    computed in chunks, so memory stays O(chunk x max(images, texts))."""
    import torch

    img = torch.nn.functional.normalize(image_emb.float(), dim=-1)
    txt = torch.nn.functional.normalize(text_emb.float(), dim=-1)
    owner = torch.as_tensor(np.asarray(image_text), dtype=torch.int64)  # text of each image
    kmax = max(ks)
    hit_img = {k: 0 for k in ks}
    for lo in range(0, len(txt), chunk):
        top = (txt[lo : lo + chunk] @ img.T).topk(min(kmax, len(img)), dim=1).indices
        mine = owner[top] == torch.arange(lo, lo + len(top))[:, None]  # (texts, k): is it one of mine?
        for k in ks:
            hit_img[k] += int(mine[:, :k].any(dim=1).sum())
    hit_txt = {k: 0 for k in ks}
    for lo in range(0, len(img), chunk):
        top = (img[lo : lo + chunk] @ txt.T).topk(min(kmax, len(txt)), dim=1).indices
        mine = top == owner[lo : lo + len(top), None]
        for k in ks:
            hit_txt[k] += int(mine[:, :k].any(dim=1).sum())
    out: dict[str, float] = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = hit_img[k] / max(len(txt), 1)
        out[f"text_retrieval_recall@{k}"] = hit_txt[k] / max(len(img), 1)
    return out
