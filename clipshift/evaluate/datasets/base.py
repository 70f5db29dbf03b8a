"""What every evaluation set becomes (`EvalData`), and the registry of on-disk layouts (`KIND:PATH`):
each layout module registers its kind with a loader and a help line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipshift.evaluate.registry import Registry

if TYPE_CHECKING:  # numpy is imported by the loaders, not by `clipshift --help`
    import numpy as np

    from clipshift.data.cache import Resize


@dataclass
class EvalData:
    """One evaluation set in memory.

    `columns` maps each class to the classifier-head outputs it is scored from (max over several:
    ObjectNet's classes), for sets whose label space is ImageNet's; None means "by class name, else
    by position". `subsets` name class groups on which metrics are reported again (`subset/<name>/…`):
    each entry is a list of super-classes, each a list of class ids (logits are max-collapsed).
    Retrieval sets have `texts` and `image_text` (the text row of each image) instead of labels.
    `confusable` lists each class's most confusable classes, most confusable first, -1 padding (C, M):
    the '1 vs N confusable' accuracies (`evaluate.confusable`) are scored against its first N columns."""

    name: str
    images: Any  # uint8 (N, 3, S, S): a torch tensor or a (memory-mapped) numpy array
    labels: np.ndarray  # int64 (N,): a class index, or -1 for an unlabelled image
    class_names: list[str]
    groups: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    columns: list[list[int]] | None = None
    subsets: dict[str, list[list[int]]] = field(default_factory=dict)
    texts: list[str] | None = None
    image_text: np.ndarray | None = None
    confusable: np.ndarray | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def retrieval(self) -> bool:
        return self.texts is not None

    def take(self, rows: np.ndarray, name: str) -> EvalData:
        """The labelled set restricted to `rows` (labels, groups and images), named `name`."""
        import torch

        images = (
            self.images[torch.as_tensor(rows)] if isinstance(self.images, torch.Tensor) else self.images[rows]
        )
        return EvalData(
            name=name,
            images=images,
            labels=self.labels[rows],
            class_names=self.class_names,
            groups={k: (v[0][rows], v[1]) for k, v in self.groups.items()},
            columns=self.columns,
            subsets=self.subsets,
            confusable=self.confusable,
            source=self.source,
            info={**self.info, "n": len(rows)},
        )


@dataclass(frozen=True)
class LoadRequest:
    """What a layout's loader is asked for: the set at `path`, decoded at `image_size` after `resize`
    (None: CLIP's preprocessing; an ImageNet classifier's resize-then-crop otherwise)."""

    kind: str
    path: Path  # user-expanded
    image_size: int
    class_names: list[str] | None = None  # read from `class_names_file`
    class_names_file: str | Path | None = None
    objectnet_mappings: str | Path | None = None
    cache_dir: Path | None = None
    progress: bool = False
    resize: Resize | None = None

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.path}"


@dataclass(frozen=True)
class DatasetKind:
    """An on-disk layout, named by its spec prefix. `check_path`: the path must exist (the loader of a
    layout that resolves its own path, such as a folder holding one CSV, says False)."""

    name: str
    load: Callable[[LoadRequest], EvalData]
    help: str
    check_path: bool = True


DATASETS: Registry[DatasetKind] = Registry("dataset kind", "clipshift.evaluate.datasets")


def register_dataset(
    name: str, help: str, check_path: bool = True
) -> Callable[[Callable[[LoadRequest], EvalData]], Callable[[LoadRequest], EvalData]]:
    """Decorator: register a loader as the layout `name` (`name:PATH` specs), with its help line."""

    def deco(fn: Callable[[LoadRequest], EvalData]) -> Callable[[LoadRequest], EvalData]:
        DATASETS.register(DatasetKind(name, fn, help, check_path))
        return fn

    return deco
