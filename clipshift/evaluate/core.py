"""Evaluate a model: the registered tasks (`evaluate.tasks`) on one set from one pass of image features
(`evaluate_dataset`), and on a list of set specs (`evaluate_sets`, what `clipshift eval` and a study's
evaluation both call)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from clipshift.errors import UserError
from clipshift.evaluate.config import EvalConfig
from clipshift.evaluate.confusable import read_confusable
from clipshift.evaluate.datasets import EvalData, load_eval_data
from clipshift.evaluate.model import EvalModel, image_features
from clipshift.evaluate.probeset import ProbeSet, half_probe, probe_set, world_probe_set
from clipshift.evaluate.representation import representation_metrics
from clipshift.evaluate.result import EvalResult
from clipshift.evaluate.tasks import TASKS, Task, TaskContext
from clipshift.evaluate.templates import resolve_templates


def tasks_for(data: EvalData, tasks: Sequence[str]) -> list[Task]:
    """The registered tasks to run on `data`: image-text sets get the retrieval task(s), whatever was
    asked; labelled sets the tasks asked for (unknown names fail here, before any work)."""
    if data.retrieval:
        return [t for t in TASKS if t.retrieval]
    return [TASKS.get(name) for name in tasks]


def evaluate_dataset(
    model: EvalModel,
    data: EvalData,
    tasks: Sequence[str],
    templates: list[str],
    *,
    batch_size: int = 512,
    probe: ProbeSet | None = None,
    few_shot_k: int | None = None,
    knn_k: int = 20,
    min_group_size: int = 1,
    confusable_n: Sequence[int] = (),
    progress: bool = False,
    name: str | None = None,
) -> tuple[list[EvalResult], torch.Tensor, torch.Tensor | None]:
    """Results of `tasks` on one set from one pass of image features; also returns the features and the
    prototypes of the model's own classifier (for representation statistics).

    Tasks are registered by name (`clipshift.evaluate.tasks`): `zeroshot_classification` (a classifier
    answers with its head: task `classification`), `linear_probe`, `knn`, `retrieval` (csv: sets).
    Zero-shot always scores the whole set. A probe learns from `probe` when given, else from a stratified
    half of this set and scores the other half (its result's info names the split: `probe_train`,
    `probe_test_n`). Each N of `confusable_n` adds `acc1_vs{N}_confusable` on a set with confusable
    classes (`evaluate.confusable`)."""
    name = name or data.name
    entries = tasks_for(data, tasks)
    t0 = time.perf_counter()
    feats = image_features(model, data.images, batch_size, progress, desc=f"eval {name}")
    t_feats = time.perf_counter() - t0
    ctx = TaskContext(
        model, data, name, feats, templates, probe, data, feats, knn_k, min_group_size, tuple(confusable_n)
    )
    if probe is None and any(t.needs_probe for t in entries):
        ctx.probe, ctx.probe_data, ctx.probe_features = half_probe(data, feats, name, few_shot_k)
    results: list[EvalResult] = []
    for task in entries:
        t1 = time.perf_counter()
        res = task.run(ctx)
        took = t_feats + time.perf_counter() - t1
        res.info["model_family"] = model.family
        res.info["eval_s"] = round(took, 4)
        res.info["images_per_s"] = round(len(data) / max(took, 1e-9), 1)
        results.append(res)
    return results, feats, ctx.prototypes


def evaluate_model(
    model: EvalModel,
    data: EvalData,
    task: str = "zeroshot_classification",
    templates: list[str] | str = "world",
    *,
    batch_size: int = 512,
    probe_data: EvalData | None = None,
    few_shot_k: int | None = None,
    knn_k: int = 20,
    min_group_size: int = 1,
    confusable_n: Sequence[int] = (),
    progress: bool = False,
) -> EvalResult:
    """One task on one set. Linear probe / kNN learn from `probe_data` (default: a stratified half of
    `data`, and the other half is scored)."""
    ts = resolve_templates(templates) if isinstance(templates, str) else list(templates)
    probe = None
    if TASKS.get(task).needs_probe and probe_data is not None:
        probe = probe_set(model, probe_data, batch_size, few_shot_k, progress)
    results, _, _ = evaluate_dataset(
        model, data, [task], ts, batch_size=batch_size, probe=probe, few_shot_k=few_shot_k, knn_k=knn_k,
        min_group_size=min_group_size, confusable_n=confusable_n, progress=progress,
    )  # fmt: skip
    return results[0]


class FinishedSets(Protocol):
    """Where an evaluation keeps each set's results once the set is finished (a study run's directory:
    `study.evaluation.RunSets`), so an interrupted evaluation goes on after its last finished set."""

    def load(self, index: int, spec: str) -> list[EvalResult] | None: ...

    def save(self, index: int, spec: str, results: list[EvalResult]) -> None: ...


def evaluate_sets(
    model: EvalModel,
    cfg: EvalConfig,
    tasks: Sequence[str] | None = None,
    *,
    world: Any = None,
    probe_train: str | None = None,
    objectnet_mappings: str | Path | None = None,
    result_names: Literal["spec", "dataset"] = "spec",
    stats_set: str | None = None,
    progress: bool = False,
    finished: FinishedSets | None = None,
) -> list[EvalResult]:
    """Evaluate `model` on every set of `cfg.sets` with `tasks` (default: `cfg.task_names()`): the one
    evaluation `clipshift eval` and a study's runs share.

    Sets are loaded one at a time (`cfg.n_per_set` samples of a world set, grouped by `cfg.group_by`;
    files through their registered layout). A probe task learns from `probe_train` (a dataset spec) when
    given, else from `cfg.probe_n` fresh iid samples of `world`, else from half of each set. Results are
    named by their spec (`result_names='spec'`: a study's store keys on it) or by the dataset's own name
    (`'dataset'`: CLIP_benchmark's habit, the CLI's). The first result on `stats_set` also reports the
    representation statistics (`nc1`, `prototype_coherence`). The '1 vs N confusable' accuracies
    (`cfg.confusable_n`) use a world set's own confusable classes, and on other sets the mapping of
    `cfg.confusable` when given. A set whose results `finished` holds is not evaluated again (nor is the
    probe built when no set is left), and each set evaluated is given to `finished` at once."""
    names = list(tasks) if tasks is not None else cfg.task_names()
    entries = [TASKS.get(t) for t in names]  # unknown names fail before any work
    templates = resolve_templates(cfg.templates)
    load_kw: dict[str, Any] = {
        "world": world, "n": cfg.n_per_set, "group_by": cfg.group_by, "class_names": cfg.class_names,
        "objectnet_mappings": objectnet_mappings, "cache_dir": cfg.cache_dir, "progress": progress,
        "resize": model.resize,
    }  # fmt: skip
    if model.label_space is not None and any(t.name == "zeroshot_classification" for t in entries):
        from clipshift.evaluate.datasets import split_spec

        worlds = [s for s in cfg.sets if split_spec(s)[0] is None]
        if worlds:  # before any work, and before the world's image-size check
            raise UserError(
                f"dataset {worlds[0]!r}: a world set's classes are not {model.label_space} classes, so "
                f"{model.name}'s {model.n_outputs}-way head cannot score it (its features can: --task "
                "linear_probe or knn)"
            )
    probe: ProbeSet | None = None
    probed = not any(t.needs_probe for t in entries)
    results: list[EvalResult] = []
    for i, spec in enumerate(cfg.sets):
        kept = finished.load(i, spec) if finished is not None else None
        if kept is not None:
            results.extend(kept)
            continue
        if not probed:  # once, before the first set still to evaluate (where it always was)
            probed = True
            if probe_train is not None:
                pdata = load_eval_data(probe_train, model.image_size, **load_kw)
                probe = probe_set(model, pdata, cfg.batch_size, cfg.few_shot_k, progress)
            elif world is not None:
                probe = world_probe_set(model, world, cfg.probe_n, cfg.batch_size, cfg.few_shot_k, progress)
        data = load_eval_data(spec, model.image_size, **load_kw)
        if cfg.confusable is not None and data.confusable is None and cfg.confusable_n and not data.retrieval:
            data.confusable = read_confusable(cfg.confusable, data.class_names, data.labels)
        res, feats, protos = evaluate_dataset(
            model, data, names, templates, batch_size=cfg.batch_size, probe=probe,
            few_shot_k=cfg.few_shot_k, knn_k=cfg.knn_k, min_group_size=cfg.min_group_size,
            confusable_n=cfg.confusable_n, progress=progress, name=spec if result_names == "spec" else None,
        )  # fmt: skip
        if spec == stats_set and protos is not None and not data.retrieval:
            res[0].metrics.update(representation_metrics(feats, data.labels, len(data.class_names), protos))
        if finished is not None:
            finished.save(i, spec, res)
        results.extend(res)
    return results
