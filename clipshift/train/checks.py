"""A run's manipulation and convergence checks, measured from what the run actually did (final.json's
`checks`; a study stores them as eval set `train`, task `checks`).

Everything is computed after the loop from the table, the epoch orders (`train.data.epoch_order`, a
function of seed and epoch alone, so the very batches of every step are known) and metrics.jsonl. Nothing
here touches the model, the optimiser or any random stream of the loop, so a run's numbers are the same
with or without it (a test compares the weights).

- data: realised class counts, classes and same-class pairs per global batch; for an objective that reads
  text, the texts it feeds the text tower (`Objective.texts`): duplicates per batch and how often each
  mentions the row's class name (and, for world data, its background, colour, pattern, size and domain);
  for world data the realised spurious correlation and domain mix;
- objective: `Objective.measures` (classes scored per step; dynamic: how often the top-up to K happened);
- training: the logit scale's trajectory and the loss at the start, at the end and its slope over the
  last fifth of training.
The metric names and units are declared in `clipshift.evaluate.checks`.

A streamed world split (`data.stream`) is measured exactly as a held one, on every row: labels and
factor codes are held per row, and the texts are read in chunks (the captions rendered per chunk), so the
memory is a few bytes a row plus the distinct texts, never the images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipshift.data import measures as m
from clipshift.data.table import Batch, ImageTextTable
from clipshift.objectives import Objective
from clipshift.train.data import epoch_order

TEXT_CHUNK = 4096  # rows per call of Objective.texts


def run_checks(
    table: ImageTextTable,
    objective: Objective[Any],
    *,
    batch_size: int,
    per_epoch: int,
    epochs: int,
    seed: int,
    metrics_path: Path,
) -> dict[str, float]:
    """The run's checks as a flat {name: value} dict (NaN where a measure does not apply to the data)."""
    labels = np.asarray(table.labels, dtype=np.int64)
    n_classes = max(len(table.class_names), len(table.class_counts()))
    used = np.zeros(len(table), dtype=bool)
    for batches in _epoch_batches(len(table), batch_size, per_epoch, epochs, seed):
        used[batches.ravel()] = True
    text = _text_measures(table, objective, used, labels) if objective.model_kind == "clip" else None

    per_step: dict[str, list[np.ndarray]] = {"classes": [], "pairs": [], "dups": []}
    objective_parts: list[dict[str, float]] = []
    for batches in _epoch_batches(len(table), batch_size, per_epoch, epochs, seed):
        per_step["classes"].append(m.classes_per_batch(labels, batches))
        per_step["pairs"].append(m.same_class_pair_shares(labels, batches))
        if text is not None:
            per_step["dups"].append(m.duplicate_caption_shares(text[0], batches))
        # every epoch has the same number of steps: the mean of the epochs' step means is the run's
        objective_parts.append(objective.measures(labels, batches, n_classes))

    counts = table.class_counts()[: table.eval_classes]
    classes = np.concatenate(per_step["classes"])
    pairs = np.concatenate(per_step["pairs"])
    balance = m.class_balance(counts)
    out: dict[str, float] = {
        "data/rows": float(len(table)),
        "data/classes_present": balance["classes_present"],
        "data/imbalance": balance["imbalance"],
        "data/gini": balance["gini"],
        "data/classes_per_batch_mean": float(classes.mean()),
        "data/classes_per_batch_min": float(classes.min()),
        "data/classes_per_batch_max": float(classes.max()),
        "data/same_class_pair_share": _nanmean(pairs),
    }
    rows = np.flatnonzero(used)
    if text is not None:
        out["data/duplicate_caption_share"] = float(np.mean(np.concatenate(per_step["dups"])))
        out.update(text[1])
    if table.facts is not None:
        out.update(_world_measures(table, rows, labels))
    out.update({k: float(np.mean([p[k] for p in objective_parts])) for k in objective_parts[0]})
    out.update(curve_measures(metrics_path))
    return out


def _epoch_batches(n: int, batch_size: int, per_epoch: int, epochs: int, seed: int) -> Iterator[np.ndarray]:
    """Each epoch's steps as a (steps, batch_size) array of row numbers, exactly as the loop takes them."""
    for epoch in range(epochs):
        yield epoch_order(n, seed, epoch)[: per_epoch * batch_size].reshape(per_epoch, batch_size)


