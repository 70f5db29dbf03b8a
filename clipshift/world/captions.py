"""The caption grammar: a sample's factors rendered as text at a descriptiveness level."""

from __future__ import annotations

from typing import Any

import numpy as np

from clipshift.world import shifts
from clipshift.world.concepts import Concepts
from clipshift.world.names import ALL_COLOURS, ALL_PATTERNS, ALL_SIZES, GENERIC_NOUNS, habitat_table
from clipshift.world.rng import uniform
from clipshift.world.sampling import Factors, S
from clipshift.world.spec import CaptionSpec

TEMPLATES = ["a photo of a {}.", "a picture of a {}.", "an image of the {}.", "a {}."]
_PATTERN_NAMES = list(ALL_PATTERNS)


def world_templates() -> list[str]:
    """Zero-shot templates in the style of the world's grammar (a prompt unlike the training captions
    can wreck zero-shot accuracy at small scale)."""
    return list(TEMPLATES)


def captions(f: Factors, concepts: Concepts, spec: CaptionSpec, key: int) -> list[str]:
    """One caption per sample; deterministic in (key, index) like every other factor."""
    n = len(f)
    u = uniform(key, f.index, S.CAPTION, 13)  # column 12: the superclass mention (0..11 as ever)
    annotated = set(spec.annotated())
    habitats = habitat_table(int(f.background.max()) + 1) if n else []
    family = concepts.superclass_of
    kind_of = spec.superclass_prob > 0 and len(concepts.superclass_names) > 0
    # per domain code: the caption word and whether the colour can be seen (e.g. not in a sketch)
    words_of = [d.word for d in shifts.domains()]
    colour_seen = [shifts.colour_survives(d, f.corruption) for d in shifts.domain_names()]
    out: list[str] = []
    for i in range(n):
        ui = u[i]
        syn = ui[6:12] < spec.synonym_prob
        label = int(f.label[i])
        if ui[0] < spec.missing_name_prob:
            noun = GENERIC_NOUNS[int(ui[1] * len(GENERIC_NOUNS)) % len(GENERIC_NOUNS)]
        else:
            noun = concepts.synonyms[label] if syn[0] else concepts.names[label]
        if kind_of and ui[12] < spec.superclass_prob:
            noun += f", a kind of {concepts.superclass_names[family[label]]}"
        if spec.level == "name":
            out.append(noun)
            continue
        if spec.level == "template":
            out.append(TEMPLATES[int(ui[2] * len(TEMPLATES)) % len(TEMPLATES)].format(noun))
            continue
        mention = ui[1:6] < spec.detail_prob  # size, pattern, colour, background, domain
        words: list[str] = []
        if "size" in annotated and mention[0]:
            s = ALL_SIZES[int(f.size[i])]
            words.append(s[1] if syn[1] else s[0])
        if "pattern" in annotated and mention[1]:
            p = ALL_PATTERNS[_PATTERN_NAMES[int(f.pattern[i])]]
            words.append(p[1] if syn[2] else p[0])
        if "colour" in annotated and mention[2] and colour_seen[int(f.domain[i])]:
            c = ALL_COLOURS[int(f.colour[i])]
            words.append(c[1] if syn[3] else c[0])
        words.append(noun)
        text = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
        if "background" in annotated and mention[3]:
            if "," in noun:  # "a red zorp, a kind of blorp, on snow": the aside closed before the habitat
                text += ","
            b = habitats[int(f.background[i])]
            text += f" on {b[1] if syn[4] else b[0]}"
        if "domain" in annotated and mention[4]:
            text += f", in a {words_of[int(f.domain[i])]}"
        out.append(text)
    return out


def class_prompts(concepts: Concepts, templates: list[str] | None = None) -> list[list[str]]:
    """Zero-shot prompts per evaluation class (not the open-world concepts)."""
    ts = templates or world_templates()
    return [[t.format(name) for t in ts] for name in concepts.names[: concepts.n_classes]]


def describe_factors(f: Any, i: int, concepts: Concepts) -> dict[str, object]:
    """The ground truth of sample i as plain JSON-able values (`f`: Factors or GroundTruth)."""
    label = int(f.label[i])
    return {
        "index": int(f.index[i]),
        "split": f.split,
        "class": label,
        "class_name": concepts.names[label],
        "open_world": label >= concepts.n_classes,
        **(
            {"superclass": concepts.superclass_names[concepts.superclass_of[label]]}
            if concepts.superclass_names
            else {}
        ),
        "background": habitat_table(int(f.background[i]) + 1)[-1][0],
        "common": bool(f.common[i]),
        "domain": shifts.domains()[int(f.domain[i])].name,
        "corruption": f.corruption,
        "severity": f.severity,
        "colour": ALL_COLOURS[int(f.colour[i])][0],
        "pattern": _PATTERN_NAMES[int(f.pattern[i])],
        "size": ALL_SIZES[int(f.size[i])][0],
        "rotation_deg": round(float(np.rad2deg(f.rotation[i])), 2),
        "scale": round(float(f.scale[i]), 4),
    }
