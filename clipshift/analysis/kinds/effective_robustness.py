"""Effective robustness (Taori et al., 2020): how far runs lie above the line that baseline runs define
between in-distribution and shifted accuracy (logit or probit axes), compared across the levels of a
factor, with intervals that carry the fitted line's own uncertainty."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from clipshift.analysis.base import AnalysisBase
from clipshift.analysis.checks import ArmCheck, Shifted, line_range_check
from clipshift.analysis.compare import Estimate, LineReplicates, line_replicates, mean_estimate
from clipshift.analysis.context import Context
from clipshift.analysis.data import Run, label, matches, value_key
from clipshift.analysis.finding import Embedded, Table
from clipshift.analysis.registry import register
from clipshift.analysis.wording import (
    NO_SUPPORT,
    cap,
    ci_text,
    magnitude,
    no_support_reason,
    num,
    pct,
    plus_minus,
)
from clipshift.errors import UserError
from clipshift.evaluate.units import unit_of

if TYPE_CHECKING:
    from clipshift.analysis.effective_robustness import Fit
    from clipshift.analysis.reference import ReferenceSet


class EffectiveRobustnessSpec(AnalysisBase):
    """Effective robustness: shifted accuracy above the line through the baseline runs."""

    kind: Literal["effective_robustness"] = "effective_robustness"
    x: str = Field(
        "iid",
        description="the in-distribution evaluation set (x axis): its name or spec, or a real-data set's "
        "dataset kind ('imagenet' for 'imagenet:/data/imagenet/val') when one evaluated set has it",
    )
    y: list[str] = Field(
        default_factory=list, description="shifted evaluation sets, named as x (empty: every other set)"
    )
    baseline: dict[str, Any] = Field(
        default_factory=dict,
        description="factor filter selecting the runs the baseline line is fitted on, e.g. "
        "{'objective.name': 'supervised'}; empty: all runs",
    )
    transform: Literal["logit", "probit"] = "logit"
    reference: Literal["imagenet-testbed"] | None = Field(
        None,
        description="'imagenet-testbed': measure every run (an evaluation study's models) from the line "
        "through the shipped testbed's reference models instead of one through the study's runs, on the "
        "shift's own class subset where the testbed plots it so (x an ImageNet val set, e.g. "
        "'imagenet:/data/imagenet/val'; the sets named by their dataset kind): a table of each model's "
        "accuracies and effective robustness with an interval, and the models on the testbed's scatter",
    )

    def axis_filters(self) -> dict[str, dict[str, Any]]:
        return {"baseline": self.baseline, "where": self.where}

    def set_fields(self) -> tuple[str, ...]:
        return ("x", "y")

    def reference_filter(self) -> dict[str, Any]:
        return self.baseline


@register(EffectiveRobustnessSpec, title="Effective robustness")
def effective_robustness_analysis(ctx: Context[EffectiveRobustnessSpec]) -> None:
    a, data, f = ctx.spec, ctx.data, ctx.finding
    ys = a.y or [s for s in data.eval_sets() if s != a.x]
    if unit_of(a.metric).unit != "fraction":
        f.conclude(
            f"{NO_SUPPORT}: {a.metric!r} is not an accuracy, and the {a.transform} axes need one.", False
        )
        return
    if not ys:
        f.conclude(f"{NO_SUPPORT}: the study has no evaluation set besides {a.x!r}.", False)
        return
    if a.reference:
        _placed_on_reference(ctx, ys)
        return
    line_of = _line_of(baseline := dict(a.baseline))
    f.notes.append(
        "Intervals of effective-robustness differences carry two sources of uncertainty: the spread "
        f"across seeds, and the fitted line's own (the line refitted to {ctx.n_boot} resamples of its "
        "runs), which grows with the distance from the line's runs."
    )
    for y in ys:
        _on_shift(ctx, y, baseline, line_of)


def _on_shift(ctx: Context[EffectiveRobustnessSpec], y: str, baseline: dict[str, Any], line_of: str) -> None:
    """Fit the line on one shifted set, word each level's ER against the reference level's, and add the
    table, the line's notes and the figure."""
    from clipshift.analysis import effective_robustness as er
    from clipshift.analysis.reference import reference_from_rows

    a, f = ctx.spec, ctx.finding
    try:
        ref = reference_from_rows(ctx.data.rows, a.x, y, a.metric, baseline or None, task=a.task)
        fit = er.fit_line(ref.x[ref.is_reference], ref.y[ref.is_reference], a.transform)
    except UserError as e:
        f.conclude(f"{NO_SUPPORT} on {y}: {e}.", False)
        return
    ers = er.effective_robustness(fit, ref.x, ref.y)
    values = dict(zip(ref.models, ers.tolist()))
    line = line_replicates(ref, a.transform, ctx.n_boot)
    in_line = {m for m, is_ref in zip(ref.models, ref.is_reference) if is_ref}
    group_of: Callable[[Run], Any] = ctx.level_of
    groups: list[Any] = ctx.levels([r for r in ctx.runs if r.run_id in values])
    within = [
        ctx.floor(Shifted(y, dict(zip(ref.models, ref.y.tolist())))),
        _on_the_line(ctx, ref, ref.x[ref.is_reference]),
    ]
    if ctx.compare:
        _, comps = ctx.compare_values(values, line=line, within=within)
    elif baseline:
        # no compare factor: the runs off the line against the runs that define it
        group_of, groups = _membership(in_line, "the baseline", "the other"), ["the baseline", "the other"]
        _, comps = ctx.compare_values(
            values,
            level_of=group_of,
            levels=groups,
            ref="the baseline",
            strata_axes=[x for x in ctx.strata_axes() if x not in baseline],
            line=line,
            within=within,
        )
    else:
        comps = []
        f.conclude(
            f"{NO_SUPPORT} on {y}: with neither `compare` nor `baseline` every run defines the line, "
            "so effective robustness compares nothing.",
            False,
        )
    for comp in comps:
        d = comp.diff
        # is the reference level exactly the set of runs that define the line?
        ref_is_line = not ctx.compare or (
            ctx.compare in baseline and matches({ctx.compare: comp.ref}, {ctx.compare: baseline[ctx.compare]})
        )
        ctx.conclude(
            _sentence(comp.name, comp.ref_name, d, y, line_of, ref_is_line),
            d.supports,
            comp=comp,
            judged_on=y,
        )
        ctx.record("effective_robustness", comp, eval_set=y)
    f.tables.append(_level_table(ctx, ref, values, groups, group_of, y))
    base_x = ref.x[ref.is_reference]
    f.notes.append(
        f"{y}: {a.transform} line through {fit.n} runs (slope {num(fit.slope, 2)}, intercept "
        f"{num(fit.intercept, 2)}, R² {num(fit.r2, 2)}); ER of the line's own runs averages "
        f"{num(float(np.mean(ers[ref.is_reference])))} points."
    )
    if np.ptp(base_x) < 2.0:
        f.notes.append(
            f"{y}: the line's runs span only {num(float(np.ptp(base_x)))} points of {a.x} accuracy, so "
            "its slope is poorly determined; effective robustness far from them is an extrapolation."
        )
    f.figures.append(_er_figure(ctx, ref, fit, y, in_line, line))


