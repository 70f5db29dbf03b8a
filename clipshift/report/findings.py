"""One `Finding` per analysis a study asks for: conclusions computed from the data, with their CIs.

A conclusion is drawn only when the confidence interval across seeds excludes zero (and has width:
identical values from every seed signal a degenerate run, not certainty); otherwise (or with
a single seed) the sentence says that the data do not support one. Differences between the levels of
the `compare` factor are estimated within each combination of the other factors (see `estimates`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from pydantic import ValidationError

from clipshift.analysis import effective_robustness as er
from clipshift.analysis import longtail, plots
from clipshift.analysis.reference import ReferenceSet, reference_from_rows
from clipshift.analysis.spec import OWN, TASK_NAMES, AnalysisSpec
from clipshift.errors import UserError, format_validation_error
from clipshift.report.data import Run, StudyData, combo_label, label, matches, value_key, zipped_with
from clipshift.report.estimates import (
    Estimate,
    ci_text,
    magnitude,
    mean_estimate,
    num,
    plus_minus,
    stratified_difference,
    usable_strata,
    with_ci,
)
from clipshift.report.figures import Embedded, embed, level_colours, plain_log_ticks, training_curves
from clipshift.report.tables import Table, is_fraction, scale, unit

NO_SUPPORT = "The data do not support a conclusion"
DEFAULT_TITLES = {
    "effective_robustness": "Effective robustness",
    "spurious_drop": "Spurious backgrounds: common vs counter",
    "long_tail": "Long tail: accuracy vs class frequency",
    "training_curves": "Training curves",
    "metrics": "Metrics",
    "theory": "Latent simulator",
}


@dataclass
class Finding:
    kind: str
    title: str
    conclusions: list[str] = field(default_factory=list)  # the headline sentences, shown in bold
    supported: list[bool] = field(default_factory=list)  # per conclusion: did the CI exclude 0?
    details: list[str] = field(default_factory=list)  # further computed statements
    notes: list[str] = field(default_factory=list)  # caveats about the data or the method
    tables: list[Table] = field(default_factory=list)
    figures: list[Embedded] = field(default_factory=list)
    numbers: list[dict[str, Any]] = field(default_factory=list)  # machine-readable estimates

    def conclude(self, sentence: str, supported: bool) -> None:
        self.conclusions.append(sentence)
        self.supported.append(supported)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "conclusions": self.conclusions,
            "supported": self.supported,
            "details": self.details,
            "notes": self.notes,
            "numbers": self.numbers,
            "tables": [t.to_dict() for t in self.tables],
        }


def analyses_of(spec: dict[str, Any]) -> list[AnalysisSpec]:
    out = []
    for i, a in enumerate(spec.get("analyses") or []):
        try:
            out.append(AnalysisSpec.model_validate(a))
        except ValidationError as e:
            raise UserError(format_validation_error(e, "study spec", prefix=f"analyses[{i}]")) from None
    return out


def findings(data: StudyData, ci: float = 0.95, n_boot: int = 1000) -> list[Finding]:
    """Every analysis of the study's spec, in order."""
    out = []
    for a in analyses_of(data.spec):
        probe = "" if a.task == OWN else f" ({TASK_NAMES[a.task]})"  # a probe's finding says so
        f = Finding(a.kind, a.title or DEFAULT_TITLES[a.kind] + probe)
        if a.where:
            f.details.append(f"Runs analysed: those with {combo_label(a.where, list(a.where))}.")
        ctx = _Context(data, a, ci, n_boot, f)
        try:
            _KINDS[a.kind](ctx)
        except UserError as e:  # a problem with this analysis's data: say so, keep the rest of the report
            f.conclude(f"{NO_SUPPORT}: {e}", False)
        out.append(f)
    return out


# -- comparing the levels of a factor ---------------------------------------------------------------
@dataclass
class Comparison:
    """`level` against the reference level `ref`: means of each and their stratified difference."""

    level: Any
    ref: Any
    level_mean: Estimate
    ref_mean: Estimate
    diff: Estimate
    strata: int
    axis: str | None = None  # the compared factor, to name numeric levels ("rho=0.9", not "0.9")

    def _named(self, value: Any) -> str:
        if self.axis is None or isinstance(value, str):
            return label(value)
        return f"{self.axis.rsplit('.', 1)[-1]}={label(value)}"

    @property
    def name(self) -> str:
        return self._named(self.level)

    @property
    def ref_name(self) -> str:
        return self._named(self.ref)


