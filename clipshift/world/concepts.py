"""World-level tables drawn once from the spec: names, core shapes, attribute distributions, habitats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipshift.world.names import COLOURS, PATTERNS, SIZES, generate_names
from clipshift.world.rng import rng_for
from clipshift.world.spec import WorldSpec


@dataclass(frozen=True)
class Concepts:
    """Per-concept tables; rows 0..K-1 are the evaluation classes, K.. the open-world concepts."""

    names: list[str]
    synonyms: list[str]
    shape: np.ndarray  # (K+O, J, 2) Fourier cos/sin coefficients of the silhouette radius
    elongation: np.ndarray  # (K+O,) aspect ratio of the silhouette
    colour_probs: np.ndarray  # (K+O, n_colours)
    pattern_probs: np.ndarray  # (K+O, n_patterns)
    size_probs: np.ndarray  # (K+O, n_sizes)
    common_background: np.ndarray  # (K+O,) index of each concept's usual habitat
    train_probs: np.ndarray  # (K+O,) class frequencies of the training split
    n_classes: int

    @property
    def n_total(self) -> int:
        return len(self.names)


def build_concepts(spec: WorldSpec) -> Concepts:
    k = spec.concepts.n_classes
    o = spec.open_world.n_concepts
    total = k + o
    rng = rng_for(spec.seed, "concepts")
    if spec.concepts.names is not None:
        names = list(spec.concepts.names) + generate_names(o, rng, set(spec.concepts.names))
    else:
        names = generate_names(total, rng)
    synonyms = generate_names(total, rng_for(spec.seed, "synonyms"), set(names))

    shape, elong = _shapes(total, spec.concepts.shape_complexity, rng_for(spec.seed, "shapes"))
    c = spec.details
    colour_probs = rng_for(spec.seed, "colours").dirichlet([c.colour_concentration] * len(COLOURS), total)
    pattern_probs = rng_for(spec.seed, "patterns").dirichlet([c.pattern_concentration] * len(PATTERNS), total)
    size_probs = rng_for(spec.seed, "sizes").dirichlet([c.size_concentration] * len(SIZES), total)

    b = spec.backgrounds.n_backgrounds
    habitat_order = rng_for(spec.seed, "habitats").permutation(b)
    common = habitat_order[np.arange(total) % b]

    return Concepts(
        names=names,
        synonyms=synonyms,
        shape=shape,
        elongation=elong,
        colour_probs=colour_probs,
        pattern_probs=pattern_probs,
        size_probs=size_probs,
        common_background=common,
        train_probs=train_frequencies(spec),
        n_classes=k,
    )


def train_frequencies(spec: WorldSpec) -> np.ndarray:
    """Training class probabilities (K+O,): the profile over the K classes, open world appended."""
    k = spec.concepts.n_classes
    f = spec.frequency
    if f.profile == "zipf":
        ranks = np.arange(1, k + 1, dtype=np.float64)
        p = ranks ** (-f.alpha)
        if f.shuffle_ranks:
            p = p[np.argsort(rng_for(spec.seed, "ranks").permutation(k))]
    else:
        p = np.ones(k)
    if f.trim_tail:
        p[np.argsort(p, kind="stable")[: f.trim_tail]] = 0.0  # shots handled by the sampler
    p = p / p.sum() * (1.0 - spec.open_world.fraction)
    o = spec.open_world.n_concepts
    if o:
        p = np.concatenate([p, np.full(o, spec.open_world.fraction / o)])
    elif spec.open_world.fraction:
        p = p / p.sum()
    return p


def trimmed_classes(spec: WorldSpec) -> np.ndarray:
    """Indices of the classes cut by trim-tail, rarest first (same rule as train_frequencies)."""
    f = spec.frequency
    if not f.trim_tail:
        return np.zeros(0, dtype=np.int64)
    untrimmed = spec.model_copy(update={"frequency": f.model_copy(update={"trim_tail": 0})})
    return np.argsort(train_frequencies(untrimmed)[: spec.concepts.n_classes], kind="stable")[: f.trim_tail]


def _shapes(n: int, harmonics: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct silhouettes: random Fourier radius profiles, kept only if far from earlier ones.

    Low harmonics get larger amplitudes so silhouettes stay blob-like and recognisable at 32 px;
    rejection sampling keeps every pair of classes at least `min_dist` apart in coefficient space.
    """
    decay = 1.0 / np.arange(1, harmonics + 1) ** 0.6
    shapes: list[np.ndarray] = []
    elong: list[float] = []
    min_dist = 0.32
    tries = 0
    while len(shapes) < n:
        amp = rng.uniform(0.0, 0.32, harmonics) * decay
        phase = rng.uniform(0, 2 * np.pi, harmonics)
        coef = np.stack([amp * np.cos(phase), amp * np.sin(phase)], axis=1)
        e = float(rng.uniform(0.7, 1.3))
        vec = np.concatenate([coef.ravel(), [e - 1.0]])
        tries += 1
        if tries > 200 * n:  # very many classes: accept what the space allows
            min_dist *= 0.9
            tries = 0
        if all(
            np.linalg.norm(vec - np.concatenate([s.ravel(), [q - 1.0]])) >= min_dist
            for s, q in zip(shapes, elong)
        ):
            shapes.append(coef)
            elong.append(e)
    return np.stack(shapes), np.asarray(elong)
