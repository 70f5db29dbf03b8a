"""Load and save typed configs (pydantic models) as YAML or JSON with one-line errors."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from clipshift.errors import UserError, format_validation_error

M = TypeVar("M", bound=BaseModel)


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file holding a mapping; a missing file or bad syntax is a UserError."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(model: type[M], data: Any, source: str | None = None, prefix: str = "") -> M:
    """Validate `data` into `model`; the first problem becomes a one-line UserError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, source, prefix)) from None


def load(model: type[M], path: str | Path, prefix: str = "") -> M:
    return validate(model, read_mapping(path), str(path), prefix)


def dump(obj: BaseModel, path: str | Path) -> None:
    """Write YAML (or JSON for a .json path); the result loads back to an equal object."""
    p = Path(path)
    data = obj.model_dump(mode="json")
    text = json.dumps(data, indent=2) if p.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    p.write_text(text)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a','b','c'], value parsed as YAML scalar/list)."""
    if "=" not in text:
        raise UserError(f"override {text!r}: expected dotted.path=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def set_path(tree: dict[str, Any], parts: Sequence[str], value: Any, where: str = "") -> None:
    """Set `value` at a dotted path of a nested mapping, in place: the one override rule of `--set`
    (every command), study profiles and study axes.

    Missing (or null) mappings on the way are created. A mapping value merges into the mapping already
    there, key by key and recursively (`data={n: 10}` keeps the other data fields), unless its `kind`
    differs: another data source replaces the old one instead of inheriting its fields. Any other value
    replaces what was there. `where` names the override in the error for a path through a non-mapping."""
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            raise UserError(f"{where or '.'.join(parts)}: {part} is not a mapping")
        node = nxt
    key = parts[-1]
    old = node.get(key)
    if (
        isinstance(value, dict)
        and isinstance(old, dict)
        and value.get("kind", old.get("kind")) == old.get("kind")
    ):
        for k, v in value.items():
            set_path(old, [k], v, where)
    else:
        node[key] = copy.deepcopy(value)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`data` (a copy) with each `dotted.path=value` override set by `set_path` (`--set world.rho=0.9`)."""
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_path(out, path, value, f"override {text!r}")
    return out
