"""The `theory` analysis: the latent simulator's sweep of a study's knobs, beside its trained runs.

The simulator (clipshift.theory) is cheap (about a second per setting), so the report runs it on the
spot; the conclusion compares each learner's shifted accuracy at the last and first value of the first
sweep axis, across the simulator seeds (other sweep axes are strata, as for trained runs)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from matplotlib.figure import Figure

from clipshift.analysis.spec import AnalysisSpec
from clipshift.errors import UserError
from clipshift.report.data import value_key
from clipshift.report.estimates import Estimate, mean_estimate, num, stratified_difference
from clipshift.report.figures import Embedded, embed, level_colours
from clipshift.report.tables import Table


def theory_rows(a: AnalysisSpec) -> list[dict[str, Any]]:
    """One row per (sweep setting, seed): the settings and each learner's id/shift accuracy and drop."""
    from clipshift.configio import validate
    from clipshift.theory.simulator import TheorySpec, sweep

    if not a.sweep:
        raise UserError("a theory analysis needs `sweep` (TheorySpec field -> values)")
    base = validate(TheorySpec, a.theory, source="analyses.theory")
    return sweep(base, {**a.sweep, "seed": list(a.seeds)})


def theory_finding(a: AnalysisSpec, ci: float) -> tuple[dict[str, Estimate], list[str], Table, Embedded]:
    """Per learner, the change of shifted accuracy from the first to the last value of the first sweep
    axis (stratified by the other axes, across seeds); details; table of means; figure."""
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
