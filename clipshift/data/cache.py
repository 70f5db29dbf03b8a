"""Decoded-image cache: real images decoded once into a uint8 (M, 3, S, S) file, memory-mapped after.

Decoding JPEG/PNG is what makes small-model training on real data slow; the cache turns every later
epoch (and every later run on the same files) into page reads. Preprocessing is CLIP's: resize the
shorter side to S with bicubic filtering, then center-crop S x S. A `Resize` asks for another resize
before the same center crop (an ImageNet classifier's: shorter side to 256, bilinear, crop 224); its
entries are keyed apart, and the default's keys are those of before it existed.

Layout: ``<cache_dir>/<key>.u8`` (raw rows, C order) and ``<key>.json`` (shape, skipped rows, stats).
The key hashes the inputs (paths with each file's size and mtime, or the files the bytes come from)
and S, so editing, replacing or touching a file gives a new cache entry instead of stale pixels.
Both files are written under a temporary name and renamed; the json goes last, so a json on disk
always describes a complete ``.u8``. Concurrent writers of the same key (DDP ranks) produce identical
files, and the last rename wins harmlessly.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipshift.errors import UserError

CACHE_VERSION = 1  # bump when the preprocessing changes: old entries then miss instead of lying
POOL_MIN = 256  # below this many images a process pool costs more than it saves
BLOCK = 4096  # images handed to the pool at a time: bounds memory for streamed bytes
N_EXAMPLES = 5  # skipped files named in the stats and the warning

Source = str | bytes | None  # a path, encoded image bytes, or None (no image at all)


def default_cache_dir() -> Path:
    """``$CLIPSHIFT_CACHE/images``, else ``~/.cache/clipshift/images``."""
    root = os.environ.get("CLIPSHIFT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "clipshift") / "images"


INTERPOLATIONS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


@dataclass(frozen=True)
class Resize:
    """How an image is resized before the center crop to S x S: its shorter side to `shorter` px (None:
    S, CLIP's) with `interpolation` (PIL's filter, which torchvision's Resize applies to PIL images); with
    `squash` both sides become `shorter` (timm's crop_mode 'squash': the aspect ratio is not kept).
    `Resize()` is CLIP's preprocessing. torchvision's ImageNet classification preset is
    `Resize(256, "bilinear")` with S = 224; timm's eval transform `Resize(floor(S / crop_pct), ...)`."""

    shorter: int | None = None
    interpolation: str = "bicubic"
    squash: bool = False

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise UserError(f"interpolation {self.interpolation!r}: choose from {', '.join(INTERPOLATIONS)}")
        if self.shorter is not None and self.shorter < 1:
            raise UserError(f"resize: the shorter side must be ≥ 1 px, got {self.shorter}")

    def key(self, image_size: int) -> list[object]:
        """What the cache key adds for this resize: nothing for CLIP's (old entries keep their keys)."""
        if self.squash or self.interpolation != "bicubic" or self.shorter not in (None, image_size):
            return [int(self.shorter or image_size), self.interpolation, self.squash]
        return []


def decode_image(source: str | bytes, image_size: int, resize: Resize | None = None) -> np.ndarray:
    """One image as uint8 (3, S, S): RGB, shorter side resized to S (bicubic), center crop (CLIP's), or
    as `resize` says before the same center crop.

    Raises FileNotFoundError for a missing path and some other exception for anything undecodable.
    An image already at its resized size is not resampled, so lossless S x S files round-trip exactly
    under CLIP's preprocessing.
    """
    fh = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(fh) as im:
        img = im.convert("RGB")  # forces the full decode: truncated files fail here, not later
    rs = resize or Resize()
    target = rs.shorter or image_size
    w, h = img.size
    if (w, h) != (image_size, image_size) or target != image_size:
        if rs.squash:  # torchvision's Resize((t, t)): both sides
            nw, nh = target, target
        # torchvision's Resize(int): the shorter side becomes t, the longer keeps the aspect ratio
        elif w <= h:
            nw, nh = target, max(target, int(target * h / w))
        else:
            nw, nh = max(target, int(target * w / h)), target
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), INTERPOLATIONS[rs.interpolation])
        # torchvision's CenterCrop: offsets rounded half to even like int(round(...))
        left, top = round((nw - image_size) / 2.0), round((nh - image_size) / 2.0)
        img = img.crop((left, top, left + image_size, top + image_size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def _decode_one(args: tuple[Source, int, Resize | None]) -> tuple[np.ndarray | None, str, str]:
    """(image, "", "") or (None, "missing" | "corrupt", reason); top level so spawned workers find it."""
    source, size, resize = args
    if source is None:
        return None, "missing", "no image in the sample"
    try:
        return decode_image(source, size, resize), "", ""
    except FileNotFoundError:
        return None, "missing", "file not found"
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, EOFError, struct.error, ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return None, "corrupt", reason


# --------------------------------------------------------------------------------------------------
# public entry points


def decode_to_cache(
    paths: list[str],
    image_size: int,
    cache_dir: Path | None,
    strict: bool = False,
    workers: int = 2,
    progress: bool = True,
    resize: Resize | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Decode image files into the cache (or reuse it); return (images, kept row indices, stats).

    `images` is a read-only memmap uint8 (M, 3, S, S) holding the decodable files in input order;
    `kept[i]` is the index in `paths` of row i. Missing and undecodable files are skipped and counted
    (`skipped_missing`, `skipped_corrupt`, `skipped_examples`) with one warning line on stderr, or, with
    `strict`, raise UserError naming the first one. A second call with the same files (same sizes and
    mtimes), S and `resize` reads the cache without decoding anything. `resize`: how images are resized
    before the center crop (default: CLIP's, see `Resize`).
    """
    material = [_stat(p) for p in paths]
    key = _cache_key("files", material, image_size, resize)
    return _cached_or_build(
        key, ((p, p) for p in paths), len(paths), image_size, cache_dir, strict, workers, progress, "images",
        resize,
    )  # fmt: skip


def decode_bytes_to_cache(
    items: Iterable[tuple[str, bytes | None]],
    image_size: int,
    key_files: Sequence[str | Path],
    cache_dir: Path | None,
    strict: bool = False,
    workers: int = 2,
    progress: bool = True,
    total: int | None = None,
    what: str = "images",
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Like `decode_to_cache` for encoded bytes, e.g. webdataset members: `items` yields (name, bytes or
    None); `name` appears in warnings and errors. The key hashes `key_files` (the files the bytes come
    from, with size and mtime) and S: unchanged files hold the same samples.

    `items` is always consumed to the end, also on a cache hit (then without decoding), so a caller
    may collect captions and labels from the same pass.
    """
    key = _cache_key("bytes", [_stat(f) for f in key_files], image_size)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = _open_cached(root, key)
    if cached is None:
        return _build(key, items, total, image_size, root, strict, workers, progress, what)
    n = sum(1 for _ in items)
    return _finish_hit(cached, n, strict, what)


# --------------------------------------------------------------------------------------------------
# cache entries


def _stat(path: str | Path) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None, None]  # missing now: a later appearance changes the key
    return [str(path), st.st_size, st.st_mtime_ns]


def _cache_key(kind: str, material: list[Any], image_size: int, resize: Resize | None = None) -> str:
    h = hashlib.sha256()
    extra = resize.key(image_size) if resize is not None else []
    h.update(json.dumps([CACHE_VERSION, kind, int(image_size), *extra]).encode())
    for item in material:  # streamed: a million paths never become one giant string
        h.update(json.dumps(item).encode("utf-8") + b"\n")
    return h.hexdigest()[:32]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _open_cached(root: Path, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The entry's memmap and meta, or None if absent, incomplete or from another cache version."""
    meta = _read_json(root / f"{key}.json")
    if meta is None or meta.get("version") != CACHE_VERSION or meta.get("key") != key:
        return None
    shape = tuple(int(s) for s in meta["shape"])
    data = root / f"{key}.u8"
    try:
        if data.stat().st_size != int(np.prod(shape)):
            return None
    except OSError:
        return None
    if shape[0] == 0:
        return None
    return np.memmap(data, dtype=np.uint8, mode="r", shape=shape), meta


def _finish_hit(
    cached: tuple[np.ndarray, dict[str, Any]], n_inputs: int, strict: bool, what: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    images, meta = cached
    if int(meta["n_inputs"]) != n_inputs:  # the key covers the inputs: only files edited in place
        raise UserError(
            f"{meta['stats']['cache_file']}: decoded-image cache does not match its inputs; delete it"
        )
    skipped = np.asarray(meta["skipped_rows"], dtype=np.int64)
    first = meta.get("first_failure")
    if strict and first:  # an earlier lenient run skipped files: strict must still refuse them
        raise UserError(f"{first['name']}: cannot decode image ({first['reason']})")
    kept = np.setdiff1d(np.arange(n_inputs, dtype=np.int64), skipped, assume_unique=True)
    stats = {**meta["stats"], "cache": "hit"}
    _warn(stats, what)
    return images, kept, stats


def _cached_or_build(
    key: str,
    items: Iterable[tuple[str, Source]],
    total: int,
    image_size: int,
    cache_dir: Path | None,
    strict: bool,
    workers: int,
    progress: bool,
    what: str,
    resize: Resize | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = _open_cached(root, key)
    if cached is not None:
        return _finish_hit(cached, total, strict, what)
    return _build(key, items, total, image_size, root, strict, workers, progress, what, resize)


def _build(
    key: str,
    items: Iterable[tuple[str, Source]],
    total: int | None,
    image_size: int,
    root: Path,
    strict: bool,
    workers: int,
    progress: bool,
    what: str,
    resize: Resize | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Decode every item in order, append the good rows to a temporary file, then publish it."""
    from tqdm import tqdm

    if image_size < 1:
        raise UserError(f"image_size must be ≥ 1, got {image_size}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{root}: cannot create the decoded-image cache ({e.strerror})") from None
    data = root / f"{key}.u8"
    tmp = root / f"{key}.u8.tmp-{os.getpid()}"
    skipped: list[int] = []
    counts = {"missing": 0, "corrupt": 0}
    examples: list[str] = []
    first: dict[str, str] | None = None
    n = kept_rows = 0
    bar = tqdm(total=total, desc=f"decode {what}", unit="img", disable=not progress, file=sys.stderr)
    try:
        # closing(): an early exit (strict) shuts the worker pool down at once, not at garbage collection
        with (
            open(tmp, "wb") as out,
            contextlib.closing(_decode_all(items, image_size, workers, total, resize)) as res,
        ):
            for name, (arr, kind, reason) in res:
                if arr is None:
                    if strict:
                        raise UserError(f"{name}: cannot decode image ({reason})")
                    skipped.append(n)
                    counts[kind] += 1
                    if first is None:
                        first = {"name": name, "reason": reason}
                    if len(examples) < N_EXAMPLES:
                        examples.append(f"{name} ({reason})")
                else:
                    out.write(arr.tobytes())
                    kept_rows += 1
                n += 1
                bar.update(1)
        bar.close()
        if kept_rows == 0:
            if n == 0:
                raise UserError(f"no {what} to decode")
            assert first is not None
            raise UserError(
                f"none of the {n} {what} could be decoded (first: {first['name']}: {first['reason']})"
            )
        os.replace(tmp, data)
    except BaseException:
        bar.close()
        tmp.unlink(missing_ok=True)
        raise
    stats: dict[str, Any] = {
        "n_inputs": n,
        "n_images": kept_rows,
        "skipped_missing": counts["missing"],
        "skipped_corrupt": counts["corrupt"],
        "skipped_examples": examples,
        "cache_file": str(data),
    }
    shape = [kept_rows, 3, image_size, image_size]
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "image_size": image_size,
        "shape": shape,
        "n_inputs": n,
        "skipped_rows": skipped,  # the complement of the kept rows: short when little is skipped
        "first_failure": first,
        "stats": stats,
    }
    _write_json_atomic(root / f"{key}.json", meta)  # last: the entry exists once this is in place
    stats = {**stats, "cache": "miss"}
    _warn(stats, what)
    kept = np.setdiff1d(np.arange(n, dtype=np.int64), np.asarray(skipped, dtype=np.int64), assume_unique=True)
    return np.memmap(data, dtype=np.uint8, mode="r", shape=tuple(shape)), kept, stats


def _decode_all(
    items: Iterable[tuple[str, Source]],
    image_size: int,
    workers: int,
    total: int | None,
    resize: Resize | None = None,
) -> Generator[tuple[str, tuple[np.ndarray | None, str, str]], None, None]:
    """(name, decode result) in input order; a spawn pool for large inputs, inline otherwise."""
    it = iter(items)
    if workers <= 1 or (total is not None and total <= POOL_MIN):
        for name, src in it:
            yield name, _decode_one((src, image_size, resize))
        return
    block = list(islice(it, BLOCK))
    if len(block) <= POOL_MIN:  # a short stream of unknown length: not worth starting processes
        for name, src in block:
            yield name, _decode_one((src, image_size, resize))
        return
    import multiprocessing as mp

    # spawn, not fork: the parent may hold torch's thread pools or CUDA, which do not survive a fork
    with mp.get_context("spawn").Pool(workers) as pool:
        while block:
            chunk = max(1, min(64, len(block) // (4 * workers)))
            results = pool.imap(_decode_one, [(src, image_size, resize) for _, src in block], chunksize=chunk)
            for (name, _), res in zip(block, results):
                yield name, res
            block = list(islice(it, BLOCK))


def _warn(stats: dict[str, Any], what: str) -> None:
    miss, bad = stats["skipped_missing"], stats["skipped_corrupt"]
    if miss or bad:
        ex = stats["skipped_examples"][0] if stats["skipped_examples"] else ""
        print(
            f"warning: skipped {miss} missing and {bad} undecodable of {stats['n_inputs']} {what} "
            f"(first: {ex})",
            file=sys.stderr,
        )