def _text_measures(
    table: ImageTextTable, objective: Objective[Any], used: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """The texts the objective feeds the text tower, seen chunk by chunk (a streamed table renders its
    captions per chunk; none is kept): a code per row, equal exactly where the texts are equal (for the
    duplicates per batch), and how often the texts of the rows used name the row's class (and, for world
    data, its factors). Every registered objective's texts are a function of the row alone (caption,
    label, row number), so they are computed once per row. Memory: 8 bytes a row and the distinct texts."""
    index: dict[str, int] = {}
    codes = np.empty(len(table), dtype=np.int64)
    counts: dict[str, list[int]] = {}
    empty = torch.empty(0, dtype=torch.uint8)
    for lo in range(0, len(table), TEXT_CHUNK):
        idx = np.arange(lo, min(lo + TEXT_CHUNK, len(table)), dtype=np.int64)
        batch = Batch(
            images=empty,
            texts=list(table.captions[lo : lo + len(idx)]),
            labels=torch.from_numpy(labels[idx]),
            index=torch.from_numpy(idx),
        )
        texts = objective.texts(batch, table.class_names)
        codes[idx] = [index.setdefault(t, len(index)) for t in texts]
        keep = np.flatnonzero(used[idx])
        chunk = m.mention_counts([texts[i] for i in keep.tolist()], _words(table, idx[keep], labels))
        for k, (hits, n) in chunk.items():
            total = counts.setdefault(k, [0, 0])
            total[0] += hits
            total[1] += n
    rates = {f"data/mention/{k}": h / n if n else float("nan") for k, (h, n) in counts.items()}
    return codes, rates


def _words(table: ImageTextTable, rows: np.ndarray, labels: np.ndarray) -> dict[str, list[str | None]]:
    """Each row's class name (and, for world data, the words of its factors), per column."""
    names = table.class_names
    y = labels[rows]
    columns: dict[str, list[str | None]] = {
        "class": [names[c] if 0 <= c < len(names) else None for c in y.tolist()]
    }
    facts = table.facts
    if facts is not None:
        for factor in ("background", "colour", "pattern", "size", "domain"):
            words = facts.words[factor]
            columns[factor] = [words[c] for c in facts.codes[factor][rows].tolist()]
    return columns


def _world_measures(table: ImageTextTable, rows: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Realised spurious correlation and domain mix of the rows used (world data)."""
    facts = table.facts
    assert facts is not None
    out: dict[str, float] = {}
    if facts.common_background is not None:
        s = m.spurious_measures(labels[rows], facts.codes["background"][rows], facts.common_background)
        out["data/p_common_background"] = s["p_common_background"]
        out["data/background_bayes_acc"] = s["background_bayes_acc"]
    mix = m.mix(facts.codes["domain"][rows], facts.names["domain"])
    out.update({f"data/domain/{name}": share for name, share in mix.items()})
    return out


def curve_measures(metrics_path: Path) -> dict[str, float]:
    """From metrics.jsonl: the logit scale's first, last and largest logged value (when the model has
    one), the mean loss of the first and last tenth of the logged steps, and the loss slope over the last
    fifth of training (per 1,000 steps)."""
    steps, losses, scales = [], [], []
    try:
        lines = metrics_path.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            steps.append(rec["step"])
            losses.append(float(rec["loss"]) if rec.get("loss") is not None else math.nan)
            if rec.get("logit_scale") is not None:
                scales.append(float(rec["logit_scale"]))
    out: dict[str, float] = {}
    if scales:
        out.update({"logit_scale/first": scales[0], "logit_scale/last": scales[-1]})
        out["logit_scale/max"] = max(scales)
    tenth = max(1, len(losses) // 10)
    out["loss/first"] = _nanmean(np.asarray(losses[:tenth], dtype=float))
    out["loss/last"] = _nanmean(np.asarray(losses[-tenth:], dtype=float))
    out["loss/slope_last_fifth"] = m.loss_slope(steps, losses, last=0.2)
    return out


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")
