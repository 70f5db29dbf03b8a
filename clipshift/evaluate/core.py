"""Evaluate a model on evaluation sets: zero-shot (CLIP) or its own head (classifier), linear probe,
kNN, retrieval; `evaluate_run` does a whole run directory for the study runner."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipshift.errors import UserError
from clipshift.evaluate.config import EvalConfig
from clipshift.evaluate.datasets import EvalData, load_eval_data, world_set
from clipshift.evaluate.metrics import classification_metrics, collapse, retrieval_metrics
from clipshift.evaluate.model import EvalModel, image_features, open_model, text_features, zeroshot_weights
from clipshift.evaluate.probe import LinearProbe, few_shot, knn_logits, linear_probe
from clipshift.evaluate.result import EvalResult
from clipshift.evaluate.templates import resolve_templates

PROBE_START = 1_000_000  # world probe-training samples: iid indices far from every evaluation set's
ZS_SCALE = 100.0  # CLIP_benchmark's logit scale for zero-shot (argmax and top-k do not depend on it)


# --------------------------------------------------------------------------------------------------
# class scores


def head_columns(model: EvalModel, data: EvalData) -> list[list[int]]:
    """Which outputs of a classifier's head score each class of `data`."""
    n_out = model.n_outputs
    if data.columns is not None:
        top = max(max(c) for c in data.columns)
        if top >= n_out:
            raise UserError(
                f"the classifier has {n_out} outputs, but {data.name}'s labels are ImageNet-1k class indices "
                f"(up to {top})"
            )
        return data.columns
    if model.class_names is not None:
        index = {n: i for i, n in enumerate(model.class_names)}
        missing = [n for n in data.class_names if n not in index]
        if missing:
            raise UserError(
                f"{data.name}: class {missing[0]!r} is not one of the classifier's {len(index)} training "
                f"classes ({len(missing)} missing)"
            )
        return [[index[n]] for n in data.class_names]
    if len(data.class_names) > n_out:
        raise UserError(f"{data.name} has {len(data.class_names)} classes, the classifier {n_out} outputs")
    return [[i] for i in range(len(data.class_names))]


def class_scores(
    model: EvalModel, data: EvalData, features: torch.Tensor, templates: list[str]
) -> tuple[torch.Tensor, str, torch.Tensor]:
    """(logits (N, C), task, class prototypes (C, D)) for the model's own way of classifying."""
    if model.kind == "clip":
        w = zeroshot_weights(model, data.class_names, templates)
        return ZS_SCALE * features @ w.T, "zeroshot_classification", w
    cols = head_columns(model, data)
    head: Any = getattr(model.module, "head")  # noqa: B009
    with torch.inference_mode():
        logits = collapse(head(features).float(), cols)
    protos = model.head_weights()[[c[0] for c in cols]].float()
    return logits, "classification", protos


def scored_result(
    name: str,
    task: str,
    logits: torch.Tensor,
    data: EvalData,
    min_group_size: int = 1,
    info: dict[str, Any] | None = None,
) -> EvalResult:
    """Metrics of `logits` on `data`, plus the same metrics on every class subset (`subset/<name>/…`)."""
    metrics, per_class, confusion = classification_metrics(logits, data.labels, data.groups, min_group_size)
    n_classes = logits.shape[1]
    for sname, members in data.subsets.items():
        lut = np.full(n_classes, -1, dtype=np.int64)
        for j, cols in enumerate(members):
            lut[cols] = j
        lab = np.where(data.labels >= 0, lut[np.clip(data.labels, 0, n_classes - 1)], -1)
        keep = np.flatnonzero(lab >= 0)
        if len(keep) == 0:
            continue
        groups = {k: (v[0][keep], v[1]) for k, v in data.groups.items()}
        m, _, _ = classification_metrics(
            collapse(logits[torch.as_tensor(keep)], members), lab[keep], groups, min_group_size
        )
        metrics.update({f"subset/{sname}/{k}": v for k, v in m.items()})
    return EvalResult(
        dataset=name,
        task=task,
        metrics=metrics,
        per_class=per_class,
        confusion=confusion,
        class_names=list(data.class_names),
        info={"source": data.source, **data.info, **(info or {})},
    )