@dataclass(frozen=True)
class LineReplicates:
    """Each run's value under `n_boot` refits of a reference line to resampled baseline runs (rows:
    replicates, columns: runs), so a difference of run means can carry the line's uncertainty."""

    columns: dict[str, int]
    values: np.ndarray
    dof: float
    slopes: np.ndarray  # the refitted lines themselves (transformed axes), for the figure's band
    intercepts: np.ndarray

    def variance(self, strata: Sequence[tuple[Sequence[str], Sequence[str]]]) -> tuple[float, float]:
        """Variance across replicates of the stratified difference (as `stratified_difference` forms
        it from these strata), and its degrees of freedom."""
        if not strata or len(self.values) < 2:
            return 0.0, math.inf
        cols = self.columns
        d = np.mean(
            [
                self.values[:, [cols[i] for i in a]].mean(axis=1)
                - self.values[:, [cols[i] for i in b]].mean(axis=1)
                for a, b in strata
            ],
            axis=0,
        )
        return float(np.var(d, ddof=1)), self.dof


@dataclass
class _Context:
    data: StudyData
    spec: AnalysisSpec
    ci: float
    n_boot: int
    finding: Finding
    _compare: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        c = self.spec.compare
        if c and c not in self.data.axes():
            known = ", ".join(self.data.axes()) or "none"
            self.finding.notes.append(
                f"compare: {c!r} does not vary across the runs (factors that vary: {known}); "
                "the runs are analysed as one group."
            )
            c = None
        self._compare = c
        if c:
            # levels the study planned whose runs all failed or are still pending
            planned = self.data.levels(c, self.data.runs)
            done = {value_key(v) for v in self.data.levels(c, self.runs)}
            for lv in planned:
                if value_key(lv) not in done:
                    runs = [r for r in self.data.runs if value_key(r.factors.get(c)) == value_key(lv)]
                    states = ", ".join(
                        f"{n} {st}" for st, n in sorted(Counter(r.status for r in runs).items())
                    )
                    self.finding.notes.append(f"{c}={label(lv)} has no finished runs ({states}).")

    @property
    def compare(self) -> str | None:
        return self._compare

    @property
    def runs(self) -> list[Run]:
        """The finished runs this analysis compares (`where` narrows them; an effective-robustness line
        is still fitted through every baseline run)."""
        return [r for r in self.data.done_runs if matches(r.factors, self.spec.where)]

    def level_of(self, run: Run) -> Any:
        return run.factors.get(self.compare) if self.compare else None

    def levels(self, runs: Sequence[Run] | None = None) -> list[Any]:
        return self.data.levels(self.compare, runs) if self.compare else [None]

    def reference_level(self, levels: Sequence[Any]) -> Any:
        """The baseline's level of the compare factor if it names one, else the first level."""
        if self.compare and self.compare in self.spec.baseline:
            want = self.spec.baseline[self.compare]
            for lv in levels:
                if matches({self.compare: lv}, {self.compare: want}) and not isinstance(want, list):
                    return lv
        return levels[0]

    def strata_axes(self) -> list[str]:
        # axes zipped with the compared one move with it: they are not other factors to stratify by
        same = zipped_with(self.data.spec, self.compare)
        return [a for a in self.data.axes() if a != self.compare and a not in same]

    def compare_values(
        self,
        values: dict[str, float],
        level_of: Callable[[Run], Any] | None = None,
        levels: Sequence[Any] | None = None,
        ref: Any = None,
        strata_axes: list[str] | None = None,
        line: LineReplicates | None = None,
    ) -> tuple[dict[str, Estimate], list[Comparison]]:
        """Per-level means (keyed by level key) and each level's difference to the reference level.

        By default the levels are those of the compare factor; `level_of`/`levels`/`ref` group the runs
        otherwise, and `strata_axes` must then leave out the factors that define those groups. `line`
        (values measured from a fitted line) adds the line's own uncertainty to each difference."""
        axis = self.compare if level_of is None else None
        level_of = level_of or self.level_of
        runs = [r for r in self.runs if r.run_id in values and math.isfinite(values[r.run_id])]
        if levels is None:
            levels = self.levels(runs)
            ref = self.reference_level(levels) if levels else None
        if strata_axes is None:
            strata_axes = self.strata_axes()
        cells: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        pooled: dict[str, list[float]] = defaultdict(list)
        for r in runs:
            lk = value_key(level_of(r))
            cells["|".join(value_key(r.factors.get(a)) for a in strata_axes)][lk].append(r.run_id)
            pooled[lk].append(values[r.run_id])
        means = {value_key(lv): mean_estimate(pooled[value_key(lv)], self.ci) for lv in levels}
        comps = []
        for lv in levels:
            if value_key(lv) == value_key(ref):
                continue
            id_pairs = [
                (c[value_key(lv)], c[value_key(ref)])
                for c in cells.values()
                if c[value_key(lv)] and c[value_key(ref)]
            ]
            pairs = [([values[i] for i in a], [values[i] for i in b]) for a, b in id_pairs]
            used = usable_strata(pairs)
            extra = line.variance([id_pairs[i] for i in used]) if line else (0.0, math.inf)
            diff = stratified_difference(pairs, self.ci, *extra)
            # the means quoted beside the difference are those of the runs it compares: when a level
            # lacks some strata (an unbalanced zip), its other runs are not part of the comparison
            level_mean, ref_mean = (
                mean_estimate([v for i in used for v in pairs[i][k]], self.ci) for k in (0, 1)
            )
            comps.append(Comparison(lv, ref, level_mean, ref_mean, diff, len(pairs), axis))
        return means, comps

    def record(self, what: str, comp: Comparison, **extra: Any) -> None:
        self.finding.numbers.append(
            {
                "what": what,
                "level": comp.level,
                "ref": comp.ref,
                "diff": comp.diff.to_dict(),
                "level_mean": comp.level_mean.to_dict(),
                "ref_mean": comp.ref_mean.to_dict(),
                **extra,
            }
        )

    def level_table(self, title: str, columns: list[str], rows: list[list[str]]) -> Table:
        head = [self.compare or "runs", "n", *columns]
        return Table(title, head, rows, numeric_from=1)


