"""A run's data: the table (rank 0 decodes files first under DDP), the image size it is loaded at, and the
rows of each step (a permutation per epoch that depends only on the seed and the epoch)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from clipshift.data.table import ImageTextTable
from clipshift.errors import UserError
from clipshift.train.config import TrainConfig


@dataclass
class RankContext:
    """Where this process stands in a (possibly distributed) run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def wants_cuda(device: str) -> bool:
    """Does a run's `device` (`train.config.Device`) put it on CUDA?"""
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def init_distributed(device: str) -> RankContext:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = wants_cuda(device)
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        rank = dist.get_rank()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        return RankContext(rank, world, dev)
    return RankContext(0, 1, torch.device("cuda" if use_cuda else "cpu"))


def image_size(cfg: TrainConfig) -> int:
    """The resolution the model takes: `model.image_size`, else its architecture's."""
    if cfg.model.image_size:
        return cfg.model.image_size
    import open_clip

    from clipshift.models import register_configs

    register_configs()
    mc = open_clip.get_model_config(cfg.model.name)
    if mc is None:
        raise UserError(f"model.name = {cfg.model.name!r}: unknown open_clip architecture")
    size = mc["vision_cfg"]["image_size"]
    return int(size if isinstance(size, int) else size[0])


def load_data(cfg: TrainConfig, ctx: RankContext, progress: bool) -> ImageTextTable:
    """The run's table. Under DDP, files on disk are decoded by rank 0 first and the other ranks wait,
    then read its decoded-image cache instead of each decoding every image again; the world is
    rendered by every rank at once (nothing to share)."""
    from clipshift.data.config import load_table

    size = image_size(cfg)
    if ctx.world_size == 1 or cfg.data.kind == "world":
        return load_table(cfg.data, size, progress=progress and ctx.main)
    if not ctx.main:
        dist.barrier()  # released once rank 0 has published the cache
    table = load_table(cfg.data, size, progress=progress and ctx.main)
    if ctx.main:
        dist.barrier()
    return table


def steps_per_epoch(table: ImageTextTable, cfg: TrainConfig) -> int:
    """Optimiser steps per pass over the table (the last partial batch is dropped)."""
    n = len(table) // cfg.optim.batch_size
    if n < 1:
        raise UserError(
            f"data has {len(table)} rows, fewer than one batch (optim.batch_size = {cfg.optim.batch_size})"
        )
    return n


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The row order of one epoch: a function of (seed, epoch) only, so a resumed run sees the same."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def mean_over_ranks(value: torch.Tensor, ctx: RankContext) -> torch.Tensor:
    """A scalar averaged over the ranks (detached). Each rank's contrastive loss scores only its own rows
    (`local_loss`), so rank 0's alone is not the batch's loss; and a non-finite loss on any rank must
    stop every rank, not leave the others waiting in the gradient all-reduce."""
    value = value.detach().float().clone()
    if ctx.world_size > 1:
        dist.all_reduce(value)
        value /= ctx.world_size
    return value


def close_distributed(ctx: RankContext, *, clean: bool) -> None:
    """Leave the process group. After a clean run every rank first waits for the others, so none exits
    (tearing down its sockets) while rank 0 still writes the record: a rank that left early made the
    others abort under load. After an error nobody waits (a failed rank may never arrive)."""
    if ctx.world_size == 1 or not dist.is_initialized():
        return
    if clean:
        dist.barrier()
    dist.destroy_process_group()


def cache_by_rank(table: ImageTextTable, ctx: RankContext) -> dict[str, Any]:
    """Under DDP, each rank's decoded-image cache outcome (e.g. ['miss', 'hit']): the record shows that
    only the first rank decoded. A collective call: every rank makes it."""
    if ctx.world_size == 1 or "cache" not in table.stats:
        return {}
    states: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(states, table.stats["cache"])
    return {"cache_by_rank": states}
