"""Image features kept on disk and reused: an evaluation study whose grid evaluates one checkpoint under
several settings (templates, probes, group factors) computes each (model, dataset) pair's features once.

An entry is keyed by everything the features are a function of: the weights' content identity (given by
the caller, e.g. `models.digest`), the preprocessing (resolution, mean, std, memory format), the
numerics (batch size, torch threads) and the pixels themselves (a streamed digest of the uint8 images),
so another set, another sample size or a re-exported dataset is a miss, never a stale hit. Entries are
written under a temporary name and renamed: concurrent writers of one key write the same tensor.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipshift.evaluate.model import inference_tag

ROWS = 256  # images hashed at a time


@dataclass(frozen=True)
class FeatureCache:
    folder: Path
    model_key: str  # the weights' content identity

    def key(self, model: Any, images: Any, batch_size: int) -> str:
        h = hashlib.blake2b(digest_size=16)
        head = [
            self.model_key, model.kind, model.image_size, list(model.mean), list(model.std),
            model.channels_last, batch_size, torch.get_num_threads(), list(images.shape), str(images.dtype),
        ]  # fmt: skip
        if model.device.type != "cpu":  # other kernels, other features; the CPU's keys are unchanged
            head.append(str(model.device))
        rewrite = inference_tag(model)
        if rewrite is not None:  # other arithmetic (same function), other last bits
            head.append(rewrite)
        h.update(repr(head).encode())
        for lo in range(0, int(images.shape[0]), ROWS):
            chunk = images[lo : lo + ROWS]
            arr = chunk.numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
            h.update(np.ascontiguousarray(arr).data)
        return h.hexdigest()

    def load(self, key: str) -> torch.Tensor | None:
        path = self.folder / f"{key}.pt"
        if not path.is_file():
            return None
        try:
            t = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None  # a damaged entry is recomputed
        return t if isinstance(t, torch.Tensor) else None

    def save(self, key: str, features: torch.Tensor) -> None:
        path = self.folder / f"{key}.pt"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            torch.save(features, tmp)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full or read-only disk still evaluates; only the reuse is lost
