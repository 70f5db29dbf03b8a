"""Evaluation: zero-shot classifiers from class names x templates, a classifier's own head, linear probe
and kNN on frozen features, retrieval; metrics per evaluation set (top-1/5, mean per-class recall,
per-class accuracy and prediction counts, confusion, per-group and worst-group accuracy).

Tasks (`tasks/`) and on-disk dataset layouts (`datasets/`) are registries: one module each. Metrics
declare their units (`units.declare`) where they are computed. `evaluate_sets` is the one evaluation of
a model on a list of sets (the CLI's and a study's)."""

from __future__ import annotations

from typing import Any

# Exported lazily, so torch-free parts (`clipshift.evaluate.units`, read by the report) import no torch.
_EXPORTS = {
    "EvalConfig": "config",
    "EvalData": "datasets",
    "EvalModel": "model",
    "EvalResult": "result",
    "DATASETS": "datasets",
    "KINDS": "datasets",
    "TASKS": "tasks",
    "WD_GRID": "probe",
    "classification_metrics": "metrics",
    "evaluate_dataset": "core",
    "evaluate_model": "core",
    "evaluate_run": "run",
    "evaluate_sets": "core",
    "from_module": "model",
    "group_metrics": "metrics",
    "head_columns": "tasks.classification",
    "image_features": "model",
    "knn_logits": "probe",
    "linear_probe": "probe",
    "load_eval_data": "datasets",
    "open_model": "model",
    "probe_set": "probeset",
    "register_dataset": "datasets",
    "register_task": "tasks",
    "read_class_names": "templates",
    "resolve_templates": "templates",
    "retrieval_metrics": "metrics",
    "split_for_probe": "probeset",
    "to_clip_benchmark_json": "result",
    "world_set": "datasets",
    "zeroshot_weights": "model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clipshift.evaluate' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"clipshift.evaluate.{_EXPORTS[name]}"), name)
