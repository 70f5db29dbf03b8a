"""How estimates are written in the report's sentences and tables (numbers with a real minus sign,
intervals, "no conclusion" reasons, units from `clipshift.evaluate.units`)."""

from __future__ import annotations

import math

from clipshift.analysis.compare import Estimate
from clipshift.evaluate.units import unit_of

MINUS = "\u2212"
NO_SUPPORT = "The data do not support a conclusion"


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
    return Estimate(-est.value, -est.hi, -est.lo, est.n, est.ci, est.df)


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


def no_support_reason(est: Estimate) -> str:
    """Why an estimate does not support a conclusion."""
    if not math.isfinite(est.value):
        return "no pair of levels shares a combination of the other factors"
    if not est.has_ci:
        return "fewer than two seeds per level, so there is no CI across seeds"
    if est.exact:
        return "a CI needs seeds that differ"
    return "the CI includes 0"


def points(metric: str) -> str:
    """What a difference of the metric is counted in: percentage points, or the metric's own units."""
    u = unit_of(metric)
    return u.points if u.unit == "fraction" else f"{metric} {u.points}"


def decimals(metric: str) -> int:
    """Decimals shown: one for percentages, three for other values."""
    return 1 if unit_of(metric).unit == "fraction" else 3


def axis_label(metric: str) -> str:
    """'acc1 (%)' for fractions, the bare name otherwise (titles, axes)."""
    return f"{metric}{unit_of(metric).suffix.replace(' %', ' (%)')}"


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def pct(ci: float) -> str:
    return f"{round(ci * 100):d} %"
