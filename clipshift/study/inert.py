"""Plan-time warnings: a factor of the study that provably cannot act in some of its runs.

A comparison along such a factor is no finding, so `clipshift study plan` says so before anything runs and
`clipshift study run` prints it and records it in the store (meta `warnings`). Two kinds, both derived from
the registrations rather than listed here:

- an axis whose value cannot reach a run (`train.identity.unread_fields`: another objective's options,
  captions under an objective that reads none, a model setting its kind never reads; or a setting that
  changes no number, `planner.HASH_EXCLUDE`): the planner shares one run between its levels;
- an objective setting that cannot act on the data the run will have (`Objective.inert`, e.g. dynamic's K
  not above the expected classes per batch), from the class counts the data source knows before reading
  any image (`DataSource.class_counts`: the world's, not real files').
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from clipshift.objectives import OBJECTIVES, Objective
from clipshift.study.planner import HASH_EXCLUDE, PlannedRun
from clipshift.study.spec import RunConfig, StudySpec
from clipshift.train.identity import unread_fields


def plan_warnings(spec: StudySpec, runs: list[PlannedRun]) -> list[str]:
    """Every warning of a planned study, axes first (an evaluation study's: `evaluation_warnings`)."""
    if spec.evaluates:
        from clipshift.study.evaluation import evaluation_warnings

        return evaluation_warnings(spec, runs)
    return [*unreached_axes(spec, runs), *inert_settings(runs)]


def reaches(axis: str, config: Mapping[str, Any]) -> bool:
    """Can a run config (as JSON) read the setting at the dotted path `axis`?"""
    objective = config.get("objective")
    name = objective.get("name") if isinstance(objective, Mapping) else None
    head, _, rest = axis.partition(".")
    own = OBJECTIVES[name].Options.model_fields if name in OBJECTIVES else None
    if head == "objective" and rest and rest != "name" and own is not None and rest.split(".")[0] not in own:
        return False  # another objective's option (ObjectiveConfig dropped it)
    unread = [*unread_fields(config), *HASH_EXCLUDE]
    return not any(axis == f or axis.startswith(f + ".") for f in unread)


def unreached_axes(spec: StudySpec, runs: list[PlannedRun]) -> list[str]:
    """'<axis> does not reach runs with …' for each grid or zip axis some runs cannot read."""
    out = []
    configs = {r.run_id: r.config.model_dump(mode="json") for r in runs}
    for axis in spec.axes():
        missed = [r for r in runs if not reaches(axis, configs[r.run_id])]
        if missed:
            others = [r for r in runs if r not in missed]
            where = _where(missed, others, configs, drop=(axis,)) if others else "any run of the study"
            out.append(f"{axis} does not reach {where} (one run serves all its levels)")
    return out


def inert_settings(runs: list[PlannedRun]) -> list[str]:
    """'<setting> cannot act in runs with …: <why>' for objective settings that cannot act on the data."""
    groups: dict[tuple[str, str], list[PlannedRun]] = {}
    cache: dict[str, np.ndarray | None] = {}
    for r in runs:
        cls = OBJECTIVES[_cfg(r).objective.name]
        if cls.inert.__func__ is Objective.inert.__func__:  # type: ignore[attr-defined]  # nothing to check
            continue
        key = json.dumps(_cfg(r).data.model_dump(mode="json", exclude={"cache_dir"}), sort_keys=True)
        if key not in cache:
            cache[key] = _cfg(r).data.class_counts()
        counts = cache[key]
        if counts is None or counts.sum() == 0:
            continue
        found = cls.inert(_cfg(r).objective.options, counts / counts.sum(), _cfg(r).optim.batch_size)
        if found is not None:
            groups.setdefault(found, []).append(r)
    out = []
    configs = {r.run_id: r.config.model_dump(mode="json") for r in runs}
    for (what, why), members in groups.items():
        option = what.split()[0]  # `what` starts with the option's name ("dynamic_k = 3")
        value = getattr(_cfg(members[0]).objective.options, option, None)
        # the runs the warning's own words do not already exclude: same objective, same setting
        others = [
            r
            for r in runs
            if r not in members
            and _cfg(r).objective.name == _cfg(members[0]).objective.name
            and getattr(_cfg(r).objective.options, option, None) == value
        ]
        where = _where(members, others, configs, drop=(f"objective.{option}",))
        out.append(f"{what} cannot act in {where}: {why}")
    return out


def _cfg(run: PlannedRun) -> RunConfig:
    """A training run's config (inert settings are objective settings: evaluation runs have none)."""
    assert isinstance(run.config, RunConfig)
    return run.config


def _where(
    members: list[PlannedRun],
    others: list[PlannedRun],
    configs: Mapping[str, Mapping[str, Any]],
    drop: tuple[str, ...],
) -> str:
    """Words that single out `members` from `others`: 'runs with a=x b=y' (the factors they share), else
    'runs with a=x or z' (one factor whose values tell them apart), else how many they are. A factor a
    member cannot read is no description of it (the planner kept the first of the levels it serves)."""
    if not others:
        return "any run of the study"
    keys = [
        k
        for k in members[0].factors
        if k not in drop and all(k in r.factors and reaches(k, configs[r.run_id]) for r in members)
    ]
    common = {
        k: members[0].factors[k] for k in keys if all(r.factors[k] == members[0].factors[k] for r in members)
    }
    if common and not any(all(r.factors.get(k) == v for k, v in common.items()) for r in others):
        return "runs with " + " ".join(f"{k}={_show(v)}" for k, v in common.items())
    for k in keys:
        mine = list(dict.fromkeys(_show(r.factors[k]) for r in members))
        if not {_show(r.factors.get(k)) for r in others} & set(mine):
            return f"runs with {k}={' or '.join(mine)}"
    return f"{len(members)} of the {len(members) + len(others)} runs"


def _show(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
