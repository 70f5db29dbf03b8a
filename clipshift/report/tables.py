"""Tables of the report: every scalar metric by factor combination (mean ± CI across seeds), run status."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from clipshift.analysis.base import OWN, TASK_NAMES, task_kind
from clipshift.analysis.compare import mean_estimate
from clipshift.analysis.data import StudyData, label, value_key
from clipshift.analysis.finding import Table
from clipshift.analysis.wording import decimals, plus_minus
from clipshift.evaluate.units import unit_of

HEADLINE_METRICS = ("acc1", "acc5", "mean_per_class_recall", "worst_group_acc")
SKIP_METRICS = ("n",)  # the evaluation set's size, not a result
_CONFUSABLE = re.compile(r"^acc1_vs(\d+)_confusable$")


__all__ = ["HEADLINE_METRICS", "SKIP_METRICS", "Table", "metric_tables", "status_table"]


def metric_tables(data: StudyData, ci: float = 0.95) -> list[Table]:
    """One table per scalar metric: rows = factor combinations, columns = evaluation sets.

    Cells are the mean across seeds ± half the CI; `n` is the number of runs (seeds) behind the row.
    """
    axes = data.axes()
    sets = data.eval_sets()
    by_run = {r.run_id: r for r in data.runs}
    combos: dict[str, dict[str, Any]] = {}
    for r in data.done_runs:
        combos.setdefault(_combo_key(r.factors, axes), {a: r.factors.get(a) for a in axes})
    order = sorted(combos, key=lambda k: _sort_key(data, combos[k], axes))
    per_run: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)  # one value per run
    for row in data.rows:
        if row["class_id"] >= 0 or row["run_id"] not in by_run:
            continue
        ck = _combo_key(by_run[row["run_id"]].factors, axes)
        metric = _task_metric(task_kind(row.get("task")), row["metric"])
        per_run[(metric, ck, row["eval_set"])][row["run_id"]] = row["value"]
    cells = {k: list(v.values()) for k, v in per_run.items()}
    tables = []
    if data.evaluates:  # each model's 1-vs-all and 1-vs-N-confusable accuracy side by side
        side = _confusable_table(data, cells, order, combos, axes, sets, ci)
        tables += [side] if side is not None else []
    for task, plain in [(t, m) for t in data.tasks() for m in data.metrics(t)]:
        metric = _task_metric(task, plain)
        if plain in SKIP_METRICS:
            continue
        present = [s for s in sets if any((metric, ck, s) in cells for ck in order)]
        if not present:
            continue
        s = unit_of(plain).scale
        digits = decimals(plain)
        rows = []
        for ck in order:
            if not any((metric, ck, es) in cells for es in present):
                continue
            n = max(len(cells.get((metric, ck, es), [])) for es in present)
            cols = [label(combos[ck][a]) for a in axes]
            for es in present:
                vals = [v * s for v in cells.get((metric, ck, es), [])]
                cols.append(plus_minus(mean_estimate(vals, ci), digits) if vals else "–")
            rows.append([*cols[: len(axes)], str(n), *cols[len(axes) :]])
        u = " (%)" if unit_of(plain).unit == "fraction" else ""
        tables.append(
            Table(
                title=f"{plain}{u}" + ("" if task == OWN else f", {TASK_NAMES[task]}"),
                columns=[*axes, "n", *present],
                rows=rows,
                collapsed=plain not in HEADLINE_METRICS or task != OWN,
                numeric_from=len(axes),
            )
        )
    return tables


def _confusable_table(
    data: StudyData,
    cells: dict[tuple[str, str, str], list[float]],
    order: list[str],
    combos: dict[str, dict[str, Any]],
    axes: list[str],
    sets: list[str],
    ci: float,
) -> Table | None:
    """acc1 (1 vs all classes) next to each acc1_vs{N}_confusable (1 vs the N most confusable) on every
    set that has one, of the models' own classifiers; None when no set has a confusable accuracy."""
    ns = sorted({int(m.group(1)) for name in data.metrics(OWN) if (m := _CONFUSABLE.match(name))})
    pairs = [
        (es, metric, head)
        for es in sets
        if any(any((f"acc1_vs{n}_confusable", ck, es) in cells for ck in order) for n in ns)
        for metric, head in [("acc1", "1 vs all"), *[(f"acc1_vs{n}_confusable", f"1 vs {n}") for n in ns]]
    ]
    if not pairs:
        return None
    rows = []
    for ck in order:
        vals = [[100.0 * v for v in cells.get((metric, ck, es), [])] for es, metric, _ in pairs]
        if not any(vals):
            continue
        n = max(len(v) for v in vals)
        cols = [plus_minus(mean_estimate(v, ci), decimals("acc1")) if v else "–" for v in vals]
        rows.append([*(label(combos[ck][a]) for a in axes), str(n), *cols])
    return Table(
        title="1-vs-all and 1-vs-confusable accuracy (%)",
        columns=[*axes, "n", *(f"{es}: {head}" for es, _, head in pairs)],
        rows=rows,
        note="1 vs all: top-1 over every class; 1 vs N: the true class against its N most confusable classes "
        "only (acc1_vs{N}_confusable)",
        numeric_from=len(axes),
    )


def status_table(data: StudyData) -> tuple[str, Table | None]:
    """A one-line count of runs by status, and a table of the runs that did not finish (with reasons)."""
    counts = Counter(r.status for r in data.runs)
    summary = ", ".join(
        f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: (kv[0] != "done", kv[0]))
    )
    bad = [r for r in data.runs if r.status != "done"]
    if not bad:
        return f"{len(data.runs)} runs: {summary}.", None
    axes = data.axes()
    rows = [
        [r.run_id, *[label(r.factors.get(a)) for a in axes], label(r.seed), r.status, r.reason or ""]
        for r in bad
    ]
    table = Table("Runs that did not finish", ["run", *axes, "seed", "status", "reason"], rows)
    return f"{len(data.runs)} runs: {summary}.", table


def _task_metric(task: str, metric: str) -> str:
    """A metric's key in the tables: a probe's metrics are other quantities than the model's own."""
    return metric if task == OWN else f"{task}:{metric}"


def _combo_key(factors: dict[str, Any], axes: list[str]) -> str:
    return "|".join(value_key(factors.get(a)) for a in axes)


def _sort_key(data: StudyData, combo: dict[str, Any], axes: list[str]) -> tuple[int, ...]:
    out = []
    for a in axes:
        levels = [value_key(v) for v in data.levels(a)]
        k = value_key(combo[a])
        out.append(levels.index(k) if k in levels else len(levels))
    return tuple(out)
