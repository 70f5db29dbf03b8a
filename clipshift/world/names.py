"""Pronounceable concept names and the world's fixed vocabularies (colours, patterns, backgrounds)."""

from __future__ import annotations

import numpy as np

from clipshift.world import shifts

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
