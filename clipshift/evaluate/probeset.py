"""What a linear probe / kNN learns from: frozen features of a training set (`ProbeSet`), from fresh
world samples, a given dataset, or a stratified half of the evaluated set itself."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clipshift.evaluate.datasets import EvalData, world_set
from clipshift.evaluate.model import EvalModel, image_features
from clipshift.evaluate.probe import LinearProbe, few_shot, linear_probe

PROBE_START = 1_000_000  # world probe-training samples: iid indices far from every evaluation set's


@dataclass
class ProbeSet:
    """Frozen features of the samples a linear probe / kNN learns from; `source` says which samples."""

    features: torch.Tensor
    labels: np.ndarray
    n_classes: int
    source: str
    probe: LinearProbe | None = None

    @classmethod
    def of(
        cls, features: torch.Tensor, labels: np.ndarray, n_classes: int, source: str, few_shot_k: int | None
    ) -> ProbeSet:
        if few_shot_k is not None:
            rows = few_shot(labels, few_shot_k)
            features, labels = features[torch.as_tensor(rows)], labels[rows]
            source = f"{source}, {few_shot_k} per class"
        return cls(features, labels, n_classes, source)

    def fitted(self) -> LinearProbe:
        """The linear probe, fitted once and shared by every set scored with this probe set."""
        if self.probe is None:
            self.probe = linear_probe(self.features, self.labels, self.n_classes)
        return self.probe


def probe_set(
    model: EvalModel,
    data: EvalData,
    batch_size: int = 512,
    few_shot_k: int | None = None,
    progress: bool = False,
) -> ProbeSet:
    feats = image_features(model, data.images, batch_size, progress, desc=f"probe features {data.name}")
    return ProbeSet.of(feats, data.labels, len(data.class_names), data.source, few_shot_k)


def world_probe_set(
    model: EvalModel,
    world: object,
    n: int,
    batch_size: int = 512,
    few_shot_k: int | None = None,
    progress: bool = False,
) -> ProbeSet:
    """`n` fresh iid samples of the world (indices from PROBE_START, apart from every evaluation set)."""
    data = world_set(world, "iid", n, start=PROBE_START, image_size=model.image_size)
    data.source = f"world:iid[{PROBE_START}:{PROBE_START + n}]"
    return probe_set(model, data, batch_size, few_shot_k, progress)


def split_rows(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): a stratified half of each class's labelled rows to learn a probe from,
    for sets that have no training split of their own; the rest (and unlabelled rows) are scored."""
    rng = np.random.default_rng([seed, 0x5B])
    train: list[np.ndarray] = []
    for c in np.unique(labels[labels >= 0]):
        rows = rng.permutation(np.flatnonzero(labels == c))
        train.append(rows[: len(rows) // 2])
    tr = np.sort(np.concatenate(train)) if train else np.zeros(0, dtype=np.int64)
    return tr, np.setdiff1d(np.arange(len(labels)), tr)


def split_for_probe(data: EvalData, seed: int = 0) -> tuple[EvalData, EvalData]:
    """(train half, test half) of a labelled set (see `split_rows`)."""
    tr, te = split_rows(data.labels, seed)
    return data.take(tr, "probe-train"), data.take(te, data.name)


def half_probe(
    data: EvalData, features: torch.Tensor, name: str, few_shot_k: int | None
) -> tuple[ProbeSet, EvalData, torch.Tensor]:
    """(probe set of a stratified half, the other half, its features): a probe for a set evaluated
    without a training set of its own."""
    tr, te = split_rows(data.labels)
    half = f"{name}: stratified half, {len(tr)} of {len(data)} images (the other half is scored)"
    probe = ProbeSet.of(
        features[torch.as_tensor(tr)], data.labels[tr], len(data.class_names), half, few_shot_k
    )
    return probe, data.take(te, name), features[torch.as_tensor(te)]
