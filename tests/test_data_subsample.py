"""Controlled subsampling: counts, invariants and determinism of each intervention."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from clipshift.data.subsample import (
    match_counts,
    match_shortfall,
    subsample_zipf,
    subset_by_size,
    tail_classes,
    trim_tail,
    zipf_counts,
    zipf_ranks,
)
from clipshift.errors import UserError


def _labels(counts: list[int], unknown: int = 0, seed: int = 0) -> np.ndarray:
    lab = np.concatenate(
        [np.full(c, k, dtype=np.int64) for k, c in enumerate(counts)] + [np.full(unknown, -1)]
    )
    return lab[np.random.default_rng(seed).permutation(len(lab))]


def _counts(lab: np.ndarray, rows: np.ndarray, k: int) -> list[int]:
    return np.bincount(lab[rows][lab[rows] >= 0], minlength=k).tolist()


def _check_rows(rows: np.ndarray, n_total: int) -> None:
    assert rows.dtype == np.int64 and np.all(np.diff(rows) > 0), "sorted and unique"
    assert len(rows) == 0 or (rows[0] >= 0 and rows[-1] < n_total)


def test_subset_by_size() -> None:
    lab = _labels([50, 30, 3, 1], unknown=16)
    rows = subset_by_size(lab, n=10, seed=1)
    _check_rows(rows, len(lab))
    assert len(rows) == 10 and min(_counts(lab, rows, 4)) >= 1  # even the 1-sample class survives
    assert np.array_equal(rows, subset_by_size(lab, n=10, seed=1))
    assert not np.array_equal(rows, subset_by_size(lab, n=10, seed=2))
    assert len(subset_by_size(lab, fraction=0.25)) == 25
    assert len(subset_by_size(lab, fraction=1.0)) == 100
    # unknown rows are kept (at their share) and min_per_class=0 is a plain random subset
    assert any(lab[subset_by_size(lab, n=60, seed=s, min_per_class=0)].min() == -1 for s in range(3))
    assert min(_counts(lab, subset_by_size(lab, n=20, min_per_class=3), 4)) == 1  # a 1-row class keeps its 1
    assert _counts(lab, subset_by_size(lab, n=20, min_per_class=3), 4)[2] == 3
    with pytest.raises(UserError, match=r"n = 3 is smaller than the 4 rows needed"):
        subset_by_size(lab, n=3)
    with pytest.raises(UserError, match="exactly one of n and fraction"):
        subset_by_size(lab, n=3, fraction=0.5)
    with pytest.raises(UserError, match=r"fraction = 1.5: must be in \(0, 1\]"):
        subset_by_size(lab, fraction=1.5)
    with pytest.raises(UserError, match=r"n = 101: must be in \[1, 100\]"):
        subset_by_size(lab, n=101)


def test_zipf_profile() -> None:
    lab = _labels([100] * 8, unknown=5)
    rows = subsample_zipf(lab, alpha=1.0, seed=3)
    _check_rows(rows, len(lab))
    assert (lab[rows] >= 0).all(), "unknown rows are dropped"
    ranks = zipf_ranks(lab, seed=3)
    counts = _counts(lab, rows, 8)
    by_rank = [counts[c] for c in sorted(ranks, key=lambda c: ranks[c])]
    assert by_rank == [100 // r for r in range(1, 9)]  # head keeps all 100: as many as possible
    assert all(a >= b for a, b in itertools.pairwise(by_rank))
    assert np.array_equal(rows, subsample_zipf(lab, alpha=1.0, seed=3))
    assert not np.array_equal(rows, subsample_zipf(lab, alpha=1.0, seed=4))
    # a given head count, a steep profile floored at one row per class
    by = _counts(lab, subsample_zipf(lab, alpha=3.0, seed=3, max_per_class=40), 8)
    assert sorted(by, reverse=True) == [40, 5, 1, 1, 1, 1, 1, 1]
    assert _counts(lab, subsample_zipf(lab, alpha=0.0), 8) == [100] * 8  # alpha 0: balanced
    with pytest.raises(UserError, match=r"max_per_class = 101: .* at most 100"):
        subsample_zipf(lab, alpha=1.0, max_per_class=101)
    with pytest.raises(UserError, match=r"alpha = -1: must be a number in \[0, 10\]"):
        subsample_zipf(lab, alpha=-1)


def test_zipf_default_head_is_the_largest_feasible() -> None:
    available = np.array([10, 100, 2, 100])  # rank order; rank 3 has only 2 rows
    counts = zipf_counts(available, 1.0, None, 1)
    assert (counts <= available).all() and counts.tolist() == [8, 4, 2, 2]  # H = 8: floor(8/3) = 2
    assert zipf_counts(available, 1.0, 6, 1).tolist() == [6, 3, 2, 1]
    with pytest.raises(UserError, match=r"max_per_class = 9: .* at most 8 rows"):  # 9 // 3 = 3 > 2 rows
        zipf_counts(available, 1.0, 9, 1)


def test_trim_tail() -> None:
    lab = _labels([40, 30, 20, 10, 5, 5], unknown=3)
    rows = trim_tail(lab, k=3, shots=1, seed=0)
    _check_rows(rows, len(lab))
    counts = _counts(lab, rows, 6)
    assert counts[:3] == [40, 30, 20] and counts[3:] == [1, 1, 1]
    assert _counts(lab, trim_tail(lab, k=2, shots=0), 6) == [40, 30, 20, 10, 0, 0]
    # ties (classes 4 and 5 both have 5 rows) are broken by the seed
    cut = {s: tail_classes(lab, 1, seed=s)[0] for s in range(12)}
    assert set(cut.values()) == {4, 5}
    one = trim_tail(lab, k=1, shots=1, seed=0)
    assert _counts(lab, one, 6)[cut[0]] == 1
    assert np.array_equal(one, trim_tail(lab, k=1, shots=1, seed=0))
    # which row a one-shot class keeps depends on the seed
    assert len({tuple(trim_tail(lab, k=5, shots=1, seed=s)) for s in range(4)}) > 1
    assert len(trim_tail(lab, k=0)) == 110
    with pytest.raises(UserError, match=r"shots = 2: must be in \[0, 1\]"):
        trim_tail(lab, k=1, shots=2)
    with pytest.raises(UserError, match=r"k = 6: must be < the number of classes with rows \(6\)"):
        trim_tail(lab, k=6)


def test_match_counts(capsys: pytest.CaptureFixture[str]) -> None:
    lab = _labels([30, 30, 5, 20], unknown=4)
    target = [10, 0, 8, 20]
    rows = match_counts(lab, target, seed=0)
    _check_rows(rows, len(lab))
    assert _counts(lab, rows, 4) == [10, 0, 5, 20]  # exact where possible, all 5 where short
    assert match_shortfall(lab, target).tolist() == [0, 0, 3, 0]
    assert np.array_equal(rows, match_counts(lab, target, seed=0))
    assert not np.array_equal(rows, match_counts(lab, target, seed=1))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "1 class has fewer rows than the target (3 rows short" in err[0]
    match_counts(lab, [10, 10, 5, 10])
    assert capsys.readouterr().err == ""  # no shortfall, no warning
    with pytest.raises(UserError, match="target_counts has 3 entries but the labels go up to 3"):
        match_counts(lab, [1, 1, 1])
    with pytest.raises(UserError, match="target_counts must be ≥ 0"):
        match_counts(lab, [1, -1, 1, 1])


def test_bad_labels() -> None:
    with pytest.raises(UserError, match="1-D integer array"):
        subset_by_size(np.zeros((2, 2), dtype=np.int64), n=1)
    with pytest.raises(UserError, match="1-D integer array"):
        trim_tail(np.array([0.5, 1.0]), k=0)
    with pytest.raises(UserError, match="every label is -1"):
        subsample_zipf(np.full(5, -1), alpha=1.0)
