"""Files written whole or not at all: a reader (another process, a resumed run) never sees half a file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, fsync: bool = True) -> None:
    """JSON via a temporary file in the same folder and a rename. NaN becomes null, numpy scalars and
    arrays plain values; `fsync` (default) makes the content durable before the rename, so a marker a
    crash leaves behind is never empty."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(_finite(obj), indent=indent, default=_plain))
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _plain(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy scalars and arrays, torch tensors
        return _finite(o.tolist())
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(o: Any) -> Any:
    """NaN (not valid JSON) as None, through dicts and lists."""
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o
