"""The training loop: steps, per-step randomness, metrics.jsonl, resumable checkpoints, progress bar.

Every sampled choice of step s comes from a generator seeded by (seed, s) and the rows of epoch e from a
permutation seeded by (seed, e), so the loop continues bit-identically from any checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clipshift.data.table import Batch, ImageTextTable
from clipshift.train.checkpoint import (
    atomic_save,
    model_only,
    save_resumable,
    snapshot_path,
    snapshot_step,
    unwrap,
)
from clipshift.train.config import TrainConfig
from clipshift.train.data import RankContext, epoch_order, mean_over_ranks, steps_per_epoch
from clipshift.train.schedule import clamp_logit_scales
from clipshift.train.setup import Setup


class RunFailed(Exception):
    """The run stopped itself (e.g. non-finite loss); final.json records why."""

    def __init__(self, reason: str, step: int):
        super().__init__(reason)
        self.step = step


@dataclass(frozen=True)
class LoopEnd:
    step: int  # optimiser steps done
    last_loss: float
    interrupted: bool  # stopped by `stop_after` with a resumable checkpoint


def run_loop(
    cfg: TrainConfig,
    table: ImageTextTable,
    setup: Setup,
    ctx: RankContext,
    out_dir: Path,
    *,
    step: int,
    threads: list[int],
    progress: bool,
    stop_after: int | None,
) -> LoopEnd:
    """Train from `step` to the end (or to `stop_after`), appending to metrics.jsonl and writing
    checkpoints/latest.pt every `checkpoint_every` steps (each epoch when 0). Raises RunFailed on a
    non-finite loss. `threads`: the thread count of each segment of the run so far, for the checkpoint."""
    from tqdm import tqdm

    per_epoch = steps_per_epoch(table, cfg)
    total_steps = per_epoch * cfg.epochs
    batch_size = cfg.optim.batch_size
    local_bs = batch_size // ctx.world_size
    ckpt_every = cfg.checkpoint_every or per_epoch
    ckpt_path = out_dir / "checkpoints" / "latest.pt"
    # snapshots by the step they follow; one taken before an interruption is on disk, a later one is
    # taken after the resume (its weights are the same, as resuming is bit-exact)
    snapshots: dict[int, list[float]] = {}
    for f in cfg.snapshots:
        snapshots.setdefault(snapshot_step(f, total_steps), []).append(f)
    mean = torch.tensor(setup.mean, device=ctx.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(setup.std, device=ctx.device).view(1, 3, 1, 1) * 255
    metrics = open(out_dir / "metrics.jsonl", "a" if step > 0 else "w") if ctx.main else None  # noqa: SIM115
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc="train",
        unit="step",
        disable=not (progress and ctx.main),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    window_t, window_n, last_loss = time.perf_counter(), 0, float("nan")
    setup.model.train()
    order_epoch, order = -1, np.zeros(0, dtype=np.int64)
    try:
        while step < total_steps:
            epoch, in_epoch = divmod(step, per_epoch)
            if epoch != order_epoch:  # one permutation per epoch, not per step
                order_epoch, order = epoch, epoch_order(len(table), cfg.seed, epoch)
            rows = order[in_epoch * batch_size : (in_epoch + 1) * batch_size]
            rows = rows[ctx.rank * local_bs : (ctx.rank + 1) * local_bs]
            batch = table.batch(rows)
            gen = torch.Generator().manual_seed(step_seed(cfg.seed, step))

            loss = step_loss(setup, batch, gen, table.class_names, mean, std, ctx)
            batch_loss = mean_over_ranks(loss, ctx)  # the global batch's loss, the same on every rank
            if not torch.isfinite(batch_loss):
                raise RunFailed(f"non-finite loss ({batch_loss.item()}) at step {step}", step)
            _update(setup, loss, cfg.optim.grad_clip)
            step += 1
            window_n += len(rows) * ctx.world_size
            last_loss = float(batch_loss)

            if step % cfg.log_every == 0 or step == total_steps:
                now = time.perf_counter()
                rate = window_n / max(now - window_t, 1e-9)
                rec = {
                    "step": step,
                    "epoch": epoch,
                    "loss": round(last_loss, 6),
                    "lr": setup.scheduler.get_last_lr()[0],
                    "samples_per_s": round(rate, 1),
                }
                scale = logit_scale(setup.model)
                if scale is not None:
                    rec["logit_scale"] = round(scale, 4)
                if metrics:
                    metrics.write(json.dumps(rec) + "\n")
                    metrics.flush()
                bar.set_postfix(loss=f"{last_loss:.3f}", samples_s=f"{rate:.0f}")
                window_t, window_n = now, 0
            bar.update(1)
            if step in snapshots and ctx.main:
                for f in snapshots[step]:
                    atomic_save(model_only(setup, cfg.model.name), snapshot_path(out_dir, f))
            if step % ckpt_every == 0 and step < total_steps and ctx.main:
                save_resumable(ckpt_path, setup, step, threads)
            if stop_after is not None and step >= stop_after and step < total_steps:
                if ctx.main:
                    save_resumable(ckpt_path, setup, step, threads)
                return LoopEnd(step, last_loss, interrupted=True)
    finally:
        bar.close()
        if metrics:
            metrics.close()
    return LoopEnd(step, last_loss, interrupted=False)


def step_loss(
    setup: Setup,
    batch: Batch,
    gen: torch.Generator,
    class_names: list[str],
    mean: torch.Tensor,
    std: torch.Tensor,
    ctx: RankContext,
) -> torch.Tensor:
    """The loss of one batch (forward pass only)."""
    images = batch.images.to(ctx.device, non_blocking=True).float().sub_(mean).div_(std)
    if setup.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    batch.labels = batch.labels.to(ctx.device)
    amp = torch.autocast("cuda", dtype=setup.amp_dtype) if setup.use_amp else nullcontext()
    with amp:
        if setup.tokenizer is not None:  # a CLIP model
            tokens = setup.tokenizer(setup.objective.texts(batch, class_names)).to(ctx.device)
            out = setup.model(images, tokens)
        else:
            out = setup.model(images)
        loss: torch.Tensor = setup.objective(out, batch, gen)
        return loss


def _update(setup: Setup, loss: torch.Tensor, grad_clip: float | None) -> None:
    """One optimiser step from `loss`: backward (scaled under fp16), clipping, step, logit-scale clamp,
    schedule."""
    setup.optimizer.zero_grad(set_to_none=True)
    setup.scaler.scale(loss).backward()
    if grad_clip:
        setup.scaler.unscale_(setup.optimizer)
        torch.nn.utils.clip_grad_norm_(setup.model.parameters(), grad_clip)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    clamp_logit_scales(setup.parameters)
    setup.scheduler.step()


def step_seed(seed: int, step: int) -> int:
    """The seed of step `step`'s generator (the objective's sampled choices)."""
    return int(np.random.default_rng([seed, step, 0x57E9]).integers(2**62))


def logit_scale(model: nn.Module) -> float | None:
    """The model's (or its head's) learnable temperature, exp'd; None if it has none."""
    m = unwrap(model)
    p = getattr(m, "logit_scale", None)
    if p is None:
        head = getattr(m, "head", None)
        p = getattr(head, "logit_scale", None)
    return float(p.detach().exp()) if isinstance(p, torch.Tensor) else None
