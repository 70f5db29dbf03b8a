"""World benchmarks: rendering throughput and the memory of an in-memory split."""

from __future__ import annotations

import gc
import os
import statistics
import time

import numpy as np
import torch

from clipshift.world import World, WorldSpec


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def render_throughput(
    spec: WorldSpec, n: int = 50000, repeats: int = 3, split: str = "train"
) -> dict[str, float]:
    """Images per second for samples with ground truth and captions, median over `repeats` passes."""
    world = World(spec)
    for _ in world.batches(split, 2048):  # warm-up: banks, allocator, thread pool
        pass
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for f, _img in world.batches(split, n):
            world.captions(f)
        rates.append(n / (time.perf_counter() - t))
    return {
        "world_render_images_per_s": round(statistics.median(rates)),
        "world_render_images_per_s_min": round(min(rates)),
        "world_render_images_per_s_max": round(max(rates)),
        "image_size": spec.image_size,
        "threads": torch.get_num_threads(),
    }


def split_memory(spec: WorldSpec, n: int = 100_000) -> dict[str, float]:
    """Bytes held by an n-sample training split in memory, counted and as process RSS growth.

    The world renders a small split first, so one-time costs (texture banks, thread pools, allocator
    arenas) are not charged to the split.
    """
    world = World(spec)
    world.split("train", 4096)
    gc.collect()
    before = _rss_bytes()
    split = world.split("train", n)
    gc.collect()
    after = _rss_bytes()
    out = {
        f"train_split_{n // 1000}k_mb": round(split.nbytes() / 1e6, 1),
        f"train_split_{n // 1000}k_rss_delta_mb": round((after - before) / 1e6, 1),
        "image_bytes_mb": round(split.images.nelement() / 1e6, 1),
    }
    assert len(split) == n and np.asarray(split.labels).shape == (n,)
    return out
