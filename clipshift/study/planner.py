"""A study's runs: grid x zip x seeds expanded into validated run configs, each identified by a hash of
what its resolved config lets the run read (DomainBed's habit), so runs are shared by any specs or grid
points that resolve to the same one."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clipshift.configio import set_path
from clipshift.study.spec import (
    EvalRunConfig,
    Layer,
    RunConfig,
    StudySpec,
    check_analyses,
    format_where,
    resolve,
    validate_run,
    with_defaults,
)
from clipshift.train.config import NUMERICS_FREE
from clipshift.train.identity import drop, run_reads

# Fields that cannot change a run's results, left out of its id (train.config.NUMERICS_FREE: logging and
# checkpoint intervals, the decoded-image cache) and the evaluation's cache. `threads` is part of the id:
# on CPU float results differ between thread counts, so every executor runs a run with its own count.
HASH_EXCLUDE: tuple[str, ...] = (*NUMERICS_FREE, "eval.cache_dir")
ID_LENGTH = 12


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    factors: dict[str, Any]  # grid/zip axis -> value (not the seed); an evaluation's model and family too
    seed: int
    config: RunConfig | EvalRunConfig = field(repr=False)
    # an evaluation run: the content identity of its checkpoint (`models.digest`); None: a training run
    checkpoint: dict[str, Any] | None = field(default=None, repr=False)

    def label(self) -> str:
        """`objective.name=clip data.n=512 seed=0` (an evaluation run: `model=x family=clip`), for
        progress lines."""
        parts = [f"{k}={_show(v)}" for k, v in self.factors.items()]
        return " ".join(parts if self.checkpoint is not None else [*parts, f"seed={self.seed}"])


def _show(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def canonical_config(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as hashed: JSON types, only what the run reads (`train.identity.run_reads`:
    not another objective's options, not the captions of an objective that reads none, not a model
    setting its kind never reads), HASH_EXCLUDE removed."""
    data = run_reads(cfg.model_dump(mode="json"))
    for path in HASH_EXCLUDE:
        drop(data, path)
    return data


def run_id(cfg: RunConfig) -> str:
    """The run's identity: a hash of `canonical_config`. Configs that differ only in what the run cannot
    read share one id, so a study plans such points once."""
    text = json.dumps(canonical_config(cfg), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def grid_layers(spec: StudySpec) -> list[list[Layer]]:
    """The settings of every point of a resolved spec's grid (axes crossed, first axis outermost) and zip
    groups (each group's axes moving together), grid outermost: one Layer per axis, naming where in the
    file its value came from."""
    grid_axes = list(spec.grid.items())
    zip_groups = [list(g.items()) for g in spec.zip]
    zip_points = list(itertools.product(*[range(len(g[0][1])) for g in zip_groups]))
    out: list[list[Layer]] = []
    for g_idx in itertools.product(*[range(len(v)) for _, v in grid_axes]):
        for z_idx in zip_points:
            layers: list[Layer] = []
            for (axis, values), i in zip(grid_axes, g_idx):
                layers.append(Layer(tuple(axis.split(".")), values[i], ("grid", axis, i), ("grid", axis)))
            for gi, (group, i) in enumerate(zip(zip_groups, z_idx)):
                for axis, values in group:
                    where = ("zip", gi, axis)
                    layers.append(Layer(tuple(axis.split(".")), values[i], (*where, i), where))
            out.append(layers)
    return out


def plan(spec: StudySpec, *, profile: str | None = None, overrides: Sequence[str] = ()) -> list[PlannedRun]:
    """Every run of the study, seeds outermost (all factor combinations of the first seed come first, so a
    partial study already covers the grid). Points that resolve to an earlier point's config share its
    run and are listed once. An evaluation study (`models:`) is planned by
    `study.evaluation.plan_evaluation`."""
    spec = resolve(spec, profile, overrides)
    if spec.evaluates:
        from clipshift.study.evaluation import plan_evaluation

        return plan_evaluation(spec)
    base = with_defaults(spec.base)
    points = grid_layers(spec)

    out: list[PlannedRun] = []
    seen: set[str] = set()
    for s_i, seed in enumerate(spec.seeds):
        for point in points:
            layers = [*point, Layer(("seed",), seed, ("seeds", s_i))]
            data = copy.deepcopy(base)
            for layer in layers:
                set_path(data, layer.path, layer.value, f"{spec.source}: {format_where(layer.where)}")
            cfg = validate_run(with_defaults(data), layers, spec.source)
            rid = run_id(cfg)
            if rid in seen:
                continue
            seen.add(rid)
            factors = {".".join(layer.path): layer.value for layer in layers[:-1]}
            out.append(PlannedRun(rid, factors, seed, cfg))
    check_analyses(spec, evaluated_sets(out))
    return out


def evaluated_sets(runs: Sequence[PlannedRun]) -> list[str]:
    """Every evaluation set some run evaluates, as the results will name them (the spec as written)."""
    return list(dict.fromkeys(s for r in runs for s in r.config.eval.sets))
