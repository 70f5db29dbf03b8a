"""What a run reads: its config without the settings that cannot reach it.

A study's run id hashes this (so a setting that cannot reach a run makes no new run: a supervised run at
two caption levels is one run), and a resumed run is compared on it. What is left out follows from the
registrations, so a new objective or data source gets it by declaring what it reads:

- `objective`: only the run's own objective's options (`Objective.Options`); another objective's
  settings never reach it (ObjectiveConfig drops them when it validates; this also covers old configs);
- the source's caption-only fields (`DataSource.CAPTION_FIELDS`, e.g. `data.world.captions`) when the
  objective reads no captions (`Objective.reads_captions`): they change no image, label or row;
- the model settings a model kind never reads (`UNREAD_BY_MODEL`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from clipshift.data.config import SOURCES
from clipshift.objectives import OBJECTIVES

# A classifier (model_kind "classifier") is built with the default tokenizer whatever `model.tokenizer`
# says (models.factory._image_only). `model.context_length` is not listed: it sizes the classifier's
# unused text tower, whose initialisation draws from the seeded RNG before the head's, so it changes the
# head's initial weights (measured: another context length, another head).
# A classifier is evaluated by its own head, so the zero-shot prompts (`eval.templates`) never reach it.
UNREAD_BY_MODEL: dict[str, tuple[str, ...]] = {
    "clip": (),
    "classifier": ("model.tokenizer", "eval.templates"),
}


def unread_fields(config: Mapping[str, Any]) -> list[str]:
    """Dotted paths of `config` (a run config as JSON) that cannot reach the run."""
    objective = config.get("objective")
    name = objective.get("name") if isinstance(objective, Mapping) else None
    if name not in OBJECTIVES:
        return []
    cls = OBJECTIVES[name]
    assert isinstance(objective, Mapping)
    out = [f"objective.{k}" for k in objective if k != "name" and k not in cls.Options.model_fields]
    out += UNREAD_BY_MODEL[cls.model_kind]
    data = config.get("data")
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if not cls.reads_captions and kind in SOURCES:
        out += [f"data.{f}" for f in SOURCES[kind].CAPTION_FIELDS]
    return out


def run_reads(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` (a run config as JSON) without the fields `unread_fields` names."""
    out = copy.deepcopy(dict(config))
    for path in unread_fields(config):
        drop(out, path)
    return out


def drop(tree: dict[str, Any], path: str) -> None:
    """Remove a dotted path from a nested mapping, in place (nothing if it is not there)."""
    *parents, last = path.split(".")
    node: Any = tree
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)
