"""Checkpoints: atomic writes; `final.pt` loads with `open_clip.create_model(name, pretrained=path)`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary name, then rename: an interrupted save never leaves a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    ck: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return ck


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel (so state-dict keys carry no `module.` prefix)."""
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, torch.nn.Module) else model
