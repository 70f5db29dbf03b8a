"""What each evaluation metric measures, so tables and findings scale and word it without guessing from its
name. Torch-free: the report and the analyses read it.

A metric is declared once, here, by its name or a pattern (`group_acc/*`); a `subset/<name>/` prefix keeps
the unit of the metric it prefixes. A new metric is one more `declare(...)` line.
"""

from __future__ import annotations

import fnmatch
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


def declare(pattern: str, unit: Unit, description: str = "") -> None:
    """Register a metric name (or fnmatch pattern) and its unit."""
    METRIC_UNITS[pattern] = MetricUnit(unit, description)


def unit_of(metric: str) -> MetricUnit:
    """The declared unit of a metric (exact name first, then patterns); undeclared metrics are plain
    values, shown as they are."""
    while metric.startswith("subset/") and metric.count("/") >= 2:
        metric = metric.split("/", 2)[2]
    if metric in METRIC_UNITS:
        return METRIC_UNITS[metric]
    for pattern, u in METRIC_UNITS.items():
        if fnmatch.fnmatchcase(metric, pattern):
            return u
    return MetricUnit("value")


# classification (evaluate.metrics.classification_metrics, group_metrics)
declare("acc1", "fraction", "top-1 accuracy")
declare("acc5", "fraction", "top-5 accuracy")
declare("mean_per_class_recall", "fraction", "mean over classes of per-class recall")
declare("class_acc", "fraction", "per-class accuracy")
declare("group_acc/*", "fraction", "accuracy within a group of a ground-truth factor")
declare("worst_group_acc", "fraction", "lowest group accuracy")
declare("worst_group_acc/*", "fraction", "lowest group accuracy of one factor")
declare("class_pred_count", "count", "predictions of each class")
declare("class_count", "count", "training samples of each class")
declare("n", "count", "scored samples")
declare("n_unscored", "count", "samples whose label is outside the label space")
# retrieval (evaluate.metrics.retrieval_metrics)
declare("image_retrieval_recall@*", "fraction", "text-to-image recall at k")
declare("text_retrieval_recall@*", "fraction", "image-to-text recall at k")
declare("n_images", "count")
declare("n_texts", "count")
# representation statistics (analysis.longtail) and probes
declare("nc1", "ratio", "neural collapse tr(S_w S_b^+)/C")
declare("prototype_coherence", "value", "mean cosine between class prototypes")
declare("probe_wd", "value", "weight decay the linear probe chose")
