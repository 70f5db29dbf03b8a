"""Helpers the on-disk layouts share: listing class folders and images, decoding them into the
decoded-image cache, and the class names of a world export."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from clipshift.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from clipshift.data.cache import Resize

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def list_images(folder: Path) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMG_EXTENSIONS))
    return out


def subdirs(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def decode(
    paths: list[str],
    image_size: int,
    cache_dir: Path | None,
    progress: bool,
    where: Path,
    resize: Resize | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    from clipshift.data.cache import decode_to_cache

    if not paths:
        raise UserError(f"{where}: no image files ({', '.join(IMG_EXTENSIONS)})")
    images, kept, _ = decode_to_cache(paths, image_size, cache_dir, progress=progress, resize=resize)
    if len(kept) == 0:
        raise UserError(f"{where}: none of the {len(paths)} image files could be decoded")
    return images, kept


def manifest_names(root: Path) -> list[str] | None:
    """The world export's class names (manifest.json), if this is one."""
    m = root / "manifest.json"
    if not m.is_file():
        return None
    try:
        names = json.loads(m.read_text()).get("class_names")
    except (ValueError, AttributeError):
        return None
    return list(names) if isinstance(names, list) and all(isinstance(x, str) for x in names) else None
