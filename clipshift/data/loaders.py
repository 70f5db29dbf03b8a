"""Real image-text data on disk as ImageTextTables: open_clip CSV/TSV, ImageFolder trees, webdataset
shards and ImageNet-Captions. Images are decoded once into the decoded-image cache (`cache.py`) at the
training resolution; each table's `images` is that cache's memmap and its `stats` say what was skipped.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipshift.data.cache import Resize, decode_bytes_to_cache, decode_to_cache
from clipshift.data.table import ImageTextTable
from clipshift.errors import UserError

DEFAULT_TEMPLATES = ["a photo of a {}."]
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's
WDS_IMAGE_KEYS = ("png", "jpg", "jpeg", "webp")
CAPTION_FIELDS = ("title", "tags", "description")
_PREFIX = re.compile(r"^(\d+)\.(.+)$")  # `007.zorp`: the world's (and CUB-200's) class folder names


def _table(
    images: np.ndarray,
    kept: np.ndarray,
    captions: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    class_names: list[str],
    source: str,
    stats: dict[str, Any],
    n_eval_classes: int | None = None,
) -> ImageTextTable:
    """The rows that decoded: `kept` indexes the loader's full row list."""
    lab = np.asarray(labels, dtype=np.int64)
    return ImageTextTable(
        images=images,
        captions=[captions[i] for i in kept.tolist()],
        labels=lab[kept] if len(lab) else np.zeros(0, dtype=np.int64),
        class_names=class_names,
        source=source,
        stats=stats,
        n_eval_classes=n_eval_classes,
    )


def _labels_from_values(values: list[str], where: str) -> tuple[list[int], list[str]]:
    """Labels from a class column: integers as given (named by their digits), otherwise class names
    numbered in sorted order (ImageFolder's convention). Empty cells are -1 (unknown)."""
    present = [v.strip() for v in values if v.strip()]
    if all(re.fullmatch(r"-?\d+", v) for v in present):
        ints = [int(v.strip()) if v.strip() else -1 for v in values]
        if any(i < -1 for i in ints):
            raise UserError(f"{where}: class labels must be ≥ -1, got {min(ints)}")
        top = max(ints, default=-1)
        return ints, [str(i) for i in range(top + 1)]
    names = sorted(set(present))
    index = {n: i for i, n in enumerate(names)}
    return [index[v.strip()] if v.strip() else -1 for v in values], names


# --------------------------------------------------------------------------------------------------
# open_clip CSV / TSV


