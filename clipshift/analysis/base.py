"""What every analysis a study asks for has: the fields common to all kinds, and whose predictions
(task) it reads. Each kind's spec subclasses `AnalysisBase` with its own fields (`clipshift.analysis.kinds`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Which classifier a result comes from: the model's own ("own": CLIP zero-shot, a classifier's head, and
# retrieval) or a probe learnt on its frozen features. A probe's acc1 is not a zero-shot acc1.
TaskKind = Literal["own", "linear_probe", "knn"]
OWN: TaskKind = "own"
TASK_NAMES = {"own": "own classifier", "linear_probe": "linear probe", "knn": "kNN"}


def task_kind(task: str | None) -> str:
    """A result's task (zeroshot_classification, classification, linear_probe, …) as a TaskKind."""
    return task if task in ("linear_probe", "knn") else OWN


class AnalysisBase(BaseModel):
    """The fields of every analysis; a kind's spec adds its own and narrows `kind` to its name."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    title: str | None = Field(None, description="heading in the report (default: from kind)")
    metric: str = Field("acc1", description="the metric analysed")
    task: TaskKind = Field(
        "own",
        description="whose predictions: own (CLIP zero-shot / a classifier's head), linear_probe or knn "
        "(needs eval.linear_probe / eval.knn)",
    )
    where: dict[str, Any] = Field(
        default_factory=dict,
        description="factor filter: analyse only the runs matching it, e.g. {'objective.name': 'clip'} "
        "(a list value means any of)",
    )
    compare: str | None = Field(
        None, description="the factor (a grid axis, e.g. 'objective.name') whose levels are compared"
    )

    def axis_filters(self) -> dict[str, dict[str, Any]]:
        """Fields that select runs by factor ({field: {axis: value}}): their keys must be study axes."""
        return {"where": self.where}

    def reference_filter(self) -> dict[str, Any]:
        """The runs whose level of `compare` is the reference level (default: the first level)."""
        return {}
