"""The paper's claim beside a study's own conclusion: did the comparison reproduce what the paper found?

An analysis may carry `paper:` (a source, the claim in words, and which level of `compare` the paper found
higher on the analysed quantity). Each comparison between exactly those two levels is then judged from its
own verdict, never from a separate test:

- `reproduced`: the conclusion is supported and points the paper's way;
- `contradicted`: supported, but the other way;
- `not_reproduced`: no difference was detected (the sentence carries what the design could have detected);
- `not_tested`: the conclusion was withheld (a check failed: the factor did not act, an arm had not learned
  or converged), so the study says nothing about the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # checks imports the analysis specs, which import this module
    from clipshift.analysis.checks import Verdict

PaperStatus = Literal["reproduced", "contradicted", "not_reproduced", "not_tested"]


class PaperClaim(BaseModel):
    """What a paper found about the compared levels (`paper:` of an analysis)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="the paper and where in it, e.g. 'Wang et al. 2024, Fig. 1'")
    claim: str = Field(description="the finding in words, as the paper states it")
    higher: Any = Field(description="the level of `compare` the paper found higher on the analysed quantity")
    lower: Any = Field(description="the level it found lower")

    @model_validator(mode="after")
    def _two_levels(self) -> PaperClaim:
        if str(self.higher) == str(self.lower):
            raise ValueError(f"higher and lower are the same level ({self.higher!r}): a claim compares two")
        return self


@dataclass(frozen=True)
class PaperVerdict:
    source: str
    claim: str
    status: PaperStatus
    text: str  # one sentence: the paper's claim, what this study found and why that status

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "claim": self.claim, "status": self.status, "text": self.text}


def judge(
    claim: PaperClaim,
    level: Any,
    ref: Any,
    diff: float,
    verdict: Verdict,
    units: str = "points",
    on: str | None = None,
    scope: str | None = None,
) -> PaperVerdict | None:
    """The claim's status from one comparison (`diff` = level − ref, judged by `verdict`, its detectable
    difference in `units`; `on`: the evaluation set it was made on, when an analysis judges one claim on
    several; `scope`: what the comparison left out, e.g. the combinations at the floor); None when the
    comparison is not between the claim's two levels."""
    pair = {_key(level), _key(ref)}
    if pair != {_key(claim.higher), _key(claim.lower)} or len(pair) != 2:
        return None
    expected = 1.0 if _key(level) == _key(claim.higher) else -1.0
    status: PaperStatus
    if verdict.status == "withheld":
        status, why = "not_tested", f"the comparison was withheld ({verdict.reason})"
    elif verdict.status == "supported":
        same = math.copysign(1.0, diff) == expected
        status = "reproduced" if same else "contradicted"
        why = "the interval excludes 0 " + ("in the paper's direction" if same else "the other way")
    else:
        status = "not_reproduced"
        why = "no difference was detected"
        if verdict.detectable is not None and math.isfinite(verdict.detectable):
            unit = f" {units}" if units else ""
            why += f" (this design could have detected {verdict.detectable:.3g}{unit} at 80 % power)"
    if scope and status != "not_tested":
        why += f" ({scope})"
    words = status.replace("_", " ")
    where = f"on {on}, " if on else ""
    return PaperVerdict(
        claim.source, claim.claim, status, f"{claim.source}: {claim.claim} — {where}{words}: {why}."
    )


def _key(value: Any) -> str:
    return str(value)