# --------------------------------------------------------------------------------------------------
# one dataset


@dataclass
class ProbeSet:
    """Frozen features of the samples a linear probe / kNN learns from; `source` says which samples."""

    features: torch.Tensor
    labels: np.ndarray
    n_classes: int
    source: str
    probe: LinearProbe | None = None

    @classmethod
    def of(
        cls, features: torch.Tensor, labels: np.ndarray, n_classes: int, source: str, few_shot_k: int | None
    ) -> ProbeSet:
        if few_shot_k is not None:
            rows = few_shot(labels, few_shot_k)
            features, labels = features[torch.as_tensor(rows)], labels[rows]
            source = f"{source}, {few_shot_k} per class"
        return cls(features, labels, n_classes, source)

    def fitted(self) -> LinearProbe:
        if self.probe is None:
            self.probe = linear_probe(self.features, self.labels, self.n_classes)
        return self.probe


def probe_set(
    model: EvalModel,
    data: EvalData,
    batch_size: int = 512,
    few_shot_k: int | None = None,
    progress: bool = False,
) -> ProbeSet:
    feats = image_features(model, data.images, batch_size, progress, desc=f"probe features {data.name}")
    return ProbeSet.of(feats, data.labels, len(data.class_names), data.source, few_shot_k)


def split_rows(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): a stratified half of each class's labelled rows to learn a probe from,
    for sets that have no training split of their own; the rest (and unlabelled rows) are scored."""
    rng = np.random.default_rng([seed, 0x5B])
    train: list[np.ndarray] = []
    for c in np.unique(labels[labels >= 0]):
        rows = rng.permutation(np.flatnonzero(labels == c))
        train.append(rows[: len(rows) // 2])
    tr = np.sort(np.concatenate(train)) if train else np.zeros(0, dtype=np.int64)
    return tr, np.setdiff1d(np.arange(len(labels)), tr)


def split_for_probe(data: EvalData, seed: int = 0) -> tuple[EvalData, EvalData]:
    """(train half, test half) of a labelled set (see `split_rows`)."""
    tr, te = split_rows(data.labels, seed)
    return _rows(data, tr, "probe-train"), _rows(data, te, data.name)


def _rows(data: EvalData, rows: np.ndarray, name: str) -> EvalData:
    images = (
        data.images[torch.as_tensor(rows)] if isinstance(data.images, torch.Tensor) else data.images[rows]
    )
    return EvalData(
        name=name,
        images=images,
        labels=data.labels[rows],
        class_names=data.class_names,
        groups={k: (v[0][rows], v[1]) for k, v in data.groups.items()},
        columns=data.columns,
        subsets=data.subsets,
        source=data.source,
        info={**data.info, "n": len(rows)},
    )


def evaluate_dataset(
    model: EvalModel,
    data: EvalData,
    tasks: list[str],
    templates: list[str],
    *,
    batch_size: int = 512,
    probe: ProbeSet | None = None,
    few_shot_k: int | None = None,
    knn_k: int = 20,
    min_group_size: int = 1,
    progress: bool = False,
    name: str | None = None,
) -> tuple[list[EvalResult], torch.Tensor, torch.Tensor | None]:
    """Results of `tasks` on one set from one pass of image features; also returns the features and the
    prototypes of the model's own classifier (for representation statistics).

    Tasks: `zeroshot_classification` (a classifier answers with its head: task `classification`),
    `linear_probe`, `knn`, `retrieval` (CSV sets). Zero-shot always scores the whole set. A probe learns
    from `probe` when given, else from a stratified half of this set and scores the other half (its
    result's info names the split: `probe_train`, `probe_test_n`)."""
    name = name or data.name
    t0 = _now()
    feats = image_features(model, data.images, batch_size, progress, desc=f"eval {name}")
    t_feats = _now() - t0
    results: list[EvalResult] = []
    protos: torch.Tensor | None = None
    probe_data, probe_feats = data, feats  # what a probe scores
    if probe is None and any(t in ("linear_probe", "knn") for t in tasks) and not data.retrieval:
        tr, te = split_rows(data.labels)
        half = f"{name}: stratified half, {len(tr)} of {len(data)} images (the other half is scored)"
        probe = ProbeSet.of(
            feats[torch.as_tensor(tr)], data.labels[tr], len(data.class_names), half, few_shot_k
        )
        probe_data, probe_feats = _rows(data, te, name), feats[torch.as_tensor(te)]
    for task in tasks:
        t1 = _now()
        if task == "retrieval" or data.retrieval:
            if not data.retrieval:
                raise UserError(f"{name}: retrieval needs image-text pairs (a csv: dataset)")
            if model.kind != "clip":
                raise UserError("retrieval needs a CLIP model (this is a classifier)")
            assert data.texts is not None and data.image_text is not None
            metrics = retrieval_metrics(feats, text_features(model, data.texts), data.image_text)
            metrics.update({"n_images": float(len(data)), "n_texts": float(len(data.texts))})
            results.append(
                EvalResult(name, "zeroshot_retrieval", metrics, info={"source": data.source, **data.info})
            )
            continue
        if task in ("zeroshot_classification", "classification"):
            logits, task_name, protos = class_scores(model, data, feats, templates)
            info = {"templates": templates} if task_name == "zeroshot_classification" else {}
            res = scored_result(name, task_name, logits, data, min_group_size, info)
        elif task in ("linear_probe", "knn"):
            assert probe is not None
            split = {"probe_train": probe.source, "probe_test_n": len(probe_data)}
            if task == "linear_probe":
                lp = probe.fitted()
                with torch.no_grad():
                    logits = lp.logits(probe_feats)
            else:
                logits = knn_logits(probe.features, probe.labels, probe_feats, probe.n_classes, knn_k)
                split["k"] = knn_k
            res = scored_result(name, task, logits, probe_data, min_group_size, split)
            if task == "linear_probe":
                res.metrics["probe_wd"] = lp.wd
        else:
            raise UserError(
                f"unknown task {task!r}; choose zeroshot_classification, linear_probe, knn or retrieval"
            )
        res.info["eval_s"] = round(t_feats + _now() - t1, 4)
        res.info["images_per_s"] = round(len(data) / max(t_feats + _now() - t1, 1e-9), 1)
        results.append(res)
    return results, feats, protos


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
    progress: bool = False,
) -> EvalResult:
    """One task on one set. Linear probe / kNN learn from `probe_data` (default: a stratified half of
    `data`, and the other half is scored)."""
    ts = resolve_templates(templates) if isinstance(templates, str) else list(templates)
    probe = None
    if task in ("linear_probe", "knn") and probe_data is not None:
        probe = probe_set(model, probe_data, batch_size, few_shot_k, progress)
    results, _, _ = evaluate_dataset(
        model, data, [task], ts, batch_size=batch_size, probe=probe, few_shot_k=few_shot_k, knn_k=knn_k,
        min_group_size=min_group_size, progress=progress,
    )  # fmt: skip
    return results[0]


