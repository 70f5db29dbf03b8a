"""How large a difference a design could have detected: the minimum detectable difference (MDD) of a
two-sided t-based comparison at a given power.

"The data do not support a conclusion" means little on its own: with 3 seeds and a wide spread, only a
large effect could have been seen. Beside every such statement the report gives the MDD, the true
difference that the same comparison (same standard error, same degrees of freedom, same α) would have
declared at 80 % power. For a t statistic with `df` degrees of freedom and standard error `se`, a true
difference δ is declared with probability

    P(|T| > t_{1−α/2, df}),  T ~ noncentral t(df, δ / se),

and the MDD is the δ at which that probability equals the power (solved exactly, not with the normal
approximation (z_{1−α/2} + z_{power})·se, which understates it by 30–60 % at 2–4 degrees of freedom).
"""

from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as sps

DEFAULT_POWER = 0.8


def rejection_probability(delta: float, se: float, df: float, alpha: float = 0.05) -> float:
    """P(a two-sided t test at level α rejects 0) when the true difference is `delta`."""
    if not (se > 0 and df > 0):
        return math.nan
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    nc = delta / se
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def detectable_difference(se: float, df: float, alpha: float = 0.05, power: float = DEFAULT_POWER) -> float:
    """The smallest true difference (in the units of `se`) detected with probability `power`; NaN when the
    design gives no standard error (one seed, identical seeds) or no degrees of freedom."""
    if not (math.isfinite(se) and se > 0 and math.isfinite(df) and df > 0):
        return math.nan
    if not 0 < alpha < 1 or not alpha < power < 1:
        raise ValueError(f"need 0 < alpha < power < 1, got alpha={alpha}, power={power}")
    crit = float(sps.t.ppf(1 - alpha / 2, df))

    def gap(delta: float) -> float:
        p = rejection_probability(delta, se, df, alpha)
        return (1.0 if math.isnan(p) else p) - power  # scipy's nct gives NaN far in the tail, where p → 1

    # the t-quantile shortcut (crit + t_power)·se is within a few percent; bracket generously around it
    hi = 2.0 * se * (crit + float(sps.t.ppf(power, df)))
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10 * se))


def detectable_from_interval(
    lo: float, hi: float, df: float, ci: float = 0.95, power: float = DEFAULT_POWER
) -> float:
    """The MDD of a comparison known by its t interval [lo, hi] at level `ci` with `df` degrees of freedom
    (the standard error is the half-width over t_{(1+ci)/2, df})."""
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo and math.isfinite(df) and df > 0):
        return math.nan
    se = (hi - lo) / 2 / float(sps.t.ppf(0.5 + ci / 2, df))
    return detectable_difference(se, df, 1 - ci, power)


def welch_se_df(var_a: float, n_a: int, var_b: float, n_b: int) -> tuple[float, float]:
    """Standard error and Welch–Satterthwaite degrees of freedom of mean(a) − mean(b) from the sample
    variances and sizes (NaN when either side has fewer than two values)."""
    if n_a < 2 or n_b < 2:
        return math.nan, math.nan
    va, vb = var_a / n_a, var_b / n_b
    se2 = va + vb
    if se2 <= 0:
        return 0.0, math.nan
    return math.sqrt(se2), se2**2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
