"""EvalConfig: what to evaluate a trained model on, and how (the `eval:` section of a study's run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

# Fields added after run ids were first hashed from this section: left out of its serialised form while
# they hold their defaults, so the ids of existing runs do not change (`complete=True` context: all).
_LATER_DEFAULTS: dict[str, Any] = {"confusable_n": [20], "confusable": None}


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sets: list[str] = Field(
        default_factory=lambda: ["iid", "common", "counter", "sketch", "rendition", "painting", "pose"],
        description="world evaluation sets by name (iid, common, counter, a domain, corrupt-<kind>-<sev>, "
        "pose), or a dataset spec such as imagefolder:/path or counteranimal:/path",
    )
    n_per_set: int = Field(2000, ge=1, description="samples per world evaluation set (class-balanced)")
    templates: str = Field(
        "world",
        description="zero-shot prompts: world (the world's caption-style templates), openai (80), simple, "
        "single, or a file with one template per line",
    )
    linear_probe: bool = Field(False, description="also fit a linear probe on frozen features")
    knn: bool = Field(False, description="also report k-nearest-neighbour accuracy on frozen features")
    group_by: list[str] = Field(
        default_factory=lambda: ["background", "domain"],
        description="ground-truth factors for per-group and worst-group accuracy (world sets)",
    )
    batch_size: int = Field(512, ge=1)
    # ---- added by the evaluation module (fields above are the lead's contract)
    probe_n: int = Field(
        2000,
        ge=2,
        description="linear probe / kNN: training samples (world: fresh iid samples, class-balanced)",
    )
    few_shot_k: int | None = Field(None, ge=1, description="linear probe / kNN: keep k samples per class")
    knn_k: int = Field(20, ge=1, description="kNN: neighbours (cosine similarity, similarity-weighted votes)")
    min_group_size: int = Field(
        10, ge=1, description="groups with fewer samples are left out of per-group and worst-group accuracy"
    )
    class_names: Path | None = Field(
        None, description="class-name file (one per line) for non-world sets; default: the dataset's own"
    )
    cache_dir: Path | None = Field(
        None, description="decoded-image cache for non-world sets (default: ~/.cache)"
    )
    convergence_points: list[float] = Field(
        default_factory=lambda: [0.5, 0.75],
        description="a study's run keeps the model at these fractions of training and reports its top-1 "
        "accuracy there and at the end on `convergence_n` samples of the first set (acc1@0.50, …, "
        "acc1@1.00): was it still learning? [] turns this off",
    )
    convergence_n: int = Field(1000, ge=1, description="samples of the first set for the convergence check")
    confusable_n: list[int] = Field(
        default_factory=lambda: [20],
        description="also score top-1 accuracy against each class's N most confusable classes only "
        "(acc1_vs{N}_confusable, CounterAnimal's '1 vs 20'; acc1 is its '1 vs all'), one metric per N: "
        "world sets take the world's confusable classes (siblings first), other sets the `confusable` "
        "mapping; N ≥ K - 1 equals acc1; [] turns this off",
    )
    confusable: Path | None = Field(
        None,
        description="JSON {class name: [confusable class names, most confusable first]} for non-world "
        "sets (without it they get no acc1_vs{N}_confusable)",
    )

    def task_names(self) -> list[str]:
        """The registered tasks this section asks for: zero-shot (a classifier's own head), then the
        probes it switches on."""
        return (
            ["zeroshot_classification"]
            + (["linear_probe"] if self.linear_probe else [])
            + (["knn"] if self.knn else [])
        )

    @field_validator("confusable_n")
    @classmethod
    def _ns(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError(f"every N must be ≥ 1, got {v}")
        return sorted(set(v))

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if isinstance(data, dict) and not (info.context or {}).get("complete"):
            for name, default in _LATER_DEFAULTS.items():
                if name in data and data[name] == default:
                    data.pop(name)
        return data

    @field_validator("convergence_points")
    @classmethod
    def _points(cls, v: list[float]) -> list[float]:
        from clipshift.train.config import snapshot_fractions

        return snapshot_fractions(v)  # they become the run's snapshots

    @field_validator("sets")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in v:
            if name in seen:  # results are keyed by set name: a repeat would collide in the store
                raise ValueError(f"evaluation set {name!r} is listed twice")
            seen.add(name)
        return v
