"""`retrieval`: image-text retrieval on a set of image-text pairs (a csv: set), recall@k both ways."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipshift.errors import UserError
from clipshift.evaluate.tasks import TaskContext, register_task
from clipshift.evaluate.units import declare

if TYPE_CHECKING:
    from clipshift.evaluate.result import EvalResult

declare("n_images", "count", "images of a retrieval set")
declare("n_texts", "count", "distinct texts of a retrieval set")


@register_task(
    "retrieval",
    "image-text retrieval recall@1/5/10 both ways (csv: sets, which always get it)",
    retrieval=True,
)
def retrieval(ctx: TaskContext) -> EvalResult:
    from clipshift.evaluate.metrics import retrieval_metrics
    from clipshift.evaluate.model import text_features
    from clipshift.evaluate.result import EvalResult

    data = ctx.data
    if data.texts is None or data.image_text is None:
        raise UserError(f"{ctx.name}: retrieval needs image-text pairs (a csv: dataset)")
    if ctx.model.kind != "clip":
        raise UserError("retrieval needs a CLIP model (this is a classifier)")
    metrics = retrieval_metrics(ctx.features, text_features(ctx.model, data.texts), data.image_text)
    metrics.update({"n_images": float(len(data)), "n_texts": float(len(data.texts))})
    return EvalResult(ctx.name, "zeroshot_retrieval", metrics, info={"source": data.source, **data.info})
