"""Training curves: every run's logged loss against step, and whether it fell in each run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from clipshift.analysis.base import AnalysisBase
from clipshift.analysis.context import Context
from clipshift.analysis.data import Run, StudyData, label, value_key
from clipshift.analysis.registry import register

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class TrainingCurvesSpec(AnalysisBase):
    """Training curves: the loss of every run (coloured by the compared factor)."""

    kind: Literal["training_curves"] = "training_curves"


@register(TrainingCurvesSpec, title="Training curves")
def training_curves(ctx: Context[TrainingCurvesSpec]) -> None:
    from clipshift.analysis.plots import embed

    f = ctx.finding
    axes = ctx.data.axes()
    colour_by = ctx.compare or (axes[0] if axes else None)
    fig = curves_figure(ctx.data, ctx.data.runs, colour_by)
    if fig is None:
        f.conclude("No run logged a training curve (metrics.jsonl with step and loss).", False)
        return
    f.figures.append(embed(fig, f"Training loss per run{f', coloured by {colour_by}' if colour_by else ''}."))
    summary, all_fell = curve_summary(ctx.data, ctx.data.runs)
    f.conclude(summary, all_fell)  # a run whose loss did not fall is flagged, not reported as fine


def curve_summary(data: StudyData, runs: Sequence[Run]) -> tuple[str, bool]:
    """A factual line about the curves (in how many runs the loss fell, which went non-finite), and
    whether every run's loss fell."""
    fell, total, bad = 0, 0, []
    for r in runs:
        losses = [c.get("loss") for c in data.curve(r)]
        nums = [x for x in losses if isinstance(x, (int, float))]
        if not nums:
            continue
        total += 1
        if any(not math.isfinite(x) for x in nums):
            bad.append(r.run_id)
            continue
        k = max(1, len(nums) // 10)  # compare the first and last tenth, not two noisy single steps
        if np.mean(nums[-k:]) < np.mean(nums[:k]):
            fell += 1
    tail = f"; non-finite loss in {', '.join(bad)}" if bad else ""
    sentence = (
        f"The training loss fell from the first to the last tenth of training in {fell} of {total} runs"
    )
    sentence += f"{tail}."
    return sentence, fell == total


def curves_figure(data: StudyData, runs: Sequence[Run], colour_by: str | None) -> Figure | None:
    """Loss vs step of every run that logged metrics, one colour per level of `colour_by`."""
    from matplotlib.figure import Figure

    from clipshift.analysis.plots import level_colours, plain_log_ticks

    curves = [(r, data.curve(r)) for r in runs]
    curves = [(r, [c for c in cs if _finite(c.get("step")) and _finite(c.get("loss"))]) for r, cs in curves]
    curves = [(r, cs) for r, cs in curves if cs]
    if not curves:
        return None
    levels = data.levels(colour_by, [r for r, _ in curves]) if colour_by else []
    colours = level_colours(levels)
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    shown: set[str] = set()
    for run, cs in curves:
        k = value_key(run.factors.get(colour_by)) if colour_by else ""
        name = f"{colour_by}={label(run.factors.get(colour_by))}" if colour_by else None
        ax.plot(
            [c["step"] for c in cs],
            [c["loss"] for c in cs],
            color=colours.get(k, "#444444"),
            alpha=0.75,
            linewidth=1.2,
            label=name if name and name not in shown else None,
        )
        if name:
            shown.add(name)
    positive = all(c["loss"] > 0 for _, cs in curves for c in cs)
    if positive:
        ax.set_yscale("log")  # losses of different objectives span orders of magnitude
        plain_log_ticks(ax.yaxis)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss" + (" (log scale)" if positive else ""))
    ax.grid(True, alpha=0.3)
    if shown:
        ax.legend(frameon=False, fontsize=8)
    return fig


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
