"""Write a split of the world to disk in formats other tools read: ImageFolder, open_clip CSV,
webdataset shards and CounterAnimal's layout.

Every export is atomic: it is built in a sibling staging directory `<out>.partial-<pid>` and renamed
to `<out>` only after `manifest.json` (written last) is in place, so a directory at `<out>` is always
complete. An interrupted export leaves at most a `*.partial-<pid>` directory, never `<out>`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image

from clipshift import __version__
from clipshift.errors import UserError
from clipshift.world import shifts
from clipshift.world.captions import describe_factors
from clipshift.world.evalsets import parse_split
from clipshift.world.world import World

FORMATS = ("imagefolder", "csv", "wds", "counteranimal", "imagenet-captions")
RENDER_BATCH = 1024
_CA_GROUPS = ("common", "counter")


def export_split(
    world: World,
    split: str,
    n: int,
    fmt: str,
    out: Path,
    *,
    shard_size: int = 1000,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Export `n` samples of `split` as `fmt` into the directory `out`; return the manifest.

    Formats (image files are PNG, named by the sample's index within its split):

    - ``imagefolder``: ``<label:03d>.<class_name>/<index:06d>.png``, ``classnames.txt`` (the K
      evaluation classes in label order), ``ground_truth.jsonl``. Folders exist only for classes
      with samples. Open-world concepts (train split only) get their own folders too, listed in
      the manifest under ``open_world_class_names``. The zero-padded label prefix makes
      torchvision's ``ImageFolder`` (which numbers folders in sorted order) assign the world's labels.
    - ``csv``: open_clip's CSV: ``images/<index:06d>.png`` and ``<split>.csv``, tab-separated with header
      ``filepath<TAB>title``. The filepaths are ABSOLUTE (pointing at the final ``out``): open_clip's
      ``CsvDataset`` passes them to ``Image.open`` unchanged, so relative paths would resolve against the
      training process's working directory, not the CSV's folder. Moving the export therefore breaks the
      CSV; ``ground_truth.jsonl`` (same order) keeps the CSV-relative ``path`` of every image.
      Use ``--csv-img-key filepath --csv-caption-key title --csv-separator "\\t"``.
    - ``wds``: webdataset shards ``shard-%06d.tar`` of ``shard_size`` samples, key ``%09d`` (the index),
      members ``.png``, ``.txt`` (caption), ``.json`` (ground truth with ``label``); ``shards.txt`` holds
      the brace pattern, e.g. ``shard-{000000..000003}.tar`` (relative to ``out``).
    - ``counteranimal``: ``<label> <class_name>/<common|counter>/<index:06d>.png`` plus
      ``ground_truth.jsonl``. Which groups are written: if ``split`` is ``common`` or ``counter``, only
      that group (n samples); for any other ``split`` (e.g. ``counteranimal``, ``train``) both groups,
      n samples of the world's ``common`` split and n of its ``counter`` split. Evaluation splits are
      paired, so ``common/000007.png`` and ``counter/000007.png`` show the same object on its common
      habitat and on another one.
    - ``imagenet-captions``: ImageNet-Captions' layout: ``images/<wnid>/<wnid>_<index>.png`` with the
      made-up wnid ``w<label:08d>``, ``imagenet_captions.json`` (a list of records ``{filename, wnid,
      title, description, tags}``: title = the attributes-level caption, description = the full-level
      caption, tags = the ground-truth detail words: size, pattern, colour (not where the shift hides it),
      background, domain), ``wnids.txt`` (``wnid<TAB>class name`` for every concept, in label order)
      and ``ground_truth.jsonl``. Load it with ``load_imagenet_captions(json, images, size,
      class_names=wnids.txt)``: the labels are then the world's.

    Raises UserError for an unknown format or split, ``n < 1``, ``shard_size < 1``, class names that
    are not usable as folder names, or an existing non-empty ``out`` without ``overwrite``.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise UserError(f"number of samples n must be an integer ≥ 1, got {n!r}")
    if shard_size < 1:
        raise UserError(f"shard_size must be ≥ 1, got {shard_size}")
    n = int(n)
    groups = _plan(split, n, fmt)
    for g_split, _, _ in groups:
        parse_split(g_split)  # a bad split name fails here, before anything touches the disk
    if fmt in ("imagefolder", "counteranimal"):
        _check_folder_names(world.concepts.names)

    shown = Path(out)  # errors name the path as the user gave it
    # abspath, not resolve(): keep the user's symlinked parents as given, but make CSV paths absolute
    out = Path(os.path.abspath(out))
    cwd = Path.cwd()
    if out == out.parent or out == cwd or out in cwd.parents:
        # replacing the working directory (or `/`) is almost surely a typo, and --overwrite would wipe it
        raise UserError(f"{shown}: refusing to export into the current directory or one of its parents")
    _check_target(out, overwrite, shown)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f"{out.name}.partial-{os.getpid()}"
    if staging.exists():  # a leftover of a crashed run that had our pid: it can only be stale
        shutil.rmtree(staging)
    staging.mkdir()

    total = sum(g[1] for g in groups)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"export {fmt} {split}", unit="img", disable=not progress, file=sys.stderr)
    old: Path | None = None
    try:
        w = _Writer(staging)
        extra = _WRITERS[fmt](world, groups, w, out, shard_size, bar.update)
        bar.close()
        k = world.concepts.n_classes
        manifest: dict[str, Any] = {
            "format": fmt,
            "split": split,
            "n": n,
            "n_images": total,
            **extra,
            "class_names": world.class_names,
            "open_world_class_names": world.concepts.names[k:],
            "caption_level": world.spec.captions.level,
            "image_size": world.spec.image_size,
            "clipshift_version": __version__,
            "spec": world.spec.model_dump(mode="json"),
            "n_files": len(w.files),
            "files": w.files,  # every file except manifest.json, in write order
        }
        # the manifest is the completion marker: written last, then the whole directory appears at once
        w.write_text("manifest.json", json.dumps(manifest, indent=1) + "\n", record=False)
        old = _commit(staging, out, overwrite, shown)
    except BaseException:
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:  # the new export is in place; a failure to clean up must not fail it
        _remove(old)
    return manifest


# --------------------------------------------------------------------------------------------------
# planning and target checks


def _plan(split: str, n: int, fmt: str) -> list[tuple[str, int, str | None]]:
    """(world split, count, group subfolder) for each group of samples to write."""
    if fmt != "counteranimal":
        return [(split, n, None)]
    if split in _CA_GROUPS:
        return [(split, n, split)]
    return [(g, n, g) for g in _CA_GROUPS]


def _check_folder_names(names: list[str]) -> None:
    # spec.concepts.names is free text; a name with "/" would silently nest folders
    for name in names:
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise UserError(
                f"class name {name!r} cannot be used as a folder name (imagefolder/counteranimal)"
            )


def _exists(p: Path) -> bool:
    return p.exists() or p.is_symlink()


def _check_target(out: Path, overwrite: bool, shown: Path) -> None:
    if not _exists(out) or overwrite:
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return  # an empty directory is replaced silently
    raise UserError(f"{shown}: already exists (use --overwrite)")


def _commit(staging: Path, out: Path, overwrite: bool, shown: Path) -> Path | None:
    """Move the finished staging directory to `out`; return the old output moved aside, if any."""
    if not _exists(out):
        os.replace(staging, out)
        return None
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        os.replace(staging, out)  # rename(2) replaces an empty directory atomically
        return None
    if not overwrite:  # re-checked: something may have appeared at `out` while we rendered
        raise UserError(f"{shown}: already exists (use --overwrite)")
    # rename old aside, rename new in, delete old later: `out` is never a half-deleted tree
    old = out.parent / f"{out.name}.old-{os.getpid()}"
    if _exists(old):
        _remove(old)
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(old, out)  # put the previous output back
        raise
    return old


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):  # best effort: the new export is already in place
            p.unlink()


# --------------------------------------------------------------------------------------------------
# samples and files


@dataclass
class Sample:
    index: int
    png: bytes
    caption: str
    truth: dict[str, Any]


def encode_png(arr: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image; compress_level=1 because tiny images compress little."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def iter_samples(world: World, split: str, n: int) -> Iterator[Sample]:
    """Render indices [0, n) of `split` and yield each sample's PNG, caption and ground truth."""
    level = world.spec.captions.level
    for f, images in world.batches(split, n, batch_size=RENDER_BATCH):
        caps = world.captions(f)
        hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
        for j in range(len(f)):
            truth = describe_factors(f, j, world.concepts)
            truth["label"] = truth["class"]
            truth["caption"] = caps[j]
            truth["caption_level"] = level
            yield Sample(int(f.index[j]), encode_png(hwc[j]), caps[j], truth)


