"""Estimates with confidence intervals and their wording: moved to `clipshift.analysis.compare` and
`clipshift.analysis.wording`; re-exported here for existing imports."""

from clipshift.analysis.compare import Estimate, mean_estimate, stratified_difference, usable_strata
from clipshift.analysis.wording import ci_text, interval, magnitude, num, plus_minus, with_ci

__all__ = [
    "Estimate",
    "ci_text",
    "interval",
    "magnitude",
    "mean_estimate",
    "num",
    "plus_minus",
    "stratified_difference",
    "usable_strata",
    "with_ci",
]
