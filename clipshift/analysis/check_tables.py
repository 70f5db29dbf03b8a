"""The report's "Manipulation checks" section: for each factor of the study, what its levels actually did
(the measures the factor claims to change, mean ± SD across the runs at each level), and for each
combination of factors whether its runs had learned the task and stopped improving."""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict

from clipshift.analysis.base import ChecksSpec
from clipshift.analysis.checks import claim_for, run_measures, share_above_chance, study_facts
from clipshift.analysis.data import StudyData, combo_label, label, value_key
from clipshift.analysis.finding import Table

# measures shown for every factor: what a reader checks first (the claimed ones are added per factor)
ALWAYS = ("data/classes_per_batch_mean", "objective/classes_scored_mean")


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    m = sum(values) / len(values)
    if len(values) < 2:
        return f"{m:.3g}"
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return f"{m:.3g} ± {sd:.2g}"


def factor_tables(data: StudyData) -> list[Table]:
    """One table per varied factor: its levels × the measures it claims to change (and ALWAYS)."""
    measures = run_measures(data)
    if not measures:
        return []
    present = sorted({k for m in measures.values() for k in m})
    tables = []
    for axis in data.axes():
        claim = claim_for(axis)
        wanted = [p for p in (claim.measures if claim else ())] + list(ALWAYS)
        if axis == "objective.dynamic_k" or axis == "objective.name":
            wanted += ["objective/topped_up_share", "objective/scored_share"]
        cols = [k for k in present if any(fnmatch.fnmatchcase(k, p) for p in wanted)]
        if not cols:
            continue
        rows = []
        for lv in data.levels(axis, data.done_runs):
            runs = [r for r in data.done_runs if value_key(r.factors.get(axis)) == value_key(lv)]
            per: dict[str, list[float]] = defaultdict(list)
            for r in runs:
                for k in cols:
                    v = measures.get(r.run_id, {}).get(k)
                    if v is not None and math.isfinite(v):
                        per[k].append(v)
            rows.append([label(lv), str(len(runs)), *[_cell(per[k]) for k in cols]])
        what = claim.what if claim else "no measure is defined for this factor"
        tables.append(
            Table(
                f"{axis}: what its levels did ({what})",
                [axis, "runs", *cols],
                rows,
                note="Mean ± SD across the runs at each level, measured from the data and batches each run "
                "actually used.",
                numeric_from=1,
            )
        )
    return tables


def learning_table(data: StudyData, spec: ChecksSpec | None = None) -> Table | None:
    """Per combination of the varied factors: own in-distribution accuracy against chance, and the gain
    over the last quarter of training, with the thresholds the analyses apply."""
    spec = spec or ChecksSpec()
    facts = study_facts(data)
    es, acc, c, gains = facts.eval_set, facts.accuracy, facts.classes, facts.gains
    if not acc:
        return None
    axes = data.axes()
    groups: dict[str, list[str]] = defaultdict(list)
    label_of: dict[str, str] = {}
    for r in data.done_runs:
        key = "|".join(value_key(r.factors.get(a)) for a in axes)
        groups[key].append(r.run_id)
        label_of[key] = combo_label(r.factors, axes)
    rows = []
    for key, ids in groups.items():
        a = [100 * acc[i] for i in ids if i in acc]
        g = [100 * gains[i] for i in ids if i in gains]
        learned = "–"
        if a and c:
            share = share_above_chance(sum(a) / len(a), 100.0 / c, 100.0)
            learned = "yes" if share >= spec.min_learned else "no"
        improving = "–" if not g else ("yes" if sum(g) / len(g) > 100 * spec.max_late_gain else "no")
        rows.append([label_of[key], str(len(ids)), _cell(a), learned, _cell(g), improving])
    chance_txt = f"{100 / c:.1f} %" if c else "n/a"
    return Table(
        f"Learning and convergence ({es} accuracy of the model's own classifier; chance {chance_txt})",
        ["runs of", "n", f"{es} acc1 (%)", "learned", "gain, last quarter (points)", "still improving"],
        rows,
        note=f"Learned: at least {100 * spec.min_learned:.0f} % of the way from chance to 100 %. Still "
        f"improving: more than {100 * spec.max_late_gain:.0f} points gained over the last quarter of "
        "training (from snapshots evaluated on the same samples). Comparisons whose arms fail either are "
        "withheld.",
        numeric_from=1,
    )
