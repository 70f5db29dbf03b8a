"""Representation statistics reported with one set's classification result per run: neural collapse of
its image features and the coherence of the model's class prototypes (`analysis.longtail`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clipshift.evaluate.units import declare

declare("nc1", "ratio", "neural collapse tr(S_w S_b^+)/C")
declare("prototype_coherence", "value", "mean cosine between class prototypes")


def representation_metrics(
    features: Any, labels: np.ndarray, n_classes: int, prototypes: Any
) -> dict[str, float]:
    """`nc1` of the labelled images' features (N, D) and `prototype_coherence` of the prototypes (C, D)
    (torch tensors or arrays); NaN where a statistic is undefined (one class, a zero prototype)."""
    from clipshift.analysis.longtail import nc1, prototype_coherence

    ok = (labels >= 0) & (labels < n_classes)
    return {
        "nc1": _finite_or_nan(nc1, np.asarray(features)[ok], labels[ok]),
        "prototype_coherence": _finite_or_nan(prototype_coherence, np.asarray(prototypes)),
    }


def _finite_or_nan(fn: Any, *args: Any) -> float:
    try:
        return float(fn(*args))
    except (ValueError, np.linalg.LinAlgError):
        return math.nan
