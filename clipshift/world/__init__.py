"""The procedural image-caption world: every sample carries its ground-truth factors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clipshift.world.evalsets import (
        CORRUPTIONS,
        SetDef,
        eval_set_descriptions,
        parse_split,
        standard_eval_sets,
    )
    from clipshift.world.spec import WorldSpec
    from clipshift.world.world import World, WorldSplit

# Exported lazily, so torch-free parts (the shift registry, split names for help texts) import no torch.
_EXPORTS = {
    "CORRUPTIONS": "evalsets",
    "SetDef": "evalsets",
    "World": "world",
    "WorldSpec": "spec",
    "WorldSplit": "world",
    "eval_set_descriptions": "evalsets",
    "parse_split": "evalsets",
    "standard_eval_sets": "evalsets",
}
__all__ = [
    "CORRUPTIONS",
    "SetDef",
    "World",
    "WorldSpec",
    "WorldSplit",
    "eval_set_descriptions",
    "parse_split",
    "standard_eval_sets",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clipshift.world' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"clipshift.world.{_EXPORTS[name]}"), name)
