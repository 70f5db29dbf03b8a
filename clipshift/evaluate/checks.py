"""A run's checks as evaluation results, for the study's store: the manipulation checks training measured
(final.json's `checks`, `clipshift.train.checks`) as eval set `train`, task `checks`, and the convergence
check (top-1 accuracy of the snapshots kept during training and of the final model, on the same samples)
as task `convergence` on the run's first evaluation set.

Every metric's unit is declared here; the report reads them without torch, so torch stays inside the
functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipshift.evaluate.result import EvalResult
from clipshift.evaluate.units import declare

if TYPE_CHECKING:
    from clipshift.evaluate.config import EvalConfig
    from clipshift.evaluate.model import EvalModel

CHECKS, CONVERGENCE = "checks", "convergence"  # the tasks of the two results

# data: what the training rows and batches were
declare("data/rows", "count", "training rows")
declare("data/classes_present", "count", "evaluation classes with at least one training row")
declare("data/imbalance", "ratio", "largest over median training count of the classes present")
declare("data/gini", "value", "Gini coefficient of the training class counts (0 = uniform)")
declare("data/classes_per_batch_*", "count", "distinct known classes in a step's global batch (mean/min/max)")
declare("data/same_class_pair_share", "fraction", "share of ordered pairs in a batch that share a class")
declare(
    "data/duplicate_caption_share",
    "fraction",
    "share of a batch's rows whose text (as fed to the text tower) another row of the batch also has",
)
declare(
    "data/mention/*", "fraction", "share of the texts fed to the text tower that name the row's own value"
)
declare(
    "data/p_common_background", "fraction", "mean over classes of P(background is the class's common one)"
)
declare(
    "data/background_bayes_acc", "fraction", "best accuracy predicting the class from the background alone"
)
declare("data/domain/*", "fraction", "share of training rows in the domain")
# objective: what each step's loss scored
declare("objective/classes_scored_mean", "count", "classes in a step's softmax or contrast (mean over steps)")
declare("objective/scored_share", "fraction", "classes scored per step over the label space")
declare("objective/topped_up_share", "fraction", "dynamic: share of steps topped up to K absent classes")
# training curves
declare("logit_scale/*", "value", "the learnable logit scale (temperature⁻¹): first, last, largest logged")
declare("loss/first", "value", "mean loss over the first tenth of the logged steps")
declare("loss/last", "value", "mean loss over the last tenth of the logged steps")
declare(
    "loss/slope_last_fifth",
    "value",
    "least-squares loss slope over the last fifth of training, per 1,000 steps",
)
# convergence
declare("acc1@*", "fraction", "top-1 accuracy of the model at that fraction of training (same samples)")


def checks_result(final: dict[str, Any]) -> EvalResult | None:
    """final.json's `checks` as the result (`train`, `checks`); None for a run trained before them."""
    checks = final.get("checks")
    if not isinstance(checks, dict) or not checks:
        return None
    metrics = {str(k): float("nan") if v is None else float(v) for k, v in checks.items()}
    return EvalResult(dataset="train", task=CHECKS, metrics=metrics, info={"source": "final.json"})


def convergence_result(
    run: Path, model: EvalModel, cfg: EvalConfig, world: Any, progress: bool = False
) -> EvalResult | None:
    """acc1@<f> for each of `cfg.convergence_points` (the run's snapshot there; NaN when it has none) and
    acc1@1.00 (`model`, the final one), all on the same `cfg.convergence_n` samples of the first labelled
    set of `cfg.sets`. The model's own answer: zero-shot for CLIP, its head for a classifier. None when
    the run kept none of these snapshots (a plain `clipshift train` run keeps none unless asked)."""
    import numpy as np

    from clipshift.evaluate.core import evaluate_dataset
    from clipshift.evaluate.datasets import load_eval_data
    from clipshift.evaluate.model import open_model
    from clipshift.evaluate.templates import resolve_templates
    from clipshift.train.checkpoint import snapshot_path
    from clipshift.train.config import snapshot_label

    paths = {f: snapshot_path(run, f) for f in cfg.convergence_points}
    if not cfg.sets or not any(p.is_file() for p in paths.values()):
        return None
    spec = cfg.sets[0]
    data = load_eval_data(
        spec, model.image_size, world=world, n=cfg.convergence_n, class_names=cfg.class_names,
        cache_dir=cfg.cache_dir, progress=progress,
    )  # fmt: skip
    if data.retrieval:
        return None
    if len(data) > cfg.convergence_n:  # a set on disk: a fixed random subset
        rows = np.sort(np.random.default_rng(0).permutation(len(data))[: cfg.convergence_n])
        data = data.take(rows, data.name)
    templates = resolve_templates(cfg.templates)

    def acc1(m: EvalModel) -> float:
        res, _, _ = evaluate_dataset(
            m, data, ["zeroshot_classification"], templates, batch_size=cfg.batch_size
        )
        return float(res[0].metrics.get("acc1", float("nan")))

    metrics: dict[str, float] = {}
    for f, path in paths.items():
        if path.is_file():
            snap = open_model(path)
            snap.class_names = model.class_names  # the file alone does not name the head's classes
            metrics[f"acc1@{snapshot_label(f)}"] = acc1(snap)
        else:
            metrics[f"acc1@{snapshot_label(f)}"] = float("nan")
    metrics["acc1@1.00"] = acc1(model)
    return EvalResult(
        dataset=spec, task=CONVERGENCE, metrics=metrics, info={"n": len(data), "source": data.source}
    )
