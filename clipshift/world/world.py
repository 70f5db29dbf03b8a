"""World: the entry point that turns a WorldSpec into samples, splits and captions."""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from clipshift.world import hierarchy, shifts
from clipshift.world.captions import captions, class_prompts, describe_factors
from clipshift.world.concepts import Concepts, build_concepts
from clipshift.world.evalsets import SetDef, parse_split
from clipshift.world.names import ALL_COLOURS, ALL_PATTERNS, ALL_SIZES, habitat_table
from clipshift.world.render import Renderer
from clipshift.world.sampling import Factors, sample_factors, split_key
from clipshift.world.spec import WorldSpec
from clipshift.world.stream import WorldStream

DEFAULT_BATCH = 2048


class World:
    """A procedural image-caption world. Cheap to construct; renders on demand."""

    def __init__(self, spec: WorldSpec | None = None):
        self.spec = spec or WorldSpec()
        self.concepts: Concepts = build_concepts(self.spec)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.spec, self.concepts)

    @property
    def class_names(self) -> list[str]:
        """The evaluation label space (open-world concepts excluded)."""
        return self.concepts.names[: self.concepts.n_classes]

    @property
    def background_names(self) -> list[str]:
        return [b[0] for b in habitat_table(self.spec.backgrounds.n_backgrounds)]

    @property
    def superclass_names(self) -> list[str]:
        """The S superclass names (empty without a hierarchy)."""
        return list(self.concepts.superclass_names)

    @property
    def superclass_of(self) -> np.ndarray:
        """(K,) superclass of each evaluation class (-1 everywhere without a hierarchy)."""
        return self.concepts.superclass_of[: self.concepts.n_classes].copy()

    def siblings(self, label: int) -> np.ndarray:
        """The other evaluation classes of `label`'s superclass (none without a hierarchy)."""
        fam = self.superclass_of
        if fam[label] < 0:
            return np.zeros(0, dtype=np.int64)
        out = np.flatnonzero(fam == fam[label])
        return out[out != label]

    def confusable(self, n: int) -> np.ndarray:
        """(K, n) int64: each class's n most confusable classes, its siblings first, then the others,
        nearest silhouette first within each group (the '1 vs N confusable classes' label sets)."""
        k = self.concepts.n_classes
        c = self.concepts
        return hierarchy.confusable(c.shape[:k], c.elongation[:k], c.superclass_of[:k], n)

    def detail_names(self) -> dict[str, list[str]]:
        """The names of every factor's values in this world (code i of a factor is name i)."""
        d = self.spec.details
        return {
            "background": self.background_names,
            "domain": shifts.domain_names(),
            "colour": [c[0] for c in ALL_COLOURS[: d.n_colours]],
            "pattern": list(ALL_PATTERNS)[: d.n_patterns],
            "size": [s[0] for s in ALL_SIZES[: d.n_sizes]],
        }

    def factors(self, split: str | SetDef, index: np.ndarray) -> Factors:
        sdef = parse_split(split) if isinstance(split, str) else split
        return sample_factors(self.spec, self.concepts, sdef, np.asarray(index))

    def render(self, f: Factors) -> torch.Tensor:
        return self.renderer.render(f)

    def captions(self, f: Factors) -> list[str]:
        return captions(f, self.concepts, self.spec.captions, split_key(self.spec, parse_split(f.split)))

    def batches(
        self, split: str, n: int, batch_size: int = DEFAULT_BATCH, start: int = 0
    ) -> Iterator[tuple[Factors, torch.Tensor]]:
        """Render indices [start, start+n) of a split in batches."""
        sdef = parse_split(split)
        for lo in range(start, start + n, batch_size):
            f = self.factors(sdef, np.arange(lo, min(lo + batch_size, start + n)))
            yield f, self.render(f)

    def split(self, split: str, n: int, progress: bool = False, with_captions: bool = True) -> WorldSplit:
        """Render a whole split into memory: uint8 images, compact ground truth, captions.

        Images are rendered straight into one preallocated tensor and only the ground-truth factors
        are kept (the render-only randomness is dropped), so a 100k-sample 32 px split stays near
        its 307 MB of pixels.
        """
        from tqdm import tqdm

        sdef = parse_split(split)
        images = torch.empty((n, 3, self.spec.image_size, self.spec.image_size), dtype=torch.uint8)
        parts: list[GroundTruth] = []
        caps: list[str] = []
        bar = tqdm(total=n, desc=f"render {split}", unit="img", disable=not progress, file=sys.stderr)
        for lo in range(0, n, DEFAULT_BATCH):
            f = self.factors(sdef, np.arange(lo, min(lo + DEFAULT_BATCH, n)))
            self.renderer.render(f, out=images[lo : lo + len(f)])
            parts.append(GroundTruth.of(f))
            if with_captions:
                caps.extend(self.captions(f))
            bar.update(len(f))
        bar.close()
        _release_freed_memory()
        return WorldSplit(self, split, images, GroundTruth.concat(parts, split), caps)

    def stream(self, split: str, n: int, start: int = 0, with_captions: bool = True) -> WorldStream:
        """Rows [start, start + n) of a split, rendered only when asked: `len`, `labels` (4 bytes a row),
        `batch(rows) -> (uint8 images, captions)`. Bit for bit the rows `split(split, n)` would hold."""
        return WorldStream(self, split, n, start=start, with_captions=with_captions)

    def class_prompts(self, templates: list[str] | None = None) -> list[list[str]]:
        return class_prompts(self.concepts, templates)


