"""Sequential rejection packing, vectorised: points drawn one by one, each kept only if it lies at least a
minimum distance from every point kept before it (the rule `concepts._shapes` always had).

The rule is inherently sequential, but almost every candidate is rejected by a point kept *before its
block* started: a KD-tree of the kept points answers that for a whole block at once, and only the few
candidates it cannot reject are checked one by one, in order, against everything kept so far. The
random draws, their order and every accept/reject decision are those of the scalar loop (distances
within 1e-9 of the threshold are recomputed with the loop's own `np.linalg.norm`), so a world's shapes
do not change; only the time does (1,000 classes: 98 s of CPU before, about one now).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

_BORDER = 1e-9  # distances this close to the threshold are recomputed exactly as the scalar loop did
_FIRST_BLOCK = 256
_MAX_BLOCK = 1 << 16
_EPS = 3.0  # approximate nearest-neighbour slack: a faster tree search, a few more exact checks


def pack(n: int, draw: Callable[[int], np.ndarray], min_dist: float, patience: int) -> np.ndarray:
    """The first `n` candidates of `draw` that are at least the threshold from every earlier kept one.

    `draw(count)` returns the next `count` candidates (count, dim) of one random stream, in order. The
    threshold starts at `min_dist` and shrinks by 0.9 after every `patience` + 1 candidates (the scalar
    loop's `tries > patience` rule), so the packing always finishes. Returns the kept points (n, dim).
    """
    period = patience + 1
    kept: np.ndarray | None = None
    m = drawn = 0
    thr = min_dist
    block = _FIRST_BLOCK
    tree: cKDTree | None = None
    tree_m = 0
    while m < n:
        level = (drawn + 1) // period  # shrinks seen by the next candidate; a block never spans two
        count = min(block, (level + 1) * period - 1 - drawn)
        vec = np.asarray(draw(count), dtype=np.float64)
        if kept is None:
            kept = np.empty((n, vec.shape[1]))
        drawn += count
        maybe = np.arange(count)
        if m:
            if tree_m != m:
                tree, tree_m = cKDTree(kept[:m], leafsize=32), m
            assert tree is not None
            # an approximate search (eps) returns a real kept point, so a distance below thr proves a
            # rejection; what it cannot prove is settled exactly below
            near, _ = tree.query(vec, k=1, eps=_EPS, distance_upper_bound=thr + _BORDER)
            maybe = np.flatnonzero(near >= thr - _BORDER)
            maybe = maybe[_far(vec[maybe], kept[:m], thr)]
        start = m
        for j in maybe:  # in order: each against the points kept earlier in this block
            if _far(vec[j : j + 1], kept[start:m], thr)[0]:
                kept[m] = vec[j]
                m += 1
                if m == n:
                    break
        if 8 * len(maybe) < count:  # mostly rejections now: larger blocks amortise the tree
            block = min(4 * block, _MAX_BLOCK)
        if (drawn + 1) // period > level:
            thr *= 0.9
    assert kept is not None
    return kept


def _far(v: np.ndarray, kept: np.ndarray, thr: float) -> np.ndarray:
    """(len(v),) bool: each row of `v` at least `thr` from every row of `kept`, decided as the scalar loop
    decided it (its `np.linalg.norm(candidate - kept)` where the fast distance is within _BORDER)."""
    if not len(kept) or not len(v):
        return np.ones(len(v), dtype=bool)
    d2 = (v * v).sum(1)[:, None] + (kept * kept).sum(1)[None, :] - 2.0 * (v @ kept.T)
    d = np.sqrt(np.maximum(d2, 0.0))
    far = d >= thr
    for i, k in zip(*np.nonzero(np.abs(d - thr) < _BORDER)):
        far[i, k] = np.linalg.norm(v[i] - kept[k]) >= thr
    return far.all(1)
