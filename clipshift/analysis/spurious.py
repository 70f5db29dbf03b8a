"""Spurious-background analyses in the style of CounterAnimal (Wang et al., 2024).

`common` is accuracy on images with each class's usual background, `counter` with an unusual one. The
drop is common − counter (in the units given: fractions or percent); relative drop is drop / common.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from clipshift.analysis.effective_robustness import DEFAULT_EPS, Fit, fit_line
from clipshift.analysis.stats import bootstrap_ci


def group_drop(common_acc: ArrayLike, counter_acc: ArrayLike) -> dict[str, Any]:
    """{'absolute': common − counter, 'relative': (common − counter) / common} (NaN where common is 0).

    Scalars give floats; arrays (e.g. one value per model) give arrays.
    """
    c = np.asarray(common_acc, dtype=float)
    k = np.asarray(counter_acc, dtype=float)
    absolute = c - k
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(c != 0, absolute / np.where(c != 0, c, 1.0), np.nan)
    if absolute.ndim == 0:
        return {"absolute": float(absolute), "relative": float(relative)}
    return {"absolute": absolute, "relative": relative}


def per_class_drop(
    common_class_acc: ArrayLike,
    counter_class_acc: ArrayLike,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, Any]:
    """Per-class drops and the mean drop with a bootstrap CI over classes.

    Arrays are aligned by class; classes with a NaN in either group (no images in that group) are left
    out. Returns per_class (NaN kept where left out), mean, lo, hi, n_classes, n_positive (classes that
    drop), worst (index of the class with the largest drop).
    """
    c = np.asarray(common_class_acc, dtype=float).ravel()
    k = np.asarray(counter_class_acc, dtype=float).ravel()
    if c.shape != k.shape:
        raise ValueError(f"common and counter differ in length ({c.size} vs {k.size})")
    drops = c - k
    ok = np.isfinite(drops)
    valid = drops[ok]
    mean, lo, hi = (
        bootstrap_ci(np.mean, valid, n_boot=n_boot, ci=ci, seed=seed) if valid.size else (np.nan,) * 3
    )
    worst = int(np.nanargmax(drops)) if valid.size else -1
    return {
        "per_class": drops,
        "mean": float(mean),
        "lo": float(lo),
        "hi": float(hi),
        "n_classes": int(valid.size),
        "n_positive": int((valid > 0).sum()),
        "worst": worst,
    }


def counter_common_fit(
    common: ArrayLike, counter: ArrayLike, kind: str = "linear", eps: float = DEFAULT_EPS
) -> Fit:
    """Line of counter vs common accuracy (percent) across models, as in CounterAnimal's plots.

    `linear` fits raw percentages (the paper's plots); `logit` fits the effective-robustness way.
    """
    if kind not in ("linear", "logit"):
        raise ValueError(f"kind must be 'linear' or 'logit', got {kind!r}")
    return fit_line(common, counter, kind=kind, eps=eps)
