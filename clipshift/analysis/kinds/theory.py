"""The latent simulator's sweep of a study's knobs (`clipshift.theory`), beside its trained runs.

The simulator is cheap (about a second per setting), so the report runs it on the spot; the conclusion
compares each learner's shifted accuracy at the last and first value of the first sweep axis, across the
simulator seeds (other sweep axes are strata, as for trained runs). The simulator (numpy/torch) is
imported only when the analysis runs."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any, Literal

from pydantic import Field

from clipshift.analysis.base import AnalysisBase
from clipshift.analysis.compare import Estimate, mean_estimate, stratified_difference
from clipshift.analysis.context import Context
from clipshift.analysis.data import value_key
from clipshift.analysis.finding import Embedded, Table
from clipshift.analysis.registry import register
from clipshift.analysis.wording import NO_SUPPORT, ci_text, no_support_reason, num
from clipshift.errors import UserError


class TheoryAnalysisSpec(AnalysisBase):
    """Latent simulator: the simulator's sweep of the same knobs, beside the trained runs."""

    kind: Literal["theory"] = "theory"
    theory: dict[str, Any] = Field(
        default_factory=dict, description="TheorySpec fields of the simulator's base setting"
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="TheorySpec field -> values; the first axis is the one concluded on"
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2], description="simulator seeds (CIs across them)"
    )


# a setting small enough to run in seconds (the registry-loop test runs it)
EXAMPLE = {
    "theory": {"n_train": 600, "n_test": 400, "steps": 60, "learners": ["supervised"]},
    "sweep": {"p_spurious": [0.5, 0.99]},
}


@register(TheoryAnalysisSpec, title="Latent simulator", example=EXAMPLE)
def theory(ctx: Context[TheoryAnalysisSpec]) -> None:
    a, f = ctx.spec, ctx.finding
    changes, details, table, figure = theory_finding(a, ctx.ci)
    axis = next(iter(a.sweep))
    first, last = a.sweep[axis][0], a.sweep[axis][-1]
    for learner, d in changes.items():
        verdict = "" if d.supports else f" — {NO_SUPPORT.lower()} ({no_support_reason(d)})"
        ctx.conclude(
            f"Simulator, {learner}: raising {axis} from {first} to {last} changes shifted accuracy by "
            f"{num(d.value, 1)} points ({ci_text(d, 1)}){verdict}.",
            d.supports,
            estimate=d,
            units="points",
            checked=False,  # the simulator's learners are not trained runs: nothing to check
        )
    f.details.extend(details)
    f.tables.append(table)
    f.figures.append(figure)


def theory_rows(a: TheoryAnalysisSpec) -> list[dict[str, Any]]:
    """One row per (sweep setting, seed): the settings and each learner's id/shift accuracy and drop."""
    from clipshift.configio import validate
    from clipshift.theory.simulator import TheorySpec, sweep

    if not a.sweep:
        raise UserError("a theory analysis needs `sweep` (TheorySpec field -> values)")
    base = validate(TheorySpec, a.theory, source="analyses.theory")
    return sweep(base, {**a.sweep, "seed": list(a.seeds)})


def theory_finding(
    a: TheoryAnalysisSpec, ci: float
) -> tuple[dict[str, Estimate], list[str], Table, Embedded]:
    """Per learner, the change of shifted accuracy from the first to the last value of the first sweep
    axis (stratified by the other axes, across seeds); details; table of means; figure."""
    from matplotlib.figure import Figure

    from clipshift.analysis.plots import embed, level_colours

    rows = theory_rows(a)
    axis, *others = list(a.sweep)
    first, last = a.sweep[axis][0], a.sweep[axis][-1]
    learners = list(rows[0]["results"])
    changes: dict[str, Estimate] = {}
    for learner in learners:
        cells: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for r in rows:
            stratum = "|".join(str(r[o]) for o in others)
            side = 0 if r[axis] == last else 1 if r[axis] == first else None
            if side is not None:
                cells[stratum][side].append(float(r["results"][learner]["shift_acc"]))
        changes[learner] = stratified_difference(list(cells.values()), ci)
    settings = [dict(zip(a.sweep, combo, strict=True)) for combo in itertools.product(*a.sweep.values())]
    head = [*a.sweep, *(f"{lr} id/shift (%)" for lr in learners)]
    table_rows = []
    means: dict[str, list[float]] = defaultdict(list)  # learner -> mean shift acc per value of `axis`
    for s in settings:
        mine = [r for r in rows if all(r[k] == v for k, v in s.items())]
        cells_txt = []
        for lr in learners:
            i = mean_estimate([r["results"][lr]["id_acc"] for r in mine], ci)
            sh = mean_estimate([r["results"][lr]["shift_acc"] for r in mine], ci)
            cells_txt.append(f"{num(i.value, 1)} / {num(sh.value, 1)}")
        table_rows.append([*(str(v) for v in s.values()), *cells_txt])
    for lr in learners:
        for v in a.sweep[axis]:
            vals = [r["results"][lr]["shift_acc"] for r in rows if r[axis] == v]
            means[lr].append(mean_estimate(vals, ci).value)
    table = Table(
        f"Latent simulator: mean over {len(a.seeds)} seeds (id / shifted accuracy)",
        head,
        table_rows,
        numeric_from=len(a.sweep),
    )
    fig = Figure(figsize=(5.2, 3.4))
    ax = fig.add_subplot()
    colours = level_colours(learners)
    xs = list(range(len(a.sweep[axis])))
    for lr in learners:
        ax.plot(xs, means[lr], marker="o", color=colours[value_key(lr)], label=lr)
    ax.set_xticks(xs, [str(v) for v in a.sweep[axis]])
    ax.set_xlabel(axis)
    ax.set_ylabel("shifted accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    details = [f"Simulator base setting: {a.theory or 'defaults'}; seeds {list(a.seeds)}."]
    return changes, details, table, embed(fig, f"Latent simulator: shifted accuracy vs {axis}.")
