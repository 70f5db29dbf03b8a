"""World-level tables drawn once from the spec: names, core shapes, attribute distributions, habitats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipshift.world import hierarchy
from clipshift.world.names import generate_names, vocabulary_words
from clipshift.world.packing import pack
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
    superclass_of: np.ndarray  # (K+O,) each concept's superclass; -1 without a hierarchy
    superclass_names: list[str]  # (S,) empty without a hierarchy

    @property
    def n_total(self) -> int:
        return len(self.names)


def build_concepts(spec: WorldSpec) -> Concepts:
    k = spec.concepts.n_classes
    o = spec.open_world.n_concepts
    total = k + o
    d = spec.details
    # worlds with larger vocabularies or a hierarchy keep every detail word out of their names (older
    # worlds keep their names: they excluded only the original colours, which they still do)
    vocab = (
        vocabulary_words(d.n_colours, d.n_patterns, d.n_sizes, spec.backgrounds.n_backgrounds)
        if spec.uses_scale_vocabulary()
        else set()
    )
    rng = rng_for(spec.seed, "concepts")
    if spec.concepts.names is not None:
        names = list(spec.concepts.names) + generate_names(o, rng, set(spec.concepts.names) | vocab)
    else:
        names = generate_names(total, rng, vocab)
    synonyms = generate_names(total, rng_for(spec.seed, "synonyms"), set(names) | vocab)
    family = hierarchy.superclass_assignment(spec)
    h = spec.hierarchy
    harmonics = spec.concepts.shape_complexity
    b = spec.backgrounds.n_backgrounds

    if not h.superclasses:
        shape, elong = _shapes(total, harmonics, rng_for(spec.seed, "shapes"))
        colour_probs = rng_for(spec.seed, "colours").dirichlet([d.colour_concentration] * d.n_colours, total)
        pattern_probs = rng_for(spec.seed, "patterns").dirichlet(
            [d.pattern_concentration] * d.n_patterns, total
        )
        size_probs = rng_for(spec.seed, "sizes").dirichlet([d.size_concentration] * d.n_sizes, total)
        habitat_order = rng_for(spec.seed, "habitats").permutation(b)
        common = habitat_order[np.arange(total) % b]
        superclass_names: list[str] = []
    else:
        protos, proto_elong = _shapes(h.superclasses, harmonics, rng_for(spec.seed, "superclass-shapes"))
        shape, elong = hierarchy.sibling_shapes(spec, family, protos, proto_elong)
        colour_probs = hierarchy.family_laws(spec, family, "colours", d.n_colours, d.colour_concentration)
        pattern_probs = hierarchy.family_laws(spec, family, "patterns", d.n_patterns, d.pattern_concentration)
        size_probs = hierarchy.family_laws(spec, family, "sizes", d.n_sizes, d.size_concentration)
        common = hierarchy.family_habitats(spec, family)
        taken = set(names) | set(synonyms) | vocab
        superclass_names = (
            list(h.names)
            if h.names is not None
            else generate_names(h.superclasses, rng_for(spec.seed, "superclass-names"), taken)
        )

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
        superclass_of=family,
        superclass_names=superclass_names,
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
    rejection sampling keeps every pair of classes at least 0.32 apart in (coefficients, elongation - 1),
    the distance shrinking by 0.9 after every 200 n + 1 candidates (very many classes: what the space
    allows). `packing.pack` makes exactly the decisions of the original candidate-by-candidate loop on
    the same draws (each candidate: J amplitudes, J phases, one elongation), so shapes are unchanged.
    """
    decay = 1.0 / np.arange(1, harmonics + 1) ** 0.6
    dim = 2 * harmonics + 1

    def draw(count: int) -> np.ndarray:
        # one block of uniforms is the same stream as the loop's per-candidate uniform() calls, and
        # low + (high - low) * u is the arithmetic numpy's uniform() does
        u = rng.random((count, dim))
        amp = 0.32 * u[:, :harmonics] * decay
        phase = (2 * np.pi) * np.ascontiguousarray(u[:, harmonics : 2 * harmonics])
        vec = np.empty((count, dim))
        vec[:, 0 : 2 * harmonics : 2] = amp * np.cos(phase)
        vec[:, 1 : 2 * harmonics : 2] = amp * np.sin(phase)
        vec[:, -1] = (0.7 + (1.3 - 0.7) * u[:, 2 * harmonics]) - 1.0
        return vec

    vec = pack(n, draw, 0.32, 200 * n)
    # e - 1 + 1 == e exactly for e in [0.7, 1.3] (Sterbenz: the subtraction was exact)
    return vec[:, :-1].reshape(n, harmonics, 2), vec[:, -1] + 1.0
