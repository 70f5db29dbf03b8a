"""World evaluation sets (`iid`, `counter`, `corrupt-noise-3`, …), rendered in memory from a world, with
ground-truth factors as groups."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from clipshift.errors import UserError
from clipshift.evaluate.datasets.base import EvalData

GROUP_FACTORS = ("background", "domain", "common", "colour", "pattern", "size", "class")


def world_help() -> str:
    """The world sets, named from the world's registries (a new domain or corruption appears by itself)."""
    from clipshift.world.evalsets import eval_set_descriptions

    names = ", ".join(eval_set_descriptions())
    return f"a world set name ({names}; rendered from the run's world or --world)"


_WORLD_CACHE_BYTES = 512 * 2**20  # rendered world sets kept for the next run of a study
_world_cache: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()  # key -> (images, truth)


def world_set(
    world: Any,
    name: str,
    n: int,
    group_by: list[str] | tuple[str, ...] = (),
    *,
    start: int = 0,
    image_size: int | None = None,
) -> EvalData:
    """Samples [start, start + n) of the world's set `name` (class-balanced for evaluation sets), with the
    ground-truth factors of `group_by` as groups. Rendered sets are kept in a small in-process cache,
    so the runs of a study that share a world render each set once. Each class's confusable classes are
    the world's whole ranking (`World.confusable(K - 1)`, whose first N columns are `World.confusable(N)`)."""
    import numpy as np

    from clipshift.world.evalsets import parse_split

    sdef = parse_split(name)
    if image_size is not None and world.spec.image_size != image_size:
        raise UserError(
            f"world images are {world.spec.image_size} px but the model takes {image_size} px "
            f"(set the world's image_size to {image_size})"
        )
    bad = [g for g in group_by if g not in GROUP_FACTORS]
    if bad:
        raise UserError(f"group_by: unknown factor {bad[0]!r}; choose from {', '.join(GROUP_FACTORS)}")
    key = (world.spec.model_dump_json(), name, int(n), int(start))
    hit = _world_cache.get(key)
    if hit is None:
        images, truth = _render(world, sdef, n, start)
        _world_cache[key] = (images, truth)
        while sum(v[0].nbytes for v in _world_cache.values()) > _WORLD_CACHE_BYTES and len(_world_cache) > 1:
            _world_cache.popitem(last=False)
    else:
        _world_cache.move_to_end(key)
        images, truth = hit
    k = world.concepts.n_classes
    groups = {g: _world_groups(world, truth, g) for g in group_by}
    return EvalData(
        name=name,
        images=images,
        labels=truth.label.astype(np.int64),
        class_names=list(world.class_names),
        groups=groups,
        confusable=world.confusable(k - 1) if k >= 2 else None,
        source=f"world:{name}",
        info={"n": int(n), "start": int(start), "n_classes": k},
    )


def _render(world: Any, sdef: Any, n: int, start: int) -> tuple[Any, Any]:
    import numpy as np
    import torch

    from clipshift.world.world import DEFAULT_BATCH, GroundTruth

    size = world.spec.image_size
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    parts = []
    for lo in range(0, n, DEFAULT_BATCH):
        f = world.factors(sdef, np.arange(start + lo, start + min(lo + DEFAULT_BATCH, n)))
        world.renderer.render(f, out=images[lo : lo + len(f)])
        parts.append(GroundTruth.of(f))
    return images, GroundTruth.concat(parts, sdef.name)


def _world_groups(world: Any, truth: Any, factor: str) -> tuple[Any, list[str]]:
    import numpy as np

    from clipshift.world.names import COLOURS, PATTERNS, SIZES
    from clipshift.world.sampling import DOMAIN_NAMES

    if factor == "common":
        return truth.common.astype(np.int64), ["counter", "common"]
    if factor == "class":
        return truth.label.astype(np.int64), list(world.concepts.names)
    names = {
        "background": world.background_names,
        "domain": list(DOMAIN_NAMES),
        "colour": [c[0] for c in COLOURS],
        "pattern": list(PATTERNS),
        "size": [s[0] for s in SIZES],
    }[factor]
    return getattr(truth, factor).astype(np.int64), names
