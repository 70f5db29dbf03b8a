"""A study's results in memory: spec, runs, tidy result rows, training curves (`StudyData`).

Analyses and the report work on `StudyData`; `clipshift.report.data.read_study_dir` reads one from a study
directory, and tests or notebooks can build one without a results store.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipshift.analysis.base import OWN, task_kind

SEED = "seed"


@dataclass(frozen=True)
class Run:
    run_id: str
    factors: dict[str, Any]
    seed: int | None
    status: str
    reason: str | None = None
    run_dir: Path | None = None
    wall_s: float | None = None
    samples_per_s: float | None = None


@dataclass
class StudyData:
    """What a report is made of. `rows` are the store's tidy rows (accuracies as fractions 0–1)."""

    name: str
    spec: dict[str, Any]
    runs: list[Run]
    rows: list[dict[str, Any]]
    study_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)  # recorded when the study was planned
    _curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    # -- runs and factors ---------------------------------------------------------------------------
    @property
    def done_runs(self) -> list[Run]:
        with_results = {r["run_id"] for r in self.rows}
        return [r for r in self.runs if r.run_id in with_results]

    def run(self, run_id: str) -> Run:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)

    def axes(self) -> list[str]:
        """The factors that vary across runs, in the spec's grid order (then alphabetical)."""
        values: dict[str, set[str]] = defaultdict(set)
        for r in self.runs:
            for k, v in r.factors.items():
                values[k].add(value_key(v))
        varying = [k for k, vs in values.items() if len(vs) > 1 and k != SEED]
        order = _spec_axis_order(self.spec)
        return sorted(varying, key=lambda k: (order.index(k) if k in order else len(order), k))

    @property
    def evaluates(self) -> bool:
        """An evaluation study (`models:` in its spec): its runs evaluated checkpoints, trained nothing."""
        return bool(self.spec.get("models"))

    def unit_axes(self) -> list[str]:
        """Factors that name the replicate itself rather than a condition: an evaluation study's `model`
        (its models are the replicates of their family, as seeds are of a training study's cell).
        Comparisons pool over them instead of stratifying by them."""
        return ["model"] if self.evaluates else []

    def levels(self, axis: str, runs: Iterable[Run] | None = None) -> list[Any]:
        """The values `axis` takes, in the spec's order where it lists them."""
        seen: dict[str, Any] = {}
        for r in self.runs if runs is None else runs:
            if axis in r.factors:
                seen.setdefault(value_key(r.factors[axis]), r.factors[axis])
        listed = [value_key(v) for v in _spec_axis_values(self.spec, axis)]
        keys = sorted(seen, key=lambda k: (listed.index(k) if k in listed else len(listed), k))
        return [seen[k] for k in keys]

    def copies(self) -> list[tuple[list[Run], list[str]]]:
        """Groups of finished runs with the same seed and identical results on every row, and the
        factors they differ in: a factor that does not reach those runs (e.g. captions under a
        supervised objective) made copies of one run, not independent replicates."""
        results: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in self.rows:
            key = (row["eval_set"], row.get("task"), row["metric"], row["class_id"], row["value"])
            results[row["run_id"]].append(key)
        groups: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
        for r in self.done_runs:
            groups[(r.seed, tuple(sorted(results[r.run_id], key=repr)))].append(r)
        out = []
        for runs in groups.values():
            if len(runs) > 1:
                differ = sorted(
                    {
                        k
                        for r in runs
                        for k in r.factors
                        if value_key(r.factors.get(k)) != value_key(runs[0].factors.get(k))
                    }
                )
                out.append((runs, differ))
        return out

    def eval_sets(self) -> list[str]:
        """Evaluation sets with scalar metrics, `iid` first, the training set's statistics excluded."""
        sets = {r["eval_set"] for r in self.rows if r["class_id"] < 0 and r["eval_set"] != "train"}
        return sorted(sets, key=lambda s: (s != "iid", s))

    def metrics(self, task: str = OWN) -> list[str]:
        """Scalar metrics present for a task kind, headline ones first."""
        names = {r["metric"] for r in self.rows if r["class_id"] < 0 and task_kind(r.get("task")) == task}
        first = ["acc1", "acc5", "mean_per_class_recall", "worst_group_acc"]
        return [m for m in first if m in names] + sorted(names - set(first))

    def tasks(self) -> list[str]:
        """The task kinds present: the model's own classifier first, then probes."""
        kinds = {task_kind(r.get("task")) for r in self.rows}
        return [t for t in (OWN, "linear_probe", "knn") if t in kinds]

    # -- values -------------------------------------------------------------------------------------
    def scalar(self, eval_set: str, metric: str, task: str = OWN) -> dict[str, float]:
        """run_id -> value of a scalar metric on one evaluation set, from one task kind (the model's own
        classifier by default: a linear probe's acc1 is another quantity)."""
        return {
            r["run_id"]: float(r["value"])
            for r in self.rows
            if r["class_id"] < 0
            and r["eval_set"] == eval_set
            and r["metric"] == metric
            and task_kind(r.get("task")) == task
        }

    def per_class(self, eval_set: str, metric: str, task: str = OWN) -> dict[str, dict[int, float]]:
        """run_id -> {class_id: value} of a per-class metric (of one task kind, as `scalar`)."""
        out: dict[str, dict[int, float]] = defaultdict(dict)
        for r in self.rows:
            if (
                r["class_id"] >= 0
                and r["eval_set"] == eval_set
                and r["metric"] == metric
                and task_kind(r.get("task")) == task
            ):
                out[r["run_id"]][int(r["class_id"])] = float(r["value"])
        return dict(out)

    def curve(self, run: Run) -> list[dict[str, Any]]:
        """The run's metrics.jsonl records (empty when it has none); unreadable lines are skipped."""
        if run.run_id not in self._curves:
            self._curves[run.run_id] = _read_jsonl(run.run_dir / "metrics.jsonl") if run.run_dir else []
        return self._curves[run.run_id]