@dataclass
class _Writer:
    """Writes files under the staging root and records their relative paths for the manifest."""

    root: Path
    files: list[str] = field(default_factory=list)
    _dirs: set[str] = field(default_factory=set)

    def path(self, rel: str, record: bool = True) -> Path:
        parent = os.path.dirname(rel)
        if parent and parent not in self._dirs:
            (self.root / parent).mkdir(parents=True, exist_ok=True)
            self._dirs.add(parent)
        if record:
            self.files.append(rel)
        return self.root / rel

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.path(rel).write_bytes(data)

    def write_text(self, rel: str, text: str, record: bool = True) -> None:
        self.path(rel, record).write_text(text, encoding="utf-8")

    def open_text(self, rel: str) -> TextIO:
        # newline="" so the csv module's own line endings are not translated
        return self.path(rel).open("w", encoding="utf-8", newline="")


def _jsonl(truth: dict[str, Any]) -> str:
    return json.dumps(truth, ensure_ascii=False) + "\n"


Groups = list[tuple[str, int, str | None]]
Tick = Callable[[int], object]


def _write_imagefolder(world: World, groups: Groups, w: _Writer, out: Path, _ss: int, tick: Tick) -> dict:
    names = world.concepts.names
    w.write_text("classnames.txt", "".join(f"{name}\n" for name in world.class_names))
    seen: set[int] = set()
    with w.open_text("ground_truth.jsonl") as gt:
        for split, n, _ in groups:
            for s in iter_samples(world, split, n):
                label = s.truth["label"]
                seen.add(label)
                rel = f"{class_folder(label, names)}/{s.index:06d}.png"
                w.write_bytes(rel, s.png)
                gt.write(_jsonl({"path": rel, **s.truth}))
                tick(1)
    return {"class_folders": {class_folder(c, names): c for c in sorted(seen)}}


