"""Named splits of a world: the training mixture and the evaluation sets that shift one factor."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clipshift.errors import UserError

CORRUPTIONS = ("noise", "blur", "contrast", "occlusion")
DOMAIN_SETS = ("photo", "sketch", "rendition", "painting")


@dataclass(frozen=True)
class SetDef:
    """How a named split draws its factors."""

    name: str
    classes: str = "balanced"  # "train" (frequency profile + open world) or "balanced" (eval label space)
    domain: str | None = None  # None: the training mixture
    background: str = "train"  # "train" (rho), "common", "counter"
    corruption: str | None = None
    severity: int = 0
    pose: str = "train"  # "train" or "shift"


_CORRUPT = re.compile(r"^corrupt-(\w+)-(\d)$")


def standard_eval_sets() -> list[str]:
    """The named evaluation sets (one severity per corruption shown; any 1–5 is valid)."""
    return [
        "iid",
        "common",
        "counter",
        "sketch",
        "rendition",
        "painting",
        *(f"corrupt-{c}-3" for c in CORRUPTIONS),
        "pose",
    ]


def parse_split(name: str) -> SetDef:
    """Parse a split name: train, iid, common, counter, a domain, corrupt-<kind>-<1..5>, pose."""
    if name == "train":
        return SetDef(name, classes="train")
    if name == "iid":
        return SetDef(name)
    if name in ("common", "counter"):
        return SetDef(name, domain="photo", background=name)
    if name in DOMAIN_SETS:
        return SetDef(name, domain=name)
    if name == "pose":
        return SetDef(name, pose="shift")
    m = _CORRUPT.match(name)
    if m:
        kind, sev = m.group(1), int(m.group(2))
        if kind not in CORRUPTIONS:
            raise UserError(
                f"split {name!r}: unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}"
            )
        if not 1 <= sev <= 5:
            raise UserError(f"split {name!r}: severity must be 1–5, got {sev}")
        return SetDef(name, corruption=kind, severity=sev)
    valid = "train, iid, common, counter, photo, sketch, rendition, painting, pose, corrupt-<kind>-<1..5>"
    raise UserError(f"unknown split {name!r}; valid splits: {valid}")
