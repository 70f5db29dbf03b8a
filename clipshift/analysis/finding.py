"""What an analysis produces: a `Finding` (conclusions with their support, details, notes, tables,
figures and machine-readable numbers), which the report renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clipshift.analysis.checks import Verdict
from clipshift.analysis.paper import PaperVerdict
from clipshift.analysis.wording import NO_SUPPORT


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
    verdicts: list[Verdict] = field(default_factory=list)  # per conclusion: status, reason, detectable
    details: list[str] = field(default_factory=list)  # further computed statements
    notes: list[str] = field(default_factory=list)  # caveats about the data or the method
    tables: list[Table] = field(default_factory=list)
    figures: list[Embedded] = field(default_factory=list)
    numbers: list[dict[str, Any]] = field(default_factory=list)  # machine-readable estimates
    paper: list[PaperVerdict] = field(default_factory=list)  # the paper's claim against each comparison

    def conclude(self, sentence: str, supported: bool, verdict: Verdict | None = None) -> None:
        """Add a conclusion. Without a `verdict`, a supported one is `supported`; an unsupported one that
        names a problem with the data ("The data do not support a conclusion: no run has …") is
        `withheld` for that reason, any other `not_supported` (comparisons give their own verdicts, with
        the detectable difference: `Context.conclude`)."""
        if verdict is None:
            head = f"{NO_SUPPORT}: "
            if supported:
                verdict = Verdict("supported")
            elif sentence.startswith(head):
                verdict = Verdict("withheld", sentence[len(head) :].rstrip("."))
            else:
                verdict = Verdict("not_supported")
        self.conclusions.append(sentence)
        self.supported.append(supported)
        self.verdicts.append(verdict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "conclusions": [
                {"text": c, **v.to_dict()} for c, v in zip(self.conclusions, self.verdicts, strict=True)
            ],
            "supported": self.supported,
            "details": self.details,
            "notes": self.notes,
            "numbers": self.numbers,
            "paper": [p.to_dict() for p in self.paper],
            "tables": [t.to_dict() for t in self.tables],
        }