def _no_support_reason(est: Estimate) -> str:
    if not math.isfinite(est.value):
        return "no pair of levels shares a combination of the other factors"
    if not est.has_ci:
        return "fewer than two seeds per level, so there is no CI across seeds"
    if est.exact:
        return "a CI needs seeds that differ"
    return "the CI includes 0"


def _points(metric: str) -> str:
    return "points" if is_fraction(metric) else metric + " units"


# -- effective robustness ---------------------------------------------------------------------------
def _effective_robustness(ctx: _Context) -> None:
    a, data, f = ctx.spec, ctx.data, ctx.finding
    ys = a.y or [s for s in data.eval_sets() if s != a.x]
    if not is_fraction(a.metric):
        f.conclude(
            f"{NO_SUPPORT}: {a.metric!r} is not an accuracy, and the {a.transform} axes need one.", False
        )
        return
    if not ys:
        f.conclude(f"{NO_SUPPORT}: the study has no evaluation set besides {a.x!r}.", False)
        return
    baseline = dict(a.baseline)
    if not baseline:
        line_of = "the line fitted through all runs"
    elif len(baseline) == 1:
        ((axis, value),) = baseline.items()
        named = label(value) if isinstance(value, str) else f"{axis.rsplit('.', 1)[-1]}={label(value)}"
        line_of = f"the line fitted through the {named} runs"
    else:
        line_of = (
            "the line fitted through the baseline runs ("
            + ", ".join(f"{k}={label(v)}" for k, v in baseline.items())
            + ")"
        )
    f.notes.append(
        "Intervals of effective-robustness differences carry two sources of uncertainty: the spread "
        f"across seeds, and the fitted line's own (the line refitted to {ctx.n_boot} resamples of its "
        "runs), which grows with the distance from the line's runs."
    )
    for y in ys:
        try:
            ref = reference_from_rows(data.rows, a.x, y, a.metric, baseline or None, task=a.task)
            fit = er.fit_line(ref.x[ref.is_reference], ref.y[ref.is_reference], a.transform)
        except UserError as e:
            f.conclude(f"{NO_SUPPORT} on {y}: {e}.", False)
            continue
        ers = er.effective_robustness(fit, ref.x, ref.y)
        values = dict(zip(ref.models, ers.tolist()))
        line = _line_replicates(ref, a.transform, ctx.n_boot)
        in_line = {m for m, is_ref in zip(ref.models, ref.is_reference) if is_ref}
        group_of: Callable[[Run], Any] = ctx.level_of
        groups: list[Any] = ctx.levels([r for r in ctx.runs if r.run_id in values])
        if ctx.compare:
            _, comps = ctx.compare_values(values, line=line)
        elif baseline:
            # no compare factor: the runs off the line against the runs that define it
            group_of, groups = (
                _membership(in_line, "the baseline", "the other"),
                ["the baseline", "the other"],
            )
            _, comps = ctx.compare_values(
                values,
                level_of=group_of,
                levels=groups,
                ref="the baseline",
                strata_axes=[x for x in ctx.strata_axes() if x not in baseline],
                line=line,
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
                ctx.compare in baseline
                and matches({ctx.compare: comp.ref}, {ctx.compare: baseline[ctx.compare]})
            )
            side = "above" if d.value > 0 else "below"
            if ref_is_line and d.supports:
                sentence = (
                    f"{_cap(comp.name)} runs lie {num(abs(d.value))} points ({ci_text(magnitude(d))}) {side} "
                    f"{line_of} on {y}."
                )
            elif d.supports:
                verb = "exceeds" if d.value > 0 else "falls short of"
                sentence = (
                    f"On {y}, the effective robustness of {comp.name} runs {verb} that of {comp.ref_name} "
                    f"runs by {num(abs(d.value))} points ({ci_text(magnitude(d))}), measured from {line_of}."
                )
            elif ref_is_line:
                sentence = (
                    f"{NO_SUPPORT} on {y}: {comp.name} runs lie {num(d.value)} points from {line_of} "
                    f"({ci_text(d)}; {_no_support_reason(d)})."
                )
            else:
                sentence = (
                    f"{NO_SUPPORT} on {y}: the effective robustness of {comp.name} runs differs from that of "
                    f"{comp.ref_name} runs by {num(d.value)} points ({ci_text(d)}; {_no_support_reason(d)})."
                )
            f.conclude(sentence, d.supports)
            ctx.record("effective_robustness", comp, eval_set=y)
        # tables and figure
        rows = []
        xs = dict(zip(ref.models, ref.x.tolist()))
        yv = dict(zip(ref.models, ref.y.tolist()))
        for lv in groups:
            ids = [
                r.run_id for r in ctx.runs if r.run_id in values and value_key(group_of(r)) == value_key(lv)
            ]
            rows.append(
                [
                    label(lv) if lv is not None else "all runs",
                    str(len(ids)),
                    plus_minus(mean_estimate([xs[i] for i in ids], ctx.ci)),
                    plus_minus(mean_estimate([yv[i] for i in ids], ctx.ci)),
                    plus_minus(mean_estimate([values[i] for i in ids], ctx.ci)),
                ]
            )
        f.tables.append(
            ctx.level_table(
                f"{y}: effective robustness by {ctx.compare or 'run group'} (mean ± {_pct(ctx.ci)} CI)",
                [f"{a.x} {a.metric} (%)", f"{y} {a.metric} (%)", "ER (points)"],
                rows,
            )
        )
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


