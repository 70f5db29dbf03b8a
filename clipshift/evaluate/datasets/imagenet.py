"""`imagenet:ROOT` and its variants (-v2, -r, -a, -sketch): wnid (or, for V2, class-index) folders,
labels in ImageNet-1k's class space (or ImageNet-R/-A's 200-class subsets)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from clipshift.errors import UserError
from clipshift.evaluate.datasets.base import EvalData, LoadRequest, register_dataset
from clipshift.evaluate.datasets.files import decode, list_images, subdirs
from clipshift.evaluate.templates import check_count


@cache
def imagenet_tables() -> dict[str, list[str]]:
    """ImageNet-1k wnids in class-index order and the ImageNet-R / -A 200-class subsets."""
    path = Path(__file__).parent.parent / "imagenet_classes.json"
    data: dict[str, list[str]] = json.loads(path.read_text())
    return data


@cache
def _imagenet_index() -> dict[str, frozenset[int]]:
    """ImageNet-1k class indices by wnid, by open_clip's class name and by torchvision's category name
    (lower-cased); a name several classes share maps to all of them."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    from torchvision.models import ResNet18_Weights

    index: dict[str, set[int]] = {}
    tables = [
        imagenet_tables()["wnids"],
        list(IMAGENET_CLASSNAMES),
        ResNet18_Weights.IMAGENET1K_V1.meta["categories"],
    ]
    for table in tables:
        for i, name in enumerate(table):
            index.setdefault(str(name).strip().lower(), set()).add(i)
    return {k: frozenset(v) for k, v in index.items()}


def imagenet_columns(class_names: list[str], where: str, model: str) -> list[list[int]]:
    """The ImageNet-1k output scoring each class of a set whose classes are named by wnid, open_clip's
    class name or torchvision's category name (an imagefolder of wnid folders, or --classnames); one
    line for a class that names no ImageNet class, or several."""
    index = _imagenet_index()
    out: list[list[int]] = []
    for name in class_names:
        hits = index.get(name.strip().lower(), frozenset())
        if len(hits) != 1:
            why = "no ImageNet-1k class" if not hits else f"{len(hits)} ImageNet-1k classes"
            raise UserError(
                f"{where}: class {name!r} names {why} (by wnid, open_clip's or torchvision's class name), so "
                f"{model}'s 1,000-way ImageNet head cannot score this set; name each class's ImageNet class "
                "with --classnames (wnids work), or use an ImageNet layout (imagenet:, imagenet-r:, "
                "objectnet:, counteranimal:)"
            )
        out.append([next(iter(hits))])
    return out


def _imagenet_names(req: LoadRequest) -> list[str]:
    if req.class_names is None:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        return list(IMAGENET_CLASSNAMES)
    check_count(req.class_names, 1000, str(req.class_names_file), f"{req.spec} (ImageNet-1k)")
    return req.class_names


def load(req: LoadRequest) -> EvalData:
    import numpy as np

    from clipshift.evaluate.datasets.objectnet import mappings_dir, objectnet_classes

    kind, root, spec = req.kind, req.path, req.spec
    tables = imagenet_tables()
    wnids = tables["wnids"]
    index = {w: i for i, w in enumerate(wnids)}
    all_names = _imagenet_names(req)
    folders = subdirs(root)
    if kind == "imagenet" and not any(f in index for f in folders) and (root / "val").is_dir():
        root, folders = root / "val", subdirs(root / "val")
    if not folders:
        raise UserError(f"{spec}: no class folders")
    if kind == "imagenet-v2":
        # ImageNet-V2 names its folders by class index (0 … 999), not by wnid
        bad = [f for f in folders if not (f.isdigit() and int(f) < 1000)]
        if bad:
            raise UserError(
                f"{spec}: folder {bad[0]!r} is not an ImageNet class index (ImageNet-V2 uses 0…999)"
            )
        folder_label = {f: int(f) for f in folders}
    else:
        bad = [f for f in folders if f not in index]
        if bad:
            raise UserError(
                f"{spec}: folder {bad[0]!r} is not an ImageNet wnid (expected n01440764-style folders)"
            )
        folder_label = {f: index[f] for f in folders}
    class_ids = list(range(1000))
    if kind in ("imagenet-r", "imagenet-a"):
        subset = tables[kind]
        outside = [f for f in folders if f not in set(subset)]
        if outside:
            raise UserError(f"{spec}: folder {outside[0]!r} is not one of {kind}'s 200 classes")
        class_ids = [index[w] for w in subset]  # sorted wnids = ImageNet order
        position = {c: i for i, c in enumerate(class_ids)}
        folder_label = {f: position[index[f]] for f in folders}
    paths: list[str] = []
    labels: list[int] = []
    for f in folders:
        files = list_images(root / f)
        paths += files
        labels += [folder_label[f]] * len(files)
    images, kept = decode(paths, req.image_size, req.cache_dir, req.progress, root, req.resize)
    subsets: dict[str, list[list[int]]] = {}
    if len(class_ids) == 1000:  # the ID sets: also report accuracy on each shift's class subset
        for s in ("imagenet-r", "imagenet-a"):
            subsets[s] = [[index[w]] for w in tables[s]]
        if req.objectnet_mappings is not None:
            mapped = objectnet_classes(mappings_dir(req.objectnet_mappings))
            subsets["objectnet"] = [ids for _, _, ids in mapped]
    return EvalData(
        name=kind,
        images=images,
        labels=np.asarray(labels, dtype=np.int64)[kept],
        class_names=[all_names[c] for c in class_ids],
        columns=[[c] for c in class_ids],
        subsets=subsets,
        source=spec,
        info={"n": len(kept), "n_classes": len(class_ids)},
    )


for _kind, _help in [
    (
        "imagenet",
        "ImageNet val: wnid folders (ROOT or ROOT/val); accuracy on the ImageNet-R/-A class subsets "
        "(and ObjectNet's with --objectnet-mappings) too, as subset/<name>/acc1",
    ),
    ("imagenet-a", "ImageNet-A: wnid folders, scored over its 200 classes"),
    ("imagenet-r", "ImageNet-R: wnid folders, scored over its 200 classes"),
    ("imagenet-sketch", "ImageNet-Sketch: wnid folders; the class subsets as for imagenet"),
    ("imagenet-v2", "ImageNet-V2: class-index folders 0…999; the class subsets as for imagenet"),
]:
    register_dataset(_kind, _help)(load)
