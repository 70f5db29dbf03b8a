"""Evaluation sets: world sets rendered in memory, and on-disk layouts (ImageFolder, CounterAnimal,
ImageNet and its variants with their class subsets, ObjectNet, open_clip CSV for retrieval).

Every set becomes an `EvalData`: uint8 images at the model's resolution (decoded once into the
decoded-image cache for files), integer labels into `class_names` (the zero-shot label space),
ground-truth groups, and the class subsets on which metrics are reported as well.

Dataset specs: a world set name (`iid`, `counter`, `corrupt-noise-3`, ...) or `KIND:PATH` with KIND a
registered layout (`DATASETS`). A new layout is one module in this package that registers its loader
with `register_dataset(name, help)`; `clipshift eval --dataset`'s help and the spec check read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipshift.errors import UserError
from clipshift.evaluate.datasets.base import (
    DATASETS,
    DatasetKind,
    EvalData,
    LoadRequest,
    register_dataset,
)
from clipshift.evaluate.datasets.files import IMG_EXTENSIONS
from clipshift.evaluate.datasets.imagenet import imagenet_tables
from clipshift.evaluate.datasets.world import GROUP_FACTORS, world_help, world_set

if TYPE_CHECKING:
    from clipshift.data.cache import Resize


def split_spec(spec: str) -> tuple[str | None, str]:
    """(kind, path) for `KIND:PATH`, (None, name) for a world set name."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        return None, spec
    if kind not in DATASETS:
        raise UserError(
            f"dataset {spec!r}: unknown dataset kind {kind!r}; choose from {', '.join(DATASETS.names())}"
        )
    if not rest:
        raise UserError(f"dataset {spec!r}: no path after {kind}:")
    return kind, rest


def dataset_help() -> str:
    """What `--dataset` accepts, one line per registered layout."""
    lines = [f"{world_help()}, or KIND:PATH with KIND one of:"]
    lines += [f"  {k.name}: {k.help}" for k in DATASETS]
    return "\n".join(lines)


def load_eval_data(
    spec: str,
    image_size: int,
    *,
    world: Any = None,
    n: int = 2000,
    group_by: list[str] | tuple[str, ...] = (),
    class_names: str | Path | None = None,
    objectnet_mappings: str | Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    resize: Resize | None = None,
) -> EvalData:
    """The evaluation set named by `spec` at `image_size` (see the module doc for specs); files are
    resized as `resize` says before the center crop (default: CLIP's; an ImageNet classifier's own)."""
    from clipshift.evaluate.templates import read_class_names

    kind, path = split_spec(spec)
    if kind is None:
        if world is None:
            hint = f" (for files give the layout, e.g. imagefolder:{spec})" if Path(spec).exists() else ""
            raise UserError(
                f"dataset {spec!r}: a world set name needs a world (a world run or --world){hint}"
            )
        if Path(spec).exists() and "/" in spec:
            raise UserError(f"dataset {spec!r}: give the layout, e.g. imagefolder:{spec}")
        return world_set(world, spec, n, group_by, image_size=image_size)
    layout = DATASETS.get(kind)
    names = read_class_names(class_names) if class_names is not None else None
    root = Path(path).expanduser()
    if layout.check_path and not root.exists():
        raise UserError(f"dataset {spec!r}: {root} not found")
    req = LoadRequest(
        kind, root, image_size, names, class_names, objectnet_mappings, cache_dir, progress, resize
    )
    return layout.load(req)


def __getattr__(name: str) -> Any:
    if name == "KINDS":  # the registered layouts, read when asked (the registry imports its modules then)
        return DATASETS.names()
    raise AttributeError(f"module 'clipshift.evaluate.datasets' has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "GROUP_FACTORS",
    "IMG_EXTENSIONS",
    "DatasetKind",
    "EvalData",
    "LoadRequest",
    "dataset_help",
    "imagenet_tables",
    "load_eval_data",
    "register_dataset",
    "split_spec",
    "world_set",
]
