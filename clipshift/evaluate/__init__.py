"""Evaluation: zero-shot classifiers from class names x templates, a classifier's own head, linear probe
and kNN on frozen features, retrieval; metrics per evaluation set (top-1/5, mean per-class recall,
per-class accuracy and prediction counts, confusion, per-group and worst-group accuracy)."""

from clipshift.evaluate.config import EvalConfig
from clipshift.evaluate.core import (
    evaluate_dataset,
    evaluate_model,
    evaluate_run,
    head_columns,
    probe_set,
    split_for_probe,
)
from clipshift.evaluate.datasets import KINDS, EvalData, load_eval_data, world_set
from clipshift.evaluate.metrics import classification_metrics, group_metrics, retrieval_metrics
from clipshift.evaluate.model import EvalModel, from_module, image_features, open_model, zeroshot_weights
from clipshift.evaluate.probe import WD_GRID, knn_logits, linear_probe
from clipshift.evaluate.result import EvalResult, to_clip_benchmark_json
from clipshift.evaluate.templates import read_class_names, resolve_templates

__all__ = [
    "KINDS",
    "WD_GRID",
    "EvalConfig",
    "EvalData",
    "EvalModel",
    "EvalResult",
    "classification_metrics",
    "evaluate_dataset",
    "evaluate_model",
    "evaluate_run",
    "from_module",
    "group_metrics",
    "head_columns",
    "image_features",
    "knn_logits",
    "linear_probe",
    "load_eval_data",
    "open_model",
    "probe_set",
    "read_class_names",
    "resolve_templates",
    "retrieval_metrics",
    "split_for_probe",
    "to_clip_benchmark_json",
    "world_set",
    "zeroshot_weights",
]