def _on_the_line(ctx: Context[EffectiveRobustnessSpec], points: ReferenceSet, line_x: np.ndarray) -> ArmCheck:
    """The line-range check (`checks.line_range_check`) for runs measured against a line whose own runs
    have accuracies `line_x` on the x set; `points` holds every run's x."""
    x = dict(zip(points.models, points.x.tolist()))
    name = ctx.spec.x
    return lambda arms: line_range_check(arms, x, line_x.tolist(), name, ctx.spec.checks)


def _level_table(
    ctx: Context[EffectiveRobustnessSpec],
    ref: ReferenceSet,
    values: dict[str, float],
    groups: list[Any],
    group_of: Callable[[Run], Any],
    y: str,
) -> Table:
    """x and y accuracy and ER of each group of runs (mean ± CI)."""
    a = ctx.spec
    rows = []
    xs = dict(zip(ref.models, ref.x.tolist()))
    yv = dict(zip(ref.models, ref.y.tolist()))
    for lv in groups:
        ids = [r.run_id for r in ctx.runs if r.run_id in values and value_key(group_of(r)) == value_key(lv)]
        rows.append(
            [
                label(lv) if lv is not None else "all runs",
                str(len(ids)),
                plus_minus(mean_estimate([xs[i] for i in ids], ctx.ci)),
                plus_minus(mean_estimate([yv[i] for i in ids], ctx.ci)),
                plus_minus(mean_estimate([values[i] for i in ids], ctx.ci)),
            ]
        )
    return ctx.level_table(
        f"{y}: effective robustness by {ctx.compare or 'run group'} (mean ± {pct(ctx.ci)} CI)",
        [f"{a.x} {a.metric} (%)", f"{y} {a.metric} (%)", "ER (points)"],
        rows,
    )


