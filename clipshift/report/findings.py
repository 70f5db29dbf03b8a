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
    out = []
    for a in parse_analyses(data.spec.get("analyses")):
        f = run_analysis(a, data, ci, n_boot)
        judged = {(p.source, p.claim) for p in f.paper}
        for claim in a.paper:  # a claim the study never put to the test is said so
            if (claim.source, claim.claim) not in judged:
                f.notes.append(
                    f"The paper's claim ({claim.source}: {claim.claim}) was not judged: no comparison of "
                    f"{a.compare or 'a factor'} = {claim.higher} with {claim.lower} was made."
                )
        out.append(f)
    return out
