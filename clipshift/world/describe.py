"""Summary statistics of a split, computed from its factors alone (no rendering, so n = 10^5 is fast)."""

from __future__ import annotations

from typing import Any

import numpy as np

from clipshift.errors import UserError
from clipshift.world import shifts
from clipshift.world.evalsets import parse_split
from clipshift.world.world import World

_CHUNK = 50_000  # factors carry a few float arrays per sample; chunking bounds memory for huge n


def describe_split(world: World, split: str, n: int) -> dict[str, Any]:
    """The spec and the statistics of samples [0, n) of `split`, as JSON-able values.

    `class_counts` covers every concept (the K evaluation classes, then the open-world concepts);
    `background_class_cooccurrence` is K x B over the evaluation classes only. `class_frequency_imbalance`
    is max / median count over the evaluation classes that occur (None if none does). A world with
    superclasses adds `superclass_names`, `superclass_of` (per concept, open-world ones included) and
    `superclass_counts` (samples per superclass).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UserError(f"number of samples n must be an integer ≥ 1, got {n!r}")
    sdef = parse_split(split)
    n = int(n)
    k = world.concepts.n_classes
    n_total = world.concepts.n_total
    b = world.spec.backgrounds.n_backgrounds

    class_counts = np.zeros(n_total, dtype=np.int64)
    cooc = np.zeros((k, b), dtype=np.int64)
    domain_names = shifts.domain_names()
    domains = np.zeros(len(domain_names), dtype=np.int64)
    n_common = 0
    for lo in range(0, n, _CHUNK):
        f = world.factors(sdef, np.arange(lo, min(lo + _CHUNK, n)))
        class_counts += np.bincount(f.label, minlength=n_total)
        ev = f.label < k  # open-world concepts have no row in the K x B matrix
        np.add.at(cooc, (f.label[ev], f.background[ev]), 1)
        domains += np.bincount(f.domain, minlength=len(domain_names))
        n_common += int(f.common.sum())

    present = class_counts[:k][class_counts[:k] > 0]
    imbalance = float(present.max() / np.median(present)) if len(present) else None
    head = world.factors(sdef, np.arange(min(5, n)))
    family = world.concepts.superclass_of
    hierarchy: dict[str, Any] = {}
    if world.concepts.superclass_names:
        hierarchy = {
            "superclass_names": world.superclass_names,
            "superclass_of": family.tolist(),
            "superclass_counts": np.bincount(
                family, weights=class_counts, minlength=len(world.superclass_names)
            )
            .astype(np.int64)
            .tolist(),
        }
    return {
        "spec": world.spec.model_dump(mode="json"),
        "split": split,
        "n": n,
        "class_names": world.concepts.names[:k],
        "open_world_class_names": world.concepts.names[k:],
        "class_counts": class_counts.tolist(),
        "class_frequency_imbalance": imbalance,
        "background_names": world.background_names,
        "background_class_cooccurrence": cooc.tolist(),
        "common_fraction": n_common / n,
        "domain_mix": {d: float(c / n) for d, c in zip(domain_names, domains)},
        "corruption": {"kind": sdef.corruption or "none", "severity": sdef.severity},
        "caption_level": world.spec.captions.level,
        "example_captions": world.captions(head),
        **hierarchy,
    }
