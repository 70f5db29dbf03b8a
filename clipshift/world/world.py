"""World: the entry point that turns a WorldSpec into samples, splits and captions."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from clipshift.world.captions import captions, class_prompts, describe_factors
from clipshift.world.concepts import Concepts, build_concepts
from clipshift.world.evalsets import SetDef, parse_split
from clipshift.world.names import BACKGROUNDS
from clipshift.world.render import Renderer
from clipshift.world.sampling import Factors, sample_factors, split_key
from clipshift.world.spec import WorldSpec

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
        return [b[0] for b in BACKGROUNDS[: self.spec.backgrounds.n_backgrounds]]

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
        """Render a whole split into memory (uint8 images + factor arrays + captions)."""
        from tqdm import tqdm

        images = torch.empty((n, 3, self.spec.image_size, self.spec.image_size), dtype=torch.uint8)
        parts: list[Factors] = []
        caps: list[str] = []
        bar = tqdm(total=n, desc=f"render {split}", unit="img", disable=not progress, file=sys.stderr)
        for f, img in self.batches(split, n):
            lo = int(f.index[0])
            images[lo : lo + len(f)] = img
            parts.append(f)
            if with_captions:
                caps.extend(self.captions(f))
            bar.update(len(f))
        bar.close()
        return WorldSplit(self, split, images, concat_factors(parts) if parts else None, caps)

    def class_prompts(self, templates: list[str] | None = None) -> list[list[str]]:
        return class_prompts(self.concepts, templates)


@dataclass
class WorldSplit:
    """A rendered split held in memory: images (N,3,H,W) uint8, per-sample ground truth, captions."""

    world: World
    name: str
    images: torch.Tensor
    factors: Factors | None
    captions: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labels(self) -> np.ndarray:
        assert self.factors is not None
        return self.factors.label

    def ground_truth(self, i: int) -> dict[str, object]:
        assert self.factors is not None
        gt = describe_factors(self.factors, i, self.world.concepts)
        gt["caption_level"] = self.world.spec.captions.level
        if self.captions:
            gt["caption"] = self.captions[i]
        return gt

    def nbytes(self) -> int:
        """Memory held by the split: image tensor, factor arrays, caption strings."""
        total = self.images.element_size() * self.images.nelement()
        if self.factors is not None:
            total += sum(v.nbytes for v in vars(self.factors).values() if isinstance(v, np.ndarray))
        total += sum(sys.getsizeof(c) for c in self.captions) + sys.getsizeof(self.captions)
        return total


def concat_factors(parts: list[Factors]) -> Factors:
    first = parts[0]
    kwargs: dict[str, object] = {}
    for k, v in vars(first).items():
        if isinstance(v, np.ndarray):
            kwargs[k] = np.concatenate([getattr(p, k) for p in parts])
        else:
            kwargs[k] = v
    return Factors(**kwargs)  # type: ignore[arg-type]
