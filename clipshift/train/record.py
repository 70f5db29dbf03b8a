"""The end of a run: final.json's record (done or failed) and the final checkpoint with what loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipshift.data.table import ImageTextTable
from clipshift.fsio import write_json
from clipshift.train.checkpoint import atomic_save, model_only
from clipshift.train.config import TrainConfig
from clipshift.train.data import RankContext, cache_by_rank
from clipshift.train.setup import Setup


def done_record(
    cfg: TrainConfig,
    table: ImageTextTable,
    ctx: RankContext,
    *,
    total_steps: int,
    final_loss: float,
    wall: float,
    samples_this_segment: int,
    threads: list[int],
) -> dict[str, Any]:
    """final.json of a finished run. A collective call under DDP (every rank makes it)."""
    return {
        "status": "done",
        "steps": total_steps,
        "epochs": cfg.epochs,
        "samples": total_steps * cfg.optim.batch_size,
        "final_loss": final_loss,
        "wall_s": round(wall, 2),
        "samples_per_s": round(samples_this_segment / wall, 1),
        "objective": cfg.objective.name,
        "model": cfg.model.name,
        "world_size": ctx.world_size,
        "threads": threads[0] if len(threads) == 1 else threads,
        "data": {"source": table.source, "rows": len(table), **table.stats, **cache_by_rank(table, ctx)},
        # the evaluation label space and how often each of its classes was seen in training, so
        # evaluation and long-tail analyses need not reload the data
        "class_names": list(table.class_names[: table.eval_classes]),
        "class_counts": [int(c) for c in table.class_counts()[: table.eval_classes]],
    }


def failed_record(reason: str, step: int, total_steps: int) -> dict[str, Any]:
    """final.json of a run that stopped itself at `step`."""
    return {"status": "failed", "reason": reason, "step": step, "total_steps": total_steps}


def save_final(out_dir: Path, cfg: TrainConfig, setup: Setup) -> None:
    """checkpoints/final.pt holds {'state_dict', 'name', 'kind'}; a CLIP run also gets tokenizer.json and
    open_clip_config/<name>.json, so open_clip loads it by architecture name."""
    atomic_save(model_only(setup, cfg.model.name), out_dir / "checkpoints" / "final.pt")
    if setup.tokenizer is not None:
        from clipshift.models.factory import open_clip_config

        write_json(out_dir / "tokenizer.json", setup.tokenizer.state())
        cfg_dir = out_dir / "open_clip_config"
        cfg_dir.mkdir(exist_ok=True)
        overrides = setup.objective.model_overrides()
        write_json(
            cfg_dir / f"{cfg.model.name}.json", open_clip_config(cfg.model, setup.tokenizer, **overrides)
        )
