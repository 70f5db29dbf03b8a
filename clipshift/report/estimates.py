"""Estimates with confidence intervals across seeds, and how they are written in sentences.

A difference between two levels of a factor is estimated *within* each combination of the other
factors (a stratum) and averaged over strata, so that a factor which moves every level alike (caption
richness, data scale) does not widen the interval. With one stratum this is exactly the Welch interval
of `clipshift.analysis.stats.diff_ci`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from clipshift.analysis import stats

NAN = float("nan")
MINUS = "\u2212"


@dataclass(frozen=True)
class Estimate:
    """A value with its confidence interval; `lo`/`hi` are NaN when the data cannot give one."""

    value: float
    lo: float
    hi: float
    n: int
    ci: float = 0.95

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def excludes_zero(self) -> bool:
        """The interval lies strictly on one side of 0: the only case in which a report concludes."""
        return self.has_ci and math.isfinite(self.value) and (self.lo > 0 or self.hi < 0)

    @property
    def supports(self) -> bool:
        """Enough to state a conclusion: the interval excludes 0 and has width. Seeds that all give the
        same value usually mean a degenerate run (e.g. a constant prediction), not certainty."""
        return self.excludes_zero and not self.exact

    @property
    def exact(self) -> bool:
        """Zero-width interval: every seed gave the same value."""
        return self.has_ci and self.lo == self.hi

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n, "ci": self.ci}


def mean_estimate(values: Sequence[float], ci: float = 0.95) -> Estimate:
    v = [x for x in values if math.isfinite(x)]
    m, lo, hi = stats.mean_ci(v, ci) if v else (NAN, NAN, NAN)
    return Estimate(m, lo, hi, len(v), ci)


def _finite(values: Sequence[float]) -> np.ndarray:
    return np.asarray([x for x in values if math.isfinite(x)], dtype=float)


def usable_strata(cells: Sequence[tuple[Sequence[float], Sequence[float]]]) -> list[int]:
    """Indices of the strata `stratified_difference` averages: those with at least two finite values on
    each side (they give a variance); if there are none, every stratum with a value on each side."""
    sizes = [(_finite(a).size, _finite(b).size) for a, b in cells]
    two = [i for i, (na, nb) in enumerate(sizes) if na >= 2 and nb >= 2]
    return two or [i for i, (na, nb) in enumerate(sizes) if na and nb]


def stratified_difference(
    cells: Sequence[tuple[Sequence[float], Sequence[float]]],
    ci: float = 0.95,
    extra_var: float = 0.0,
    extra_dof: float = math.inf,
) -> Estimate:
    """mean(a) − mean(b) averaged over strata, with a Welch–Satterthwaite t interval.

    `cells` holds one (a values, b values) pair per stratum. Strata where either side has fewer than
    two replicates cannot contribute a variance and are left out of the interval; if no stratum has
    two, the point estimate uses all strata and the bounds are NaN. `extra_var` is a further,
    independent variance of the difference (e.g. from a fitted reference line both sides are measured
    from) with `extra_dof` degrees of freedom; it widens the interval and enters the Satterthwaite sum.
    """
    clean = [(_finite(a), _finite(b)) for a, b in cells]
    keep = usable_strata(cells)
    if not keep:
        return Estimate(NAN, NAN, NAN, 0, ci)
    chosen = [clean[i] for i in keep]
    n = sum(a.size + b.size for a, b in chosen)
    k = len(chosen)
    diff = float(np.mean([a.mean() - b.mean() for a, b in chosen]))
    if any(a.size < 2 or b.size < 2 for a, b in chosen):
        return Estimate(diff, NAN, NAN, n, ci)
    if k == 1 and extra_var == 0.0:
        d, lo, hi = stats.diff_ci(chosen[0][0], chosen[0][1], ci)
        return Estimate(d, lo, hi, n, ci)
    # each group mean enters the average with weight 1/k; its variance is s²/n
    terms: list[tuple[float, float]] = [
        (g.var(ddof=1) / g.size / k**2, g.size - 1) for a, b in chosen for g in (a, b)
    ]
    terms.append((extra_var, extra_dof))
    var = sum(w for w, _ in terms)
    if var == 0.0:
        return Estimate(diff, diff, diff, n, ci)
    dof = var**2 / sum(w**2 / df for w, df in terms if w > 0)
    half = float(sps.t.ppf(0.5 + ci / 2, df=dof)) * math.sqrt(var)
    return Estimate(diff, diff - half, diff + half, n, ci)


# -- wording ----------------------------------------------------------------------------------------
def num(x: float, digits: int = 1) -> str:
    """A number with a real minus sign; NaN as 'n/a'."""
    if not math.isfinite(x):
        return "n/a"
    s = f"{x:.{digits}f}"
    if float(s) == 0:
        s = s.lstrip("-")
    return s.replace("-", MINUS)


def interval(lo: float, hi: float, digits: int = 1) -> str:
    """'4.1–10.3', or '−3.1 to 2.0' when a bound is negative (a dash next to a minus reads badly)."""
    if lo >= 0 and hi >= 0:
        return f"{num(lo, digits)}–{num(hi, digits)}"
    return f"{num(lo, digits)} to {num(hi, digits)}"


def ci_text(est: Estimate, digits: int = 1) -> str:
    """'95 % CI 4.1–10.3', or why there is no interval."""
    if not est.has_ci:
        return "no CI: fewer than two seeds"
    if est.exact:
        return "identical across seeds"
    return f"{round(est.ci * 100):d} % CI {interval(est.lo, est.hi, digits)}"


def magnitude(est: Estimate) -> Estimate:
    """The estimate of |value|: a sentence that says "A exceeds B by 7.0" (B − A = −7.0) must quote the
    interval of A − B, i.e. the bounds negated and swapped."""
    if est.value >= 0:
        return est
    return Estimate(-est.value, -est.hi, -est.lo, est.n, est.ci)


def with_ci(est: Estimate, digits: int = 1, unit: str = "") -> str:
    """'71.2 % (95 % CI 69.0–73.4)'."""
    return f"{num(est.value, digits)}{unit} ({ci_text(est, digits)})"


def plus_minus(est: Estimate, digits: int = 1) -> str:
    """Table cell: '71.2 ± 2.1' (half-width of the interval), or the bare mean when there is none."""
    if not math.isfinite(est.value):
        return "–"
    if not est.has_ci:
        return num(est.value, digits)
    return f"{num(est.value, digits)} ± {abs(est.hi - est.lo) / 2:.{digits}f}"
