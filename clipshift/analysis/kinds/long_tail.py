"""Long tail (Wen et al.): does per-class accuracy (and how often a class is predicted) track the class's
training frequency, and does that link differ across the levels of a factor?"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Literal

import numpy as np
from pydantic import Field

from clipshift.analysis.base import AnalysisBase
from clipshift.analysis.compare import Comparison, Estimate
from clipshift.analysis.context import Context
from clipshift.analysis.data import Run, label, value_key
from clipshift.analysis.finding import Embedded
from clipshift.analysis.registry import register
from clipshift.analysis.wording import (
    NO_SUPPORT,
    cap,
    ci_text,
    no_support_reason,
    num,
    pct,
    plus_minus,
    with_ci,
)


class LongTailSpec(AnalysisBase):
    """Long tail: per-class accuracy against training class frequency."""

    kind: Literal["long_tail"] = "long_tail"
    eval_set: str = Field(
        "iid",
        description="the evaluation set whose per-class accuracy is analysed (its name or spec, or a "
        "real-data set's dataset kind when one evaluated set has it)",
    )

    def set_fields(self) -> tuple[str, ...]:
        return ("eval_set",)


# (statistic, how a sentence names it, table column, digits)
_LONG_TAIL_STATS = (
    ("corr_acc", "Spearman ρ(class frequency, per-class accuracy)", "ρ(freq, accuracy)", 2),
    ("corr_pred", "Spearman ρ(class frequency, predictions per class)", "ρ(freq, predictions)", 2),
    ("tail_acc", "accuracy on the rarest third of classes (%)", "tail-third acc. (%)", 1),
    ("head_acc", "accuracy on the most frequent third of classes (%)", "head-third acc. (%)", 1),
)


@register(LongTailSpec, title="Long tail: accuracy vs class frequency")
def long_tail(ctx: Context[LongTailSpec]) -> None:
    a, data, f = ctx.spec, ctx.data, ctx.finding
    freq = data.per_class("train", "class_count")
    acc = data.per_class(a.eval_set, "class_acc", a.task)
    pred = data.per_class(a.eval_set, "class_pred_count", a.task)
    if not freq:
        f.conclude(
            f"{NO_SUPPORT}: the store has no training class frequencies (eval set 'train', "
            "metric class_count).",
            False,
        )
        return
    if not acc:
        f.conclude(f"{NO_SUPPORT}: no run has per-class accuracy (class_acc) on {a.eval_set!r}.", False)
        return
    mean_freq = _mean_per_class(list(freq.values()))
    per_run = _per_run_statistics(freq, acc, pred, mean_freq)
    fvals = list(mean_freq.values())
    if len(fvals) < 3 or max(fvals) == min(fvals):
        f.conclude(
            f"{NO_SUPPORT}: every class has the same training frequency, so accuracy cannot track it.", False
        )
        return
    f.details.append(
        f"Training frequency ranges from {min(fvals):.0f} to {max(fvals):.0f} samples per class "
        f"(max/median {max(fvals) / max(float(np.median(fvals)), 1e-9):.1f})."
    )
    if max(fvals) < 1.5 * float(np.median(fvals)):
        f.notes.append(
            "The classes are nearly balanced (max/median frequency below 1.5), so these correlations "
            "reflect sampling noise in the class counts more than a long tail."
        )
    columns: dict[str, dict[str, str]] = {}  # table column -> level key -> cell
    for stat, name, col, digits in _LONG_TAIL_STATS:
        values = {k: v for k, v in per_run[stat].items() if math.isfinite(v)}
        if not values:
            continue
        means, comps = ctx.compare_values(values)
        columns[col] = {lvk: plus_minus(est, digits) for lvk, est in means.items()}
        if stat == "corr_acc":
            _long_tail_headline(ctx, means, comps)
        else:
            for comp in comps:
                d = comp.diff
                verdict = "" if d.supports else f" — {no_support_reason(d)}"
                f.details.append(
                    f"{cap(name)}: {comp.name} {num(comp.level_mean.value, digits)} vs {comp.ref_name} "
                    f"{num(comp.ref_mean.value, digits)}, difference {num(d.value, digits)} "
                    f"({ci_text(d, digits)}{verdict})."
                )
        for comp in comps:
            ctx.record(stat, comp, eval_set=a.eval_set)
    runs_with = [r for r in ctx.runs if r.run_id in acc]
    levels = ctx.levels(runs_with)
    rows = []
    for lv in levels:
        n = sum(1 for r in runs_with if value_key(ctx.level_of(r)) == value_key(lv))
        cells = [columns[c].get(value_key(lv), "–") for c in columns]
        rows.append([label(lv) if ctx.compare else "all runs", str(n), *cells])
    table = ctx.level_table(
        f"Long-tail statistics on {a.eval_set} (mean ± {pct(ctx.ci)} CI)", list(columns), rows
    )
    table.note = (
        "ρ: Spearman correlation, per run, of each class's training frequency with its accuracy (Wen et "
        "al.'s corr_acc) or with how often it is predicted (corr_pred); tail/head third: the rarest/most "
        "frequent third of classes by training frequency."
    )
    f.tables.append(table)
    f.figures.append(_frequency_figure(ctx, runs_with, acc, freq, mean_freq))


def _per_run_statistics(
    freq: dict[str, dict[int, float]],
    acc: dict[str, dict[int, float]],
    pred: dict[str, dict[int, float]],
    mean_freq: dict[int, float],
) -> dict[str, dict[str, float]]:
    """statistic -> run id -> value, from each run's per-class accuracy and predictions against its own
    training frequencies (the mean ones where a run has none)."""
    from clipshift.analysis import longtail

    per_run: dict[str, dict[str, float]] = defaultdict(dict)
    for run_id, accs in acc.items():
        fr = freq.get(run_id, mean_freq)
        classes = sorted(set(accs) & set(fr))
        fv = [fr[c] for c in classes]
        per_run["corr_acc"][run_id] = longtail.spearman_frequency(fv, [accs[c] for c in classes])[0]
        if run_id in pred:
            pc = [c for c in classes if c in pred[run_id]]
            per_run["corr_pred"][run_id] = longtail.spearman_frequency(
                [fr[c] for c in pc], [pred[run_id][c] for c in pc]
            )[0]
        terc = longtail.tercile_means(fv, [100.0 * accs[c] for c in classes])
        per_run["tail_acc"][run_id] = terc["tail"]
        per_run["head_acc"][run_id] = terc["head"]
    return per_run


def _long_tail_headline(
    ctx: Context[LongTailSpec], means: dict[str, Estimate], comps: list[Comparison]
) -> None:
    if not comps:
        est = next(iter(means.values()))
        if est.supports:
            how = "rises" if est.value > 0 else "falls"
            ctx.conclude(
                f"Per-class accuracy {how} with training frequency: Spearman ρ = {with_ci(est, 2)}.",
                True,
                estimate=est,
                units="",
            )
        else:
            ctx.conclude(
                f"{NO_SUPPORT} about a link between class frequency and per-class accuracy: Spearman ρ = "
                f"{num(est.value, 2)} ({ci_text(est, 2)}; {no_support_reason(est)}).",
                False,
                estimate=est,
                units="",
            )
        return
    for comp in comps:
        d = comp.diff
        rho = f"ρ {num(comp.level_mean.value, 2)} vs {num(comp.ref_mean.value, 2)}"
        if d.supports:
            more = "more" if d.value > 0 else "less"
            ctx.conclude(
                f"Per-class accuracy follows training frequency {more} closely for {comp.name} than for "
                f"{comp.ref_name}: Spearman {rho}, a difference of {num(d.value, 2)} ({ci_text(d, 2)}).",
                True,
                comp=comp,
                units="",
            )
        else:
            ctx.conclude(
                f"{NO_SUPPORT} about whether per-class accuracy follows training frequency differently for "
                f"{comp.name} and {comp.ref_name}: Spearman {rho}, difference {num(d.value, 2)} "
                f"({ci_text(d, 2)}; {no_support_reason(d)}).",
                False,
                comp=comp,
                units="",
            )


def _mean_per_class(dicts: list[dict[int, float]]) -> dict[int, float]:
    acc: dict[int, list[float]] = defaultdict(list)
    for d in dicts:
        for c, v in d.items():
            acc[c].append(v)
    return {c: float(np.mean(v)) for c, v in acc.items()}


def _frequency_figure(
    ctx: Context[LongTailSpec],
    runs: list[Run],
    acc: dict[str, dict[int, float]],
    freq: dict[str, dict[int, float]],
    mean_freq: dict[int, float],
) -> Embedded:
    """One panel per level: per-class accuracy (mean over its runs) against training frequency."""
    from matplotlib.figure import Figure

    from clipshift.analysis import longtail, plots

    levels = ctx.levels(runs)
    fig = Figure(figsize=(min(4.2 * len(levels), 12.6), 3.8), layout="constrained")
    axes = fig.subplots(1, len(levels), sharey=True, squeeze=False)[0]
    for ax, lv in zip(axes, levels):
        sel = [r.run_id for r in runs if value_key(ctx.level_of(r)) == value_key(lv)]
        a_mean = _mean_per_class([acc[i] for i in sel])
        f_mean = _mean_per_class([freq[i] for i in sel if i in freq]) or mean_freq
        classes = sorted(set(a_mean) & set(f_mean))
        rho = longtail.spearman_frequency([f_mean[c] for c in classes], [a_mean[c] for c in classes])[0]
        # panels sit side by side: the level alone (the factor is in the caption) keeps titles apart
        name = label(lv) if ctx.compare else "all runs"
        plots.plot_accuracy_vs_frequency(
            [f_mean[c] for c in classes],
            [100.0 * a_mean[c] for c in classes],
            ax=ax,
            title=f"{name} (ρ of the mean = {num(rho, 2)})",
        )
        ax.set_ylabel(f"{ctx.spec.eval_set} accuracy (%)")
        ax.title.set_fontsize("small")
        plots.plain_log_ticks(ax.xaxis)
    return plots.embed(
        fig,
        f"Per-class accuracy on {ctx.spec.eval_set} (mean over seeds) against the number of training samples "
        f"of the class; one point per class{f', one panel per {ctx.compare}' if ctx.compare else ''}.",
    )
