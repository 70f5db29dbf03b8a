"""Evaluation tasks by name. Each module of this package registers its task(s) with `register_task`:
a function from a `TaskContext` (the model, the set, its image features, the probe set) to one
`EvalResult`, with a help line, whether it learns from a probe set, and whether it scores image-text
pairs (retrieval) instead of labels. Metrics a task adds are declared (`evaluate.units.declare`) in its
module. `clipshift eval --task` offers every registered task; `evaluate_dataset` runs them.

Task modules are imported by `clipshift --help` and by the report (for their units), so they import torch
and the scoring code inside their functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipshift.evaluate.registry import Registry

if TYPE_CHECKING:
    import torch

    from clipshift.evaluate.datasets import EvalData
    from clipshift.evaluate.model import EvalModel
    from clipshift.evaluate.probeset import ProbeSet
    from clipshift.evaluate.result import EvalResult


@dataclass
class TaskContext:
    """What a task sees on one evaluation set. A probe scores `probe_data` (the set, or the half of it
    that its probe did not learn from) with `probe_features`."""

    model: EvalModel
    data: EvalData
    name: str  # the result's dataset name
    features: torch.Tensor  # (N, D) image features of every image of `data`
    templates: list[str]
    probe: ProbeSet | None
    probe_data: EvalData
    probe_features: torch.Tensor
    knn_k: int = 20
    min_group_size: int = 1
    confusable_n: tuple[int, ...] = ()  # the N of each '1 vs N confusable' accuracy
    prototypes: torch.Tensor | None = None  # left by the task that classifies with the model's own classes

    def score(self, task: str, logits: torch.Tensor, data: EvalData, info: dict[str, Any]) -> EvalResult:
        """The classification metrics of `logits` on `data` (and its class subsets)."""
        from clipshift.evaluate.scoring import scored_result

        return scored_result(self.name, task, logits, data, self.min_group_size, info, self.confusable_n)

    def probe_info(self) -> dict[str, Any]:
        """What a probe learnt from and how many images it scored (a probe result's info)."""
        assert self.probe is not None
        return {"probe_train": self.probe.source, "probe_test_n": len(self.probe_data)}


@dataclass(frozen=True)
class Task:
    name: str
    run: Callable[[TaskContext], EvalResult]
    help: str
    needs_probe: bool = False  # learns from a probe set (`TaskContext.probe`)
    retrieval: bool = False  # scores image-text pairs: the task of csv: sets


TASKS: Registry[Task] = Registry("task", "clipshift.evaluate.tasks")


def register_task(
    name: str, help: str, *, needs_probe: bool = False, retrieval: bool = False, aliases: tuple[str, ...] = ()
) -> Callable[[Callable[[TaskContext], EvalResult]], Callable[[TaskContext], EvalResult]]:
    """Decorator: register a task function under `name` (and `aliases`)."""

    def deco(fn: Callable[[TaskContext], EvalResult]) -> Callable[[TaskContext], EvalResult]:
        TASKS.register(Task(name, fn, help, needs_probe, retrieval), aliases)
        return fn

    return deco


__all__ = ["TASKS", "Task", "TaskContext", "register_task"]
