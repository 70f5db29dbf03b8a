"""EvalResult: one (evaluation set, task) outcome, its tidy rows and its CLIP_benchmark-shaped JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Row = tuple[str, str, str, int, float]  # (eval_set, task, metric, class_id, value)


def result_rows(
    dataset: str, task: str, metrics: dict[str, Any], per_class: dict[str, list[Any]]
) -> list[Row]:
    """Tidy rows of one result: class_id −1 for scalar metrics, the class index for per-class ones. The
    task is part of a row's identity: a linear probe's acc1 on a set is not the zero-shot acc1 on it.
    (None, as in a result's JSON, becomes NaN.)"""

    def f(v: Any) -> float:
        return math.nan if v is None else float(v)

    out = [(dataset, task, k, -1, f(v)) for k, v in metrics.items()]
    for k, values in per_class.items():
        out.extend((dataset, task, k, i, f(v)) for i, v in enumerate(values))
    return out


@dataclass
class EvalResult:
    """Scalar `metrics` (accuracies as fractions 0–1, like CLIP_benchmark), per-class lists in
    `per_class` (`class_acc`, `class_pred_count`, `class_count`; index = class id of `class_names`),
    an optional confusion matrix (rows: true class, columns: predicted) and free-form `info`."""

    dataset: str
    task: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, list[float]] = field(default_factory=dict)
    confusion: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[Row]:
        """Tidy `(eval_set, task, metric, class_id, value)` rows (see `result_rows`)."""
        return result_rows(self.dataset, self.task, self.metrics, self.per_class)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None; the confusion matrix a nested list)."""
        return {
            "dataset": self.dataset,
            "task": self.task,
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "per_class": {k: [_finite(x) for x in v] for k, v in self.per_class.items()},
            "class_names": list(self.class_names),
            "confusion": None if self.confusion is None else np.asarray(self.confusion).tolist(),
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        """The result `to_dict` wrote (None back to NaN): its rows are the original's, bit for bit."""

        def num(v: Any) -> float:
            return math.nan if v is None else v

        return cls(
            dataset=d["dataset"],
            task=d["task"],
            metrics={k: num(v) for k, v in d["metrics"].items()},
            per_class={k: [num(x) for x in v] for k, v in d["per_class"].items()},
            confusion=None if d.get("confusion") is None else np.asarray(d["confusion"]),
            class_names=list(d.get("class_names", [])),
            info=dict(d.get("info", {})),
        )


def _finite(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def to_clip_benchmark_json(
    result: EvalResult, model_name: str, pretrained: str, language: str = "en"
) -> dict[str, Any]:
    """CLIP_benchmark's result shape (`dataset`, `model`, `pretrained`, `task`, `metrics`, `language`)
    followed by clipshift's extra fields (`per_class`, `class_names`, `confusion`, `info`). NaN is null;
    `acc5` is null with fewer than 5 classes (CLIP_benchmark's NaN)."""
    d = result.to_dict()
    metrics = d["metrics"]
    if "acc1" in metrics and "acc5" not in metrics:  # fewer than 5 classes: CLIP_benchmark writes NaN
        metrics = {"acc1": metrics["acc1"], "acc5": None, **{k: v for k, v in metrics.items() if k != "acc1"}}
    return {
        "dataset": result.dataset,
        "model": model_name,
        "pretrained": pretrained,
        "task": result.task,
        "metrics": metrics,
        "language": language,
        "per_class": d["per_class"],
        "class_names": d["class_names"],
        "confusion": d["confusion"],
        "info": d["info"],
    }
