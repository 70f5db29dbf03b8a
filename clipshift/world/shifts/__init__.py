"""Shifts by name: every domain and corruption of the world, from one registry (see registry.py).

Importing this package registers the built-in entries (`domains.py`, `corruptions.py`); it imports no
torch or numpy, so help texts and spec validation can read it.
"""

from clipshift.world.shifts import corruptions as _corruptions  # noqa: F401  (registers the entries)
from clipshift.world.shifts import domains as _domains  # noqa: F401
from clipshift.world.shifts.registry import (
    STANDARD_SEVERITY,
    CorruptionDef,
    DomainDef,
    Scene,
    choices,
    colour_survives,
    corruption,
    corruption_names,
    corruptions,
    domain,
    domain_names,
    domains,
    find_corruption,
    reference_domain,
    register_corruption,
    register_domain,
    shifted_domains,
)

__all__ = [
    "STANDARD_SEVERITY",
    "CorruptionDef",
    "DomainDef",
    "Scene",
    "choices",
    "colour_survives",
    "corruption",
    "corruption_names",
    "corruptions",
    "domain",
    "domain_names",
    "domains",
    "find_corruption",
    "reference_domain",
    "register_corruption",
    "register_domain",
    "shifted_domains",
]
