"""Effective robustness (Taori et al., 2020): a line in logit (or probit) space through reference models.

Accuracies are in PERCENT (0–100), as in the imagenet-testbed tables. A model's effective robustness
is its shift accuracy minus the line's prediction at its in-distribution accuracy, in accuracy points:

    ER = y − inv(slope · T(x) + intercept),   T = logit or probit of x/100.

0 % and 100 % have infinite logits. The original testbed code does not guard against them; here they
are clipped to [eps, 100 − eps] (default `DEFAULT_EPS` = 0.1 accuracy points, i.e. one error in 1000
images; pass eps = 50 / n_test for "half an image" on a test set of n_test images), or, with
`clip=False`, refused with a `UserError` naming the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

from clipshift.errors import UserError

Kind = Literal["logit", "probit", "linear"]
KINDS: tuple[str, ...] = ("logit", "probit", "linear")
DEFAULT_EPS = 0.1  # accuracy points; see the module docstring

FloatArray = NDArray[np.float64]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"transform {kind!r}: unknown (choose one of {', '.join(KINDS)})")


def _label(names: Sequence[str] | None, i: int) -> str:
    return f"model {names[i]!r}" if names is not None else f"value #{i}"


def transform(
    acc_percent: ArrayLike,
    kind: str = "logit",
    eps: float = DEFAULT_EPS,
    clip: bool = True,
    names: Sequence[str] | None = None,
) -> FloatArray:
    """Accuracy in percent → the fit's axis (logit or probit of the fraction; `linear` is the identity).

    Values outside [0, 100] are always an error. 0 and 100 are clipped to [eps, 100 − eps] when
    `clip`, else refused; `names` lets the error name the model.
    """
    _check_kind(kind)
    acc = np.asarray(acc_percent, dtype=float)
    flat = acc.ravel()
    bad = np.flatnonzero(~np.isfinite(flat) | (flat < 0) | (flat > 100))
    if bad.size:
        i = int(bad[0])
        raise UserError(f"{_label(names, i)}: accuracy {flat[i]} is not a percentage in [0, 100]")
    if kind == "linear":
        return acc.copy()
    if clip:
        if not 0.0 < eps < 50.0:
            raise UserError(f"eps {eps}: must be in (0, 50) accuracy points")
        acc = np.clip(acc, eps, 100.0 - eps)
    else:
        edge = np.flatnonzero((flat <= 0) | (flat >= 100))
        if edge.size:
            i = int(edge[0])
            raise UserError(
                f"{_label(names, i)}: accuracy {flat[i]:g} % has an infinite {kind}; "
                "allow clipping (eps) or drop the model"
            )
    p = acc / 100.0
    out = special.logit(p) if kind == "logit" else special.ndtri(p)
    return np.asarray(out, dtype=float)


def inverse_transform(z: ArrayLike, kind: str = "logit") -> FloatArray:
    """The fit's axis → accuracy in percent."""
    _check_kind(kind)
    zz = np.asarray(z, dtype=float)
    if kind == "linear":
        return zz.copy()
    p = special.expit(zz) if kind == "logit" else special.ndtr(zz)
    return np.asarray(p * 100.0, dtype=float)


@dataclass(frozen=True)
class Fit:
    """A least-squares line y' = slope · x' + intercept in transformed coordinates."""

    slope: float
    intercept: float
    kind: str
    n: int
    r2: float
    eps: float = DEFAULT_EPS
    clip: bool = True

    def predict(self, x_acc: ArrayLike, names: Sequence[str] | None = None) -> FloatArray:
        """Predicted shift accuracy (percent) at in-distribution accuracy `x_acc` (percent)."""
        zx = transform(x_acc, self.kind, self.eps, self.clip, names)
        return inverse_transform(self.slope * zx + self.intercept, self.kind)

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return {
            "slope": self.slope,
            "intercept": self.intercept,
            "transform": self.kind,
            "n": self.n,
            "r2": self.r2,
            "eps": self.eps,
            "clip": self.clip,
        }