def class_folder(label: int, names: list[str]) -> str:
    """`007.zorp`: the zero-padded label first, so sorted folder order is label order and
    torchvision's ImageFolder assigns the world's labels (the CUB-200 convention)."""
    width = max(3, len(str(len(names) - 1)))
    return f"{label:0{width}d}.{names[label]}"


def _write_csv(world: World, groups: Groups, w: _Writer, out: Path, _ss: int, tick: Tick) -> dict:
    ((split, n, _),) = groups
    csv_name = f"{split}.csv"
    with w.open_text(csv_name) as fh, w.open_text("ground_truth.jsonl") as gt:
        rows = csv.writer(fh, delimiter="\t", lineterminator="\n")
        rows.writerow(["filepath", "title"])
        for s in iter_samples(world, split, n):
            rel = f"images/{s.index:06d}.png"
            w.write_bytes(rel, s.png)
            rows.writerow([str(out / rel), s.caption])  # the final location, not the staging one
            gt.write(_jsonl({"path": rel, **s.truth}))
            tick(1)
    return {
        "csv": csv_name,
        "csv_paths": "absolute",
        "open_clip_args": f'--csv-img-key filepath --csv-caption-key title --csv-separator "\\t" '
        f"--train-data {out / csv_name}",
    }


def _write_wds(world: World, groups: Groups, w: _Writer, out: Path, shard_size: int, tick: Tick) -> dict:
    import webdataset as wds

    ((split, n, _),) = groups
    mtime = time.time()  # one timestamp for every member instead of one per write
    writer: Any = None
    n_shards = 0
    try:
        for i, s in enumerate(iter_samples(world, split, n)):
            if i % shard_size == 0:
                if writer is not None:
                    writer.close()
                writer = wds.TarWriter(str(w.path(f"shard-{n_shards:06d}.tar")), mtime=mtime)
                n_shards += 1
            writer.write(
                {
                    "__key__": f"{s.index:09d}",
                    "png": s.png,
                    "txt": s.caption.encode("utf-8"),
                    "json": json.dumps(s.truth, ensure_ascii=False).encode("utf-8"),
                }
            )
            tick(1)
    finally:
        if writer is not None:
            writer.close()
    pattern = f"shard-{{000000..{n_shards - 1:06d}}}.tar"
    w.write_text("shards.txt", pattern + "\n")
    return {"shards": pattern, "n_shards": n_shards, "shard_size": shard_size}


