"""Evaluation studies: runs that evaluate existing checkpoints instead of training them.

A study with `models:` (`spec.ModelEntry`: any spec `clipshift eval --model` takes, a display name and a
`family` label) plans one run per model x grid point x zip point over its `base` (`spec.EvalSettings`).
Each run carries the factors `model` (the entry's name) and `family` (default: what `EvalModel.family`
calls it: clip, classifier, imagenet_classifier) besides its axes, so analyses compare families
(`compare: family`) or fit a baseline line on one (`baseline: {family: imagenet}`); within a family the
models are the replicates.

A run's id hashes its evaluation settings and the checkpoint's *content* (`models.digest`): the same
bytes at another path are the same run, new bytes at the same path a new one; names and families are
labels, so renaming a model re-labels its finished run instead of evaluating it again. Runs are executed
like training runs (same store, `done` marker, executors, resume: a finished run is skipped, an
interrupted one evaluates the sets it had not finished, `RunSets`) and give the numbers `clipshift eval`
gives on the same model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipshift.configio import set_path
from clipshift.errors import UserError
from clipshift.fsio import write_json
from clipshift.study.planner import ID_LENGTH, PlannedRun, evaluated_sets, grid_layers
from clipshift.study.spec import (
    EvalRunConfig,
    Layer,
    ModelEntry,
    StudySpec,
    _study_loc,
    check_analyses,
    eval_defaults,
    format_where,
    validate_config,
)
from clipshift.train.identity import drop

if TYPE_CHECKING:
    from clipshift.evaluate.result import EvalResult
    from clipshift.study.execute import RunOutcome, RunTask

# settings of the run config that cannot change an evaluation's numbers, or that the checkpoint's
# identity replaces (the spec as written: a path)
EVAL_UNREAD: tuple[str, ...] = (
    "model",
    "pretrained",
    "eval.cache_dir",
    "eval.convergence_points",  # snapshots of training: an evaluation run has none
    "eval.convergence_n",
)
# what a classifier's evaluation never reads (its own head answers, not prompts)
UNREAD_BY_CLASSIFIER: tuple[str, ...] = ("eval.templates",)
FEATURES = "features"  # STUDY_DIR/features/: image features shared by the runs of one checkpoint
SETS = "sets"  # runs/<id>/sets/<i>.json: each finished evaluation set's results, until the run is done


def canonical_eval_config(cfg: EvalRunConfig, identity: dict[str, Any]) -> dict[str, Any]:
    """What an evaluation run's id hashes: its settings as JSON without EVAL_UNREAD (and the prompts for
    a classifier), with the checkpoint's content identity in place of its path."""
    data = cfg.model_dump(mode="json")
    for path in (*EVAL_UNREAD, *(UNREAD_BY_CLASSIFIER if identity.get("kind") == "classifier" else ())):
        drop(data, path)
    # `device` is part of the id, as it is of a training run's (planner.HASH_EXCLUDE keeps it): on a GPU
    # other kernels give other float results, and an id means one set of numbers (the run's kept sets
    # and shared features never mix devices either). The CPU, where every evaluation ran before runs had
    # a device, is left out, so those runs keep their ids.
    if data.get("device") == "cpu":
        del data["device"]
    data["checkpoint"] = identity
    return data


