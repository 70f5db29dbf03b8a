"""Pronounceable concept names and the world's vocabularies (colours, patterns, sizes, habitats).

The original vocabularies come first; larger worlds (more colours, patterns, sizes or habitats in the
spec) append to them, so a world that uses only the originals renders and captions as it always did.
"""

from __future__ import annotations

import functools

import numpy as np

from clipshift.world import shifts
from clipshift.world.rng import rng_for

_ONSETS = [
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "bl",
    "dr",
    "gr",
    "pl",
    "sk",
    "tr",
]
_VOWELS = ["a", "e", "i", "o", "u", "oo", "ee", "ai"]
_CODAS = ["", "b", "d", "g", "k", "m", "n", "p", "rp", "sh", "t", "x", "z", "ck", "nd"]

# (name, synonym, rgb) — names are the words captions use.
COLOURS: list[tuple[str, str, tuple[float, float, float]]] = [
    ("red", "crimson", (0.85, 0.15, 0.12)),
    ("orange", "amber", (0.95, 0.55, 0.10)),
    ("yellow", "golden", (0.95, 0.88, 0.20)),
    ("green", "emerald", (0.20, 0.70, 0.25)),
    ("blue", "azure", (0.15, 0.35, 0.90)),
    ("purple", "violet", (0.55, 0.20, 0.75)),
    ("pink", "rosy", (0.95, 0.50, 0.70)),
    ("brown", "chestnut", (0.50, 0.30, 0.15)),
    ("white", "pale", (0.95, 0.95, 0.95)),
    ("black", "dark", (0.08, 0.08, 0.10)),
]

# pattern name -> caption adjective, synonym
PATTERNS: dict[str, tuple[str, str]] = {
    "solid": ("plain", "uniform"),
    "stripes": ("striped", "banded"),
    "dots": ("spotted", "dotted"),
    "checks": ("checked", "chequered"),
}

SIZES: list[tuple[str, str, float]] = [
    ("small", "little", 0.72),
    ("medium", "mid-sized", 0.86),
    ("large", "big", 1.0),
]

# (name, synonym, colour a, colour b, texture kind, texture frequency)
# Texture kinds: 0 gradient, 1 waves, 2 blotches, 3 grain, 4 stripes, 5 cells
BACKGROUNDS: list[tuple[str, str, tuple[float, float, float], tuple[float, float, float], int, float]] = [
    ("snow", "ice", (0.92, 0.94, 0.98), (0.78, 0.82, 0.90), 3, 6.0),
    ("grass", "meadow", (0.35, 0.62, 0.22), (0.20, 0.45, 0.12), 4, 9.0),
    ("sand", "dunes", (0.90, 0.80, 0.55), (0.78, 0.66, 0.42), 1, 5.0),
    ("water", "sea", (0.20, 0.45, 0.75), (0.12, 0.32, 0.60), 1, 8.0),
    ("rock", "stone", (0.55, 0.54, 0.52), (0.38, 0.37, 0.36), 2, 4.0),
    ("forest", "woods", (0.12, 0.35, 0.18), (0.25, 0.45, 0.20), 2, 7.0),
    ("sky", "clouds", (0.60, 0.78, 0.95), (0.85, 0.90, 0.97), 0, 1.0),
    ("mud", "swamp", (0.40, 0.30, 0.20), (0.30, 0.22, 0.14), 5, 5.0),
    ("lava", "magma", (0.70, 0.20, 0.08), (0.95, 0.55, 0.10), 5, 6.0),
    ("night", "darkness", (0.08, 0.10, 0.25), (0.20, 0.22, 0.40), 3, 10.0),
    ("moss", "lichen", (0.45, 0.55, 0.25), (0.55, 0.60, 0.35), 2, 9.0),
    ("brick", "wall", (0.65, 0.30, 0.22), (0.80, 0.75, 0.70), 5, 4.0),
    ("field", "farmland", (0.80, 0.75, 0.35), (0.55, 0.60, 0.25), 4, 5.0),
    ("cave", "cavern", (0.22, 0.20, 0.20), (0.35, 0.30, 0.28), 0, 1.0),
    ("coral", "reef", (0.95, 0.55, 0.50), (0.30, 0.60, 0.70), 2, 6.0),
    ("desert", "wasteland", (0.85, 0.60, 0.35), (0.75, 0.50, 0.28), 1, 3.0),
]

# Appended for larger worlds (`details.n_colours` > 10); such worlds keep every vocabulary word out of
# their generated names (`vocabulary_words`), so no class is called "lime".
EXTRA_COLOURS: list[tuple[str, str, tuple[float, float, float]]] = [
    ("grey", "ashen", (0.55, 0.55, 0.55)),
    ("teal", "bluegreen", (0.08, 0.52, 0.52)),
    ("olive", "khaki", (0.50, 0.52, 0.16)),
    ("maroon", "wine", (0.45, 0.06, 0.14)),
    ("navy", "indigo", (0.06, 0.10, 0.42)),
    ("cyan", "aqua", (0.30, 0.85, 0.90)),
    ("magenta", "fuchsia", (0.85, 0.15, 0.65)),
    ("lime", "chartreuse", (0.65, 0.92, 0.20)),
    ("beige", "cream", (0.90, 0.84, 0.68)),
    ("turquoise", "cyanish", (0.25, 0.75, 0.65)),
    ("lavender", "lilac", (0.72, 0.62, 0.90)),
    ("ochre", "mustard", (0.78, 0.58, 0.12)),
    ("salmon", "peachy", (0.98, 0.60, 0.48)),
    ("silver", "metallic", (0.78, 0.80, 0.84)),
]
ALL_COLOURS = COLOURS + EXTRA_COLOURS

