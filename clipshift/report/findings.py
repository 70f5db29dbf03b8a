"""The report's findings: each analysis of the study's spec, run on the study's data by its registered
kind (`clipshift.analysis.registry`)."""

from __future__ import annotations

from clipshift.analysis.data import StudyData
from clipshift.analysis.finding import Finding
from clipshift.analysis.registry import run_analysis
from clipshift.analysis.spec import parse_analyses

__all__ = ["Finding", "findings"]


def findings(data: StudyData, ci: float = 0.95, n_boot: int = 1000) -> list[Finding]:
    """Every analysis of the study's spec, in order (a spec error is one UserError before any runs)."""
    return [run_analysis(a, data, ci, n_boot) for a in parse_analyses(data.spec.get("analyses"))]
