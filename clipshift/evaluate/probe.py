"""Linear probe and k-nearest neighbours on frozen features.

The probe is multinomial logistic regression on L2-normalised, then standardised features (the mean and
scale of the training features), fitted full-batch with L-BFGS (deterministic on CPU, no learning rate to
tune; standardising puts the weight decay on the same scale for every model). Like CLIP_benchmark it
chooses the weight decay on a held-out validation part of the training features, then refits on all of
them with that value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

WD_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
MAX_ITER = 100


@dataclass
class LinearProbe:
    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    wd: float
    val_acc: dict[float, float]  # validation accuracy of every weight decay tried
    mean: torch.Tensor  # (D,) standardisation of the normalised features
    scale: torch.Tensor  # (D,)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        x = (F.normalize(features.float(), dim=-1) - self.mean) / self.scale
        return x @ self.weight.T + self.bias


def few_shot(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Row indices keeping at most k samples per class (seeded, sorted)."""
    rng = np.random.default_rng([seed, 0xF5])
    keep = []
    for c in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == c)
        keep.append(rng.permutation(rows)[:k])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def fit_logreg(
    x: torch.Tensor, labels: torch.Tensor, n_classes: int, wd: float, max_iter: int = MAX_ITER
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias minimising mean cross-entropy + wd · ‖W‖² on (prepared) features x."""
    x = x.detach().clone().float()  # a clone: inference-mode tensors cannot be saved for backward
    y = labels.detach().clone().long()
    w = torch.zeros((n_classes, x.shape[1]), requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-7
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + wd * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def linear_probe(
    features: torch.Tensor,
    labels: np.ndarray,
    n_classes: int,
    wd_grid: tuple[float, ...] = WD_GRID,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> LinearProbe:
    """Choose the weight decay with the best validation accuracy (ties: the larger decay), refit on all."""
    lab = np.asarray(labels)
    ok = np.flatnonzero((lab >= 0) & (lab < n_classes))
    x_all = F.normalize(features[torch.as_tensor(ok)].float(), dim=-1)
    mean, scale = x_all.mean(dim=0), x_all.std(dim=0) + 1e-6
    x_all = (x_all - mean) / scale
    y_all = torch.as_tensor(lab[ok])
    perm = np.random.default_rng([seed, 0x1E]).permutation(len(ok))
    n_val = max(1, round(val_fraction * len(ok)))
    val, train = torch.as_tensor(perm[:n_val]), torch.as_tensor(perm[n_val:])
    scores: dict[float, float] = {}
    for wd in wd_grid:
        w, b = fit_logreg(x_all[train], y_all[train], n_classes, wd)
        pred = (x_all[val] @ w.T + b).argmax(dim=1)
        scores[wd] = float((pred == y_all[val]).float().mean())
    best = max(scores.values())
    wd = max(v for v, s in scores.items() if s == best)
    w, b = fit_logreg(x_all, y_all, n_classes, wd)
    return LinearProbe(w, b, wd, scores, mean, scale)


def knn_logits(
    train_features: torch.Tensor,
    train_labels: np.ndarray,
    features: torch.Tensor,
    n_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """(N, C) class scores: the k most cosine-similar training samples vote with weight exp(sim / T)
    (the weighted kNN of DINO-style evaluations)."""
    lab = np.asarray(train_labels)
    ok = np.flatnonzero((lab >= 0) & (lab < n_classes))
    bank = F.normalize(train_features[torch.as_tensor(ok)].float(), dim=-1)
    y = torch.as_tensor(lab[ok], dtype=torch.int64)
    k = min(k, len(ok))
    out = torch.zeros((len(features), n_classes))
    for lo in range(0, len(features), chunk):
        q = F.normalize(features[lo : lo + chunk].float(), dim=-1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros((len(q), n_classes))
        votes.scatter_add_(1, y[idx], (sim / temperature).exp())
        out[lo : lo + len(q)] = votes
    return out
