"""`clipshift bench learn`: does a recipe learn the world within a CPU budget?

Trains CLIP (zero-shot) and the supervised model with their recipes (`clipshift.train.recipes`) on a
world of `classes` classes (the default spec otherwise: full captions), keeps snapshots along the way
and scores each, with the final model, on the same class-balanced iid samples. Prints the accuracies,
the training wall time against the budget, samples/s and the learning curve.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CURVE = (0.25, 0.5, 0.75)  # fractions of training whose snapshot is scored (the learning curve)


def bench_learn(
    classes: int = 100,
    clip_recipe: str = "clip-cpu",
    supervised_recipe: str = "supervised-cpu",
    budget_s: float = 600.0,
    eval_n: int = 5000,
    threads: int | None = None,
    out: Path | None = None,
    extra: tuple[str, ...] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Train and score both recipes; `extra` are further `--set` overrides for both (e.g. data.n=…).
    Progress (a line per model, the training bar) goes to stderr."""
    figures: dict[str, Any] = {"classes": classes, "budget_s": budget_s}
    with tempfile.TemporaryDirectory(prefix="clipshift-bench-learn-") as tmp:
        root = Path(out) if out is not None else Path(tmp)
        for label, recipe in (("clip", clip_recipe), ("supervised", supervised_recipe)):
            figures.update(_one(label, recipe, classes, eval_n, threads, root / label, extra, progress))
    for label in ("clip", "supervised"):
        figures[f"{label}_within_budget"] = figures[f"{label}_train_wall_s"] <= budget_s
    return figures


def _one(
    label: str,
    recipe_name: str,
    classes: int,
    eval_n: int,
    threads: int | None,
    run_dir: Path,
    extra: tuple[str, ...],
    progress: bool,
) -> dict[str, Any]:
    import torch

    from clipshift.configio import apply_overrides
    from clipshift.data.config import with_default_source
    from clipshift.evaluate import EvalConfig, evaluate_run
    from clipshift.train import TrainConfig, train
    from clipshift.train.recipes import get_recipe

    recipe = get_recipe(recipe_name)
    sets = [
        *recipe.overrides(),
        f"data.world.concepts.n_classes={classes}",
        f"snapshots={list(CURVE)}",
        *extra,
    ]
    base: dict[str, Any] = {"threads": threads or torch.get_num_threads()}
    cfg = TrainConfig.model_validate(with_default_source(apply_overrides(base, sets)))
    print(f"bench learn: {label} ({recipe_name}), {classes} classes", file=sys.stderr, flush=True)
    t = time.perf_counter()
    record = train(cfg, run_dir, resume=False, progress=progress)  # world data: one sample per row
    wall = time.perf_counter() - t
    ecfg = EvalConfig(sets=["iid"], n_per_set=eval_n, convergence_points=list(CURVE), convergence_n=eval_n)
    results = evaluate_run(run_dir, ecfg)
    curve = next(r.metrics for r in results if r.task == "convergence")
    acc = curve["acc1@1.00"]
    name = "zeroshot_acc" if cfg.objective.name.startswith("clip") else "acc"
    samples = int(record["samples"])
    return {
        f"{label}_recipe": recipe_name,
        f"{label}_{name}_{classes}cls": round(acc, 4),
        f"{label}_train_wall_s": round(wall, 1),  # rendering the data included
        f"{label}_samples": samples,
        f"{label}_samples_per_s": round(float(record.get("samples_per_s", samples / wall)), 1),
        f"{label}_curve": {f"{int(f * samples)}": round(v, 4) for f, v in _points(curve).items()},
    }


def _points(curve: dict[str, float]) -> dict[float, float]:
    """{fraction of training: acc1} from the convergence metrics acc1@0.25 … acc1@1.00."""
    return {float(k.split("@")[1]): v for k, v in sorted(curve.items()) if k.startswith("acc1@")}
