"""Spurious backgrounds (CounterAnimal, Wang et al., 2024): the drop from the `common` evaluation set
(each class on its usual background) to `counter` (an unusual one), compared across the levels of a
factor within each combination of the others."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Literal

import numpy as np
from pydantic import Field

from clipshift.analysis.base import AnalysisBase
from clipshift.analysis.checks import Shifted
from clipshift.analysis.compare import mean_estimate, stratified_difference
from clipshift.analysis.context import Context
from clipshift.analysis.data import Run, combo_label, label, value_key
from clipshift.analysis.finding import Embedded, Table
from clipshift.analysis.registry import register
from clipshift.analysis.wording import (
    NO_SUPPORT,
    axis_label,
    cap,
    ci_text,
    magnitude,
    no_support_reason,
    num,
    pct,
    plus_minus,
    points,
)
from clipshift.evaluate.confusable import metric_n
from clipshift.evaluate.units import unit_of


class SpuriousDropSpec(AnalysisBase):
    """Spurious backgrounds: the drop from the common to the counter evaluation set."""

    kind: Literal["spurious_drop"] = "spurious_drop"
    common: str = "common"
    counter: str = "counter"
    within: str | None = Field(
        None,
        description="one evaluation set holding both as groups of `group_by` (CounterAnimal: "
        "'counteranimal', or its full spec 'counteranimal:/data/counteranimal'): `common` and `counter` "
        "then name its groups, whose accuracies (group_acc/<group_by>=<name>) are compared; empty: they "
        "name two evaluation sets",
    )
    group_by: str = Field("group", description="the ground-truth factor whose groups `within` compares")

    def set_fields(self) -> tuple[str, ...]:
        return ("within",) if self.within else ("common", "counter")


@register(SpuriousDropSpec, title="Spurious backgrounds: common vs counter")
def spurious_drop(ctx: Context[SpuriousDropSpec]) -> None:
    a, data, f = ctx.spec, ctx.data, ctx.finding
    s = unit_of(a.metric).scale
    if a.within:
        found = _groups_within(ctx)
        if found is None:
            return
        common, counter = found
    else:
        common, counter = data.scalar(a.common, a.metric, a.task), data.scalar(a.counter, a.metric, a.task)
    drops = {r: s * (common[r] - counter[r]) for r in common if r in counter}
    what = f"{a.common}−{a.counter} drop"
    pts = points(a.metric)
    if not drops:
        f.conclude(f"{NO_SUPPORT}: no run has {a.metric} on both {a.common!r} and {a.counter!r}.", False)
        return
    floor = _counter_floor(a, counter, s)
    means, comps = ctx.compare_values(drops, within=[ctx.floor(floor) if floor else None])
    if not comps:
        est = next(iter(means.values()))
        if est.supports:
            verb = "falls" if est.value > 0 else "rises"
            ctx.conclude(
                f"{a.metric} {verb} by {num(abs(est.value))} {pts} ({ci_text(magnitude(est))}) from "
                f"{a.common} to {a.counter}.",
                True,
                estimate=est,
            )
        else:
            ctx.conclude(
                f"{NO_SUPPORT} about a {what}: {num(est.value)} {pts} ({ci_text(est)}; "
                f"{no_support_reason(est)}).",
                False,
                estimate=est,
            )
        f.numbers.append({"what": "drop", "mean": est.to_dict()})
    for comp in comps:
        d = comp.diff
        if d.supports:
            big, small = (comp.name, comp.ref_name) if d.value > 0 else (comp.ref_name, comp.name)
            big_m, small_m = (
                (comp.level_mean, comp.ref_mean) if d.value > 0 else (comp.ref_mean, comp.level_mean)
            )
            ctx.conclude(
                f"{cap(big)}'s {what} exceeds {small}'s by {num(abs(d.value))} {pts} "
                f"({ci_text(magnitude(d))}; drops {num(big_m.value)} vs {num(small_m.value)}).",
                True,
                comp=comp,
            )
        else:
            ctx.conclude(
                f"{NO_SUPPORT} about a difference in the {what} between {comp.name} and {comp.ref_name}: "
                f"{num(d.value)} {pts} ({ci_text(d)}; {no_support_reason(d)}).",
                False,
                comp=comp,
            )
        ctx.record("drop", comp)
    rows = []
    runs_with = [r for r in ctx.runs if r.run_id in drops]
    for lv in ctx.levels(runs_with):
        ids = [r.run_id for r in runs_with if value_key(ctx.level_of(r)) == value_key(lv)]
        rows.append(
            [
                label(lv) if ctx.compare else "all runs",
                str(len(ids)),
                plus_minus(mean_estimate([s * common[i] for i in ids], ctx.ci)),
                plus_minus(mean_estimate([s * counter[i] for i in ids], ctx.ci)),
                plus_minus(mean_estimate([drops[i] for i in ids], ctx.ci)),
            ]
        )
    u = unit_of(a.metric).suffix.strip()
    f.tables.append(
        ctx.level_table(
            f"{a.metric} on {a.common} and {a.counter} (mean ± {pct(ctx.ci)} CI)",
            [
                f"{a.common} ({u})" if u else a.common,
                f"{a.counter} ({u})" if u else a.counter,
                f"drop ({pts})",
            ],
            rows,
        )
    )
    strata = ctx.strata_axes()
    if ctx.compare and strata:
        f.tables.append(_per_stratum_table(ctx, drops, strata, f"{what} ({pts}) within each combination"))
    f.figures.append(_counter_common_figure(ctx, common, counter, s))


def _counter_floor(a: SpuriousDropSpec, counter: dict[str, float], s: float) -> Shifted | None:
    """The counter set for the floor check: an arm at chance there has a drop as large as its common
    accuracy allows, so comparing drops would compare common accuracies. Accuracies only; the chance of
    "1 vs N confusable" is 1/(N+1)."""
    n = metric_n(a.metric)
    if a.metric != "acc1" and n is None:
        return None
    chance = 100.0 / (n + 1) if n is not None else None  # None: one over the classes
    return Shifted(a.counter, {r: s * v for r, v in counter.items()}, chance)


def _groups_within(ctx: Context[SpuriousDropSpec]) -> tuple[dict[str, float], dict[str, float]] | None:
    """Each run's accuracy on the `common` and `counter` groups of the one set `within` names (already
    resolved, by name or dataset kind, by `AnalysisBase.with_sets`); None when it cannot (the finding says
    why)."""
    a, f = ctx.spec, ctx.finding
    sets = ctx.data.eval_sets()
    if a.within not in sets:
        shown = ", ".join(sets) or "none"
        f.conclude(f"{NO_SUPPORT}: within {a.within!r} names no set (evaluation sets: {shown}).", False)
        return None
    if a.metric != "acc1":
        f.conclude(f"{NO_SUPPORT}: group accuracies are top-1 (metric acc1), not {a.metric}.", False)
        return None
    return tuple(  # type: ignore[return-value]
        ctx.data.scalar(a.within, f"group_acc/{a.group_by}={g}", a.task) for g in (a.common, a.counter)
    )


def _per_stratum_table(
    ctx: Context[SpuriousDropSpec], values: dict[str, float], strata: list[str], title: str
) -> Table:
    """The comparison repeated within each combination of the other factors."""
    runs = [r for r in ctx.runs if r.run_id in values]
    groups: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        groups["|".join(value_key(r.factors.get(a)) for a in strata)].append(r)
    levels = ctx.levels(runs)
    ref = ctx.reference_level(levels)
    others = [lv for lv in levels if value_key(lv) != value_key(ref)]
    rows = []
    for rs in groups.values():
        per = {
            value_key(lv): [values[r.run_id] for r in rs if value_key(ctx.level_of(r)) == value_key(lv)]
            for lv in levels
        }
        row = [combo_label(rs[0].factors, strata)]
        row += [plus_minus(mean_estimate(per[value_key(lv)], ctx.ci)) for lv in levels]
        for lv in others:
            d = stratified_difference([(per[value_key(lv)], per[value_key(ref)])], ctx.ci)
            row.append(f"{num(d.value)} ({ci_text(d)})" if math.isfinite(d.value) else "–")
        rows.append(row)
    cols = ["other factors", *[label(lv) for lv in levels], *[f"{label(lv)} − {label(ref)}" for lv in others]]
    return Table(title, cols, rows, numeric_from=1)


def _counter_common_figure(
    ctx: Context[SpuriousDropSpec], common: dict[str, float], counter: dict[str, float], s: float
) -> Embedded:
    from clipshift.analysis import plots

    a = ctx.spec
    runs = [r for r in ctx.runs if r.run_id in common and r.run_id in counter]
    fig = plots.plot_counter_common(
        [s * common[r.run_id] for r in runs],
        [s * counter[r.run_id] for r in runs],
        title=f"{a.counter} vs {a.common} ({a.metric})",
    )
    ax = fig.axes[0]
    ax.ticklabel_format(useOffset=False)  # nearly equal accuracies would otherwise read "+1e1"
    axis = ctx.compare or ("family" if "family" in ctx.data.axes() else None)
    if axis:
        # colour each run by its level (an evaluation study: its family), over the plain markers, with
        # the least-squares line of each level's runs
        levels = ctx.data.levels(axis, runs)
        colours = plots.level_colours(levels)
        for lv in levels:
            sel = [r for r in runs if value_key(r.factors.get(axis)) == value_key(lv)]
            cx = np.array([s * common[r.run_id] for r in sel])
            ky = np.array([s * counter[r.run_id] for r in sel])
            colour = colours[value_key(lv)]
            ax.scatter(
                cx,
                ky,
                s=42,
                color=colour,
                edgecolors="white",
                linewidths=0.6,
                label=f"{axis}={label(lv)}",
                zorder=7,
            )
            line = level_line(cx, ky)
            if line is not None:
                slope, intercept = line
                gx = np.linspace(float(cx.min()), float(cx.max()), 2)
                ax.plot(gx, slope * gx + intercept, color=colour, linewidth=1.4, zorder=6)
                ctx.finding.numbers.append(
                    {"what": "counter_vs_common_line", axis: lv, "slope": slope, "intercept": intercept}
                )
                ctx.finding.notes.append(
                    f"{axis}={label(lv)}: {a.counter} = {num(slope, 2)} × {a.common} "
                    f"{'+' if intercept >= 0 else '−'} {num(abs(intercept))} "
                    f"(least squares, {len(sel)} runs)."
                )
        ax.legend(loc="upper left", fontsize="small", frameon=False)
    ax.set_xlabel(f"{a.common} {axis_label(a.metric)}")
    ax.set_ylabel(f"{a.counter} {axis_label(a.metric)}")
    return plots.embed(
        fig,
        f"One point per run: {a.metric} on {a.counter} against {a.common}. Points below the dashed "
        "diagonal lose accuracy when the background is unusual"
        + (f"; solid: each {axis}'s least-squares line (of two or more runs)." if axis else "."),
    )


def level_line(common: Any, counter: Any) -> tuple[float, float] | None:
    """(slope, intercept) of the least-squares line of counter on common accuracy; None for fewer than two
    runs or one common accuracy."""
    cx, ky = np.asarray(common, dtype=float), np.asarray(counter, dtype=float)
    if cx.size < 2 or np.ptp(cx) == 0:
        return None
    slope, intercept = np.polyfit(cx, ky, 1)
    return float(slope), float(intercept)
