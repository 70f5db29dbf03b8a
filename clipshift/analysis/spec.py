"""AnalysisSpec: an analysis a study asks for (the `analyses:` list of a study YAML).

It is a union of every registered kind's spec, keyed on `kind` (see `clipshift.analysis.registry`); a
field that the named kind does not have is an error that names the field and the kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from clipshift.analysis import registry
from clipshift.analysis.base import OWN, TASK_NAMES, AnalysisBase, TaskKind, task_kind
from clipshift.errors import UserError, format_validation_error

__all__ = ["OWN", "TASK_NAMES", "AnalysisBase", "AnalysisSpec", "TaskKind", "parse_analyses", "task_kind"]

# The one flat model of every kind's fields that clipshift used before kinds had their own specs. A study
# directory it wrote records all of them for every analysis; the kinds that did not use a field ignored it.
# (`task` is not among these: it came later, so older directories lack it.)
_FLAT_FIELDS = frozenset(
    {
        *("kind", "title", "metric", "where", "compare"),
        *("x", "y", "baseline", "transform", "common", "counter", "eval_set", "theory", "sweep", "seeds"),
    }
)


def _own_fields(data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate one analysis as its kind's spec; errors read as if there were one model (no kind tag in
    the location), and a field of another kind says so."""
    if isinstance(data, dict):
        known = registry.kinds()
        if "kind" not in data:
            raise _error("missing", "kind", data)
        kind = known.get(str(data["kind"]))
        if kind is None:
            raise _error("value_error", "kind", data["kind"], f"not an analysis kind ({', '.join(known)})")
        fields = kind.spec.model_fields
        if set(data) >= _FLAT_FIELDS:  # written by the flat model: drop what this kind never read
            data = {k: v for k, v in data.items() if k in fields or k not in _FLAT_FIELDS}
        for key, value in data.items():
            if key not in fields:
                own = ", ".join(f for f in fields if f != "kind")
                raise _error(
                    "value_error", key, value, f"not a field of a {kind.name!r} analysis (its fields: {own})"
                )
    try:
        return handler(data)
    except ValidationError as e:
        tags = set(registry.kinds())
        errors = []
        for err in e.errors():
            loc = err["loc"]
            line = {
                "type": err["type"],
                "loc": loc[1:] if loc and loc[0] in tags else loc,
                "input": err["input"],
            }
            if "ctx" in err:
                line["ctx"] = err["ctx"]
            errors.append(line)
        raise ValidationError.from_exception_data(e.title, errors) from None  # type: ignore[arg-type]


def _error(kind: str, field: str, value: Any, message: str = "") -> ValidationError:
    """A one-problem ValidationError at `field` of the analysis."""
    line: dict[str, Any] = {"type": kind, "loc": (field,), "input": value}
    if message:
        line["ctx"] = {"error": ValueError(message)}
    return ValidationError.from_exception_data("AnalysisSpec", [line])  # type: ignore[list-item]


def _union() -> Any:
    specs = tuple(k.spec for k in registry.kinds().values())
    one_of = specs[0] if len(specs) == 1 else Annotated[Union[specs], Field(discriminator="kind")]  # noqa: UP007
    return Annotated[one_of, WrapValidator(_own_fields)]


if TYPE_CHECKING:
    AnalysisSpec = AnalysisBase
else:
    AnalysisSpec = _union()

_ADAPTER: TypeAdapter[AnalysisBase] = TypeAdapter(AnalysisSpec)


def parse_analysis(data: Any) -> AnalysisBase:
    """One analysis mapping as its kind's spec (pydantic's ValidationError on a problem)."""
    return _ADAPTER.validate_python(data)


def parse_analyses(items: Sequence[Any] | None, source: str = "study spec") -> list[AnalysisBase]:
    """A study's `analyses:` list; the first problem is a one-line UserError (`analyses[2].x = …`)."""
    out = []
    for i, a in enumerate(items or []):
        try:
            out.append(parse_analysis(a))
        except ValidationError as e:
            raise UserError(format_validation_error(e, source, prefix=f"analyses[{i}]")) from None
    return out
