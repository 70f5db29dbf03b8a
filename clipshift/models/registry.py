"""Model factory by name: clipshift's tiny configs join open_clip's own registry."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from clipshift.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_MODEL = "clipshift-rn-tiny"
_registered = False


def register_configs() -> None:
    """Add clipshift's configs to open_clip once, so `open_clip.create_model(name)` knows them."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def list_models() -> list[str]:
    import open_clip

    register_configs()
    return list(open_clip.list_models())


def build_image_tower(
    name: str = DEFAULT_MODEL, image_size: int | None = None
) -> tuple[torch.nn.Module, int]:
    """The image tower of an open_clip architecture and its output width (no weights are fetched)."""
    import open_clip

    register_configs()
    if name not in open_clip.list_models():
        raise UserError(f"unknown model {name!r}; clipshift's tiny models: {', '.join(_ours())}")
    kwargs = {"force_image_size": image_size} if image_size else {}
    with quiet_open_clip():
        model = open_clip.create_model(name, pretrained=None, **kwargs)
    visual = model.visual
    width = int(open_clip.get_model_config(name)["embed_dim"])
    return visual, width


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """open_clip logs a root-level warning for every randomly initialised model; for clipshift's
    from-scratch training that is the normal case, so keep it off the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _ours() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
