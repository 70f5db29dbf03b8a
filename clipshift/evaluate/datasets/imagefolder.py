"""`imagefolder:ROOT`: torchvision's ImageFolder layout, ROOT/<class>/<image>."""

from __future__ import annotations

import re

from clipshift.errors import UserError
from clipshift.evaluate.datasets.base import EvalData, LoadRequest, register_dataset
from clipshift.evaluate.datasets.files import subdirs
from clipshift.evaluate.templates import check_count

_PREFIXED = re.compile(r"^(\d+)\.(.+)$")  # the world's ImageFolder export: "<label:03d>.<name>"


@register_dataset(
    "imagefolder",
    "ROOT/<class>/<image> (torchvision's ImageFolder; class names from the folders, --classnames, or a "
    "world export's manifest)",
)
def load(req: LoadRequest) -> EvalData:
    import numpy as np

    from clipshift.data.loaders import load_imagefolder

    root, names = req.path, req.class_names
    if not root.is_dir():
        raise UserError(f"imagefolder:{root}: not a directory")
    folders = subdirs(root)
    if not folders:
        raise UserError(f"imagefolder:{root}: no class folders (expected ROOT/<class>/<image>)")
    if names is not None:
        # torchvision's ImageFolder: one name per folder; the world export (NNN.name folders, which
        # exist only for classes with samples) may have fewer folders than names
        prefixes = [int(m.group(1)) if (m := _PREFIXED.match(f)) else -1 for f in folders]
        world_like = min(prefixes) >= 0 and max(prefixes) < len(names)
        if len(names) != len(folders) and not world_like:
            check_count(
                names, len(folders), str(req.class_names_file), f"imagefolder:{root} ({len(folders)} folders)"
            )
    table = load_imagefolder(
        root,
        req.image_size,
        class_names=names,
        cache_dir=req.cache_dir,
        progress=req.progress,
        resize=req.resize,
    )
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