# --------------------------------------------------------------------------------------------------
# a run directory


def _read_json(p: Path) -> dict[str, Any]:
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _train_counts(
    run_dir: Path, train_cfg: Any, final: dict[str, Any], world: Any
) -> tuple[list[str], list[int]]:
    """The training label space and per-class counts: final.json's, else (older runs on an unsubsampled
    world) recomputed from the world's labels without rendering."""
    names, counts = final.get("class_names"), final.get("class_counts")
    if isinstance(names, list) and isinstance(counts, list):
        return [str(n) for n in names], [int(c) for c in counts]
    if world is not None and getattr(train_cfg.data, "subsample", None) is None:
        k = world.concepts.n_classes
        labels = world.factors(train_cfg.data.split, np.arange(train_cfg.data.n)).label
        return list(world.class_names), np.bincount(labels[labels < k], minlength=k).astype(int).tolist()
    return [], []


def evaluate_run(
    run_dir: str | Path, cfg: EvalConfig | None = None, progress: bool = False
) -> list[EvalResult]:
    """Evaluate a trained run on `cfg.sets` (see `EvalResult` for what comes back).

    CLIP runs: zero-shot with `cfg.templates`; classifier runs: their head. World sets are rendered from
    the run's world (`cfg.n_per_set` each, class-balanced); other specs (`imagefolder:/path`, …) are read
    from disk. With `cfg.linear_probe` / `cfg.knn`, a probe learns from `cfg.probe_n` fresh iid samples of
    the world (or half of each non-world set). The `iid` set (else the first) also reports `nc1` of the
    image features and `prototype_coherence` of the class prototypes, and a last result with
    dataset `train` carries the per-class training counts (`class_count`)."""
    import yaml

    from clipshift.analysis.longtail import nc1, prototype_coherence
    from clipshift.train.config import TrainConfig

    cfg = cfg or EvalConfig()
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise UserError(f"{run}: not a run directory (no config.yaml)")
    try:
        train_cfg = TrainConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    except Exception as e:
        raise UserError(f"{run / 'config.yaml'}: not a valid run config ({str(e).splitlines()[0]})") from e
    final = _read_json(run / "final.json")
    model = open_model(run)
    world = None
    if train_cfg.data.kind == "world":
        from clipshift.world import World

        world = World(train_cfg.data.world)
    templates = resolve_templates(cfg.templates)
    tasks = (
        ["zeroshot_classification"]
        + (["linear_probe"] if cfg.linear_probe else [])
        + (["knn"] if cfg.knn else [])
    )
    shared_probe: ProbeSet | None = None
    if (cfg.linear_probe or cfg.knn) and world is not None:
        pdata = world_set(world, "iid", cfg.probe_n, start=PROBE_START, image_size=model.image_size)
        pdata.source = f"world:iid[{PROBE_START}:{PROBE_START + cfg.probe_n}]"
        shared_probe = probe_set(model, pdata, cfg.batch_size, cfg.few_shot_k, progress)
    stats_set = "iid" if "iid" in cfg.sets else (cfg.sets[0] if cfg.sets else None)
    results: list[EvalResult] = []
    for spec in cfg.sets:
        data = load_eval_data(
            spec, model.image_size, world=world, n=cfg.n_per_set, group_by=cfg.group_by,
            class_names=cfg.class_names, cache_dir=cfg.cache_dir, progress=progress,
        )  # fmt: skip
        set_tasks = ["retrieval"] if data.retrieval else tasks
        res, feats, protos = evaluate_dataset(
            model, data, set_tasks, templates, batch_size=cfg.batch_size, probe=shared_probe,
            few_shot_k=cfg.few_shot_k, knn_k=cfg.knn_k, min_group_size=cfg.min_group_size,
            progress=progress, name=spec,
        )  # fmt: skip
        if spec == stats_set and protos is not None and not data.retrieval:
            ok = (data.labels >= 0) & (data.labels < len(data.class_names))
            res[0].metrics["nc1"] = _finite_or_nan(nc1, feats.numpy()[ok], data.labels[ok])
            res[0].metrics["prototype_coherence"] = _finite_or_nan(prototype_coherence, protos.numpy())
        results.extend(res)
    names, counts = _train_counts(run, train_cfg, final, world)
    results.append(
        EvalResult(
            dataset="train",
            task="zeroshot_classification" if model.kind == "clip" else "classification",
            metrics={"n": float(sum(counts))} if counts else {},
            per_class={"class_count": [float(c) for c in counts]} if counts else {},
            class_names=names,
            info={"source": "final.json" if final.get("class_counts") is not None else "recomputed"},
        )
    )
    return results


def _finite_or_nan(fn: Any, *args: Any) -> float:
    """A representation statistic, NaN when it is undefined (one class, a zero prototype)."""
    try:
        v = float(fn(*args))
    except (ValueError, np.linalg.LinAlgError):
        return math.nan
    return v


def _now() -> float:
    import time

    return time.perf_counter()
