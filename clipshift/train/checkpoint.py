"""Checkpoints: atomic writes; the resumable `latest.pt`; `final.pt` loads with
`open_clip.create_model(name, pretrained=path)`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from clipshift.train.setup import Setup


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary name, then rename: an interrupted save never leaves a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    ck: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return ck


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel (so state-dict keys carry no `module.` prefix)."""
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, torch.nn.Module) else model


def save_resumable(path: Path, setup: Setup, step: int, threads: list[int]) -> None:
    """latest.pt: everything a resumed run needs to continue bit-identically from `step`."""
    atomic_save(
        {
            "state_dict": unwrap(setup.model).state_dict(),
            "optimizer": setup.optimizer.state_dict(),
            "scheduler": setup.scheduler.state_dict(),
            "scaler": setup.scaler.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "threads": threads,
        },
        path,
    )


def restore(path: Path, setup: Setup) -> tuple[int, list[int]]:
    """Load a resumable checkpoint into the pieces; (its step, the thread counts it was trained with)."""
    ck = load_checkpoint(path)
    unwrap(setup.model).load_state_dict(ck["state_dict"])
    setup.optimizer.load_state_dict(ck["optimizer"])
    setup.scheduler.load_state_dict(ck["scheduler"])
    setup.scaler.load_state_dict(ck["scaler"])
    torch.set_rng_state(ck["torch_rng"])
    return int(ck["step"]), [int(t) for t in ck.get("threads", [])]
