"""Evaluation sets: world sets rendered in memory, and on-disk layouts (ImageFolder, CounterAnimal,
ImageNet and its variants with their class subsets, ObjectNet, open_clip CSV for retrieval).

Every set becomes an `EvalData`: uint8 images at the model's resolution (decoded once into the
decoded-image cache for files), integer labels into `class_names` (the zero-shot label space),
ground-truth groups, and the class subsets on which metrics are reported as well.

Dataset specs: a world set name (`iid`, `counter`, `corrupt-noise-3`, ...) or `KIND:PATH` with KIND one
of `KINDS`.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipshift.errors import UserError
from clipshift.evaluate.templates import check_count, read_class_names

KINDS = (
    "imagefolder",
    "counteranimal",
    "imagenet",
    "imagenet-v2",
    "imagenet-r",
    "imagenet-a",
    "imagenet-sketch",
    "objectnet",
    "csv",
)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GROUP_FACTORS = ("background", "domain", "common", "colour", "pattern", "size", "class")
_CA_FOLDER = re.compile(r"^(\d+)\s+(.+)$")  # CounterAnimal: "<label> <class name>"
_PREFIXED = re.compile(r"^(\d+)\.(.+)$")  # the world's ImageFolder export: "<label:03d>.<name>"
_WORLD_CACHE_BYTES = 512 * 2**20  # rendered world sets kept for the next run of a study


@dataclass
class EvalData:
    """One evaluation set in memory.

    `columns` maps each class to the classifier-head outputs it is scored from (max over several:
    ObjectNet's classes), for sets whose label space is ImageNet's; None means "by class name, else
    by position". `subsets` name class groups on which metrics are reported again (`subset/<name>/…`):
    each entry is a list of super-classes, each a list of class ids (logits are max-collapsed).
    Retrieval sets have `texts` and `image_text` (the text row of each image) instead of labels."""

    name: str
    images: Any  # uint8 (N, 3, S, S): a torch tensor or a (memory-mapped) numpy array
    labels: np.ndarray
    class_names: list[str]
    groups: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    columns: list[list[int]] | None = None
    subsets: dict[str, list[list[int]]] = field(default_factory=dict)
    texts: list[str] | None = None
    image_text: np.ndarray | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def retrieval(self) -> bool:
        return self.texts is not None


def split_spec(spec: str) -> tuple[str | None, str]:
    """(kind, path) for `KIND:PATH`, (None, name) for a world set name."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        return None, spec
    if kind not in KINDS:
        raise UserError(f"dataset {spec!r}: unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    if not rest:
        raise UserError(f"dataset {spec!r}: no path after {kind}:")
    return kind, rest


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
) -> EvalData:
    """The evaluation set named by `spec` at `image_size` (see the module doc for specs)."""
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
    names = read_class_names(class_names) if class_names is not None else None
    root = Path(path).expanduser()
    if kind == "csv":
        return _csv(root, image_size, cache_dir, progress)
    if not root.exists():
        raise UserError(f"dataset {spec!r}: {root} not found")
    if kind == "imagefolder":
        return _imagefolder(root, image_size, names, class_names, cache_dir, progress)
    if kind == "counteranimal":
        return _counteranimal(root, image_size, names, class_names, cache_dir, progress)
    if kind == "objectnet":
        return _objectnet(root, image_size, objectnet_mappings, cache_dir, progress)
    return _imagenet_family(
        kind, root, image_size, names, class_names, objectnet_mappings, cache_dir, progress
    )


# --------------------------------------------------------------------------------------------------
# world sets


_world_cache: OrderedDict[tuple[Any, ...], tuple[torch.Tensor, Any]] = OrderedDict()


def world_set(
    world: Any,
    name: str,
    n: int,
    group_by: list[str] | tuple[str, ...] = (),
    *,
    start: int = 0,
    image_size: int | None = None,
) -> EvalData:
    """Samples [start, start + n) of the world's set `name` (class-balanced for evaluation sets), with the
    ground-truth factors of `group_by` as groups. Rendered sets are kept in a small in-process cache,
    so the runs of a study that share a world render each set once."""
    from clipshift.world.evalsets import parse_split

    sdef = parse_split(name)
    if image_size is not None and world.spec.image_size != image_size:
        raise UserError(
            f"world images are {world.spec.image_size} px but the model takes {image_size} px "
            f"(set the world's image_size to {image_size})"
        )
    bad = [g for g in group_by if g not in GROUP_FACTORS]
    if bad:
        raise UserError(f"group_by: unknown factor {bad[0]!r}; choose from {', '.join(GROUP_FACTORS)}")
    key = (world.spec.model_dump_json(), name, int(n), int(start))
    hit = _world_cache.get(key)
    if hit is None:
        images, truth = _render(world, sdef, n, start)
        _world_cache[key] = (images, truth)
        while sum(v[0].nbytes for v in _world_cache.values()) > _WORLD_CACHE_BYTES and len(_world_cache) > 1:
            _world_cache.popitem(last=False)
    else:
        _world_cache.move_to_end(key)
        images, truth = hit
    k = world.concepts.n_classes
    groups = {g: _world_groups(world, truth, g) for g in group_by}
    return EvalData(
        name=name,
        images=images,
        labels=truth.label.astype(np.int64),
        class_names=list(world.class_names),
        groups=groups,
        source=f"world:{name}",
        info={"n": int(n), "start": int(start), "n_classes": k},
    )


def _render(world: Any, sdef: Any, n: int, start: int) -> tuple[torch.Tensor, Any]:
    from clipshift.world.world import DEFAULT_BATCH, GroundTruth

    size = world.spec.image_size
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    parts = []
    for lo in range(0, n, DEFAULT_BATCH):
        f = world.factors(sdef, np.arange(start + lo, start + min(lo + DEFAULT_BATCH, n)))
        world.renderer.render(f, out=images[lo : lo + len(f)])
        parts.append(GroundTruth.of(f))
    return images, GroundTruth.concat(parts, sdef.name)


def _world_groups(world: Any, truth: Any, factor: str) -> tuple[np.ndarray, list[str]]:
    from clipshift.world.names import COLOURS, PATTERNS, SIZES
    from clipshift.world.sampling import DOMAIN_NAMES

    if factor == "common":
        return truth.common.astype(np.int64), ["counter", "common"]
    if factor == "class":
        return truth.label.astype(np.int64), list(world.concepts.names)
    names = {
        "background": world.background_names,
        "domain": list(DOMAIN_NAMES),
        "colour": [c[0] for c in COLOURS],
        "pattern": list(PATTERNS),
        "size": [s[0] for s in SIZES],
    }[factor]
    return getattr(truth, factor).astype(np.int64), names


# --------------------------------------------------------------------------------------------------
# files


def _list_images(folder: Path) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMG_EXTENSIONS))
    return out


