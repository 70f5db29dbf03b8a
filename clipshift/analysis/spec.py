"""AnalysisSpec: an analysis a study asks for (the `analyses:` list of a study YAML)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AnalysisKind = Literal["effective_robustness", "spurious_drop", "long_tail", "training_curves", "metrics"]


class AnalysisSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AnalysisKind
    title: str | None = Field(None, description="heading in the report (default: from kind)")
    metric: str = Field("acc1", description="the metric analysed")
    compare: str | None = Field(
        None, description="the factor (a grid axis, e.g. 'objective.name') whose levels are compared"
    )
    # effective_robustness
    x: str = Field("iid", description="the in-distribution evaluation set (x axis)")
    y: list[str] = Field(default_factory=list, description="shifted evaluation sets (empty: every other set)")
    baseline: dict[str, Any] = Field(
        default_factory=dict,
        description="factor filter selecting the runs the baseline line is fitted on, e.g. "
        "{'objective.name': 'supervised'}; empty: all runs",
    )
    transform: Literal["logit", "probit"] = "logit"
    # spurious_drop
    common: str = "common"
    counter: str = "counter"
    # long_tail
    eval_set: str = Field("iid", description="the evaluation set whose per-class accuracy is analysed")
