"""'1 vs N confusable' accuracy: top-1 accuracy when a sample competes only with its true class's N most
confusable classes.

CounterAnimal (Wang et al. 2024, "Do CLIPs always generalize better than ImageNet models?", see
`PAPERS.md`) scores every model twice: over the whole ImageNet-1k label space ("1 vs 1000", our `acc1`)
and against each class's 20 most confusable classes ("1 vs 20"). The second separates a model that
confuses near neighbours (fine-grained siblings) from one that confuses far classes. Here a sample counts
as correct when its true class scores above each of its N confusable classes: the argmax of the logits
restricted to {true class} and its N confusables, ties broken as `argmax` breaks them (the lower class
index wins), so with all other classes as confusables it is `acc1` exactly.

An evaluation set carries a confusable table (`EvalData.confusable`): (C, M) class indices, most
confusable first, -1 where a class has fewer than M. World sets take the world's own
(`World.confusable`: siblings first, then the nearest silhouettes); other sets take a JSON mapping
`{class name: [confusable class names, most confusable first]}` (`EvalConfig.confusable`), or get no such
metric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipshift.errors import UserError
from clipshift.evaluate.units import declare

if TYPE_CHECKING:
    import torch

declare(
    "acc1_vs*_confusable",
    "fraction",
    "top-1 accuracy against the true class's N most confusable classes only (CounterAnimal's '1 vs N')",
)


def metric_name(n: int) -> str:
    return f"acc1_vs{n}_confusable"


def metric_n(metric: str) -> int | None:
    """N of a `metric_name(N)` metric, else None."""
    m = re.fullmatch(r"acc1_vs(\d+)_confusable", metric)
    return int(m.group(1)) if m else None


def confusable_accuracy(
    logits: torch.Tensor | np.ndarray, labels: np.ndarray, confusable: np.ndarray, ns: Sequence[int]
) -> dict[str, float]:
    """`acc1_vs{N}_confusable` for each N of `ns`: the share of samples whose true class beats each of its
    first N entries of `confusable` ((C, M) class indices, -1 = none; a class with fewer entries competes
    with those it has). Samples whose label is outside [0, C) are not scored, as for `acc1`."""
    import torch

    lg = torch.as_tensor(logits).float()
    n_classes = int(lg.shape[1])
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    keep = (y >= 0) & (y < n_classes)
    lg, y = lg[keep], y[keep]
    if y.numel() == 0:
        return {}
    table = torch.as_tensor(np.asarray(confusable), dtype=torch.int64)
    if table.ndim != 2 or table.shape[0] != n_classes:
        raise ValueError(f"confusable table of shape {tuple(table.shape)} for {n_classes} classes")
    rivals = table[y]  # (n, M): each sample's confusable classes, most confusable first
    mine = lg.gather(1, y[:, None])
    theirs = lg.gather(1, rivals.clamp(min=0))
    # beaten: scores below the true class, or ties it from a higher index (argmax keeps the first maximum)
    beaten = (theirs < mine) | ((theirs == mine) & (rivals > y[:, None])) | (rivals < 0)
    out: dict[str, float] = {}
    for n in ns:
        out[metric_name(n)] = float(beaten[:, :n].all(dim=1).numpy().mean())  # float64, as acc1
    return out


def read_confusable(path: str | Path, class_names: Sequence[str], labels: np.ndarray) -> np.ndarray:
    """A (C, M) confusable table over `class_names` from a JSON file `{class name: [confusable class
    names, most confusable first]}` (M: the longest list; -1 pads). Every class that has samples
    (`labels`) needs an entry, every listed name must be one of `class_names`."""
    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise UserError(f"confusable classes: {p}: {e.strerror or e}") from None
    except ValueError as e:
        raise UserError(f"confusable classes: {p}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        raise UserError(f"confusable classes: {p}: expected an object {{class name: [class names]}}")
    index = {name: i for i, name in enumerate(class_names)}
    present = np.unique(labels[(labels >= 0) & (labels < len(class_names))])
    missing = [class_names[c] for c in present if class_names[c] not in data]
    if missing:
        raise UserError(
            f"confusable classes: {p}: no entry for class {missing[0]!r} ({len(missing)} classes with "
            "samples have none)"
        )
    width = max((len(v) for v in data.values()), default=0)
    table = np.full((len(class_names), max(width, 1)), -1, dtype=np.int64)
    for name, rivals in data.items():
        if name not in index:
            continue  # a mapping for a larger label space: classes this set lacks have no samples
        unknown = [r for r in rivals if r not in index]
        if unknown:
            raise UserError(f"confusable classes: {p}: {name!r} lists {unknown[0]!r}, not a class of the set")
        row = [index[r] for r in rivals if r != name]
        table[index[name], : len(row)] = row
    return table
