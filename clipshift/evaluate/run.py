"""Evaluate a trained run directory for the study runner: its model and world, `evaluate_sets` on the
run's `eval:` section, and the per-class training counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from clipshift.errors import UserError
from clipshift.evaluate.checks import checks_result, convergence_result
from clipshift.evaluate.config import EvalConfig
from clipshift.evaluate.core import evaluate_sets
from clipshift.evaluate.model import open_model
from clipshift.evaluate.result import EvalResult


def _read_json(p: Path) -> dict[str, Any]:
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _train_counts(
    run_dir: Path, train_cfg: Any, final: dict[str, Any], world: Any
) -> tuple[list[str], list[int]]:
    """The training label space and per-class counts: final.json's, else (older runs on an unsubsampled
    world) recomputed from the world's labels without rendering."""
    names, counts = final.get("class_names"), final.get("class_counts")
    if isinstance(names, list) and isinstance(counts, list):
        return [str(n) for n in names], [int(c) for c in counts]
    if world is not None and getattr(train_cfg.data, "subsample", None) is None:
        k = world.concepts.n_classes
        labels = world.factors(train_cfg.data.split, np.arange(train_cfg.data.n)).label
        return list(world.class_names), np.bincount(labels[labels < k], minlength=k).astype(int).tolist()
    return [], []


def run_world_spec(model_spec: str | Path) -> Any:
    """The WorldSpec of a clipshift run directory trained on world data (what its world sets are drawn
    from when no other world is given), else None."""
    import yaml

    from clipshift.train.config import TrainConfig

    run = Path(model_spec).expanduser()
    if not (run.is_dir() and (run / "config.yaml").is_file()):
        return None
    try:
        cfg = TrainConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    except Exception as e:
        raise UserError(f"{run / 'config.yaml'}: not a valid run config ({str(e).splitlines()[0]})") from e
    return cfg.data.world if cfg.data.kind == "world" else None


def evaluate_run(
    run_dir: str | Path, cfg: EvalConfig | None = None, progress: bool = False
) -> list[EvalResult]:
    """Evaluate a trained run on `cfg.sets` (see `EvalResult` for what comes back).

    CLIP runs: zero-shot with `cfg.templates`; classifier runs: their head. World sets are rendered from
    the run's world (`cfg.n_per_set` each, class-balanced); other specs (`imagefolder:/path`, …) are read
    from disk. With `cfg.linear_probe` / `cfg.knn`, a probe learns from `cfg.probe_n` fresh iid samples of
    the world (or half of each non-world set). The `iid` set (else the first) also reports `nc1` of the
    image features and `prototype_coherence` of the class prototypes; a result with dataset `train`
    carries the per-class training counts (`class_count`), then come the run's checks (`train`, task
    `checks`, from final.json) and its convergence check (the first set, task `convergence`: acc1 of the
    snapshots at `cfg.convergence_points` and of the final model)."""
    import yaml

    from clipshift.train.config import TrainConfig

    cfg = cfg or EvalConfig()
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise UserError(f"{run}: not a run directory (no config.yaml)")
    try:
        train_cfg = TrainConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    except Exception as e:
        raise UserError(f"{run / 'config.yaml'}: not a valid run config ({str(e).splitlines()[0]})") from e
    final = _read_json(run / "final.json")
    model = open_model(run)
    world = None
    if train_cfg.data.kind == "world":
        from clipshift.world import World

        world = World(train_cfg.data.world)
    stats_set = "iid" if "iid" in cfg.sets else (cfg.sets[0] if cfg.sets else None)
    results = evaluate_sets(model, cfg, world=world, stats_set=stats_set, progress=progress)
    names, counts = _train_counts(run, train_cfg, final, world)
    results.append(
        EvalResult(
            dataset="train",
            task="zeroshot_classification" if model.kind == "clip" else "classification",
            metrics={"n": float(sum(counts))} if counts else {},
            per_class={"class_count": [float(c) for c in counts]} if counts else {},
            class_names=names,
            info={"source": "final.json" if final.get("class_counts") is not None else "recomputed"},
        )
    )
    for extra in (checks_result(final), convergence_result(run, model, cfg, world, progress)):
        if extra is not None:
            results.append(extra)
    return results
