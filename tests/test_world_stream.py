"""Streamed splits: rows rendered on demand equal the in-memory split's rows bit for bit, and a stream of
a million rows holds only its labels."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from clipshift.errors import UserError
from clipshift.world import World, WorldSpec
from clipshift.world.hierarchy import scale_overrides

SPECS = {
    "default": {},
    "zipf-open": {
        "seed": 3,
        "concepts": {"n_classes": 7},
        "frequency": {"profile": "zipf", "alpha": 1.2, "trim_tail": 2, "trim_shots": 1},
        "open_world": {"n_concepts": 3, "fraction": 0.2},
        "domains": {"photo": 1.0, "sketch": 1.0},
        "captions": {"synonym_prob": 0.3},
    },
    "hierarchy": {**scale_overrides(100), "captions": {"superclass_prob": 0.3}},
}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("split", ["train", "counter", "corrupt-noise-2"])
def test_streamed_rows_equal_the_in_memory_split(name: str, split: str) -> None:
    w = World(WorldSpec.model_validate(SPECS[name]))
    n = 300
    held = w.split(split, n)
    s = w.stream(split, n)
    assert len(s) == n and np.array_equal(s.labels, held.labels)
    rows = np.random.default_rng(0).permutation(n)[:97]  # any rows, any order
    images, caps = s.batch(rows)
    assert images.dtype == torch.uint8 and torch.equal(images, held.images[rows])
    assert caps == [held.captions[i] for i in rows]
    truth = s.truth(rows)
    assert np.array_equal(truth.background, held.truth.background[rows])
    assert np.array_equal(truth.index, rows)
    seen = np.concatenate([r for r, _, _ in s.batches(128)])
    assert np.array_equal(seen, np.arange(n))


def test_stream_offset_and_without_captions() -> None:
    w = World()
    s = w.stream("train", 50, start=1000, with_captions=False)
    images, caps = s.batch([0, 49])
    f = w.factors("train", np.array([1000, 1049]))
    assert torch.equal(images, w.render(f)) and caps == []
    with pytest.raises(IndexError):
        s.batch([50])
    with pytest.raises(UserError, match="n ≥ 1"):
        w.stream("train", 0)
    with pytest.raises(UserError, match="unknown split"):
        w.stream("sideways", 10)


def test_million_row_stream_holds_only_labels() -> None:
    w = World(WorldSpec.model_validate(scale_overrides(1000)))
    s = w.stream("train", 1_000_000)
    assert s.nbytes() == 0  # nothing per row until asked
    tracemalloc.start()
    labels = s.labels
    images, caps = s.batch(np.arange(999_744, 1_000_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert s.nbytes() == 4_000_000 and labels.dtype == np.int32
    assert np.bincount(labels, minlength=1000).min() >= 990  # uniform: 1,000 per class, near-exact quotas
    assert images.shape == (256, 3, 32, 32) and len(caps) == 256
    # labels (4 MB) plus the per-chunk temporaries of the class draw; a rendered split would be 3 GB
    assert peak < 64e6, peak