def matches(factors: dict[str, Any], selector: dict[str, Any]) -> bool:
    """Does a run's factor dict satisfy a filter such as {'objective.name': 'supervised'}?

    Values also compare as text (`0.9` matches '0.9'); a list means any of its values.
    """
    for k, want in selector.items():
        if k not in factors:
            return False
        wanted = want if isinstance(want, (list, tuple, set)) else [want]  # a list means any of
        if not any(_same(factors[k], w) for w in wanted):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) or str(a) == str(b)


def label(value: Any) -> str:
    """A factor value as shown in the report."""
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    return str(value)


def combo_label(factors: dict[str, Any], axes: list[str]) -> str:
    return ", ".join(f"{a}={label(factors.get(a))}" for a in axes) or "all runs"


def value_key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _spec_axis_order(spec: dict[str, Any]) -> list[str]:
    order = ["model", "family"] if spec.get("models") else []
    order += list((spec.get("grid") or {}).keys())
    for group in _zip_groups(spec):
        order += [k for k in group if k not in order]
    return order


def _spec_axis_values(spec: dict[str, Any], axis: str) -> list[Any]:
    models = spec.get("models")
    if isinstance(models, list) and axis in ("model", "family"):  # an evaluation study: the file's order
        key = "name" if axis == "model" else "family"
        return [m[key] for m in models if isinstance(m, dict) and m.get(key) is not None]
    grid = spec.get("grid") or {}
    if axis in grid and isinstance(grid[axis], list):
        return list(grid[axis])
    for group in _zip_groups(spec):
        if axis in group and isinstance(group[axis], list):
            return list(group[axis])
    return []


def zipped_with(spec: dict[str, Any], axis: str | None) -> set[str]:
    """`axis` and the axes of its `zip` group that it determines (each value of `axis` comes with one
    value of theirs): those move with it and are one factor. An axis that takes several values beside
    one value of `axis` (e.g. the caption level beside objective `clip` when `supervised` runs at one
    level only) is a factor of its own."""
    if axis is None:
        return set()
    for group in _zip_groups(spec):
        if axis in group:
            keys = [value_key(v) for v in group[axis]]
            return {
                other
                for other, values in group.items()
                if len(set(zip(keys, map(value_key, values)))) == len(set(keys))
            }
    return {axis}


def _zip_groups(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """`zip:` as a list of {axis: values} groups (a single mapping is one group)."""
    z = spec.get("zip") or []
    groups = [z] if isinstance(z, dict) else list(z)
    return [g for g in groups if isinstance(g, dict)]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves a partial last line
        if isinstance(rec, dict):
            out.append(rec)
    return out
