"""Load and save typed configs (pydantic models) as YAML or JSON with one-line errors."""

from __future__ import annotations

import json
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


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted paths in a nested mapping (a copy); used by `--set world.rho=0.9`."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {text!r}: {part} is not a mapping")
        node[path[-1]] = value
    return out