def _line_replicates(ref: ReferenceSet, kind: str, n_boot: int) -> LineReplicates:
    """Every run's effective robustness under lines refitted to resamples of the line's own runs."""
    on_line = ref.is_reference
    slopes, intercepts = er.bootstrap_lines(ref.x[on_line], ref.y[on_line], kind, n_boot, seed=0)
    zx = er.transform(ref.x, kind)
    predicted = er.inverse_transform(slopes[:, None] * zx[None, :] + intercepts[:, None], kind)
    columns = {m: j for j, m in enumerate(ref.models)}
    dof = max(int(on_line.sum()) - 2, 1)
    return LineReplicates(columns, ref.y[None, :] - predicted, dof, slopes, intercepts)


def _membership(members: set[str], inside: str, outside: str) -> Callable[[Run], Any]:
    return lambda r: inside if r.run_id in members else outside


def _er_figure(
    ctx: _Context, ref: Any, fit: er.Fit, y: str, in_line: set[str], line: LineReplicates
) -> Embedded:
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
    return embed(
        fig,
        f"{y} vs {a.x} accuracy on {a.transform} axes: blue = runs defining the line (with its "
        f"{_pct(ctx.ci)} bootstrap band), large markers = the other runs; dashed: y = x.",
    )


# -- spurious backgrounds ---------------------------------------------------------------------------
def _spurious_drop(ctx: _Context) -> None:
    a, data, f = ctx.spec, ctx.data, ctx.finding
    s = scale(a.metric)
    common, counter = data.scalar(a.common, a.metric, a.task), data.scalar(a.counter, a.metric, a.task)
    drops = {r: s * (common[r] - counter[r]) for r in common if r in counter}
    what = f"{a.common}−{a.counter} drop"
    pts = _points(a.metric)
    if not drops:
        f.conclude(f"{NO_SUPPORT}: no run has {a.metric} on both {a.common!r} and {a.counter!r}.", False)
        return
    means, comps = ctx.compare_values(drops)
    if not comps:
        est = next(iter(means.values()))
        if est.supports:
            verb = "falls" if est.value > 0 else "rises"
            f.conclude(
                f"{a.metric} {verb} by {num(abs(est.value))} {pts} ({ci_text(magnitude(est))}) from "
                f"{a.common} to {a.counter}.",
                True,
            )
        else:
            f.conclude(
                f"{NO_SUPPORT} about a {what}: {num(est.value)} {pts} ({ci_text(est)}; "
                f"{_no_support_reason(est)}).",
                False,
            )
        f.numbers.append({"what": "drop", "mean": est.to_dict()})
    for comp in comps:
        d = comp.diff
        if d.supports:
            big, small = (comp.name, comp.ref_name) if d.value > 0 else (comp.ref_name, comp.name)
            big_m, small_m = (
                (comp.level_mean, comp.ref_mean) if d.value > 0 else (comp.ref_mean, comp.level_mean)
            )
            f.conclude(
                f"{_cap(big)}'s {what} exceeds {small}'s by {num(abs(d.value))} {pts} "
                f"({ci_text(magnitude(d))}; drops {num(big_m.value)} vs {num(small_m.value)}).",
                True,
            )
        else:
            f.conclude(
                f"{NO_SUPPORT} about a difference in the {what} between {comp.name} and {comp.ref_name}: "
                f"{num(d.value)} {pts} ({ci_text(d)}; {_no_support_reason(d)}).",
                False,
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
    u = unit(a.metric).strip()
    f.tables.append(
        ctx.level_table(
            f"{a.metric} on {a.common} and {a.counter} (mean ± {_pct(ctx.ci)} CI)",
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


def _per_stratum_table(ctx: _Context, values: dict[str, float], strata: list[str], title: str) -> Table:
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
    ctx: _Context, common: dict[str, float], counter: dict[str, float], s: float
) -> Embedded:
    a = ctx.spec
    runs = [r for r in ctx.runs if r.run_id in common and r.run_id in counter]
    fig = plots.plot_counter_common(
        [s * common[r.run_id] for r in runs],
        [s * counter[r.run_id] for r in runs],
        title=f"{a.counter} vs {a.common} ({a.metric})",
    )
    ax = fig.axes[0]
    ax.ticklabel_format(useOffset=False)  # nearly equal accuracies would otherwise read "+1e1"
    if ctx.compare:
        # colour each run by its level, over the plain markers
        colours = level_colours(ctx.levels(runs))
        for lv in ctx.levels(runs):
            sel = [r for r in runs if value_key(ctx.level_of(r)) == value_key(lv)]
            ax.scatter(
                [s * common[r.run_id] for r in sel],
                [s * counter[r.run_id] for r in sel],
                s=42,
                color=colours[value_key(lv)],
                edgecolors="white",
                linewidths=0.6,
                label=f"{ctx.compare}={label(lv)}",
                zorder=7,
            )
        ax.legend(loc="upper left", fontsize="small", frameon=False)
    ax.set_xlabel(f"{a.common} {a.metric}{unit(a.metric).replace(' %', ' (%)')}")
    ax.set_ylabel(f"{a.counter} {a.metric}{unit(a.metric).replace(' %', ' (%)')}")
    return embed(
        fig,
        f"One point per run: {a.metric} on {a.counter} against {a.common}. Points below the dashed "
        "diagonal lose accuracy when the background is unusual.",
    )


# -- long tail --------------------------------------------------------------------------------------
# (statistic, how a sentence names it, table column, digits)
_LONG_TAIL_STATS = (
    ("corr_acc", "Spearman ρ(class frequency, per-class accuracy)", "ρ(freq, accuracy)", 2),
    ("corr_pred", "Spearman ρ(class frequency, predictions per class)", "ρ(freq, predictions)", 2),
    ("tail_acc", "accuracy on the rarest third of classes (%)", "tail-third acc. (%)", 1),
    ("head_acc", "accuracy on the most frequent third of classes (%)", "head-third acc. (%)", 1),
)


def _long_tail(ctx: _Context) -> None:
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
                verdict = "" if d.supports else f" — {_no_support_reason(d)}"
                f.details.append(
                    f"{_cap(name)}: {comp.name} {num(comp.level_mean.value, digits)} vs {comp.ref_name} "
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
        f"Long-tail statistics on {a.eval_set} (mean ± {_pct(ctx.ci)} CI)", list(columns), rows
    )
    table.note = (
        "ρ: Spearman correlation, per run, of each class's training frequency with its accuracy (Wen et "
        "al.'s corr_acc) or with how often it is predicted (corr_pred); tail/head third: the rarest/most "
        "frequent third of classes by training frequency."
    )
    f.tables.append(table)
    f.figures.append(_frequency_figure(ctx, runs_with, acc, freq, mean_freq))


def _long_tail_headline(ctx: _Context, means: dict[str, Estimate], comps: list[Comparison]) -> None:
    f = ctx.finding
    if not comps:
        est = next(iter(means.values()))
        if est.supports:
            how = "rises" if est.value > 0 else "falls"
            f.conclude(
                f"Per-class accuracy {how} with training frequency: Spearman ρ = {with_ci(est, 2)}.", True
            )
        else:
            f.conclude(
                f"{NO_SUPPORT} about a link between class frequency and per-class accuracy: Spearman ρ = "
                f"{num(est.value, 2)} ({ci_text(est, 2)}; {_no_support_reason(est)}).",
                False,
            )
        return
    for comp in comps:
        d = comp.diff
        rho = f"ρ {num(comp.level_mean.value, 2)} vs {num(comp.ref_mean.value, 2)}"
        if d.supports:
            more = "more" if d.value > 0 else "less"
            f.conclude(
                f"Per-class accuracy follows training frequency {more} closely for {comp.name} than for "
                f"{comp.ref_name}: Spearman {rho}, a difference of {num(d.value, 2)} ({ci_text(d, 2)}).",
                True,
            )
        else:
            f.conclude(
                f"{NO_SUPPORT} about whether per-class accuracy follows training frequency differently for "
                f"{comp.name} and {comp.ref_name}: Spearman {rho}, difference {num(d.value, 2)} "
                f"({ci_text(d, 2)}; {_no_support_reason(d)}).",
                False,
            )


def _mean_per_class(dicts: list[dict[int, float]]) -> dict[int, float]:
    acc: dict[int, list[float]] = defaultdict(list)
    for d in dicts:
        for c, v in d.items():
            acc[c].append(v)
    return {c: float(np.mean(v)) for c, v in acc.items()}


def _frequency_figure(
    ctx: _Context,
    runs: list[Run],
    acc: dict[str, dict[int, float]],
    freq: dict[str, dict[int, float]],
    mean_freq: dict[int, float],
) -> Embedded:
    """One panel per level: per-class accuracy (mean over its runs) against training frequency."""
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
        plain_log_ticks(ax.xaxis)
    return embed(
        fig,
        f"Per-class accuracy on {ctx.spec.eval_set} (mean over seeds) against the number of training samples "
        f"of the class; one point per class{f', one panel per {ctx.compare}' if ctx.compare else ''}.",
    )


# -- training curves --------------------------------------------------------------------------------
def _training_curves(ctx: _Context) -> None:
    f = ctx.finding
    axes = ctx.data.axes()
    colour_by = ctx.compare or (axes[0] if axes else None)
    fig = training_curves(ctx.data, ctx.data.runs, colour_by)
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


# -- one metric across evaluation sets --------------------------------------------------------------
def _metrics(ctx: _Context) -> None:
    a, data, f = ctx.spec, ctx.data, ctx.finding
    s, pts = scale(a.metric), _points(a.metric)
    digits = 1 if is_fraction(a.metric) else 3
    sets = [es for es in data.eval_sets() if data.scalar(es, a.metric, a.task)]
    if not sets:
        f.conclude(f"{NO_SUPPORT}: no run has the metric {a.metric!r}.", False)
        return
    columns: dict[str, dict[str, str]] = {}  # eval set -> level key -> cell
    found: list[tuple[str, Comparison]] = []
    n_by_level: dict[str, int] = {}
    for es in sets:
        values = {k: s * v for k, v in data.scalar(es, a.metric, a.task).items()}
        means, comps = ctx.compare_values(values)
        columns[es] = {lvk: plus_minus(est, digits) for lvk, est in means.items() if est.n}
        for lvk, est in means.items():
            n_by_level[lvk] = max(n_by_level.get(lvk, 0), est.n)
        for comp in comps:
            ctx.record(a.metric, comp, eval_set=es)
            found.append((es, comp))
    levels = ctx.levels(ctx.runs)
    f.tables.append(
        ctx.level_table(
            f"{a.metric}{unit(a.metric).replace(' %', ' (%)')} by evaluation set (mean ± {_pct(ctx.ci)} CI)",
            sets,
            [
                [
                    label(lv) if ctx.compare else "all runs",
                    str(n_by_level[value_key(lv)]),
                    *[columns[es].get(value_key(lv), "–") for es in sets],
                ]
                for lv in levels
                if n_by_level.get(value_key(lv))
            ],
        )
    )
    pairs = sorted({(value_key(c.level), c.name, c.ref_name) for _, c in found})
    if not pairs:
        f.conclude(f"{a.metric} of all runs by evaluation set is tabulated below (no factor compared).", True)
        return
    for lk, name, ref_name in pairs:
        mine = [(es, c) for es, c in found if value_key(c.level) == lk]
        sure = [(es, c) for es, c in mine if c.diff.supports]
        if not sure:
            f.conclude(
                f"{NO_SUPPORT} about a difference in {a.metric} between {name} and {ref_name} on any of the "
                f"{len(mine)} evaluation sets (every CI includes 0 or there is one seed).",
                False,
            )
            continue
        es, big = max(sure, key=lambda t: abs(t[1].diff.value))
        f.conclude(
            f"{_cap(name)}'s {a.metric} differs from {ref_name}'s on {len(sure)} of {len(mine)} evaluation "
            f"sets (CI excluding 0); the largest gap is on {es}: {num(big.diff.value, digits)} {pts} "
            f"({ci_text(big.diff, digits)}).",
            True,
        )


# -- the latent simulator's sweep ---------------------------------------------------------------------
def _theory(ctx: _Context) -> None:
    from clipshift.report.theory import theory_finding

    a, f = ctx.spec, ctx.finding
    changes, details, table, figure = theory_finding(a, ctx.ci)
    axis = next(iter(a.sweep))
    first, last = a.sweep[axis][0], a.sweep[axis][-1]
    for learner, d in changes.items():
        verdict = "" if d.supports else f" — {NO_SUPPORT.lower()} ({_no_support_reason(d)})"
        f.conclude(
            f"Simulator, {learner}: raising {axis} from {first} to {last} changes shifted accuracy by "
            f"{num(d.value, 1)} points ({ci_text(d, 1)}){verdict}.",
            d.supports,
        )
    f.details.extend(details)
    f.tables.append(table)
    f.figures.append(figure)


_KINDS: dict[str, Callable[[_Context], None]] = {
    "effective_robustness": _effective_robustness,
    "spurious_drop": _spurious_drop,
    "long_tail": _long_tail,
    "training_curves": _training_curves,
    "metrics": _metrics,
    "theory": _theory,
}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _pct(ci: float) -> str:
    return f"{round(ci * 100):d} %"