def _write_counteranimal(world: World, groups: Groups, w: _Writer, out: Path, _ss: int, tick: Tick) -> dict:
    names = world.concepts.names
    counts: dict[str, int] = {}
    with w.open_text("ground_truth.jsonl") as gt:
        for split, n, group in groups:
            for s in iter_samples(world, split, n):
                label = s.truth["label"]
                rel = f"{label} {names[label]}/{group}/{s.index:06d}.png"
                w.write_bytes(rel, s.png)
                gt.write(_jsonl({"path": rel, "group": group, **s.truth}))
                tick(1)
            counts[str(group)] = n
    return {"groups": counts}


_TAG_FACTORS = ("size", "pattern", "colour", "background", "domain")


def _write_imagenet_captions(
    world: World, groups: Groups, w: _Writer, out: Path, _ss: int, tick: Tick
) -> dict:
    from clipshift.world.captions import captions as caption_texts
    from clipshift.world.sampling import split_key
    from clipshift.world.spec import LEVEL_DETAILS

    ((split, n, _),) = groups
    names = world.concepts.names
    cap = world.spec.captions
    chosen = cap.details  # an explicit detail list limits both texts; None keeps each level's default
    title_spec = cap.model_copy(
        update={
            "level": "attributes",
            "details": None if chosen is None else [d for d in chosen if d in LEVEL_DETAILS["attributes"]],
        }
    )
    full_spec = cap.model_copy(update={"level": "full"})
    key = split_key(world.spec, parse_split(split))
    records: list[dict[str, Any]] = []
    with w.open_text("ground_truth.jsonl") as gt:
        for f, images in world.batches(split, n, batch_size=RENDER_BATCH):
            # the same caption randomness (keyed by index) at two levels, so the title is the start
            # of the description (object details) without the scene (background, domain)
            titles = caption_texts(f, world.concepts, title_spec, key)
            descriptions = caption_texts(f, world.concepts, full_spec, key)
            hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
            for j in range(len(f)):
                truth = describe_factors(f, j, world.concepts)
                label = int(f.label[j])
                wnid = f"w{label:08d}"
                index = int(f.index[j])
                filename = f"{wnid}_{index}.png"
                rel = f"images/{wnid}/{filename}"
                w.write_bytes(rel, encode_png(hwc[j]))
                colour_seen = shifts.colour_survives(str(truth["domain"]), f.corruption)  # not in a sketch
                tags = [truth[k] for k in _TAG_FACTORS if colour_seen or k != "colour"]
                records.append(
                    {
                        "filename": filename,
                        "wnid": wnid,
                        "title": titles[j],
                        "description": descriptions[j],
                        "tags": tags,
                    }
                )
                truth["label"] = label
                gt.write(_jsonl({"path": rel, "title": titles[j], "description": descriptions[j], **truth}))
                tick(1)
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    w.write_text("imagenet_captions.json", f"[\n{body}\n]\n")
    w.write_text("wnids.txt", "".join(f"w{i:08d}\t{name}\n" for i, name in enumerate(names)))
    return {
        "json": "imagenet_captions.json",
        "image_root": "images",
        "class_mapping": "wnids.txt",
    }


_WRITERS: dict[str, Callable[[World, Groups, _Writer, Path, int, Tick], dict]] = {
    "imagefolder": _write_imagefolder,
    "csv": _write_csv,
    "wds": _write_wds,
    "counteranimal": _write_counteranimal,
    "imagenet-captions": _write_imagenet_captions,
}