def eval_run_id(cfg: EvalRunConfig, identity: dict[str, Any]) -> str:
    text = json.dumps(canonical_eval_config(cfg, identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def checkpoint_key(identity: dict[str, Any]) -> str:
    from clipshift.models.digest import identity_digest

    return identity_digest(identity)


# --------------------------------------------------------------------------------------------------
# planning


def plan_evaluation(spec: StudySpec) -> list[PlannedRun]:
    """Every run of a resolved evaluation study, models outermost (in the file's order), then the grid
    and zip points. The settings are validated first, then every path is looked up without reading a
    checkpoint (every missing dataset and checkpoint is named in the one error line), and only then is
    each checkpoint hashed, once."""
    from clipshift.models.digest import default_family, identity_of, locate

    assert spec.models is not None
    source = spec.source
    base = eval_defaults(spec.base)
    grid = grid_layers(spec)

    points: list[tuple[int, list[Layer], EvalRunConfig]] = []
    missing: dict[str, tuple[str, str]] = {}  # where -> (message, path): every path not found
    for i, entry in enumerate(spec.models):
        for point in grid:
            layers = [
                Layer(("model",), entry.model, ("models", i, "model")),
                Layer(("pretrained",), entry.pretrained, ("models", i, "pretrained")),
                *point,
            ]
            data = copy.deepcopy(base)
            for layer in layers:
                set_path(data, layer.path, layer.value, f"{source}: {format_where(layer.where)}")
            cfg = validate_config(EvalRunConfig, data, layers, source)
            _check_sets(cfg, layers, source, missing)
            points.append((i, layers, cfg))

    resolved = []
    model_missing: dict[str, tuple[str, str]] = {}
    for i, entry in enumerate(spec.models):
        try:
            resolved.append(locate(entry.model, entry.pretrained))
        except UserError as e:
            model_missing[f"models[{i}]"] = (
                f"models[{i}] ({entry.name}): {e}",
                entry.pretrained or entry.model,
            )
    _raise_missing(source, {**model_missing, **missing})
    identities = [identity_of(ck) for ck in resolved]

    worlds: dict[int, bool] = {}
    out: list[PlannedRun] = []
    owner: dict[str, int] = {}
    for i, layers, cfg in points:
        entry = spec.models[i]
        if i not in worlds:
            worlds[i] = cfg.world is not None or _has_own_world(entry, i, source)
        _check_world(cfg, worlds[i], entry, i, layers, source)
        rid = eval_run_id(cfg, identities[i])
        if rid in owner:
            j = owner[rid]
            if j != i:
                other = spec.models[j]
                raise UserError(
                    f"{source}: models[{i}] ({entry.name}) is the same checkpoint as models[{j}] "
                    f"({other.name}): their content is identical; list it once"
                )
            continue  # an axis that does not reach this model (e.g. prompts under a classifier)
        owner[rid] = i
        factors: dict[str, Any] = {
            "model": entry.name,
            "family": entry.family or default_family(identities[i]),
        }
        factors.update({".".join(layer.path): layer.value for layer in layers[2:]})
        out.append(PlannedRun(rid, factors, 0, cfg, checkpoint=identities[i]))
    check_analyses(spec, evaluated_sets(out))
    return out


MAX_LISTED = 6  # further problems named in the one error line


def _raise_missing(source: str, problems: dict[str, tuple[str, str]]) -> None:
    """One line: the first problem in full, then where the others are (and their paths)."""
    if not problems:
        return
    (first, _), *rest = problems.values()
    others = [f"{where} {path}" for where, (_, path) in list(problems.items())[1:]]
    tail = ""
    if rest:
        shown = ", ".join(others[:MAX_LISTED]) + (", …" if len(others) > MAX_LISTED else "")
        tail = f" (and {len(rest)} more: {shown})"
    raise UserError(f"{source}: {first}{tail}")


def _has_own_world(entry: ModelEntry, i: int, source: str) -> bool:
    """Is the entry a clipshift run trained on world data (whose world its world sets come from)?"""
    from clipshift.evaluate.run import run_world_spec

    if entry.pretrained is not None:
        return False
    try:
        return run_world_spec(entry.model) is not None
    except UserError as e:
        raise UserError(f"{source}: models[{i}] ({entry.name}): {e}") from None


def _set_where(layers: list[Layer], j: int) -> str:
    return format_where(_study_loc(("eval", "sets", j), layers, False))


def _check_sets(
    cfg: EvalRunConfig, layers: list[Layer], source: str, missing: dict[str, tuple[str, str]]
) -> None:
    """Set names and dataset paths, before any checkpoint is read: a world set's name must exist and a
    dataset's layout must be registered (else the error now); a dataset folder that is not there is
    added to `missing` (where -> (message, path))."""
    from clipshift.evaluate.datasets import DATASETS, split_spec
    from clipshift.world.evalsets import parse_split

    specs = [(_set_where(layers, j), name) for j, name in enumerate(cfg.eval.sets)]
    if cfg.probe_train is not None:
        specs.append((format_where(_study_loc(("probe_train",), layers, False)), cfg.probe_train))
    for where, name in specs:
        try:
            kind, path = split_spec(name)
            if kind is None:
                parse_split(name)
        except UserError as e:
            raise UserError(f"{source}: {where} = {name!r}: {e}") from None
        if kind is not None and DATASETS.get(kind).check_path and not Path(path).expanduser().exists():
            missing.setdefault(where, (f"{where} = {name!r}: {path} not found", path))


def _check_world(
    cfg: EvalRunConfig, has_world: bool, entry: ModelEntry, i: int, layers: list[Layer], source: str
) -> None:
    from clipshift.evaluate.datasets import split_spec

    if has_world:
        return
    for j, name in enumerate(cfg.eval.sets):
        if split_spec(name)[0] is None:
            raise UserError(
                f"{source}: {_set_where(layers, j)} = {name!r}: a world set needs a world, and models[{i}] "
                f"({entry.name}) is no clipshift run on world data; give base.world (e.g. world: {{}})"
            )


def evaluation_warnings(spec: StudySpec, runs: list[PlannedRun]) -> list[str]:
    """An axis that cannot reach some models (prompts under a classifier): one run serves its levels."""
    kinds = {r.factors["model"]: (r.checkpoint or {}).get("kind") for r in runs}
    out = []
    for axis in spec.axes():
        if axis not in UNREAD_BY_CLASSIFIER:
            continue
        missed = [m for m, k in kinds.items() if k == "classifier"]
        if missed:
            out.append(
                f"{axis} does not reach runs with model={' or '.join(missed)} (a classifier answers with its "
                "own head; one run serves all its levels)"
            )
    return out


def feature_sharing(runs: list[PlannedRun]) -> set[str]:
    """The runs whose checkpoint has other runs in the study (a grid over evaluation settings): they keep
    their image features in STUDY_DIR/features/ and reuse each other's."""
    keys = {r.run_id: checkpoint_key(r.checkpoint) for r in runs if r.checkpoint is not None}
    counts = Counter(keys.values())
    return {rid for rid, k in keys.items() if counts[k] > 1}


# --------------------------------------------------------------------------------------------------
# executing


@dataclass
class RunSets:
    """A run's finished evaluation sets (`evaluate.core.FinishedSets`): each set's results are written
    to `folder` atomically as soon as it is finished, so a run interrupted (killed) after some of its
    sets evaluates only the others when the study is run again, and its rows are an uninterrupted run's
    (the results are read back exactly). The folder is inside the run's directory, whose name is the
    run's identity, so what it holds was computed by this very evaluation; the spec is checked anyway.
    An unreadable file is a set to evaluate again."""

    folder: Path
    reused: list[str] = field(default_factory=list)

    def load(self, index: int, spec: str) -> list[EvalResult] | None:
        from clipshift.evaluate.result import EvalResult
        from clipshift.study.execute import read_json

        data = read_json(self.folder / f"{index}.json")
        if data is None or data.get("set") != spec:
            return None
        try:
            results = [EvalResult.from_dict(r) for r in data["results"]]
        except (KeyError, TypeError, AttributeError, ValueError):
            return None
        self.reused.append(spec)
        return results

    def save(self, index: int, spec: str, results: list[EvalResult]) -> None:
        self.folder.mkdir(exist_ok=True)
        doc = {"set": spec, "results": [r.to_dict() for r in results]}
        write_json(self.folder / f"{index}.json", doc, indent=None)


def evaluate_checkpoint(task: RunTask, d: Path) -> RunOutcome:
    """One evaluation run in a worker: check that the checkpoint is still the one planned, evaluate it on
    the run's sets (`evaluate_sets`, as `clipshift eval`), write eval.json, the store rows, `done`."""
    from clipshift.evaluate import evaluate_sets, open_model
    from clipshift.evaluate.features import FeatureCache
    from clipshift.evaluate.run import run_world_spec
    from clipshift.models.digest import checkpoint_identity
    from clipshift.study import execute as ex
    from clipshift.train.data import wants_cuda

    cfg = EvalRunConfig.model_validate(task.config)
    t0 = time.perf_counter()
    identity = checkpoint_identity(cfg.model, cfg.pretrained)
    if eval_run_id(cfg, identity) != task.run_id:
        raise UserError(
            f"{cfg.model!r} changed since the study was planned (its content is not the one run "
            f"{task.run_id} names); run the study again to plan it anew"
        )
    ex.start_record(task, d, checkpoint=identity)
    model = open_model(cfg.model, cfg.pretrained)
    if wants_cuda(cfg.device):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"device {cfg.device!r}: torch sees no CUDA device on this machine")
        # only the towers move: their features come back to the CPU and are scored there. In fp32, no
        # autocast: a study's numbers are `clipshift eval`'s, which evaluates in fp32
        model.module.to("cuda")
    if task.features_dir is not None:
        model.feature_cache = FeatureCache(Path(task.features_dir), checkpoint_key(identity))
    world_spec = cfg.world if cfg.world is not None else None
    if world_spec is None and cfg.pretrained is None:
        world_spec = run_world_spec(cfg.model)
    world = None
    if world_spec is not None:
        from clipshift.world import World

        world = World(world_spec)
    sets = cfg.eval.sets
    stats_set = "iid" if "iid" in sets else (sets[0] if sets else None)
    kept = RunSets(d / SETS)
    results = evaluate_sets(
        model, cfg.eval, world=world, probe_train=cfg.probe_train, objectnet_mappings=cfg.objectnet_mappings,
        stats_set=stats_set, progress=task.progress, finished=kept,
    )  # fmt: skip
    rows = ex.record_results(task, d, results)
    # images evaluated per second by this process (each set once: a probe's rows score images zero-shot
    # scored too; a set finished before an interruption is not evaluated here)
    n_images = sum(
        _count(r.metrics.get("n"))
        for r in results
        if r.task not in ("linear_probe", "knn") and r.dataset not in kept.reused
    )
    wall = round(time.perf_counter() - t0, 2)
    rate = round(n_images / wall, 1) if wall > 0 and n_images else None
    reused = len(kept.reused)
    ex.finish_record(
        task, d, wall, rate, rows=len(rows), model=model.name, pretrained=model.pretrained, reused_sets=reused
    )
    shutil.rmtree(d / SETS, ignore_errors=True)  # eval.json holds them now
    info = {"reused_sets": reused} if reused else {}
    return ex.RunOutcome(task.run_id, "done", None, wall, rate, trained=False, info=info)


def _count(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0