def load_csv(
    path: str | Path,
    image_size: int,
    *,
    img_key: str = "filepath",
    caption_key: str = "title",
    sep: str = "\t",
    class_key: str | None = None,
    cache_dir: Path | None = None,
    strict: bool = False,
    progress: bool = True,
) -> ImageTextTable:
    """open_clip's CSV (`--csv-img-key/--csv-caption-key/--csv-separator`): one row per image-caption
    pair. Relative image paths resolve against the CSV's folder (open_clip resolves them against the
    working directory, which makes a CSV unmovable). Labels come from `class_key` when given (integers
    as is, otherwise names numbered in sorted order), else every label is -1."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    if sep == "\\t":  # `--set data.sep=\t` arrives as a backslash and a t
        sep = "\t"
    if len(sep) != 1:
        raise UserError(f"{p}: sep must be one character, got {sep!r}")
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise UserError(f"{p}: empty file (expected a header line)")
        cols = {name: i for i, name in enumerate(header)}
        for key in (img_key, caption_key, *([class_key] if class_key else [])):
            if key not in cols:
                shown = ", ".join(repr(c) for c in header)
                raise UserError(f"{p}: no column {key!r}; columns are {shown}")
        need = max(cols[img_key], cols[caption_key], cols[class_key] if class_key else 0)
        rows = []
        for row in reader:
            if not row:
                continue  # a blank line (e.g. at the end)
            if len(row) <= need:
                raise UserError(f"{p}:{reader.line_num}: {len(row)} fields, expected {len(header)}")
            rows.append(row)
    if not rows:
        raise UserError(f"{p}: no rows after the header")
    base = Path(os.path.abspath(p)).parent
    paths = [str(base / r[cols[img_key]]) for r in rows]  # an absolute path stays as it is
    captions = [r[cols[caption_key]] for r in rows]
    labels: list[int] = [-1] * len(rows)
    class_names: list[str] = []
    if class_key:
        labels, class_names = _labels_from_values([r[cols[class_key]] for r in rows], f"{p}: {class_key}")
    images, kept, stats = decode_to_cache(paths, image_size, cache_dir, strict=strict, progress=progress)
    return _table(images, kept, captions, labels, class_names, f"csv:{p}", stats)


# --------------------------------------------------------------------------------------------------
# ImageFolder


def _read_lines(p: Path) -> list[str]:
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_imagefolder(
    root: str | Path,
    image_size: int,
    *,
    templates: list[str] | None = None,
    class_names: list[str] | str | Path | None = None,
    cache_dir: Path | None = None,
    strict: bool = False,
    progress: bool = True,
    resize: Resize | None = None,
) -> ImageTextTable:
    """A `root/<class folder>/<image>` tree; the caption of row i is `templates[i % len(templates)]`
    filled with its class name (round-robin, so the choice is deterministic).

    Labels follow torchvision's ImageFolder: class folders in sorted order. Class names: `class_names`
    (a list, or a file with one name per line), else `root/classnames.txt` if present, else the folder
    name without a leading `NNN.` prefix. A names list must have one entry per folder; the one exception
    is the world's export, whose folders (`<label:03d>.<name>`) exist only for classes with samples and
    may include open-world concepts after the K evaluation classes: when every folder has a numeric
    prefix and its name matches the list at that position (or the prefix lies beyond the list), the
    prefixes are the labels and the list's length is the number of evaluation classes. `resize`: how
    images are resized before the center crop (default: CLIP's; `clipshift.data.cache.Resize`).
    """
    r = Path(root)
    if not r.is_dir():
        raise UserError(f"{r}: directory not found")
    folders = sorted(e.name for e in os.scandir(r) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        raise UserError(f"{r}: no class folders")
    listed: list[str] | None = None
    names_src = ""
    if isinstance(class_names, (str, Path)):
        listed, names_src = _read_lines(Path(class_names)), str(class_names)
    elif class_names is not None:
        listed, names_src = list(class_names), "class_names"
    elif (r / "classnames.txt").is_file():
        listed, names_src = _read_lines(r / "classnames.txt"), str(r / "classnames.txt")
    if listed is not None and not listed:
        raise UserError(f"{names_src}: no class names")
    stripped = [m.group(2) if (m := _PREFIX.match(f)) else f for f in folders]

    n_eval: int | None = None
    folder_labels, names = list(range(len(folders))), stripped
    if listed is not None:
        prefixes = [int(m.group(1)) if (m := _PREFIX.match(f)) else -1 for f in folders]
        by_prefix = (
            min(prefixes) >= 0
            and len(set(prefixes)) == len(prefixes)
            and all(p >= len(listed) or listed[p] == s for p, s in zip(prefixes, stripped))
        )
        if len(listed) == len(folders) and (listed == stripped or not by_prefix):
            names = listed  # torchvision's order; names may differ from folders (wnid folders)
        elif by_prefix:
            folder_labels = prefixes
            names = [
                listed[i] if i < len(listed) else str(i) for i in range(max(*prefixes, len(listed) - 1) + 1)
            ]
            for p, s in zip(prefixes, stripped):
                names[p] = s  # equal below len(listed); names the open-world concepts after it
            n_eval = len(listed)
        else:
            raise UserError(f"{names_src}: {len(listed)} class names for {len(folders)} class folders in {r}")

    ts = templates or DEFAULT_TEMPLATES
    for t in ts:
        if "{}" not in t:
            raise UserError(f"template {t!r} has no {{}} for the class name")
    paths: list[str] = []
    labels: list[int] = []
    for folder, label in zip(folders, folder_labels):
        for dirpath, dirnames, filenames in os.walk(r / folder, followlinks=True):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.lower().endswith(IMG_EXTENSIONS):
                    paths.append(os.path.join(dirpath, fn))
                    labels.append(label)
    if not paths:
        raise UserError(f"{r}: no image files ({', '.join(IMG_EXTENSIONS)}) in the class folders")
    captions = [ts[i % len(ts)].format(names[lab]) for i, lab in enumerate(labels)]
    images, kept, stats = decode_to_cache(
        [os.path.abspath(p) for p in paths], image_size, cache_dir, strict=strict, progress=progress,
        resize=resize,
    )  # fmt: skip
    return _table(images, kept, captions, labels, names, f"imagefolder:{r}", stats, n_eval)


# --------------------------------------------------------------------------------------------------
# webdataset


def wds_urls(pattern: str | Path) -> list[str]:
    """Shard paths from a brace pattern (`a/shard-{000000..000009}.tar`, several joined by `::` as in
    open_clip), a `shards.txt` file holding one (relative to its folder) or a directory with one."""
    import braceexpand

    text = str(pattern)
    base = Path(".")
    p = Path(text)
    if p.is_dir():
        p = p / "shards.txt"
        if not p.is_file():
            raise UserError(f"{pattern}: directory without shards.txt")
    if p.is_file() and p.suffix == ".txt":
        base = p.parent
        text = "::".join(line.strip() for line in p.read_text().splitlines() if line.strip())
        if not text:
            raise UserError(f"{p}: empty (expected a shard pattern)")
    urls: list[str] = []
    for part in text.split("::"):
        urls.extend(str(base / u) for u in braceexpand.braceexpand(part))
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        raise UserError(f"{missing[0]}: shard not found ({len(missing)} of {len(urls)} missing)")
    return urls


def load_wds(
    pattern: str | Path,
    image_size: int,
    *,
    cache_dir: Path | None = None,
    strict: bool = False,
    progress: bool = True,
) -> ImageTextTable:
    """webdataset shards: image from `png|jpg|jpeg|webp`, caption from `txt` (empty if absent), label
    from `json`'s `label` or `cls` (-1 if neither), class names from `json`'s `class_name`. A sample
    without an image counts as missing. The image bytes go straight into the cache (no temporary
    files); the cache key hashes the shards' paths, sizes and mtimes. When the json marks open-world
    concepts (`open_world`, as the world's export does), the labels below the first such one are the
    evaluation classes."""
    import webdataset as wds

    urls = wds_urls(pattern)
    captions: list[str] = []
    labels: list[int] = []
    names: dict[int, str] = {}
    open_world: set[int] = set()

    def samples() -> Iterator[tuple[str, bytes | None]]:
        # no node/worker splitting: every rank (and the main process) reads every shard
        ds = wds.WebDataset(
            urls, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False
        )
        url = urls[0]
        try:
            for s in ds:
                url = s.get("__url__", url)
                name = f"{url}#{s.get('__key__', '')}"
                blob = next((s[k] for k in WDS_IMAGE_KEYS if k in s), None)
                captions.append(s["txt"].decode("utf-8").strip() if "txt" in s else "")
                label = -1
                if "json" in s:
                    try:
                        meta = json.loads(s["json"])
                    except ValueError:
                        raise UserError(f"{name}.json: not valid JSON") from None
                    if isinstance(meta, dict):
                        if isinstance(meta.get("label"), int):
                            label = int(meta["label"])
                        if label >= 0 and isinstance(meta.get("class_name"), str):
                            names.setdefault(label, meta["class_name"])
                        if label >= 0 and meta.get("open_world") is True:
                            open_world.add(label)
                if label < 0 and "cls" in s:
                    try:
                        label = int(s["cls"].decode().strip())
                    except ValueError:
                        raise UserError(f"{name}.cls: not an integer label") from None
                labels.append(label)
                yield name, blob
        except UserError:
            raise
        except Exception as e:  # tarfile.ReadError, ValueError from webdataset's key grouping, ...
            raise UserError(f"{url}: cannot read webdataset shard ({e})") from None

    images, kept, stats = decode_bytes_to_cache(
        samples(), image_size, urls, cache_dir, strict=strict, progress=progress, what="wds images"
    )
    known = [lab for lab in labels if lab >= 0]
    top = max(known, default=-1)
    class_names = [names.get(i, str(i)) for i in range(top + 1)]
    n_eval = min(open_world) if open_world else None
    return _table(images, kept, captions, labels, class_names, f"wds:{pattern}", stats, n_eval)


# --------------------------------------------------------------------------------------------------
# ImageNet-Captions


def read_class_mapping(path: str | Path) -> dict[str, str]:
    """`wnid -> name` in file order: JSON `{wnid: name}`, or lines `wnid<TAB or space>name` (this also
    reads ImageNet's LOC_synset_mapping.txt)."""
    p = Path(path)
    text = _read_text(p)
    if text.lstrip().startswith("{"):
        data = _parse_json(p, text)
        if not all(isinstance(v, str) for v in data.values()):
            raise UserError(f"{p}: expected a JSON object of wnid: class name strings")
        return dict(data)
    out: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("\t", 1) if "\t" in line else line.strip().split(None, 1)
        if len(parts) != 2:
            raise UserError(f"{p}:{i}: expected 'wnid<TAB>class name', got {line.strip()!r}")
        out[parts[0].strip()] = parts[1].strip()
    if not out:
        raise UserError(f"{p}: no class names")
    return out


def _read_text(p: Path) -> str:
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    return p.read_text(encoding="utf-8")


def _parse_json(p: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise UserError(f"{p}: not valid JSON ({e})") from None


def _read_records(p: Path) -> list[dict[str, Any]]:
    """ImageNet-Captions records from a JSON list or JSON lines."""
    text = _read_text(p)
    if text.lstrip().startswith("["):
        records = _parse_json(p, text)
    else:
        records = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise UserError(f"{p}:{i}: not valid JSON ({e})") from None
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("filename"), str):
            raise UserError(f"{p}: record {i} has no filename")
    if not records:
        raise UserError(f"{p}: no records")
    return records


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


def load_imagenet_captions(
    json_path: str | Path,
    image_root: str | Path,
    image_size: int,
    *,
    fields: Sequence[str] = CAPTION_FIELDS,
    append_class_name: bool = True,
    class_names: str | Path | None = None,
    cache_dir: Path | None = None,
    strict: bool = False,
    progress: bool = True,
) -> ImageTextTable:
    """ImageNet-Captions (Fang et al.): records `{filename, wnid, title, description, tags}`; the image
    is `image_root/<wnid>/<filename>` (a record without wnid takes it from the filename's `<wnid>_`
    prefix). The caption joins the chosen `fields` (tags by spaces; empty ones skipped) and then, with
    `append_class_name`, the class name, as Wen et al. do.

    Labels: the wnid's position in `class_names` (a mapping file, see `read_class_mapping`), else in
    the sorted wnids of the records (ImageNet's order when all 1000 classes are present). Without a
    mapping the class names are the wnids, which are not language, so nothing is appended (stats say
    `class_name_appended: false`).
    """
    bad = [f for f in fields if f not in CAPTION_FIELDS]
    if bad:
        raise UserError(f"fields: unknown field {bad[0]!r}; valid ones are {', '.join(CAPTION_FIELDS)}")
    jp = Path(json_path)
    records = _read_records(jp)
    wnids = [str(r.get("wnid") or r["filename"].split("_", 1)[0]) for r in records]
    if class_names is not None:
        mapping = read_class_mapping(class_names)
        unknown = sorted({w for w in wnids if w not in mapping})
        if unknown:
            raise UserError(f"{class_names}: no class for wnid {unknown[0]!r} ({len(unknown)} wnids missing)")
        order = list(mapping)
        names = [mapping[w] for w in order]
    else:
        order = sorted(set(wnids))
        names = list(order)
    index = {w: i for i, w in enumerate(order)}
    appended = append_class_name and class_names is not None
    if append_class_name and not appended:
        print(
            f"warning: {jp}: no class_names mapping, so no class name is appended to captions",
            file=sys.stderr,
        )
    captions: list[str] = []
    for rec, w in zip(records, wnids):
        parts = [t for t in (_text(rec.get(f)) for f in fields) if t]
        if appended:
            parts.append(names[index[w]])
        captions.append(" ".join(parts))
    labels = [index[w] for w in wnids]
    root = Path(os.path.abspath(image_root))
    paths = [str(root / w / rec["filename"]) for rec, w in zip(records, wnids)]
    images, kept, stats = decode_to_cache(paths, image_size, cache_dir, strict=strict, progress=progress)
    stats = {**stats, "caption_fields": list(fields), "class_name_appended": appended}
    return _table(images, kept, captions, labels, names, f"imagenet-captions:{jp}", stats)
