"""AnalysisSpec: an analysis a study asks for (the `analyses:` list of a study YAML)."""

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


AnalysisKind = Literal[
    "effective_robustness", "spurious_drop", "long_tail", "training_curves", "metrics", "theory"
]


class AnalysisSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AnalysisKind
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
    # theory: the latent simulator's sweep of the same knobs, shown beside the trained runs
    theory: dict[str, Any] = Field(
        default_factory=dict, description="TheorySpec fields of the simulator's base setting"
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="TheorySpec field -> values; the first axis is the one concluded on"
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2], description="simulator seeds (CIs across them)"
    )
