"""`linear_probe`: logistic regression on frozen image features (`evaluate.probe.linear_probe`), learnt
once from the probe set and shared by every set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipshift.evaluate.tasks import TaskContext, register_task
from clipshift.evaluate.units import declare

if TYPE_CHECKING:
    from clipshift.evaluate.result import EvalResult

declare("probe_wd", "value", "weight decay the linear probe chose")


@register_task(
    "linear_probe",
    "logistic regression on frozen image features (weight decay chosen on held-out probe features)",
    needs_probe=True,
)
def linear_probe_task(ctx: TaskContext) -> EvalResult:
    import torch

    assert ctx.probe is not None
    lp = ctx.probe.fitted()
    with torch.no_grad():
        logits = lp.logits(ctx.probe_features)
    res = ctx.score("linear_probe", logits, ctx.probe_data, ctx.probe_info())
    res.metrics["probe_wd"] = lp.wd
    return res
