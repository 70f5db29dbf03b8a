"""What every analysis a study asks for has: the fields common to all kinds, whose predictions (task) it
reads, and which evaluation sets it names. Each kind's spec subclasses `AnalysisBase` with its own fields
(`clipshift.analysis.kinds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clipshift.analysis.paper import PaperClaim
from clipshift.errors import UserError

# Which classifier a result comes from: the model's own ("own": CLIP zero-shot, a classifier's head, and
# retrieval) or a probe learnt on its frozen features. A probe's acc1 is not a zero-shot acc1.
TaskKind = Literal["own", "linear_probe", "knn"]
OWN: TaskKind = "own"
TASK_NAMES = {"own": "own classifier", "linear_probe": "linear probe", "knn": "kNN"}


# Rows that are not predictions at all: a run's manipulation-check measures (eval set "train") and its
# accuracy at intermediate points of training (the convergence check). They never mix with results.
CHECK_TASKS = ("checks", "convergence")


def task_kind(task: str | None) -> str:
    """A result's task (zeroshot_classification, classification, linear_probe, …) as a TaskKind; the
    check rows keep their own names."""
    return task if task in ("linear_probe", "knn", *CHECK_TASKS) else OWN


def named_set(name: str, sets: Sequence[str]) -> str:
    """The evaluated set (of `sets`) that an analysis's `name` refers to: the set of that name, else the
    one real-data set whose dataset kind it is (`imagenet` for `imagenet:/data/imagenet/val`: results
    are keyed by the spec as written, while a study file's analyses name sets by kind); `name` itself
    when no set is either (the analysis then finds no rows and says so). Several sets of that kind: a
    UserError listing them."""
    if name in sets:
        return name
    hits = [s for s in sets if ":" in s and s.split(":", 1)[0] == name]
    if len(hits) > 1:
        raise UserError(
            f"{len(hits)} evaluated sets have dataset kind {name!r} ({', '.join(hits)}); name one by its spec"
        )
    return hits[0] if hits else name


A = TypeVar("A", bound="AnalysisBase")


class ChecksSpec(BaseModel):
    """What an analysis checks before it words a comparison (`checks:` of an analysis)."""

    model_config = ConfigDict(extra="forbid")

    manipulation: bool = Field(True, description="withhold when the compared factor did not act")
    convergence: bool = Field(True, description="withhold when an arm had not learned or was still improving")
    min_learned: float = Field(
        0.2,
        ge=0,
        le=1,
        description="an arm has learned the task when its in-distribution accuracy covers at least this "
        "share of the way from chance to 100 %",
    )
    max_late_gain: float = Field(
        0.03,
        ge=0,
        le=1,
        description="an arm is still improving when its accuracy rose by more than this (a fraction) over "
        "the last quarter of training",
    )
    min_transfer: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a comparison on a shifted set (effective robustness; the counter set of a "
        "common-counter drop) leaves out a combination of the other factors where an arm's accuracy there "
        "covers less than this share of the way from chance to 100 % (withheld if none is left): at that "
        "floor a difference measures where accuracy bottoms out, not robustness",
    )
    max_extrapolation: float = Field(
        0.5,
        ge=0,
        description="an effective-robustness comparison leaves out an arm whose mean accuracy on the "
        "line's x set lies further outside the range of the line's own runs than this share of that "
        "range's width: there ER measures the line's extrapolation",
    )


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
    checks: ChecksSpec = Field(
        default_factory=ChecksSpec,
        description="manipulation and convergence checks made before a comparison is worded",
    )
    paper: list[PaperClaim] = Field(
        default_factory=list,
        description="a paper's finding about two levels of `compare`, or a list of them (a study comparing "
        "several levels may test one claim per pair): each comparison of a claim's two levels says "
        "whether it reproduced the claim (analysis.paper)",
    )

    @field_validator("paper", mode="before")
    @classmethod
    def _one_or_more_claims(cls, v: Any) -> Any:
        return [] if v is None else [v] if isinstance(v, dict | PaperClaim) else v

    def axis_filters(self) -> dict[str, dict[str, Any]]:
        """Fields that select runs by factor ({field: {axis: value}}): their keys must be study axes."""
        return {"where": self.where}

    def reference_filter(self) -> dict[str, Any]:
        """The runs whose level of `compare` is the reference level (default: the first level)."""
        return {}

    def set_fields(self) -> tuple[str, ...]:
        """Fields that name evaluation sets (a string or a list of them), resolved by `with_sets`."""
        return ()

    def with_sets(self: A, sets: Sequence[str], strict: bool = False) -> A:
        """This analysis with each set it names resolved against the evaluated `sets` (`named_set`: by
        name, or a real-data set by its dataset kind). A name several sets share is a UserError
        `field = value (kind): ...`; so is, with `strict` (the planner, which knows every set the runs will
        have), a name no set has."""
        update: dict[str, Any] = {}
        for field in self.set_fields():
            value = getattr(self, field)
            items = (
                [(f"{field}[{i}]", v) for i, v in enumerate(value)]
                if isinstance(value, list)
                else [(field, value)]
            )
            resolved = []
            for where, name in items:
                try:
                    found = named_set(name, sets)
                except UserError as e:
                    raise UserError(f"{where} = {name!r} ({self.kind}): {e}") from None
                if strict and found not in sets:
                    raise UserError(
                        f"{where} = {name!r} ({self.kind}): names no evaluated set (the runs evaluate "
                        f"{', '.join(sets) or 'none'})"
                    )
                resolved.append(found)
            update[field] = resolved if isinstance(value, list) else resolved[0]
        return self.model_copy(update=update) if update else self
