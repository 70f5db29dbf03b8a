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


def model_only(setup: Setup, name: str) -> dict[str, Any]:
    """final.pt's content (and a snapshot's): {'state_dict', 'name', 'kind'}."""
    return {"state_dict": unwrap(setup.model).state_dict(), "name": name, "kind": setup.kind}


def snapshot_path(out_dir: Path, fraction: float) -> Path:
    """checkpoints/at-0.50.pt: the model after that fraction of training (TrainConfig.snapshots)."""
    from clipshift.train.config import snapshot_label

    return Path(out_dir) / "checkpoints" / f"at-{snapshot_label(fraction)}.pt"


def snapshot_step(fraction: float, total_steps: int) -> int:
    """The optimiser step after which the snapshot at `fraction` of training is taken."""
    return min(total_steps, max(1, round(fraction * total_steps)))


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
