"""Training splits too large for memory: rows rendered when asked, deterministic in (spec, split, index).

A `WorldStream` holds the world and the split's size, nothing per row but (once asked for) the labels,
4 bytes a row: `batch(rows)` renders exactly those rows, bit for bit the rows an in-memory
`World.split` of the same split holds, so a study can train on 10 M samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from clipshift.errors import UserError
from clipshift.world.evalsets import SetDef, parse_split
from clipshift.world.sampling import Factors, split_labels

if TYPE_CHECKING:
    from clipshift.world.world import GroundTruth, World

_LABEL_CHUNK = 1 << 20


class WorldStream:
    """Rows [start, start + n) of a named split, rendered on demand (row r is sample start + r)."""

    def __init__(self, world: World, split: str, n: int, start: int = 0, with_captions: bool = True):
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise UserError(f"a stream needs n ≥ 1 rows, got {n!r}")
        if start < 0:
            raise UserError(f"a stream's start must be ≥ 0, got {start}")
        self.world = world
        self.name = split
        self.sdef: SetDef = parse_split(split)
        self.n = int(n)
        self.start = int(start)
        self.with_captions = with_captions
        self._labels: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n

    def _index(self, rows: np.ndarray | list[int] | range) -> np.ndarray:
        r = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(r) and (r.min() < 0 or r.max() >= self.n):
            raise IndexError(f"rows must lie in [0, {self.n}), got {int(r.min())}..{int(r.max())}")
        return r + self.start

    @property
    def labels(self) -> np.ndarray:
        """(n,) int32 label of every row, from the class draw alone (no other factor, no pixel)."""
        if self._labels is None:
            out = np.empty(self.n, dtype=np.int32)
            for lo in range(0, self.n, _LABEL_CHUNK):
                hi = min(lo + _LABEL_CHUNK, self.n)
                idx = np.arange(self.start + lo, self.start + hi)
                out[lo:hi] = split_labels(self.world.spec, self.sdef, idx)
            self._labels = out
        return self._labels

    def factors(self, rows: np.ndarray | list[int] | range) -> Factors:
        """The full ground truth of `rows` (Factors, index = sample index)."""
        return self.world.factors(self.sdef, self._index(rows))

    def truth(self, rows: np.ndarray | list[int] | range) -> GroundTruth:
        """The compact ground truth of `rows`, as a WorldSplit keeps it."""
        from clipshift.world.world import GroundTruth

        return GroundTruth.of(self.factors(rows))

    def batch(self, rows: np.ndarray | list[int] | range) -> tuple[torch.Tensor, list[str]]:
        """(len(rows), 3, H, W) uint8 images and their captions (empty when made without captions)."""
        f = self.factors(rows)
        images = self.world.render(f)
        return images, (self.world.captions(f) if self.with_captions else [])

    def batches(
        self, batch_size: int, order: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, torch.Tensor, list[str]]]:
        """(rows, images, captions) over the whole stream, in `order` (default: row order)."""
        seq = np.arange(self.n) if order is None else np.asarray(order, dtype=np.int64)
        for lo in range(0, len(seq), batch_size):
            rows = seq[lo : lo + batch_size]
            images, caps = self.batch(rows)
            yield rows, images, caps

    def nbytes(self) -> int:
        """Memory held per row: the labels once computed (images and captions are never kept)."""
        return 0 if self._labels is None else int(self._labels.nbytes)
