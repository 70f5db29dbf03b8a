"""One metric on every evaluation set: a table by level of the compared factor, and on which sets the
levels differ (CI excluding 0), with the largest gap."""

from __future__ import annotations

import math
from typing import Literal

from clipshift.analysis.base import AnalysisBase
from clipshift.analysis.compare import Comparison
from clipshift.analysis.context import Context
from clipshift.analysis.data import label, value_key
from clipshift.analysis.registry import register
from clipshift.analysis.wording import (
    NO_SUPPORT,
    axis_label,
    cap,
    ci_text,
    decimals,
    num,
    pct,
    plus_minus,
    points,
)
from clipshift.evaluate.units import unit_of


class MetricsSpec(AnalysisBase):
    """Metrics: one metric by evaluation set and level of the compared factor."""

    kind: Literal["metrics"] = "metrics"


@register(MetricsSpec, title="Metrics")
def metrics(ctx: Context[MetricsSpec]) -> None:
    a, data, f = ctx.spec, ctx.data, ctx.finding
    s, pts = unit_of(a.metric).scale, points(a.metric)
    digits = decimals(a.metric)
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
            f"{axis_label(a.metric)} by evaluation set (mean ± {pct(ctx.ci)} CI)",
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
            # the most precise set says what the design could have detected at best
            _, sharpest = min(mine, key=lambda t: _or_inf(t[1].diff.detectable()))
            ctx.conclude(
                f"{NO_SUPPORT} about a difference in {a.metric} between {name} and {ref_name} on any of the "
                f"{len(mine)} evaluation sets (every CI includes 0 or there is one seed); on the most "
                "precise set",
                False,
                comp=sharpest,
            )
            continue
        es, big = max(sure, key=lambda t: abs(t[1].diff.value))
        ctx.conclude(
            f"{cap(name)}'s {a.metric} differs from {ref_name}'s on {len(sure)} of {len(mine)} evaluation "
            f"sets (CI excluding 0); the largest gap is on {es}: {num(big.diff.value, digits)} {pts} "
            f"({ci_text(big.diff, digits)}).",
            True,
            comp=big,
        )


def _or_inf(x: float) -> float:
    return x if math.isfinite(x) else math.inf
