"""Comparing the levels of a factor: estimates with confidence intervals across seeds, differences
stratified by the other factors, and the extra uncertainty of a fitted reference line.

A difference between two levels of a factor is estimated *within* each combination of the other
factors (a stratum) and averaged over strata, so that a factor which moves every level alike (caption
richness, data scale) does not widen the interval. With one stratum this is exactly the Welch interval
of `clipshift.analysis.stats.diff_ci`.

Light to import (numpy): scipy is imported where an interval is computed, because the analysis kinds
that use this module are imported whenever a study spec is validated.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clipshift.analysis.data import label, value_key

if TYPE_CHECKING:
    from clipshift.analysis.reference import ReferenceSet

NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    """A value with its confidence interval; `lo`/`hi` are NaN when the data cannot give one."""

    value: float
    lo: float
    hi: float
    n: int
    ci: float = 0.95
    df: float = NAN  # degrees of freedom of the t interval (for the power of the comparison)

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

    def detectable(self, power: float = 0.8) -> float:
        """The smallest true difference this comparison would have declared at `power` (its MDD), from
        the interval's standard error and degrees of freedom; NaN without an interval."""
        from clipshift.analysis.power import detectable_from_interval

        if not self.has_ci or self.exact:
            return NAN
        return detectable_from_interval(self.lo, self.hi, self.df, self.ci, power)

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n, "ci": self.ci}


def mean_estimate(values: Sequence[float], ci: float = 0.95) -> Estimate:
    from clipshift.analysis import stats

    v = [x for x in values if math.isfinite(x)]
    m, lo, hi = stats.mean_ci(v, ci) if v else (NAN, NAN, NAN)
    return Estimate(m, lo, hi, len(v), ci, float(len(v) - 1) if len(v) > 1 else NAN)


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
    from scipy import stats as sps

    from clipshift.analysis import stats

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
        from clipshift.analysis.power import welch_se_df

        a, b = chosen[0]
        d, lo, hi = stats.diff_ci(a, b, ci)
        _, dof = welch_se_df(float(a.var(ddof=1)), a.size, float(b.var(ddof=1)), b.size)
        return Estimate(d, lo, hi, n, ci, dof)
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
    return Estimate(diff, diff - half, diff + half, n, ci, dof)


@dataclass
class Comparison:
    """`level` against the reference level `ref`: means of each and their stratified difference."""

    level: Any
    ref: Any
    level_mean: Estimate
    ref_mean: Estimate
    diff: Estimate
    strata: int  # the strata the difference is formed over
    axis: str | None = None  # the compared factor, to name numeric levels ("rho=0.9", not "0.9")
    # strata `leave_out` kept out of the difference: (the stratum, why), e.g. an arm at the floor there
    left_out: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return level_name(self.axis, self.level)

    @property
    def ref_name(self) -> str:
        return level_name(self.axis, self.ref)


def level_name(axis: str | None, value: Any) -> str:
    """A level as sentences name it: a numeric level with its factor ("rho=0.9", not "0.9")."""
    if axis is None or isinstance(value, str):
        return label(value)
    return f"{axis.rsplit('.', 1)[-1]}={label(value)}"


@dataclass(frozen=True)
class LineReplicates:
    """Each run's value under `n_boot` refits of a reference line to resampled baseline runs (rows:
    replicates, columns: runs), so a difference of run means can carry the line's uncertainty."""

    columns: dict[str, int]
    values: np.ndarray
    dof: float
    slopes: np.ndarray  # the refitted lines themselves (transformed axes), for the figure's band
    intercepts: np.ndarray

    def variance(self, strata: Sequence[tuple[Sequence[str], Sequence[str]]]) -> tuple[float, float]:
        """Variance across replicates of the stratified difference (as `stratified_difference` forms
        it from these strata), and its degrees of freedom."""
        if not strata or len(self.values) < 2:
            return 0.0, math.inf
        cols = self.columns
        d = np.mean(
            [
                self.values[:, [cols[i] for i in a]].mean(axis=1)
                - self.values[:, [cols[i] for i in b]].mean(axis=1)
                for a, b in strata
            ],
            axis=0,
        )
        return float(np.var(d, ddof=1)), self.dof


def line_replicates(ref: ReferenceSet, kind: str, n_boot: int) -> LineReplicates:
    """Every run's effective robustness under lines refitted to resamples of the line's own runs."""
    from clipshift.analysis import effective_robustness as er

    on_line = ref.is_reference
    slopes, intercepts = er.bootstrap_lines(ref.x[on_line], ref.y[on_line], kind, n_boot, seed=0)
    zx = er.transform(ref.x, kind)
    predicted = er.inverse_transform(slopes[:, None] * zx[None, :] + intercepts[:, None], kind)
    columns = {m: j for j, m in enumerate(ref.models)}
    dof = max(int(on_line.sum()) - 2, 1)
    return LineReplicates(columns, ref.y[None, :] - predicted, dof, slopes, intercepts)


def compare_levels(
    values: Mapping[str, float],
    groups: Sequence[tuple[str, Any, str]],
    levels: Sequence[Any],
    ref: Any,
    ci: float = 0.95,
    line: LineReplicates | None = None,
    axis: str | None = None,
    leave_out: Callable[[Any, str, Sequence[str], Sequence[str]], tuple[str, str] | None] | None = None,
) -> tuple[dict[str, Estimate], list[Comparison]]:
    """Per-level means (keyed by `value_key(level)`) and each level's difference to `ref`.

    `groups` holds one (run id, level, stratum key) per run with a value; a difference is estimated
    within each stratum both levels have (`stratified_difference`). `line` (values measured from a
    fitted line) adds the line's own uncertainty to each difference; `axis` names the compared factor.
    `leave_out(level, stratum key, level's run ids, ref's run ids)` may keep a stratum out of that
    level's difference: it returns (the stratum's name, why), recorded in the comparison."""
    cells: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    pooled: dict[str, list[float]] = defaultdict(list)
    for run_id, level, stratum in groups:
        lk = value_key(level)
        cells[stratum][lk].append(run_id)
        pooled[lk].append(values[run_id])
    means = {value_key(lv): mean_estimate(pooled[value_key(lv)], ci) for lv in levels}
    comps = []
    for lv in levels:
        if value_key(lv) == value_key(ref):
            continue
        id_pairs, left_out = [], []
        for key, c in cells.items():
            a, b = c[value_key(lv)], c[value_key(ref)]
            if a and b:
                why = leave_out(lv, key, a, b) if leave_out else None
                if why is None:
                    id_pairs.append((a, b))
                else:
                    left_out.append(why)
        pairs = [([values[i] for i in a], [values[i] for i in b]) for a, b in id_pairs]
        used = usable_strata(pairs)
        extra = line.variance([id_pairs[i] for i in used]) if line else (0.0, math.inf)
        diff = stratified_difference(pairs, ci, *extra)
        # the means quoted beside the difference are those of the runs it compares: when a level
        # lacks some strata (an unbalanced zip), its other runs are not part of the comparison
        level_mean, ref_mean = (mean_estimate([v for i in used for v in pairs[i][k]], ci) for k in (0, 1))
        comps.append(Comparison(lv, ref, level_mean, ref_mean, diff, len(pairs), axis, tuple(left_out)))
    return means, comps