# Appended for `details.n_patterns` > 4 (textures drawn in `render._extra_patterns`).
EXTRA_PATTERNS: dict[str, tuple[str, str]] = {
    "zigzags": ("zigzagged", "chevroned"),
    "rings": ("ringed", "hooped"),
    "marbling": ("marbled", "veined"),
    "grid": ("netted", "meshed"),
}
ALL_PATTERNS = {**PATTERNS, **EXTRA_PATTERNS}

# Appended for `details.n_sizes` > 3 (after the originals, so size codes 0..2 keep their meaning).
EXTRA_SIZES: list[tuple[str, str, float]] = [("tiny", "minute", 0.6), ("huge", "giant", 1.1)]
ALL_SIZES = SIZES + EXTRA_SIZES

# Habitats beyond the 16 named ones (`backgrounds.n_backgrounds` > 16): two-word names, so none can
# collide with a generated one-word class name, from words that are no colour.
_HABITAT_ADJECTIVES = [
    ("misty", "foggy"), ("frozen", "icy"), ("rocky", "stony"), ("sunny", "bright"),
    ("windy", "gusty"), ("dusty", "dry"), ("stormy", "wild"), ("muddy", "boggy"),
    ("sandy", "gritty"), ("grassy", "lush"), ("leafy", "green-leafed"), ("rainy", "wet"),
    ("snowy", "wintry"), ("mossy", "damp"), ("hilly", "rolling"), ("shady", "dim"),
]  # fmt: skip
_HABITAT_NOUNS = [
    ("marsh", "fen"), ("canyon", "gorge"), ("valley", "vale"), ("plain", "flatland"),
    ("shore", "coast"), ("glacier", "icefield"), ("jungle", "rainforest"), ("tundra", "barrens"),
    ("savanna", "grassland"), ("lagoon", "inlet"), ("plateau", "tableland"), ("ridge", "crest"),
    ("grove", "orchard"), ("cliff", "bluff"), ("delta", "estuary"), ("heath", "moor"),
]  # fmt: skip
MAX_HABITATS = len(BACKGROUNDS) + len(_HABITAT_ADJECTIVES) * len(_HABITAT_NOUNS)
_TEXTURE_FREQ = {0: (1.0, 1.0), 1: (3.0, 9.0), 2: (4.0, 9.0), 3: (6.0, 10.0), 4: (5.0, 9.0), 5: (4.0, 6.0)}

Habitat = tuple[str, str, tuple[float, float, float], tuple[float, float, float], int, float]


def habitat_table(n: int) -> list[Habitat]:
    """The first `n` habitats: the 16 named ones, then generated ones (the same for every world: a
    vocabulary, not a draw of the world seed), each with two colours, a texture kind and frequency."""
    return list(BACKGROUNDS[:n]) if n <= len(BACKGROUNDS) else list(_all_habitats()[:n])


@functools.cache
def _all_habitats() -> tuple[Habitat, ...]:
    rng = rng_for("habitat-vocabulary")
    order = rng.permutation(len(_HABITAT_ADJECTIVES) * len(_HABITAT_NOUNS))
    out = list(BACKGROUNDS)
    for code in order:
        (adj, adj_syn), (noun, noun_syn) = _HABITAT_ADJECTIVES[code // 16], _HABITAT_NOUNS[code % 16]
        a = rng.uniform(0.08, 0.92, 3)
        b = np.clip(a + rng.normal(0.0, 0.18, 3), 0.02, 0.98)
        kind = int(rng.integers(6))
        lo, hi = _TEXTURE_FREQ[kind]
        col_a = (float(a[0]), float(a[1]), float(a[2]))
        col_b = (float(b[0]), float(b[1]), float(b[2]))
        out.append((f"{adj} {noun}", f"{adj_syn} {noun_syn}", col_a, col_b, kind, float(rng.uniform(lo, hi))))
    return tuple(out)


def vocabulary_words(n_colours: int, n_patterns: int, n_sizes: int, n_backgrounds: int) -> set[str]:
    """Every word a caption may use for a detail or habitat of a world of these sizes."""
    words = {w for c in ALL_COLOURS[:n_colours] for w in c[:2]}
    words |= {w for p in list(ALL_PATTERNS.values())[:n_patterns] for w in p}
    words |= {w for s in ALL_SIZES[:n_sizes] for w in s[:2]}
    words |= {w for h in habitat_table(n_backgrounds) for name in h[:2] for w in name.split()}
    return words


# domain name -> caption word (kept for importers; each domain's entry in world/shifts owns its word)
DOMAINS: dict[str, str] = {d.name: d.word for d in shifts.domains()}

GENERIC_NOUNS = ["thing", "creature", "object"]


def generate_names(n: int, rng: np.random.Generator, taken: set[str] | None = None) -> list[str]:
    """`n` distinct pronounceable names (one or two syllables), deterministic in `rng`."""
    taken = set(taken or ()) | {c[0] for c in COLOURS} | set(GENERIC_NOUNS)
    out: list[str] = []
    while len(out) < n:
        syllables = 1 if rng.random() < 0.5 else 2
        word = ""
        for s in range(syllables):
            word += _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            if s == syllables - 1 or rng.random() < 0.3:
                word += _CODAS[rng.integers(len(_CODAS))]
        if 3 <= len(word) <= 9 and word not in taken:
            taken.add(word)
            out.append(word)
    return out
