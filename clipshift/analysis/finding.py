"""What an analysis produces: a `Finding` (conclusions with their support, details, notes, tables,
figures and machine-readable numbers), which the report renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str | None = None
    collapsed: bool = False  # rendered inside a closed <details>
    numeric_from: int = 0  # columns from this index on are right-aligned numbers

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}


@dataclass(frozen=True)
class Embedded:
    """A figure ready for the page: an SVG as a data URI (vector, and no namespace URLs in the HTML)."""

    caption: str
    data_uri: str
    alt: str


@dataclass
class Finding:
    kind: str
    title: str
    conclusions: list[str] = field(default_factory=list)  # the headline sentences, shown in bold
    supported: list[bool] = field(default_factory=list)  # per conclusion: did the CI exclude 0?
    details: list[str] = field(default_factory=list)  # further computed statements
    notes: list[str] = field(default_factory=list)  # caveats about the data or the method
    tables: list[Table] = field(default_factory=list)
    figures: list[Embedded] = field(default_factory=list)
    numbers: list[dict[str, Any]] = field(default_factory=list)  # machine-readable estimates

    def conclude(self, sentence: str, supported: bool) -> None:
        self.conclusions.append(sentence)
        self.supported.append(supported)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "conclusions": self.conclusions,
            "supported": self.supported,
            "details": self.details,
            "notes": self.notes,
            "numbers": self.numbers,
            "tables": [t.to_dict() for t in self.tables],
        }
