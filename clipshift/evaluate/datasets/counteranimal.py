"""`counteranimal:ROOT`: CounterAnimal's layout, `<label> <name>/{common,counter}/<image>`."""

from __future__ import annotations

import re

from clipshift.errors import UserError
from clipshift.evaluate.datasets.base import EvalData, LoadRequest, register_dataset
from clipshift.evaluate.datasets.files import decode, list_images, manifest_names, subdirs

_CA_FOLDER = re.compile(r"^(\d+)\s+(.+)$")  # CounterAnimal: "<label> <class name>"


@register_dataset(
    "counteranimal",
    "'<label> <class name>/common|counter/' folders: accuracy over the full label space with "
    "common/counter group accuracies, and again over the classes present (subset/present/…)",
)
def load(req: LoadRequest) -> EvalData:
    """Labels are indices of the full label space (ImageNet's for the real CounterAnimal, the world's for
    its export). Metrics over the full label space, groups common/counter, and again over the classes
    present (`subset/present/…`)."""
    import numpy as np

    root, names = req.path, req.class_names
    entries = []
    for folder in subdirs(root):
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
                f"{req.class_names_file}: {len(names)} class names, but counteranimal:{root} has label {top}"
            )
    else:
        names = manifest_names(root)
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
            files = list_images(root / folder / g)
            paths += files
            labels += [label] * len(files)
            group += [0 if g == "common" else 1] * len(files)
    images, kept = decode(paths, req.image_size, req.cache_dir, req.progress, root, req.resize)
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
