"""The minimum detectable difference: exact noncentral-t solution, checked against a simulation of the same
design (Welch test, 3 seeds per arm) and against the textbook large-sample formula."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from clipshift.analysis.power import (
    detectable_difference,
    detectable_from_interval,
    rejection_probability,
    welch_se_df,
)
from clipshift.analysis.stats import diff_ci


def _simulated_power(delta: float, sd: float, n: int, reps: int, rng: np.random.Generator) -> float:
    """Share of simulated designs (n seeds per arm, normal noise) whose 95 % Welch interval excludes 0."""
    hits = 0
    for _ in range(reps):
        a = rng.normal(delta, sd, n)
        b = rng.normal(0.0, sd, n)
        _, lo, hi = diff_ci(a, b)
        hits += lo > 0 or hi < 0
    return hits / reps


@pytest.mark.parametrize("n", [3, 5])
def test_the_detectable_difference_has_the_stated_power_in_a_simulation(n):
    sd = 2.0
    se, df = welch_se_df(sd**2, n, sd**2, n)
    mdd = detectable_difference(se, df)
    assert rejection_probability(mdd, se, df) == pytest.approx(0.8, abs=1e-6)
    rng = np.random.default_rng(7)
    power = _simulated_power(mdd, sd, n, 4000, rng)
    # Welch's df is itself estimated in the simulation, so the power there is a little below the exact 0.8
    assert 0.7 <= power <= 0.85, power
    # the difference the simulation detects 80 % of the time is within 20 % of the formula's
    lo, hi = 0.5 * mdd, 1.5 * mdd
    for _ in range(12):  # bisection on the simulated power curve
        mid = (lo + hi) / 2
        if _simulated_power(mid, sd, n, 1500, rng) < 0.8:
            lo = mid
        else:
            hi = mid
    assert abs((lo + hi) / 2 - mdd) / mdd < 0.2


def test_large_samples_approach_the_normal_formula_and_few_seeds_need_more():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert detectable_difference(1.0, 10_000) == pytest.approx(z, rel=0.01)
    assert detectable_difference(1.0, 4) > 1.3 * z  # the normal shortcut understates it at few seeds
    assert detectable_difference(1.0, 4) > detectable_difference(1.0, 20)


def test_from_an_interval_and_degenerate_designs():
    se, df = 1.5, 4.0
    half = sps.t.ppf(0.975, df) * se
    assert detectable_from_interval(10 - half, 10 + half, df) == pytest.approx(detectable_difference(se, df))
    assert math.isnan(detectable_difference(0.0, 4))  # identical seeds: no standard error
    assert math.isnan(detectable_difference(1.0, math.nan))
    assert math.isnan(detectable_from_interval(math.nan, math.nan, 4))
    assert all(math.isnan(v) for v in welch_se_df(1.0, 1, 1.0, 3))