def _subdirs(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _decode(
    paths: list[str], image_size: int, cache_dir: Path | None, progress: bool, where: Path
) -> tuple[np.ndarray, np.ndarray]:
    from clipshift.data.cache import decode_to_cache

    if not paths:
        raise UserError(f"{where}: no image files ({', '.join(IMG_EXTENSIONS)})")
    images, kept, _ = decode_to_cache(paths, image_size, cache_dir, progress=progress)
    if len(kept) == 0:
        raise UserError(f"{where}: none of the {len(paths)} image files could be decoded")
    return images, kept


def _manifest_names(root: Path) -> list[str] | None:
    """The world export's class names (manifest.json), if this is one."""
    m = root / "manifest.json"
    if not m.is_file():
        return None
    try:
        names = json.loads(m.read_text()).get("class_names")
    except (ValueError, AttributeError):
        return None
    return list(names) if isinstance(names, list) and all(isinstance(x, str) for x in names) else None


def _imagefolder(
    root: Path,
    image_size: int,
    names: list[str] | None,
    names_src: Any,
    cache_dir: Path | None,
    progress: bool,
) -> EvalData:
    from clipshift.data.loaders import load_imagefolder

    if not root.is_dir():
        raise UserError(f"imagefolder:{root}: not a directory")
    folders = _subdirs(root)
    if not folders:
        raise UserError(f"imagefolder:{root}: no class folders (expected ROOT/<class>/<image>)")
    if names is not None:
        # torchvision's ImageFolder: one name per folder; the world export (NNN.name folders, which
        # exist only for classes with samples) may have fewer folders than names
        prefixes = [int(m.group(1)) if (m := _PREFIXED.match(f)) else -1 for f in folders]
        world_like = min(prefixes) >= 0 and max(prefixes) < len(names)
        if len(names) != len(folders) and not world_like:
            check_count(names, len(folders), str(names_src), f"imagefolder:{root} ({len(folders)} folders)")
    table = load_imagefolder(root, image_size, class_names=names, cache_dir=cache_dir, progress=progress)
    k = table.eval_classes
    labels = np.where(table.labels < k, table.labels, -1)
    return EvalData(
        name=root.name,
        images=table.images,
        labels=labels.astype(np.int64),
        class_names=list(table.class_names[:k]),
        source=f"imagefolder:{root}",
        info={"n": len(table), **{k2: v for k2, v in table.stats.items() if k2.startswith("skipped")}},
    )


def _counteranimal(
    root: Path,
    image_size: int,
    names: list[str] | None,
    names_src: Any,
    cache_dir: Path | None,
    progress: bool,
) -> EvalData:
    """`<label> <name>/{common,counter}/<image>`; labels are indices of the full label space (ImageNet's
    for the real CounterAnimal, the world's for its export). Metrics over the full label space, groups
    common/counter, and again over the classes present (`subset/present/…`)."""
    entries = []
    for folder in _subdirs(root):
        m = _CA_FOLDER.match(folder)
        groups = [g for g in ("common", "counter") if (root / folder / g).is_dir()]
        if m and groups:
            entries.append((int(m.group(1)), m.group(2), folder, groups))
    if not entries:
        raise UserError(
            f"counteranimal:{root}: not a CounterAnimal layout "
            "(expected '<label> <class name>/common|counter/' folders)"
        )
    top = max(e[0] for e in entries)
    columns = None
    if names is not None:
        if len(names) <= top:
            raise UserError(
                f"{names_src}: {len(names)} class names, but counteranimal:{root} has label {top}"
            )
    else:
        names = _manifest_names(root)
        if names is None:
            from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

            if top >= len(IMAGENET_CLASSNAMES):
                raise UserError(
                    f"counteranimal:{root}: label {top} is not an ImageNet class index; give --classnames"
                )
            names = list(IMAGENET_CLASSNAMES)
            columns = [[i] for i in range(len(names))]
        elif len(names) <= top:
            raise UserError(
                f"{root / 'manifest.json'}: {len(names)} class names, but a folder has label {top}"
            )
    paths: list[str] = []
    labels: list[int] = []
    group: list[int] = []
    for label, _, folder, gs in sorted(entries):
        for g in gs:
            files = _list_images(root / folder / g)
            paths += files
            labels += [label] * len(files)
            group += [0 if g == "common" else 1] * len(files)
    images, kept = _decode(paths, image_size, cache_dir, progress, root)
    present = sorted({e[0] for e in entries})
    return EvalData(
        name=root.name,
        images=images,
        labels=np.asarray(labels, dtype=np.int64)[kept],
        class_names=names,
        groups={"group": (np.asarray(group, dtype=np.int64)[kept], ["common", "counter"])},
        columns=columns,
        subsets={"present": [[c] for c in present]},
        source=f"counteranimal:{root}",
        info={"n": len(kept), "n_present_classes": len(present)},
    )


@cache
def imagenet_tables() -> dict[str, list[str]]:
    """ImageNet-1k wnids in class-index order and the ImageNet-R / -A 200-class subsets."""
    data: dict[str, list[str]] = json.loads((Path(__file__).parent / "imagenet_classes.json").read_text())
    return data


def _imagenet_names(names: list[str] | None, names_src: Any, where: str) -> list[str]:
    if names is None:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        return list(IMAGENET_CLASSNAMES)
    check_count(names, 1000, str(names_src), f"{where} (ImageNet-1k)")
    return names


def _imagenet_family(
    kind: str,
    root: Path,
    image_size: int,
    names: list[str] | None,
    names_src: Any,
    objectnet_mappings: str | Path | None,
    cache_dir: Path | None,
    progress: bool,
) -> EvalData:
    tables = imagenet_tables()
    wnids = tables["wnids"]
    index = {w: i for i, w in enumerate(wnids)}
    all_names = _imagenet_names(names, names_src, f"{kind}:{root}")
    spec = f"{kind}:{root}"
    folders = _subdirs(root)
    if kind == "imagenet" and not any(f in index for f in folders) and (root / "val").is_dir():
        root, folders = root / "val", _subdirs(root / "val")
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
        files = _list_images(root / f)
        paths += files
        labels += [folder_label[f]] * len(files)
    images, kept = _decode(paths, image_size, cache_dir, progress, root)
    subsets: dict[str, list[list[int]]] = {}
    if len(class_ids) == 1000:  # the ID sets: also report accuracy on each shift's class subset
        for s in ("imagenet-r", "imagenet-a"):
            subsets[s] = [[index[w]] for w in tables[s]]
        if objectnet_mappings is not None:
            subsets["objectnet"] = [
                ids for _, _, ids in _objectnet_classes(_mappings_dir(objectnet_mappings))
            ]
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


def _mappings_dir(path: str | Path) -> Path:
    p = Path(path).expanduser()
    for cand in (p, p / "mappings", p / "objectnet-1.0" / "mappings"):
        if (cand / "objectnet_to_imagenet_1k.json").is_file():
            return cand
    raise UserError(f"{p}: no ObjectNet mappings (objectnet_to_imagenet_1k.json) there")


def _objectnet_classes(mappings: Path) -> list[tuple[str, str, list[int]]]:
    """(folder, ObjectNet class name, ImageNet class indices) of the ObjectNet classes that overlap
    ImageNet, in folder order, from the mapping files that ship with ObjectNet."""

    def load(name: str) -> Any:
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

    folder_of = {label: folder for folder, label in load("folder_to_objectnet_label.json").items()}
    to_imagenet = load("objectnet_to_imagenet_1k.json")
    id_to_pytorch = {int(v): int(k) for k, v in load("pytorch_to_imagenet_2012_id.json").items()}
    lines = load("imagenet_to_label_2012_v2").splitlines()
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


def _objectnet(
    root: Path, image_size: int, mappings: str | Path | None, cache_dir: Path | None, progress: bool
) -> EvalData:
    """ObjectNet's 113 classes that overlap ImageNet (its own mapping files); zero-shot over their names
    (lower-cased, as CLIP_benchmark does), ImageNet heads scored by the max over each class's ImageNet
    classes (imagenet-testbed's convention). Images of the other classes are not used."""
    base = root / "objectnet-1.0" if (root / "objectnet-1.0").is_dir() else root
    images_dir = base / "images" if (base / "images").is_dir() else base
    classes = _objectnet_classes(_mappings_dir(mappings if mappings is not None else base))
    paths: list[str] = []
    labels: list[int] = []
    for j, (folder, _, _) in enumerate(classes):
        if (images_dir / folder).is_dir():
            files = _list_images(images_dir / folder)
            paths += files
            labels += [j] * len(files)
    if not paths:
        raise UserError(f"objectnet:{root}: no images in the mapped class folders under {images_dir}")
    images, kept = _decode(paths, image_size, cache_dir, progress, root)
    return EvalData(
        name="objectnet",
        images=images,
        labels=np.asarray(labels, dtype=np.int64)[kept],
        class_names=[label.lower() for _, label, _ in classes],
        columns=[ids for _, _, ids in classes],
        source=f"objectnet:{root}",
        info={"n": len(kept), "n_classes": len(classes)},
    )


def _csv(path: Path, image_size: int, cache_dir: Path | None, progress: bool) -> EvalData:
    """open_clip CSV (tab-separated `filepath`, `title`): image-text retrieval. Identical captions are one
    text, so an image finds its caption and a caption finds any of its images."""
    from clipshift.data.loaders import load_csv

    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise UserError(f"csv:{path}: a directory with {len(found)} .csv files; name the file")
        path = found[0]
    table = load_csv(path, image_size, cache_dir=cache_dir, progress=progress)
    texts: list[str] = []
    row_of: dict[str, int] = {}
    owner = np.empty(len(table), dtype=np.int64)
    for i, c in enumerate(table.captions):
        j = row_of.setdefault(c, len(texts))
        if j == len(texts):
            texts.append(c)
        owner[i] = j
    return EvalData(
        name=f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem,
        images=table.images,
        labels=np.full(len(table), -1, dtype=np.int64),
        class_names=[],
        texts=texts,
        image_text=owner,
        source=f"csv:{path}",
        info={"n": len(table), "n_texts": len(texts)},
    )
