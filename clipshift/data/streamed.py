"""A world training split that is never held in memory: a table whose rows are rendered per batch.

`StreamedTable` is an `ImageTextTable` over a `WorldStream`: `batch(rows)` renders exactly those rows
(bit for bit the rows of the in-memory split, so a streamed run has the in-memory run's weights), and what
the training loop and the run's checks read without images is known cheaply: labels from the class draw
alone (12 bytes a row: the stream's and the table's), the factors the checks measure (`facts`, 6 bytes a
row, one pass of the factor sampler, no pixel), and captions rendered per chunk when asked
(`StreamCaptions`). Memory is O(rows) in those few bytes, not in pixels: 10 M rows of 32 px images would
be 31 GB in memory, and are about 180 MB streamed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast, overload

import numpy as np
import torch

from clipshift.data.table import Batch, ImageTextTable, RowFacts, world_facts

if TYPE_CHECKING:
    from clipshift.world.stream import WorldStream

CHUNK = 4096  # rows whose factors are sampled at once when captions or facts are computed


class StreamCaptions(Sequence[str]):
    """The captions of a streamed table's rows, rendered when read: a slice samples its rows' factors
    once; iteration goes chunk by chunk. Nothing is kept."""

    def __init__(self, stream: WorldStream, rows: np.ndarray | None):
        self.stream, self.rows = stream, rows

    def __len__(self) -> int:
        return len(self.stream) if self.rows is None else len(self.rows)

    def _of(self, table_rows: np.ndarray) -> list[str]:
        if len(table_rows) == 0:
            return []
        f = self.stream.factors(table_rows if self.rows is None else self.rows[table_rows])
        return self.stream.world.captions(f)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            r = range(len(self))[i]  # no array of every row: a slice costs its own rows only
            return self._of(np.arange(r.start, r.stop, r.step, dtype=np.int64))
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"caption {i} of {n}")
        return self._of(np.asarray([i % n]))[0]

    def __iter__(self) -> Iterator[str]:
        for lo in range(0, len(self), CHUNK):
            yield from self[lo : lo + CHUNK]

    def __repr__(self) -> str:
        return f"StreamCaptions({len(self)} rows of {self.stream.name})"


class StreamImages:
    """Stands where a table's (N, 3, H, W) uint8 images would be: their shape, and rows rendered when
    indexed (`images[rows]`)."""

    dtype = torch.uint8

    def __init__(self, stream: WorldStream, rows: np.ndarray | None):
        self.stream, self.rows = stream, rows
        size = stream.world.spec.image_size
        self.shape = (len(stream) if rows is None else len(rows), 3, size, size)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Any) -> torch.Tensor:
        n = self.shape[0]
        if isinstance(idx, slice):
            s = range(n)[idx]
            r = np.arange(s.start, s.stop, s.step, dtype=np.int64)
        else:
            r = np.asarray(idx.numpy() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64)
            if r.size and (r.min() < -n or r.max() >= n):
                raise IndexError(f"rows must lie in [0, {n}), got {int(r.min())}..{int(r.max())}")
            r = r % n
        images, _ = self.stream.batch(r.reshape(-1) if self.rows is None else self.rows[r.reshape(-1)])
        return images[0] if r.ndim == 0 else images


class StreamedTable(ImageTextTable):
    """An `ImageTextTable` over a world stream (see the module doc). `rows` maps table rows to stream rows
    (a subsample); None is every row of the stream in order."""

    def __init__(
        self,
        stream: WorldStream,
        rows: np.ndarray | None = None,
        *,
        facts: RowFacts | None = None,
        stats: dict[str, Any] | None = None,
    ):
        concepts = stream.world.concepts
        labels = stream.labels if rows is None else stream.labels[rows]
        super().__init__(
            images=cast(torch.Tensor, StreamImages(stream, rows)),  # duck-typed: shape and indexing
            captions=StreamCaptions(stream, rows),
            labels=labels.astype(np.int64),
            class_names=list(concepts.names),
            source=f"world:{stream.name}",
            stats={"streamed": True} if stats is None else stats,
            n_eval_classes=concepts.n_classes,
            facts=facts if facts is not None else stream_facts(stream, rows),
        )
        self.stream, self.rows = stream, rows

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray | torch.Tensor) -> Batch:
        """Rows `index` rendered now: images and captions from one pass of the factor sampler."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        images, captions = self.stream.batch(idx if self.rows is None else self.rows[idx])
        return Batch(
            images=images,
            texts=captions,
            labels=torch.from_numpy(self.labels[idx]),
            index=torch.from_numpy(idx),
        )

    def subset(self, index: np.ndarray) -> ImageTextTable:
        """The given rows, still streamed."""
        index = np.asarray(index, dtype=np.int64)
        facts = None if self.facts is None else self.facts.take(index)
        rows = index if self.rows is None else self.rows[index]
        return StreamedTable(self.stream, rows, facts=facts, stats=dict(self.stats))


def stream_facts(stream: WorldStream, rows: np.ndarray | None = None) -> RowFacts:
    """The factors the run's checks measure, for every row, from the factor sampler in chunks (no pixel,
    no caption): the compact codes an in-memory split keeps."""
    from clipshift.world.world import GroundTruth

    n = len(stream) if rows is None else len(rows)
    fields = ("background", "colour", "pattern", "size", "domain", "common")
    codes: dict[str, np.ndarray] = {}
    for lo in range(0, n, CHUNK):
        part = np.arange(lo, min(lo + CHUNK, n))
        truth = GroundTruth.of(stream.factors(part if rows is None else rows[part]))
        for k in fields:
            v = getattr(truth, k)
            if k not in codes:
                codes[k] = np.empty(n, dtype=v.dtype)
            codes[k][lo : lo + len(part)] = v
    if not codes:  # no rows
        truth = GroundTruth.concat([], stream.name)
        codes = {k: getattr(truth, k) for k in fields}
    return world_facts(_Codes(codes), stream.world.concepts.common_background)


class _Codes:
    """The code arrays as attributes, as `world_facts` reads a GroundTruth."""

    def __init__(self, codes: dict[str, np.ndarray]):
        self.__dict__.update(codes)


def stream_bytes(n: int, image_size: int) -> int:
    """Bytes an in-memory split of `n` rows would hold in images (uint8, 3 channels)."""
    return int(n) * 3 * int(image_size) ** 2


__all__ = ["CHUNK", "StreamCaptions", "StreamImages", "StreamedTable", "stream_bytes", "stream_facts"]
