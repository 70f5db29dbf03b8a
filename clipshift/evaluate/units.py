"""What each evaluation metric measures, so tables and findings scale and word it without guessing from its
name. Torch-free: the report and the analyses read it.

A metric is declared once, by its name or a pattern (`group_acc/*`), with `declare(...)` in the module
that computes it (`evaluate.metrics`, each task of `evaluate.tasks`, `evaluate.representation`); those
modules are imported on the first look-up, and they import no torch at module level. A `subset/<name>/`
prefix keeps the unit of the metric it prefixes.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from typing import Literal

Unit = Literal["fraction", "count", "correlation", "ratio", "value"]


@dataclass(frozen=True)
class MetricUnit:
    unit: Unit
    description: str = ""

    @property
    def scale(self) -> float:
        """Factor to the displayed value: fractions are shown in percent."""
        return 100.0 if self.unit == "fraction" else 1.0

    @property
    def suffix(self) -> str:
        """What follows a displayed value (' %' for fractions)."""
        return " %" if self.unit == "fraction" else ""

    @property
    def points(self) -> str:
        """The name of a difference of two values: percentage points for fractions."""
        return "points" if self.unit == "fraction" else "units"


METRIC_UNITS: dict[str, MetricUnit] = {}
# modules that emit metrics besides the task modules (whose registry imports them all)
PRODUCERS = (
    "clipshift.evaluate.metrics",
    "clipshift.evaluate.confusable",
    "clipshift.evaluate.representation",
    "clipshift.evaluate.checks",
)
_loaded = False


def declare(pattern: str, unit: Unit, description: str = "") -> None:
    """Register a metric name (or fnmatch pattern) and its unit, next to the code that emits it."""
    if pattern in METRIC_UNITS and METRIC_UNITS[pattern].unit != unit:
        raise ValueError(f"metric {pattern!r} is declared twice with different units")
    METRIC_UNITS[pattern] = MetricUnit(unit, description)


def _load_producers() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in PRODUCERS:
        importlib.import_module(module)
    from clipshift.evaluate.tasks import TASKS

    TASKS.load()


def _declared(metric: str) -> MetricUnit | None:
    _load_producers()
    while metric.startswith("subset/") and metric.count("/") >= 2:
        metric = metric.split("/", 2)[2]
    if metric in METRIC_UNITS:
        return METRIC_UNITS[metric]
    for pattern, u in METRIC_UNITS.items():
        if fnmatch.fnmatchcase(metric, pattern):
            return u
    return None


def is_declared(metric: str) -> bool:
    """Has the module that emits `metric` declared its unit?"""
    return _declared(metric) is not None


def unit_of(metric: str) -> MetricUnit:
    """The declared unit of a metric (exact name first, then patterns); undeclared metrics are plain
    values, shown as they are."""
    return _declared(metric) or MetricUnit("value")
