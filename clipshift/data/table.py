"""ImageTextTable: the one in-memory form every training source takes (world split or real files).

Images are uint8 (N, 3, H, W) at the training resolution — a torch tensor for world data, or a
memory-mapped decoded-image cache for real data — so later epochs never decode PNG/JPEG again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Batch:
    images: torch.Tensor  # uint8 (B, 3, H, W)
    texts: list[str]  # one caption per image
    labels: torch.Tensor  # int64 (B,); -1 where the class is unknown (pure image-text data)
    index: torch.Tensor  # int64 (B,) row numbers in the table


@dataclass
class RowFacts:
    """Per-row ground truth of a generated source (the world), kept beside the table for the run's
    manipulation checks: `codes[factor]` holds each row's value as an index into `words[factor]` (the
    word a caption uses for it) and `names[factor]` (its name, e.g. a domain's); `common_background`
    is each class's usual habitat. Arrays only: no image is copied."""

    codes: dict[str, np.ndarray]
    words: dict[str, list[str]]
    names: dict[str, list[str]]
    common_background: np.ndarray | None = None

    def take(self, index: np.ndarray) -> RowFacts:
        return RowFacts(
            {k: v[index] for k, v in self.codes.items()}, self.words, self.names, self.common_background
        )


@dataclass
class ImageTextTable:
    """Rows of (image, caption, label). `class_names[label]` names every label that occurs; the first
    `n_eval_classes` form the evaluation label space (the world's open-world concepts come after)."""

    images: torch.Tensor | np.ndarray  # uint8 (N, 3, H, W); np.memmap for the decoded-image cache
    captions: Sequence[str]  # a list; rendered per chunk when read for a streamed world split
    labels: np.ndarray  # int64 (N,), -1 = unknown
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    stats: dict[str, Any] = field(default_factory=dict)  # e.g. {"skipped_corrupt": 3, "skipped_missing": 1}
    n_eval_classes: int | None = None  # None: all of class_names
    facts: RowFacts | None = None  # ground truth per row, when the source knows it (world data)

    @property
    def eval_classes(self) -> int:
        return len(self.class_names) if self.n_eval_classes is None else self.n_eval_classes

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def class_counts(self) -> np.ndarray:
        """Samples per label (labels ≥ 0), length max(len(class_names), max label + 1)."""
        known = self.labels[self.labels >= 0]
        size = max(len(self.class_names), int(known.max()) + 1 if len(known) else 0)
        return np.bincount(known, minlength=size)

    def batch(self, index: np.ndarray | torch.Tensor) -> Batch:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        if isinstance(self.images, torch.Tensor):
            images = self.images[idx]
        else:  # memmap: sorted fancy indexing reads pages in order, then restore the batch order
            order = np.argsort(idx.numpy(), kind="stable")
            sorted_rows = torch.from_numpy(np.ascontiguousarray(self.images[idx.numpy()[order]]))
            images = torch.empty_like(sorted_rows)
            images[torch.from_numpy(order)] = sorted_rows
        return Batch(
            images=images,
            texts=[self.captions[i] for i in idx.tolist()],
            labels=torch.from_numpy(self.labels[idx.numpy()].astype(np.int64)),
            index=idx,
        )

    def subset(self, index: np.ndarray) -> ImageTextTable:
        """A table of the given rows (images copied for tensors, still lazy for memmaps)."""
        index = np.asarray(index, dtype=np.int64)
        images = self.images[torch.as_tensor(index)] if isinstance(self.images, torch.Tensor) else self.images
        table = ImageTextTable(
            images=images,
            captions=[self.captions[i] for i in index],
            labels=self.labels[index],
            class_names=list(self.class_names),
            source=self.source,
            stats=dict(self.stats),
            n_eval_classes=self.n_eval_classes,
            facts=None if self.facts is None else self.facts.take(index),
        )
        if not isinstance(self.images, torch.Tensor):
            table.images = _RowView(self.images, index)  # type: ignore[assignment]
        return table


class _RowView:
    """Rows of a memmap selected by an index array, without reading them (for subsets of a cache)."""

    def __init__(self, base: Any, rows: np.ndarray):
        self.base, self.rows = base, rows
        self.shape = (len(rows), *base.shape[1:])
        self.dtype = base.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: Any) -> np.ndarray:
        return np.asarray(self.base[self.rows[idx]])


def world_table(split: Any) -> ImageTextTable:
    """A rendered WorldSplit as a table (no copy of the images), with the factors the run's checks read."""
    return ImageTextTable(
        images=split.images,
        captions=split.captions,
        labels=split.labels.astype(np.int64),
        class_names=list(split.world.concepts.names),
        source=f"world:{split.name}",
        n_eval_classes=split.world.concepts.n_classes,
        facts=world_facts(split.truth, split.world.concepts.common_background),
    )


def world_facts(truth: Any, common_background: np.ndarray) -> RowFacts:
    """The factors of a world split's ground truth (`GroundTruth`) with the words captions use for them."""
    from clipshift.world import shifts
    from clipshift.world.names import ALL_COLOURS, ALL_PATTERNS, ALL_SIZES, MAX_HABITATS, habitat_table

    domains = shifts.domains()
    # the whole vocabularies (code i is word i in every world), so a world at scale, with generated
    # habitats and more colours, patterns and sizes, finds its words too
    words = {
        "background": [b[0] for b in habitat_table(MAX_HABITATS)],
        "colour": [c[0] for c in ALL_COLOURS],
        "pattern": [adjective for adjective, _ in ALL_PATTERNS.values()],  # what captions say: "striped"
        "size": [s[0] for s in ALL_SIZES],
        "domain": [d.word for d in domains],
    }
    names = {**words, "pattern": list(ALL_PATTERNS), "domain": [d.name for d in domains]}
    codes = {k: np.asarray(getattr(truth, k)) for k in words}
    codes["common"] = np.asarray(truth.common, dtype=bool)
    return RowFacts(codes, words, names, np.asarray(common_background, dtype=np.int64))