def _line_of(baseline: dict[str, Any]) -> str:
    """How the sentences name the reference line."""
    if not baseline:
        return "the line fitted through all runs"
    if len(baseline) == 1:
        ((axis, value),) = baseline.items()
        named = label(value) if isinstance(value, str) else f"{axis.rsplit('.', 1)[-1]}={label(value)}"
        return f"the line fitted through the {named} runs"
    return (
        "the line fitted through the baseline runs ("
        + ", ".join(f"{k}={label(v)}" for k, v in baseline.items())
        + ")"
    )


def _sentence(name: str, ref_name: str, d: Estimate, y: str, line_of: str, ref_is_line: bool) -> str:
    """The conclusion about one level's effective robustness against the reference level's."""
    side = "above" if d.value > 0 else "below"
    if ref_is_line and d.supports:
        return (
            f"{cap(name)} runs lie {num(abs(d.value))} points ({ci_text(magnitude(d))}) {side} "
            f"{line_of} on {y}."
        )
    if d.supports:
        verb = "exceeds" if d.value > 0 else "falls short of"
        return (
            f"On {y}, the effective robustness of {name} runs {verb} that of {ref_name} "
            f"runs by {num(abs(d.value))} points ({ci_text(magnitude(d))}), measured from {line_of}."
        )
    if ref_is_line:
        return (
            f"{NO_SUPPORT} on {y}: {name} runs lie {num(d.value)} points from {line_of} "
            f"({ci_text(d)}; {no_support_reason(d)})."
        )
    return (
        f"{NO_SUPPORT} on {y}: the effective robustness of {name} runs differs from that of "
        f"{ref_name} runs by {num(d.value)} points ({ci_text(d)}; {no_support_reason(d)})."
    )


def _membership(members: set[str], inside: str, outside: str) -> Callable[[Run], Any]:
    return lambda r: inside if r.run_id in members else outside


