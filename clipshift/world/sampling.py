"""Per-sample factors (the ground truth) for a named split, as arrays over sample indices.

Evaluation sets share one base draw ("eval" key): sample i of `sketch`, `counter` or
`corrupt-blur-3` is sample i of `iid` with only the named factor changed, so differences between
sets measure that factor alone (paired design). The training split has its own key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipshift.world import shifts
from clipshift.world.concepts import Concepts, train_frequencies, trimmed_classes
from clipshift.world.evalsets import SetDef, parse_split
from clipshift.world.names import ALL_SIZES
from clipshift.world.rng import categorical, key_of, normal, uniform
from clipshift.world.spec import WorldSpec

DOMAIN_NAMES = shifts.domain_names()  # domain code -> name (kept for importers; the registry decides)
_WEYL = 0.6180339887498949  # golden-ratio conjugate: low-discrepancy, prefix-stable class quotas


class S:
    """Stream ids: one per independent random choice, so adding a factor never reshuffles others."""

    CLASS, BG, BG_OTHER, DOMAIN, COLOUR, PATTERN, SIZE = 1, 2, 3, 4, 5, 6, 7
    ROT, SCALE, POS, DEFORM, TEXTURE, BG_TEXTURE, LIGHT = 8, 9, 11, 13, 15, 17, 19
    CORRUPT, POSE, CAPTION, NOISE_TILE = 21, 23, 25, 27


@dataclass
class Factors:
    """Ground truth of a batch of samples; every array has length N."""

    index: np.ndarray
    label: np.ndarray
    background: np.ndarray
    common: np.ndarray
    domain: np.ndarray
    colour: np.ndarray
    pattern: np.ndarray
    size: np.ndarray
    rotation: np.ndarray  # radians
    scale: np.ndarray
    position: np.ndarray  # (N, 2) centre offset in [-1, 1] image coordinates
    deform: np.ndarray  # (N, J, 2) instance deformation of the silhouette coefficients
    texture: np.ndarray  # (N, 1) fill-pattern variant (uniform)
    bg_texture: np.ndarray  # (N, 4) habitat-texture variant (uniform), 2 spare, brightness jitter
    light: np.ndarray  # (N, 2) lighting direction
    corrupt_params: np.ndarray  # (N, 4) per-sample corruption randomness (occluder box, noise tile)
    corruption: str = "none"
    severity: int = 0
    split: str = ""
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)


def split_key(spec: WorldSpec, sdef: SetDef) -> int:
    return key_of(spec.seed, "train" if sdef.classes == "train" else "eval")


def sample_factors(spec: WorldSpec, concepts: Concepts, sdef: SetDef, index: np.ndarray) -> Factors:
    idx = np.asarray(index, dtype=np.int64)
    n = len(idx)
    key = split_key(spec, sdef)
    label = _labels(spec, concepts.n_classes, concepts.train_probs, sdef, idx, key)

    # background: with prob rho the class's common habitat, else uniform over all B
    b = spec.backgrounds.n_backgrounds
    common_bg = concepts.common_background[label]
    u_bg = uniform(key, idx, S.BG, 2)
    if sdef.background == "common":
        bg = common_bg.copy()
    elif sdef.background == "counter":
        other = np.minimum((u_bg[:, 1] * (b - 1)).astype(np.int64), b - 2)
        bg = np.where(other >= common_bg, other + 1, other)
    else:
        rho = spec.backgrounds.rho
        uniform_bg = np.minimum((u_bg[:, 1] * b).astype(np.int64), b - 1)
        bg = np.where(u_bg[:, 0] < rho, common_bg, uniform_bg)

    names = shifts.domain_names()
    if sdef.domain is not None:
        domain = np.full(n, names.index(sdef.domain), dtype=np.int64)
    else:
        w = np.array([spec.domains.get(d, 0.0) for d in names])
        domain = categorical(uniform(key, idx, S.DOMAIN)[:, 0], w / w.sum())

    colour = categorical(uniform(key, idx, S.COLOUR)[:, 0], concepts.colour_probs[label])
    pattern = categorical(uniform(key, idx, S.PATTERN)[:, 0], concepts.pattern_probs[label])
    size = categorical(uniform(key, idx, S.SIZE)[:, 0], concepts.size_probs[label])
    size_factor = np.array([s[2] for s in ALL_SIZES])[size]

    p = spec.pose
    if sdef.pose == "shift":
        u = uniform(key, idx, S.POSE, 2)
        lo, hi = np.deg2rad(p.shift_rotation_deg[0]), np.deg2rad(p.shift_rotation_deg[1])
        rotation = lo + (hi - lo) * u[:, 0]
        scale = size_factor * np.where(u[:, 1] < 0.5, p.shift_scales[0], p.shift_scales[1])
    else:
        rotation = np.deg2rad(p.rotation_deg) * (2 * uniform(key, idx, S.ROT)[:, 0] - 1)
        scale = size_factor * (1 + p.scale_jitter * (2 * uniform(key, idx, S.SCALE)[:, 0] - 1))
    position = p.position_jitter * 2 * (2 * uniform(key, idx, S.POS, 2) - 1)

    harmonics = concepts.shape.shape[1]
    deform = spec.concepts.core_variation * 0.12 * normal(key, idx, S.DEFORM, 2 * harmonics)
    deform = deform.reshape(n, harmonics, 2)

    texture = uniform(key, idx, S.TEXTURE, 1)  # which variant of the fill-pattern bank
    g = uniform(key, idx, S.BG_TEXTURE, 4)
    bg_texture = np.stack([g[:, 0], g[:, 1], g[:, 2], 0.2 * (g[:, 3] - 0.5)], 1)
    la = 2 * np.pi * uniform(key, idx, S.LIGHT)[:, 0]
    light = np.stack([np.cos(la), np.sin(la)], 1)
    corrupt_params = uniform(key, idx, S.CORRUPT, 4)

    return Factors(
        index=idx,
        label=label,
        background=bg.astype(np.int64),
        common=(bg == common_bg),
        domain=domain.astype(np.int64),
        colour=colour.astype(np.int64),
        pattern=pattern.astype(np.int64),
        size=size.astype(np.int64),
        rotation=rotation,
        scale=scale,
        position=position,
        deform=deform,
        texture=texture,
        bg_texture=bg_texture,
        light=light,
        corrupt_params=corrupt_params,
        corruption=sdef.corruption or "none",
        severity=sdef.severity,
        split=sdef.name,
    )


def split_labels(spec: WorldSpec, split: str | SetDef, index: np.ndarray) -> np.ndarray:
    """The class of each sample `index` of a split, as `sample_factors` draws it, without its other
    factors or the world's shapes: how a plan knows a run's class frequencies before rendering, and how
    a streamed split knows its labels."""
    sdef = parse_split(split) if isinstance(split, str) else split
    idx = np.asarray(index, dtype=np.int64)
    return _labels(spec, spec.concepts.n_classes, train_frequencies(spec), sdef, idx, split_key(spec, sdef))


def _labels(
    spec: WorldSpec, k: int, train_probs: np.ndarray, sdef: SetDef, idx: np.ndarray, key: int
) -> np.ndarray:
    if sdef.classes != "train":
        return idx % k  # evaluation sets are class-balanced over the K evaluation classes
    # Training: trimmed one-shot classes take the first indices; the rest follow a Weyl sequence
    # through the frequency CDF, so every prefix of the split has near-exact class quotas (data-scale
    # studies get nested subsets) and the class of sample i never depends on the split's size.
    shots = trimmed_classes(spec) if spec.frequency.trim_shots else np.zeros(0, dtype=np.int64)
    m = len(shots)
    offset = uniform(key, np.zeros(1, dtype=np.int64), S.CLASS)[0, 0]
    u = np.mod((idx - m) * _WEYL + offset, 1.0)
    label = categorical(u, train_probs)
    if m:
        label = np.where(idx < m, shots[np.minimum(idx, m - 1)], label)
    return label.astype(np.int64)
