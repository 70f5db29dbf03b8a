"""Superclasses: families of fine-grained sibling classes (like dog breeds) for worlds at ImageNet scale.

A family has a prototype silhouette, typical habitats and detail laws; its classes are siblings whose
shapes lie close to the prototype, whose common habitats are the family's and whose colour, pattern
and size laws are drawn around the family's. Classes are grouped contiguously (class k belongs to
family k * S // K); open-world concepts join the families in turn, so they come from the same
hierarchy. `scaled_spec` gives a world whose vocabularies grow with the class count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clipshift.errors import UserError
from clipshift.world.packing import pack
from clipshift.world.rng import rng_for
from clipshift.world.spec import WorldSpec

SIBLING_RADIUS = 1.5  # siblings lie within this many sibling_spreads of their prototype


def superclass_assignment(spec: WorldSpec) -> np.ndarray:
    """(K+O,) family of every concept; -1 everywhere in a world without a hierarchy."""
    k, o, s = spec.concepts.n_classes, spec.open_world.n_concepts, spec.hierarchy.superclasses
    if not s:
        return np.full(k + o, -1, dtype=np.int64)
    return np.concatenate([np.arange(k) * s // k, np.arange(o) % s]).astype(np.int64)


def sibling_shapes(
    spec: WorldSpec, family: np.ndarray, prototypes: np.ndarray, proto_elong: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each concept's silhouette (T, J, 2) and elongation (T,): its family's prototype plus an offset.

    Offsets are packed per family (uniform in a ball of radius 1.5 x sibling_spread, at least
    sibling_spread apart), so siblings are distinct but closer to each other than to other families.
    """
    h = spec.hierarchy
    n_total = len(family)
    harmonics = prototypes.shape[1]
    dim = 2 * harmonics + 1
    base = np.concatenate([prototypes.reshape(len(prototypes), -1), proto_elong[:, None] - 1.0], axis=1)
    vec = np.empty((n_total, dim))
    radius = SIBLING_RADIUS * h.sibling_spread
    for f in range(len(prototypes)):
        members = np.flatnonzero(family == f)
        rng = rng_for(spec.seed, "siblings", f)

        def draw(count: int, rng: np.random.Generator = rng) -> np.ndarray:
            d = rng.standard_normal((count, dim))
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            return d * (radius * rng.random((count, 1)) ** (1.0 / dim))

        vec[members] = base[f] + pack(len(members), draw, h.sibling_spread, 200 * len(members))
    elong = np.clip(vec[:, -1] + 1.0, 0.6, 1.4)
    return vec[:, :-1].reshape(n_total, harmonics, 2), elong


def family_habitats(spec: WorldSpec, family: np.ndarray) -> np.ndarray:
    """(T,) common habitat of each concept: one of its family's typical habitats, in turn.

    Families take consecutive runs of a seeded habitat order, so they spread over all B habitats and
    neighbouring families share some (as dogs and cats both live indoors)."""
    b = spec.backgrounds.n_backgrounds
    per = spec.hierarchy.habitats_per_superclass
    order = rng_for(spec.seed, "superclass-habitats").permutation(b)
    out = np.empty(len(family), dtype=np.int64)
    for f in range(spec.hierarchy.superclasses):
        members = np.flatnonzero(family == f)
        typical = order[(f * per + np.arange(per)) % b]
        out[members] = typical[np.arange(len(members)) % per]
    return out


def family_laws(spec: WorldSpec, family: np.ndarray, name: str, n: int, concentration: float) -> np.ndarray:
    """(T, n) a detail law per concept, drawn around its family's law (Dirichlet with the family law times
    `hierarchy.detail_inheritance` as parameters)."""
    s = spec.hierarchy.superclasses
    fam = rng_for(spec.seed, f"superclass-{name}").dirichlet([concentration] * n, s)
    alpha = spec.hierarchy.detail_inheritance * fam[family] + 1e-3  # floor: no zero Dirichlet parameter
    g = rng_for(spec.seed, f"sibling-{name}").standard_gamma(alpha)  # Dirichlet draws, all rows at once
    return g / g.sum(axis=1, keepdims=True)


def shape_vectors(shape: np.ndarray, elongation: np.ndarray) -> np.ndarray:
    """(T, 2J+1) the silhouette coordinates the shape sampler spaces apart: coefficients and elongation."""
    return np.concatenate([shape.reshape(len(shape), -1), elongation[:, None] - 1.0], axis=1)


def confusable(shape: np.ndarray, elongation: np.ndarray, family: np.ndarray, n: int) -> np.ndarray:
    """(K, n) each class's `n` most confusable classes: its siblings first, then the others, each group
    nearest silhouette first. Arguments cover the K evaluation classes only."""
    k = len(family)
    if not 1 <= n <= k - 1:
        raise UserError(f"confusable classes: n must be between 1 and {k - 1} (K - 1), got {n}")
    v = shape_vectors(shape, elongation)
    sq = (v * v).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * v @ v.T, 0.0))
    stranger = (family[:, None] != family[None, :]) | (family[:, None] < 0)
    key = d + 1e3 * stranger  # distances are below 10: strangers sort after every sibling
    np.fill_diagonal(key, np.inf)
    return np.argsort(key, axis=1, kind="stable")[:, :n]


def scale_overrides(n_classes: int) -> dict[str, Any]:
    """Spec fields for a `n_classes`-class world whose hierarchy and vocabularies grow with K.

    Up to 16 classes: nothing (today's flat world with its vocabularies). Beyond: K/10 superclasses (at
    most 50: families of 10 at 100 classes, of 20 at 1,000), K/4 habitats (10 to 128), and more colours,
    patterns and sizes."""
    if n_classes < 2 or n_classes > 1000:
        raise UserError(f"--scale must be between 2 and 1000 classes, got {n_classes}")
    out: dict[str, Any] = {"concepts": {"n_classes": n_classes}}
    if n_classes <= 16:
        return out
    out["hierarchy"] = {"superclasses": min(50, max(2, n_classes // 10))}
    out["backgrounds"] = {"n_backgrounds": min(128, max(10, n_classes // 4))}
    out["details"] = {
        "n_colours": min(24, 10 + n_classes // 40),
        "n_patterns": min(8, 4 + n_classes // 200),
        "n_sizes": 3 if n_classes < 500 else 5,
    }
    return out