def _er_figure(
    ctx: Context[EffectiveRobustnessSpec],
    ref: ReferenceSet,
    fit: Fit,
    y: str,
    in_line: set[str],
    line: LineReplicates,
) -> Embedded:
    from clipshift.analysis import effective_robustness as er
    from clipshift.analysis import plots
    from clipshift.analysis.reference import ReferenceSet

    a = ctx.spec
    lo_x, hi_x = float(ref.x.min()), float(ref.x.max())
    pad = max(hi_x - lo_x, 2.0) * 0.1
    grid = np.linspace(max(lo_x - pad, 0.5), min(hi_x + pad, 99.5), 60)
    # the band of the same refitted lines whose spread widens the ER intervals
    band = (grid, *er.lines_band(line.slopes, line.intercepts, grid, a.transform, ctx.ci))
    by_id = {r.run_id: r for r in ctx.runs}
    highlight: dict[str, tuple[list[float], list[float]]] = {}
    for m, x, yy in zip(ref.models, ref.x.tolist(), ref.y.tolist()):
        if m in in_line or m not in by_id:
            continue
        name = f"{ctx.compare}={label(ctx.level_of(by_id[m]))}" if ctx.compare else "other runs"
        highlight.setdefault(name, ([], []))
        highlight[name][0].append(x)
        highlight[name][1].append(yy)
    # only the line's runs as the reference set: the others appear once, as highlighted groups
    line_ref = ReferenceSet(
        [m for m, k in zip(ref.models, ref.is_reference) if k],
        ref.x[ref.is_reference],
        ref.y[ref.is_reference],
        np.ones(int(ref.is_reference.sum()), dtype=bool),
        ref.x_name,
        ref.y_name,
        ref.source,
    )
    fig = plots.plot_effective_robustness(
        line_ref, fit, band=band, highlight=highlight, title=f"{y} vs {a.x} ({a.transform} axes)"
    )
    return plots.embed(
        fig,
        f"{y} vs {a.x} accuracy on {a.transform} axes: blue = runs defining the line (with its "
        f"{pct(ctx.ci)} bootstrap band), large markers = the other runs; dashed: y = x.",
    )


def _placed_on_reference(ctx: Context[EffectiveRobustnessSpec], ys: list[str]) -> None:
    """Every run on the reference's line, shift by shift (clipshift.analysis.placement)."""
    from clipshift.analysis.placement import testbed_column

    a, f = ctx.spec, ctx.finding
    if a.metric != "acc1" or testbed_column(a.x) != "val":
        f.conclude(
            f"{NO_SUPPORT}: the {a.reference} line is of top-1 accuracy (metric acc1) against ImageNet val "
            f"(x an imagenet set), not {a.metric} on {a.x!r}.",
            False,
        )
        return
    if a.baseline:
        f.notes.append(f"baseline {a.baseline} is not used: the line is {a.reference}'s.")
    f.notes.append(
        f"Each model's effective robustness is measured from the {a.reference} line. Its interval "
        f"({pct(ctx.ci)}, percentile of {ctx.n_boot} replicates) covers the line's uncertainty (refitted "
        "to resamples of the testbed's reference models) and the model's finite test sets (its x and y "
        "redrawn as binomial proportions of the images scored); not another training run of the model. "
        "Differences between groups carry the line's uncertainty and the spread across each group's models."
    )
    for y in ys:
        _place_on_shift(ctx, y)


