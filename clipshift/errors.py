"""User-facing errors: one clear line naming the problem, never a traceback."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A mistake in the user's input (file, field, value). The CLI prints it as one line, exit code 2."""


def format_validation_error(err: Any, source: str | None = None, prefix: str = "") -> str:
    """One line from a pydantic ValidationError: `source: field.path = value: message` (first error)."""
    first = err.errors()[0]
    loc = _format_loc(first.get("loc", ()), prefix)
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    where = f"{source}: " if source else ""
    if first.get("type") == "missing":
        return f"{where}{loc}: required field is missing"
    if first.get("type") == "extra_forbidden":
        return f"{where}{loc}: unknown field"
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" = {value!r}"
    more = len(err.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}{loc}{shown}: {msg}{tail}"


def _format_loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"
