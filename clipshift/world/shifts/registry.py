"""The registry of shifts by name: domains (the style an object is drawn in) and corruptions (a
degradation of the finished image at a severity).

Each entry owns everything that names or draws it: its render function, its caption word, its severity
table, whether the object's colour survives it, its evaluation sets and one line for help texts. Spec
validation, split parsing, captions, the preview's columns, the CLI's help and calibration all read
this registry, so a new shift is one entry in `domains.py` or `corruptions.py` and nothing else.

Torch-free on import (help texts and spec validation read it); render functions import torch inside.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from clipshift.world.render import Renderer

STANDARD_SEVERITY = 3  # the one severity per corruption in the standard sets and the preview
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # no "-", so corrupt-<kind>-<severity> stays parseable
# named sets that are not a shift (see evalsets.py); a shift may not take one of these names
RESERVED = ("train", "iid", "common", "counter", "pose")


@dataclass(frozen=True)
class Scene:
    """The layers of n photo renders that a domain style draws from."""

    photo: Tensor  # (n, 3, H, W) the photo-like render in about [0, 1] (not yet clamped)
    mask: Tensor  # (n, 1, H, W) object coverage in [0, 1]
    sdf: Tensor  # (n, H, W) signed distance to the outline in image units (< 0 inside)
    background: Tensor  # (n,) habitat index
    colour: Tensor  # (n, 3, 1, 1) fill colour, RGB in [0, 1]
    pattern: Tensor  # (n, H, W) fill pattern in [0, 1]


# style(renderer, scene) -> (n, 3, H, W); the renderer holds the world's grids, pixel size and banks
StyleFn = Callable[["Renderer", Scene], "Tensor"]
# corrupt(renderer, images in [0, 1], level from the severity table, (n, 4) per-sample uniforms)
CorruptFn = Callable[["Renderer", "Tensor", float, "Tensor"], "Tensor"]


@dataclass(frozen=True)
class DomainDef:
    """A domain: a key of `WorldSpec.domains` (the training mixture) and an evaluation set of its own."""

    name: str
    word: str  # what a `full` caption says: "..., in a {word}"
    description: str  # one line for help texts
    render: StyleFn | None  # None only for the reference domain (the photo every style starts from)
    keeps_colour: bool = True  # False: captions and tags do not name the object's colour

    @property
    def eval_sets(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True)
class CorruptionDef:
    """A corruption: evaluation sets `corrupt-<name>-<severity>`, severity 1..len(severities)."""

    name: str
    description: str  # one line for help texts
    severities: tuple[float, ...]  # the level passed to `apply` at severity 1, 2, ...
    apply: CorruptFn
    keeps_colour: bool = True

    def set_name(self, severity: int) -> str:
        return f"corrupt-{self.name}-{severity}"

    @property
    def standard_set(self) -> str:
        return self.set_name(min(STANDARD_SEVERITY, len(self.severities)))

    @property
    def eval_sets(self) -> tuple[str, ...]:
        return tuple(self.set_name(s) for s in range(1, len(self.severities) + 1))


_DOMAINS: dict[str, DomainDef] = {}
_CORRUPTIONS: dict[str, CorruptionDef] = {}


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r}: lower-case letters, digits and '_' only")
    if name in _DOMAINS or name in _CORRUPTIONS or name in RESERVED:
        raise ValueError(f"{kind} name {name!r} is already taken")


def register_domain(d: DomainDef) -> DomainDef:
    """Add a domain; its code in `Factors.domain` is its position in registration order."""
    _check_name("domain", d.name)
    if (d.render is None) != (not _DOMAINS):
        # the renderer draws the reference first and styles from it: exactly one entry, the first
        raise ValueError(f"domain {d.name!r}: only the first domain (the reference) has render=None")
    _DOMAINS[d.name] = d
    return d


def register_corruption(c: CorruptionDef) -> CorruptionDef:
    """Add a corruption; its severity table sets how many severities its sets have (at most 9)."""
    _check_name("corruption", c.name)
    if not 1 <= len(c.severities) <= 9:
        raise ValueError(f"corruption {c.name!r}: 1 to 9 severities, got {len(c.severities)}")
    _CORRUPTIONS[c.name] = c
    return c


def domains() -> list[DomainDef]:
    """Every domain in registration order (index = domain code); the first is the reference."""
    return list(_DOMAINS.values())


def domain_names() -> list[str]:
    return list(_DOMAINS)


def reference_domain() -> str:
    """The domain every style is drawn from (`photo`), and that of the `common`/`counter` sets."""
    return next(iter(_DOMAINS))


def shifted_domains() -> list[str]:
    """The domains other than the reference: each is a domain shift."""
    return list(_DOMAINS)[1:]


def domain(name: str) -> DomainDef:
    return _DOMAINS[name]


def corruptions() -> list[CorruptionDef]:
    return list(_CORRUPTIONS.values())


def corruption_names() -> list[str]:
    return list(_CORRUPTIONS)


def corruption(name: str) -> CorruptionDef:
    return _CORRUPTIONS[name]


def find_corruption(name: str) -> CorruptionDef | None:
    return _CORRUPTIONS.get(name)


def colour_survives(domain_name: str, corruption_name: str = "none") -> bool:
    """Whether an image of this domain under this corruption still shows the object's colour."""
    if not _DOMAINS[domain_name].keeps_colour:
        return False
    return corruption_name == "none" or _CORRUPTIONS[corruption_name].keeps_colour


def choices(names: list[str]) -> str:
    """`'a', 'b' or 'c'`: pydantic's wording for a choice, kept for the registry's own checks."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
