"""Confidence intervals for small samples: across seeds (t), by resampling (bootstrap), differences (Welch).

Every function returns `(estimate, lo, hi)`; bounds are NaN when the sample cannot support an interval
(e.g. one seed) so that callers print "n/a" instead of a fake zero-width interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

NAN = float("nan")


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")


def mean_ci(values: ArrayLike, ci: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval across independent replicates (seeds); n=1 gives NaN bounds."""
    _check_ci(ci)
    v = np.asarray(values, dtype=float).ravel()
    n = v.size
    if n == 0:
        return NAN, NAN, NAN
    mean = float(v.mean())
    if n == 1:
        return mean, NAN, NAN
    sem = float(v.std(ddof=1)) / np.sqrt(n)
    half = float(sps.t.ppf(0.5 + ci / 2, df=n - 1)) * sem
    return mean, mean - half, mean + half


def bootstrap_ci(
    stat_fn: Callable[..., Any],
    *arrays: ArrayLike,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap of `stat_fn(*arrays)`, resampling ROWS jointly (pairs stay paired).

    All arrays must share their first dimension. Resamples where the statistic is not finite are
    ignored; fewer than two rows gives NaN bounds.
    """
    _check_ci(ci)
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"bootstrap_ci: arrays differ in length {[len(a) for a in arrs]}")
    estimate = float(stat_fn(*arrs)) if n else NAN
    if n < 2:
        return estimate, NAN, NAN
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([float(stat_fn(*(a[i] for a in arrs))) for i in idx])
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return estimate, NAN, NAN
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return estimate, float(lo), float(hi)


def diff_ci(a: ArrayLike, b: ArrayLike, ci: float = 0.95) -> tuple[float, float, float]:
    """mean(a) − mean(b) with a Welch t interval (unequal variances); NaN bounds if either n < 2."""
    _check_ci(ci)
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    if x.size == 0 or y.size == 0:
        return NAN, NAN, NAN
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return diff, NAN, NAN
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = float(np.sqrt(vx + vy))
    if se == 0.0:
        # identical replicates within each group: the difference is known exactly
        return diff, diff, diff
    # Welch–Satterthwaite degrees of freedom
    dof = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(sps.t.ppf(0.5 + ci / 2, df=dof)) * se
    return diff, diff - half, diff + half


def summarise_by(values: ArrayLike, keys: Sequence[Any], ci: float = 0.95) -> dict[Any, dict[str, float]]:
    """Per level of `keys` (e.g. a factor's value per run): {mean, lo, hi, n} with `mean_ci` across its runs.

    Levels keep their order of first appearance; NaN values are left out.
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size != len(keys):
        raise ValueError(f"values and keys differ in length ({v.size} vs {len(keys)})")
    out: dict[Any, dict[str, float]] = {}
    for level in dict.fromkeys(keys):
        sel = np.array([k == level for k in keys]) & np.isfinite(v)
        mean, lo, hi = mean_ci(v[sel], ci)
        out[level] = {"mean": mean, "lo": lo, "hi": hi, "n": int(sel.sum())}
    return out
