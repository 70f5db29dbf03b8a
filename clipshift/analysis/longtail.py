"""Long-tail statistics (Wen et al., 2024): accuracy vs frequency, neural collapse, prototype geometry."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def _pairs(freq: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(freq, dtype=float).ravel()
    v = np.asarray(values, dtype=float).ravel()
    if f.shape != v.shape:
        raise ValueError(f"freq and values differ in length ({f.size} vs {v.size})")
    ok = np.isfinite(f) & np.isfinite(v)
    return f[ok], v[ok]


def spearman_frequency(freq: ArrayLike, values: ArrayLike) -> tuple[float, float]:
    """Spearman rank correlation (rho, two-sided p) of class frequency with a per-class value.

    Wen et al.'s `corr_acc` (values = per-class accuracy) and `corr_pred` (values = #predictions).
    Classes with a NaN are left out; fewer than 3 classes or a constant input give (NaN, NaN).
    """
    f, v = _pairs(freq, values)
    if f.size < 3 or np.ptp(f) == 0 or np.ptp(v) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.spearmanr(f, v)
    return float(res.statistic), float(res.pvalue)


def tercile_means(freq: ArrayLike, values: ArrayLike) -> dict[str, float]:
    """Mean value over the most frequent third of classes (head), the middle third, and the rarest (tail).

    Classes are ordered by frequency, descending, ties by class index; the order is split into three
    groups whose sizes differ by at most one (the head gets the extra classes).
    """
    f, v = _pairs(freq, values)
    order = np.lexsort((np.arange(f.size), -f))
    groups = np.array_split(order, 3)
    return {
        name: float(v[g].mean()) if g.size else float("nan")
        for name, g in zip(("head", "medium", "tail"), groups)
    }


def nc1(features: ArrayLike, labels: ArrayLike) -> float:
    """Within-class variability collapse NC1 = tr(Σ_W Σ_B⁺) / C (Papyan, Han & Donoho, 2020).

    With class means μ_c and global mean μ_G = the mean of the class means (so that frequent classes
    do not pull the centre on long-tailed data; equal to the sample mean when classes are balanced):
      Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ   (averaged over all N samples)
      Σ_B = (1/C) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ           (averaged over the C classes)
    Σ_B⁺ is numpy's pseudo-inverse. 0 means every sample sits on its class mean; the value is invariant
    to rescaling the features. Fewer than two classes give NaN.
    """
    h = np.asarray(features, dtype=float)
    y = np.asarray(labels).ravel()
    if h.ndim != 2 or h.shape[0] != y.size:
        raise ValueError(f"features must be (N, d) with N = len(labels); got {h.shape} and {y.size} labels")
    classes, inv = np.unique(y, return_inverse=True)
    n_classes = classes.size
    if n_classes < 2:
        return float("nan")
    counts = np.bincount(inv, minlength=n_classes).astype(float)
    means = np.zeros((n_classes, h.shape[1]))
    np.add.at(means, inv, h)
    means /= counts[:, None]
    within = h - means[inv]
    sigma_w = within.T @ within / h.shape[0]
    centred = means - means.mean(axis=0)
    sigma_b = centred.T @ centred / n_classes
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / n_classes)


def prototype_coherence(prototypes: ArrayLike, reduce: str = "mean") -> float:
    """Mean (or max) pairwise cosine similarity between class prototypes (rows), over pairs i < j.

    Prototypes are classifier weights or zero-shot text embeddings of the class names. 0: orthogonal
    prototypes; 1: identical ones. Lower coherence (more uniform prototypes) is what Wen et al. relate
    to robustness on tail classes. `reduce='max'` gives the mutual coherence instead.
    """
    w = np.asarray(prototypes, dtype=float)
    if w.ndim != 2 or w.shape[0] < 2:
        raise ValueError(f"prototypes must be (C ≥ 2, d); got shape {w.shape}")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a prototype is the zero vector; its cosine similarity is undefined")
    u = w / norms
    sim = u @ u.T
    pairs = sim[np.triu_indices(w.shape[0], k=1)]
    if reduce == "mean":
        return float(pairs.mean())
    if reduce == "max":
        return float(pairs.max())
    raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
