"""Each run (an evaluation study's models) placed on the shipped imagenet-testbed line: its x and y
accuracy, its effective robustness against the line through the testbed's reference models (on the
shift's own class subset where the testbed plots it so), and an interval for it.

The interval of one model's effective robustness covers two sources of uncertainty, drawn jointly in
each of B replicates: the line's (refitted to a resample of the testbed's reference models, as the
testbed's band is) and the model's own finite test sets (x and y redrawn as binomial proportions of the
number of images scored, `n`). It does not cover what one evaluation cannot show: another training run
of the same model (seed) would land elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from clipshift.analysis.effective_robustness import Fit, inverse_transform, transform
from clipshift.analysis.reference import Y_ALIASES

# the class subset (`subset/<name>/…` of an ImageNet val set) of each shift's testbed x column (SUBSET_X)
SUBSET_OF: dict[str, str] = {
    "imagenet-r": "imagenet-r",
    "imagenet-a": "imagenet-a",
    "objectnet-1.0-beta": "objectnet",
}


def testbed_column(eval_set: str) -> str:
    """The testbed column of a study's evaluation set: its dataset kind (the spec before ':'), ImageNet
    val as `val`, friendly names as the testbed spells them (`imagenet-v2`, `objectnet`)."""
    kind = eval_set.split(":", 1)[0]
    if kind == "imagenet":
        return "val"
    return Y_ALIASES.get(kind, kind)


@dataclass(frozen=True)
class Placement:
    """One model against the line: accuracies and effective robustness in percent / points."""

    x: float
    y: float
    predicted: float  # the line's y at x
    er: float
    lo: float
    hi: float


def place(
    fit: Fit,
    slopes: ArrayLike,
    intercepts: ArrayLike,
    x: float,
    y: float,
    n_x: int | None,
    n_y: int | None,
    ci: float = 0.95,
    seed: int = 0,
) -> Placement:
    """ER = y − line(x) and its percentile interval over the replicate lines (`slopes`, `intercepts`:
    e.g. `bootstrap_lines` of the reference models), each paired with x and y redrawn as binomial
    proportions of `n_x` and `n_y` images (None: that accuracy is taken as exact)."""
    s, b = np.asarray(slopes, dtype=float), np.asarray(intercepts, dtype=float)
    rng = np.random.default_rng(seed)
    reps = len(s)
    xs = rng.binomial(n_x, x / 100.0, reps) * (100.0 / n_x) if n_x else np.full(reps, x)
    ys = rng.binomial(n_y, y / 100.0, reps) * (100.0 / n_y) if n_y else np.full(reps, y)
    d = ys - inverse_transform(s * transform(xs, fit.kind, fit.eps) + b, fit.kind)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(d, [alpha, 1.0 - alpha])
    predicted = float(fit.predict([x])[0])
    return Placement(x, y, predicted, y - predicted, float(lo), float(hi))
