"""`objectnet:ROOT`: ObjectNet's classes that overlap ImageNet, mapped by its own mapping files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipshift.errors import UserError
from clipshift.evaluate.datasets.base import EvalData, LoadRequest, register_dataset
from clipshift.evaluate.datasets.files import decode, list_images


def mappings_dir(path: str | Path) -> Path:
    p = Path(path).expanduser()
    for cand in (p, p / "mappings", p / "objectnet-1.0" / "mappings"):
        if (cand / "objectnet_to_imagenet_1k.json").is_file():
            return cand
    raise UserError(f"{p}: no ObjectNet mappings (objectnet_to_imagenet_1k.json) there")


def objectnet_classes(mappings: Path) -> list[tuple[str, str, list[int]]]:
    """(folder, ObjectNet class name, ImageNet class indices) of the ObjectNet classes that overlap
    ImageNet, in folder order, from the mapping files that ship with ObjectNet."""

    def read(name: str) -> Any:
        f = mappings / name
        if not f.is_file():
            raise UserError(f"{mappings}: {name} missing (ObjectNet's mappings folder)")
        text = f.read_text(encoding="utf-8")
        if not name.endswith(".json"):
            return text
        try:
            return json.loads(text)
        except ValueError as e:
            raise UserError(f"{f}: not valid JSON ({e})") from None

    folder_of = {label: folder for folder, label in read("folder_to_objectnet_label.json").items()}
    to_imagenet = read("objectnet_to_imagenet_1k.json")
    id_to_pytorch = {int(v): int(k) for k, v in read("pytorch_to_imagenet_2012_id.json").items()}
    lines = read("imagenet_to_label_2012_v2").splitlines()
    by_name = {line.strip(): id_to_pytorch[i] for i, line in enumerate(lines) if line.strip()}
    out = []
    for label, joined in to_imagenet.items():
        try:
            ids = sorted(by_name[n] for n in joined.split("; "))
        except KeyError as e:
            raise UserError(
                f"{mappings}: ImageNet class {e.args[0]!r} of {label!r} is not in imagenet_to_label_2012_v2"
            ) from None
        if label not in folder_of:
            raise UserError(
                f"{mappings}: ObjectNet class {label!r} has no folder in folder_to_objectnet_label.json"
            )
        out.append((folder_of[label], label, ids))
    return sorted(out)


@register_dataset(
    "objectnet",
    "ObjectNet's 113 ImageNet-overlapping classes (read from its mappings/ folder, or "
    "--objectnet-mappings); ImageNet heads score each class by the max over its ImageNet classes",
)
def load(req: LoadRequest) -> EvalData:
    """Zero-shot over the class names (lower-cased, as CLIP_benchmark does), ImageNet heads scored by the
    max over each class's ImageNet classes (imagenet-testbed's convention). Images of the other classes
    are not used."""
    import numpy as np

    root = req.path
    base = root / "objectnet-1.0" if (root / "objectnet-1.0").is_dir() else root
    images_dir = base / "images" if (base / "images").is_dir() else base
    mappings = req.objectnet_mappings if req.objectnet_mappings is not None else base
    classes = objectnet_classes(mappings_dir(mappings))
    paths: list[str] = []
    labels: list[int] = []
    for j, (folder, _, _) in enumerate(classes):
        if (images_dir / folder).is_dir():
            files = list_images(images_dir / folder)
            paths += files
            labels += [j] * len(files)
    if not paths:
        raise UserError(f"objectnet:{root}: no images in the mapped class folders under {images_dir}")
    images, kept = decode(paths, req.image_size, req.cache_dir, req.progress, root, req.resize)
    return EvalData(
        name="objectnet",
        images=images,
        labels=np.asarray(labels, dtype=np.int64)[kept],
        class_names=[label.lower() for _, label, _ in classes],
        columns=[ids for _, _, ids in classes],
        source=f"objectnet:{root}",
        info={"n": len(kept), "n_classes": len(classes)},
    )
