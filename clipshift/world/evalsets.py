"""Named splits of a world: the training mixture and the evaluation sets that shift one factor.

The sets of domains and corruptions come from their registry (`clipshift.world.shifts`); the sets
below shift the sample, the background or the pose. Torch-free, so help texts can list the sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clipshift.errors import UserError
from clipshift.world import shifts


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


# the named sets that are not a domain or a corruption (their names are reserved in the registry)
_BASE_SETS = {
    "iid": "fresh samples of the training distribution, class-balanced (the ImageNet-V2 analogue)",
    "common": "photos on each class's common habitat",
    "counter": "photos on a habitat other than the class's common one (the CounterAnimal analogue)",
    "pose": "unusual rotations and scales (the ObjectNet analogue)",
}
_CORRUPT = re.compile(r"^corrupt-(\w+)-(\d)$")


def _corrupt_pattern() -> str:
    top = max((len(c.severities) for c in shifts.corruptions()), default=5)
    return f"corrupt-<{'|'.join(shifts.corruption_names())}>-<1..{top}>"


def eval_set_descriptions() -> dict[str, str]:
    """Every named evaluation set with a one-line description, in the order help texts list them;
    corruptions appear once each as the pattern `corrupt-<kind>-<1..N>`."""
    out = {name: _BASE_SETS[name] for name in ("iid", "common", "counter")}
    out.update({d.name: d.description for d in shifts.domains()})
    out["pose"] = _BASE_SETS["pose"]
    for c in shifts.corruptions():
        out[f"corrupt-{c.name}-<1..{len(c.severities)}>"] = c.description
    return out


def split_names() -> str:
    """Every valid split name, one line: `train, iid, ..., pose, corrupt-<noise|...>-<1..5>`."""
    return ", ".join(
        ["train", "iid", "common", "counter", *shifts.domain_names(), "pose", _corrupt_pattern()]
    )


def standard_eval_sets() -> list[str]:
    """The named evaluation sets (one severity per corruption shown; any other is valid)."""
    return [
        "iid",
        "common",
        "counter",
        *shifts.shifted_domains(),
        *(c.standard_set for c in shifts.corruptions()),
        "pose",
    ]


def parse_split(name: str) -> SetDef:
    """Parse a split name: train, iid, common, counter, a domain, corrupt-<kind>-<severity>, pose."""
    if name == "train":
        return SetDef(name, classes="train")
    if name == "iid":
        return SetDef(name)
    if name in ("common", "counter"):
        return SetDef(name, domain=shifts.reference_domain(), background=name)
    if name == "pose":
        return SetDef(name, pose="shift")
    if name in shifts.domain_names():
        return SetDef(name, domain=name)
    m = _CORRUPT.match(name)
    if m:
        kind, sev = m.group(1), int(m.group(2))
        c = shifts.find_corruption(kind)
        if c is None:
            known = ", ".join(shifts.corruption_names())
            raise UserError(f"split {name!r}: unknown corruption {kind!r}; choose from {known}")
        if not 1 <= sev <= len(c.severities):
            raise UserError(f"split {name!r}: severity must be 1–{len(c.severities)}, got {sev}")
        return SetDef(name, corruption=kind, severity=sev)
    raise UserError(f"unknown split {name!r}; valid splits: {split_names()}")


# kept for importers; the registry decides (`shifts.corruption_names()`, `shifts.domain_names()`)
CORRUPTIONS = tuple(shifts.corruption_names())
DOMAIN_SETS = tuple(shifts.domain_names())
