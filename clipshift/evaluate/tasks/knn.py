"""`knn`: k-nearest-neighbour votes among the probe set's frozen features (`evaluate.probe.knn_logits`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipshift.evaluate.tasks import TaskContext, register_task

if TYPE_CHECKING:
    from clipshift.evaluate.result import EvalResult


@register_task(
    "knn", "k-nearest-neighbour accuracy on frozen image features (cosine, similarity-weighted votes)",
    needs_probe=True,
)  # fmt: skip
def knn(ctx: TaskContext) -> EvalResult:
    from clipshift.evaluate.probe import knn_logits

    probe = ctx.probe
    assert probe is not None
    logits = knn_logits(probe.features, probe.labels, ctx.probe_features, probe.n_classes, ctx.knn_k)
    return ctx.score("knn", logits, ctx.probe_data, {**ctx.probe_info(), "k": ctx.knn_k})
