"""Controlled subsampling of a labelled table: data scale, Zipf class frequencies, trimmed tails and
matched class counts (the interventions of Wen et al., "What makes CLIP more robust to long-tailed
pre-training data?").

Every function takes the labels array (int64; -1 = unknown class), returns SORTED row indices (so a
subset keeps the table's order and memmap reads stay sequential), and is deterministic in `seed`.
Only `subset_by_size` keeps rows of unknown class; the class-frequency interventions drop them, as
they cannot place them. "Classes" below are the labels ≥ 0 that have at least one row.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from clipshift.errors import UserError


def _labels(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise UserError(f"labels must be a 1-D integer array, got shape {lab.shape} dtype {lab.dtype}")
    if len(lab) and int(lab.min()) < -1:
        raise UserError(f"labels must be ≥ -1 (-1 = unknown), got {int(lab.min())}")
    return lab.astype(np.int64, copy=False)


def _int_arg(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name} = {value!r}: must be an integer")
    if value < lo or (hi is not None and value > hi):
        bound = f"in [{lo}, {hi}]" if hi is not None else f"≥ {lo}"
        raise UserError(f"{name} = {value!r}: must be {bound}")
    return int(value)


def _class_rows(lab: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Rows of each present class, each in a seeded random order (a prefix is a random sample)."""
    out: dict[int, np.ndarray] = {}
    for c in np.unique(lab[lab >= 0]).tolist():
        rows = np.flatnonzero(lab == c)
        out[int(c)] = rows[rng.permutation(len(rows))]
    return out


def _take(per_class: dict[int, np.ndarray], counts: dict[int, int]) -> np.ndarray:
    parts = [per_class[c][: counts[c]] for c in per_class]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def subset_by_size(
    labels: np.ndarray,
    n: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    min_per_class: int = 1,
) -> np.ndarray:
    """A random subset of `n` rows (or `fraction` of them, rounded, at least 1), keeping at least
    `min_per_class` rows of every class (all of a smaller class): a data-scale study must not lose
    classes by chance. Rows of unknown class (-1) compete for the remaining places like any other.
    """
    lab = _labels(labels)
    total = len(lab)
    if (n is None) == (fraction is None):
        raise UserError(f"give exactly one of n and fraction (n = {n!r}, fraction = {fraction!r})")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise UserError(f"fraction = {fraction!r}: must be in (0, 1]")
        n = max(1, round(fraction * total))
    n = _int_arg("n", n, 1, total)
    min_per_class = _int_arg("min_per_class", min_per_class, 0)
    rng = np.random.default_rng(seed)
    per_class = _class_rows(lab, rng)
    floor = {c: min(min_per_class, len(r)) for c, r in per_class.items()}
    need = sum(floor.values())
    if need > n:
        raise UserError(
            f"n = {n} is smaller than the {need} rows needed to keep min_per_class = {min_per_class} "
            f"of each of the {len(per_class)} classes"
        )
    reserved = _take(per_class, floor)
    rest = np.setdiff1d(np.arange(total, dtype=np.int64), reserved, assume_unique=True)
    extra = rest[rng.permutation(len(rest))[: n - need]]
    return np.sort(np.concatenate([reserved, extra]))


def zipf_counts(
    available: np.ndarray, alpha: float, max_per_class: int | None, min_per_class: int
) -> np.ndarray:
    """Target counts for classes listed in rank order (`available[r]` rows at rank r + 1):
    floor(H · rank^-alpha), at least `min_per_class` (all of a smaller class). H = `max_per_class`, or
    by default the largest head count that every class can supply."""
    ranks = np.arange(1, len(available) + 1, dtype=np.float64)
    decay = ranks ** -float(alpha)
    # largest H with floor(H · decay_r) ≤ available_r for every r; the epsilon absorbs float error
    h_max = int(np.floor(np.min((available + 1) / decay) - 1e-9))
    h_max = max(min(h_max, int(available[0])), 0)
    if max_per_class is None:
        head = h_max
    elif max_per_class > h_max:
        raise UserError(
            f"max_per_class = {max_per_class}: the class counts allow a Zipf(alpha = {alpha}) profile "
            f"with at most {h_max} rows in the head class"
        )
    else:
        head = max_per_class
    counts = np.floor(head * decay + 1e-9).astype(np.int64)
    counts = np.maximum(counts, min_per_class)
    return np.minimum(counts, available)