@dataclass
class GroundTruth:
    """The factors a user may ask about, in compact dtypes (what a WorldSplit keeps per sample)."""

    index: np.ndarray
    label: np.ndarray
    background: np.ndarray
    common: np.ndarray
    domain: np.ndarray
    colour: np.ndarray
    pattern: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    corruption: str
    severity: int
    split: str

    @classmethod
    def of(cls, f: Factors) -> GroundTruth:
        small = {k: getattr(f, k).astype(t) for k, t in _COMPACT.items()}
        return cls(**small, corruption=f.corruption, severity=f.severity, split=f.split)

    @classmethod
    def concat(cls, parts: list[GroundTruth], split: str) -> GroundTruth:
        if not parts:
            empty: dict[str, np.ndarray] = {k: np.zeros(0, dtype=t) for k, t in _COMPACT.items()}
            return cls(**empty, corruption="none", severity=0, split=split)
        arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in _COMPACT}
        return cls(**arrays, corruption=parts[0].corruption, severity=parts[0].severity, split=split)

    def __len__(self) -> int:
        return len(self.index)


_COMPACT = {
    "index": np.int64,
    "label": np.int32,
    "background": np.int8,
    "common": np.bool_,
    "domain": np.int8,
    "colour": np.int8,
    "pattern": np.int8,
    "size": np.int8,
    "rotation": np.float32,
    "scale": np.float32,
}


def _release_freed_memory() -> None:
    """Hand heap pages freed by the render buffers back to the OS (glibc keeps them otherwise, and
    the process would look twice as large as the split it holds)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class WorldSplit:
    """A rendered split held in memory: images (N,3,H,W) uint8, per-sample ground truth, captions."""

    world: World
    name: str
    images: torch.Tensor
    truth: GroundTruth
    captions: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labels(self) -> np.ndarray:
        return self.truth.label

    def ground_truth(self, i: int) -> dict[str, object]:
        gt = describe_factors(self.truth, i, self.world.concepts)
        gt["caption_level"] = self.world.spec.captions.level
        if self.captions:
            gt["caption"] = self.captions[i]
        return gt

    def nbytes(self) -> int:
        """Memory held by the split: image tensor, factor arrays, caption strings."""
        total = self.images.element_size() * self.images.nelement()
        total += sum(v.nbytes for v in vars(self.truth).values() if isinstance(v, np.ndarray))
        total += sum(sys.getsizeof(c) for c in self.captions) + sys.getsizeof(self.captions)
        return total