def _place_on_shift(ctx: Context[EffectiveRobustnessSpec], y: str) -> None:
    from clipshift.analysis import effective_robustness as er
    from clipshift.analysis import plots
    from clipshift.analysis.compare import line_replicates
    from clipshift.analysis.placement import SUBSET_OF, place, testbed_column
    from clipshift.analysis.reference import ReferenceSet, load_reference

    a, data, f = ctx.spec, ctx.data, ctx.finding
    try:
        ref = load_reference(str(a.reference), "val", testbed_column(y))
        fit = ref.fit(a.transform)
    except UserError as e:
        f.conclude(f"{NO_SUPPORT} on {y}: {e}.", False)
        return
    # the model's x on the same classes as the testbed's x column of this shift
    subset = SUBSET_OF.get(ref.y_name) if ref.x_name != "val" else None
    prefix = f"subset/{subset}/" if subset else ""
    xv, yv = data.scalar(a.x, prefix + a.metric, a.task), data.scalar(y, a.metric, a.task)
    nx, ny = data.scalar(a.x, prefix + "n", a.task), data.scalar(y, "n", a.task)
    runs = [r for r in ctx.runs if r.run_id in xv and r.run_id in yv]
    if not runs:
        f.conclude(
            f"{NO_SUPPORT} on {y}: no run has {prefix + a.metric} on {a.x!r} and {a.metric} on {y!r}.", False
        )
        return
    f.notes += [f"{y}: {n}" for n in ref.notes]
    on_line = ref.is_reference
    slopes, intercepts = er.bootstrap_lines(ref.x[on_line], ref.y[on_line], a.transform, ctx.n_boot, seed=0)
    values: dict[str, float] = {}
    rows = []
    named: dict[str, tuple[list[str], list[float], list[float]]] = {}
    group_axis = ctx.compare or ("family" if any("family" in r.factors for r in runs) else None)
    for i, r in enumerate(runs):
        x, yy = 100.0 * xv[r.run_id], 100.0 * yv[r.run_id]
        n_x, n_y = nx.get(r.run_id), ny.get(r.run_id)
        p = place(
            fit, slopes, intercepts, x, yy, int(n_x) if n_x else None, int(n_y) if n_y else None, ctx.ci, i
        )
        values[r.run_id] = p.er
        name = str(r.factors.get("model", r.run_id))
        group = label(r.factors.get(group_axis)) if group_axis else "runs"
        entry = named.setdefault(f"{group_axis}={group}" if group_axis else group, ([], [], []))
        entry[0].append(name)
        entry[1].append(x)
        entry[2].append(yy)
        rows.append(
            [name, group, num(x), num(yy), num(p.predicted), num(p.er), f"[{num(p.lo)}, {num(p.hi)}]"]
        )
        f.numbers.append(
            {
                "what": "placement",
                "eval_set": y,
                "run_id": r.run_id,
                "model": name,
                "x": x,
                "y": yy,
                "line": p.predicted,
                "er": p.er,
                "ci": [p.lo, p.hi],
            }
        )
    f.tables.append(
        Table(
            f"{y}: each model on the {a.reference} line ({ref.y_name} vs {ref.x_name}, {a.transform} fit "
            f"through {fit.n} models)",
            [
                "model",
                group_axis or "group",
                f"{ref.x_name} (%)",
                f"{y} (%)",
                "line (%)",
                "ER (points)",
                f"{pct(ctx.ci)} CI",
            ],
            rows,
            note="n (images) not recorded: intervals cover the line only"
            if any(r.run_id not in nx or r.run_id not in ny for r in runs)
            else None,
            numeric_from=2,
        )
    )
    line_of = f"the {a.reference} line"
    if ctx.compare:
        combined = ReferenceSet(
            [*ref.models, *values],
            np.concatenate([ref.x, [100.0 * xv[i] for i in values]]),
            np.concatenate([ref.y, [100.0 * yv[i] for i in values]]),
            np.concatenate([on_line, np.zeros(len(values), dtype=bool)]),
            ref.x_name,
            ref.y_name,
            ref.source,
        )
        _, comps = ctx.compare_values(
            values,
            line=line_replicates(combined, a.transform, ctx.n_boot),
            within=[
                ctx.floor(Shifted(y, {i: 100.0 * yv[i] for i in values})),
                _on_the_line(ctx, combined, ref.x[on_line]),
            ],
        )
        for comp in comps:
            ctx.conclude(
                _sentence(comp.name, comp.ref_name, comp.diff, y, line_of, False),
                comp.diff.supports,
                comp=comp,
            )
            ctx.record("effective_robustness", comp, eval_set=y)
    if not ctx.compare or not comps:
        lo, hi = min(values.values()), max(values.values())
        f.conclude(
            f"On {y}, the {len(values)} models lie {num(lo)} to {num(hi)} points from {line_of} (each "
            "with its interval in the table below).",
            True,
        )
    grid = plots.view_grid(ref, fit, {k: (v[1], v[2]) for k, v in named.items()})
    band = (grid, *er.lines_band(slopes, intercepts, grid, a.transform, ctx.ci))
    fig = plots.plot_effective_robustness(
        ref, fit, band=band, named=named, title=f"{y} vs {ref.x_name} ({a.transform} axes)"
    )
    f.figures.append(
        plots.embed(
            fig,
            f"The {a.reference} models ({ref.y_name} vs {ref.x_name}; blue: the line's, with its "
            f"{pct(ctx.ci)} bootstrap band) and each evaluated model, labelled, one colour and "
            f"marker per {group_axis or 'group'}; dashed: y = x.",
        )
    )
