"""`zeroshot_classification`: a CLIP model classifies zero-shot with class names x templates; a
classifier answers with its own head (its result's task is then `classification`, an alias). Scores
the whole set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clipshift.errors import UserError
from clipshift.evaluate.tasks import TaskContext, register_task

if TYPE_CHECKING:
    import torch

    from clipshift.evaluate.datasets import EvalData
    from clipshift.evaluate.model import EvalModel
    from clipshift.evaluate.result import EvalResult

ZS_SCALE = 100.0  # CLIP_benchmark's logit scale for zero-shot (argmax and top-k do not depend on it)


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
    if model.label_space is not None:  # an ImageNet head: the set's classes must name ImageNet classes
        from clipshift.evaluate.datasets.imagenet import imagenet_columns

        return imagenet_columns(data.class_names, data.name, model.name)
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
    import torch

    from clipshift.evaluate.metrics import collapse
    from clipshift.evaluate.model import zeroshot_weights

    if model.kind == "clip":
        w = zeroshot_weights(model, data.class_names, templates)
        return ZS_SCALE * features @ w.T, "zeroshot_classification", w
    cols = head_columns(model, data)
    head: Any = getattr(model.module, "head")  # noqa: B009
    with torch.inference_mode():
        logits = collapse(head(features.to(model.device)).float().cpu(), cols)
    protos = model.head_weights()[[c[0] for c in cols]].float()
    return logits, "classification", protos


@register_task(
    "zeroshot_classification",
    "zero-shot from class names x templates (a classifier: its own head, task 'classification')",
    aliases=("classification",),
)
def zeroshot_classification(ctx: TaskContext) -> EvalResult:
    logits, task, ctx.prototypes = class_scores(ctx.model, ctx.data, ctx.features, ctx.templates)
    info = {"templates": ctx.templates} if task == "zeroshot_classification" else {}
    return ctx.score(task, logits, ctx.data, info)