def subsample_zipf(
    labels: np.ndarray,
    alpha: float,
    seed: int = 0,
    max_per_class: int | None = None,
    min_per_class: int = 1,
) -> np.ndarray:
    """Rows whose class counts follow a Zipf profile: count ∝ rank^-alpha, ranks given to the classes
    in a seeded random order (so frequency is independent of anything else about a class), scaled so
    the head class keeps `max_per_class` rows. The default head count is the largest the data allows,
    i.e. the subset is as large as possible. Counts never fall below `min_per_class` (a class with
    fewer rows keeps all of them), so no class vanishes; alpha = 0 gives balanced classes.
    """
    lab = _labels(labels)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 10:
        raise UserError(f"alpha = {alpha!r}: must be a number in [0, 10]")
    if max_per_class is not None:
        max_per_class = _int_arg("max_per_class", max_per_class, 1)
    min_per_class = _int_arg("min_per_class", min_per_class, 0)
    rng = np.random.default_rng(seed)
    per_class = _class_rows(lab, rng)
    if not per_class:
        raise UserError("subsample_zipf needs labelled rows; every label is -1 (unknown)")
    order = _rank_order(per_class, rng)
    available = np.array([len(per_class[int(c)]) for c in order], dtype=np.int64)
    counts = zipf_counts(available, alpha, max_per_class, min_per_class)
    return _take(per_class, {int(c): int(k) for c, k in zip(order, counts)})


def _rank_order(per_class: dict[int, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The present classes in a seeded random order: order[r] gets frequency rank r + 1."""
    classes = np.array(sorted(per_class), dtype=np.int64)
    return classes[rng.permutation(len(classes))]


def _rarest(per_class: dict[int, np.ndarray], rng: np.random.Generator, k: int) -> list[int]:
    """The k classes with the fewest rows, ties broken by a seeded random order."""
    classes = np.array(sorted(per_class), dtype=np.int64)
    sizes = np.array([len(per_class[int(c)]) for c in classes], dtype=np.int64)
    tie = rng.permutation(len(classes))
    return [int(c) for c in classes[np.lexsort((tie, sizes))[:k]]]


def zipf_ranks(labels: np.ndarray, seed: int = 0) -> dict[int, int]:
    """The rank (1 = head) `subsample_zipf` gives each class for this seed (for plots and tests)."""
    lab = _labels(labels)
    rng = np.random.default_rng(seed)
    order = _rank_order(_class_rows(lab, rng), rng)  # the generator used exactly as subsample_zipf does
    return {int(c): r + 1 for r, c in enumerate(order.tolist())}


def trim_tail(labels: np.ndarray, k: int, shots: int = 0, seed: int = 0) -> np.ndarray:
    """Cut the `k` rarest classes (ties broken in a seeded random order) to `shots` rows (0 or 1):
    the tail of a long-tailed set made explicit. Other classes keep all their rows."""
    lab = _labels(labels)
    rng = np.random.default_rng(seed)
    per_class = _class_rows(lab, rng)
    k = _int_arg("k", k, 0)
    shots = _int_arg("shots", shots, 0, 1)
    if k >= len(per_class) and k > 0:
        raise UserError(f"k = {k}: must be < the number of classes with rows ({len(per_class)})")
    counts = {c: len(rows) for c, rows in per_class.items()}
    for c in _rarest(per_class, rng, k):
        counts[c] = min(shots, counts[c])
    return _take(per_class, counts)


def tail_classes(labels: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """The classes `trim_tail(labels, k, seed=seed)` cuts, rarest first."""
    lab = _labels(labels)
    rng = np.random.default_rng(seed)
    return _rarest(_class_rows(lab, rng), rng, _int_arg("k", k, 0))


def _targets(lab: np.ndarray, target_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    t = np.asarray(target_counts)
    if t.ndim != 1 or not (np.issubdtype(t.dtype, np.integer) or len(t) == 0):
        raise UserError(f"target_counts must be a list of integers, got shape {t.shape} dtype {t.dtype}")
    t = t.astype(np.int64)
    if len(t) and int(t.min()) < 0:
        raise UserError(f"target_counts must be ≥ 0, got {int(t.min())}")
    top = int(lab.max()) if len(lab) else -1
    if top >= len(t):
        raise UserError(f"target_counts has {len(t)} entries but the labels go up to {top}")
    return t


def match_shortfall(labels: np.ndarray, target_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per class: how many rows `match_counts` falls short of the target (target - available, ≥ 0)."""
    lab = _labels(labels)
    t = _targets(lab, target_counts)
    have = np.bincount(lab[lab >= 0], minlength=len(t))
    return np.maximum(t - have, 0)


def match_counts(labels: np.ndarray, target_counts: Sequence[int] | np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows with `target_counts[c]` rows of each class c (e.g. another dataset's class counts, so two
    sources differ in content but not in class frequencies). A class with fewer rows than its target
    keeps all of them: the shortfall is printed as one warning line on stderr, and `match_shortfall`
    returns it per class (load_table records it in the table's stats)."""
    lab = _labels(labels)
    t = _targets(lab, target_counts)
    per_class = _class_rows(lab, np.random.default_rng(seed))
    short = match_shortfall(lab, t)
    if short.sum():
        n_cls = int((short > 0).sum())
        print(
            f"warning: match_counts: {n_cls} class{'es have' if n_cls > 1 else ' has'} fewer rows than the "
            f"target ({int(short.sum())} rows short in total); they keep all their rows",
            file=sys.stderr,
        )
    return _take(per_class, {c: int(t[c]) for c in per_class})