def _paired(x_acc: ArrayLike, y_acc: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(x_acc, dtype=float).ravel()
    y = np.asarray(y_acc, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    return x, y


def fit_line(
    x_acc: ArrayLike,
    y_acc: ArrayLike,
    kind: str = "logit",
    eps: float = DEFAULT_EPS,
    clip: bool = True,
    names: Sequence[str] | None = None,
) -> Fit:
    """Ordinary least squares of T(y) on T(x) over the reference models (scipy.stats.linregress)."""
    x, y = _paired(x_acc, y_acc)
    if x.size < 2:
        raise UserError(f"the reference set has {x.size} model(s); a line needs at least 2")
    zx = transform(x, kind, eps, clip, names)
    zy = transform(y, kind, eps, clip, names)
    if np.ptp(zx) == 0:
        raise UserError("every reference model has the same x accuracy; the line's slope is undefined")
    res = stats.linregress(zx, zy)
    r = float(res.rvalue)
    return Fit(float(res.slope), float(res.intercept), kind, int(x.size), r * r, float(eps), clip)


def effective_robustness(
    fit: Fit, x_acc: ArrayLike, y_acc: ArrayLike, names: Sequence[str] | None = None
) -> FloatArray:
    """y − fit.predict(x), in accuracy points (positive: more robust than the reference line)."""
    x, y = _paired(x_acc, y_acc)
    return y - fit.predict(x, names)


def bootstrap_lines(
    x_acc: ArrayLike,
    y_acc: ArrayLike,
    kind: str = "logit",
    n_boot: int = 1000,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
    clip: bool = True,
) -> tuple[FloatArray, FloatArray]:
    """(slopes, intercepts) of lines fitted to `n_boot` resamples (with replacement) of the models.

    Resamples whose x values are all equal have no slope and are dropped.
    """
    x, y = _paired(x_acc, y_acc)
    zx = transform(x, kind, eps, clip)
    zy = transform(y, kind, eps, clip)
    n = zx.size
    if n < 2:
        raise UserError(f"the reference set has {n} model(s); a bootstrap band needs at least 2")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    bx, by = zx[idx], zy[idx]
    mx, my = bx.mean(axis=1), by.mean(axis=1)
    sxx = ((bx - mx[:, None]) ** 2).sum(axis=1)
    sxy = ((bx - mx[:, None]) * (by - my[:, None])).sum(axis=1)
    ok = sxx > 0
    slopes = sxy[ok] / sxx[ok]
    return slopes, my[ok] - slopes * mx[ok]


def bootstrap_band(
    x_acc: ArrayLike,
    y_acc: ArrayLike,
    grid_x: ArrayLike,
    kind: str = "logit",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
    clip: bool = True,
) -> tuple[FloatArray, FloatArray]:
    """Pointwise percentile band (lo, hi), in percent, of the fitted line over `grid_x` (percent).

    The reference models are resampled with replacement `n_boot` times (as the testbed does, 1000×).
    """
    slopes, intercepts = bootstrap_lines(x_acc, y_acc, kind, n_boot, seed, eps, clip)
    return lines_band(slopes, intercepts, grid_x, kind, ci, eps, clip)


def lines_band(
    slopes: ArrayLike,
    intercepts: ArrayLike,
    grid_x: ArrayLike,
    kind: str = "logit",
    ci: float = 0.95,
    eps: float = DEFAULT_EPS,
    clip: bool = True,
) -> tuple[FloatArray, FloatArray]:
    """Pointwise percentile band (lo, hi), in percent, over `grid_x` of lines already fitted (e.g. the
    resamples of `bootstrap_lines`)."""
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    slopes, intercepts = np.asarray(slopes, dtype=float), np.asarray(intercepts, dtype=float)
    zg = transform(grid_x, kind, eps, clip).ravel()
    lines = slopes[:, None] * zg[None, :] + intercepts[:, None]
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(lines, [alpha, 1 - alpha], axis=0)
    return inverse_transform(lo, kind), inverse_transform(hi, kind)
