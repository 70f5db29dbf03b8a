"""The world at ImageNet scale: the vectorised shape sampler, superclasses, larger vocabularies, the
K-class preset, and specs that stay as they were for worlds that use none of it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

from clipshift import configio
from clipshift.errors import UserError
from clipshift.world import World, WorldSpec
from clipshift.world.concepts import _shapes
from clipshift.world.hierarchy import scale_overrides, shape_vectors
from clipshift.world.names import ALL_COLOURS, BACKGROUNDS, MAX_HABITATS, habitat_table
from clipshift.world.rng import rng_for


def _reference_shapes(n: int, harmonics: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The original candidate-by-candidate rejection loop (before vectorisation), kept as the oracle."""
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
        if tries > 200 * n:
            min_dist *= 0.9
            tries = 0
        if all(
            np.linalg.norm(vec - np.concatenate([s.ravel(), [q - 1.0]])) >= min_dist
            for s, q in zip(shapes, elong)
        ):
            shapes.append(coef)
            elong.append(e)
    return np.stack(shapes), np.asarray(elong)


@pytest.mark.parametrize(
    ("n", "harmonics", "seed"),
    [(2, 4, 0), (5, 4, 0), (6, 4, 7), (10, 4, 0), (13, 1, 3), (30, 2, 1), (40, 8, 2), (100, 4, 0)],
)
def test_vectorised_shapes_equal_the_original_loop(n: int, harmonics: int, seed: int) -> None:
    # (100, 4, 0) crosses a threshold shrink (more than 200 n + 1 candidates)
    want = _reference_shapes(n, harmonics, rng_for(seed, "shapes"))
    got = _shapes(n, harmonics, rng_for(seed, "shapes"))
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_flat_thousand_class_shapes_unchanged() -> None:
    # digest of the original loop's output for 1,000 classes, seed 0 (98 s of CPU on the old code)
    s, e = _shapes(1000, 4, rng_for(0, "shapes"))
    assert hashlib.sha256(s.tobytes() + e.tobytes()).hexdigest()[:16] == "5b94607e5627d057"


@pytest.fixture(scope="module")
def big() -> World:
    return World(WorldSpec.model_validate({**scale_overrides(1000), "open_world": {"n_concepts": 200}}))


def test_thousand_class_hierarchy(big: World) -> None:
    c = big.concepts
    assert len(big.class_names) == 1000 and len(big.superclass_names) == 50
    every = c.names + c.synonyms + big.superclass_names
    assert len(set(every)) == len(every)  # classes, open-world concepts, synonyms, superclasses: distinct
    assert all(3 <= len(n) <= 9 and n.isalpha() for n in every)
    words = {w for h in habitat_table(128) for name in h[:2] for w in name.split()}
    words |= {w for col in ALL_COLOURS for w in col[:2]}
    assert not words & set(every)  # no class is called after a colour or a habitat word
    fam = c.superclass_of
    assert np.array_equal(np.bincount(fam[:1000]), np.full(50, 20))  # contiguous families of 20
    assert set(fam[1000:]) == set(range(50))  # open-world concepts come from the same hierarchy
    # siblings are closer to each other than to other families' classes
    v = shape_vectors(c.shape, c.elongation)
    d = np.linalg.norm(v[:, None] - v[None], axis=-1)
    same = fam[:, None] == fam[None, :]
    np.fill_diagonal(same, False)
    other = fam[:, None] != fam[None, :]
    assert d[same].mean() < 0.5 * d[other].mean()
    assert d[same].min() >= big.spec.hierarchy.sibling_spread - 1e-9
    # common habitats: each family's classes use its 3 typical habitats
    for f in range(50):
        assert len(set(c.common_background[fam == f])) <= 3


def test_confusable_lists_siblings_first(big: World) -> None:
    conf = big.confusable(25)
    fam = big.superclass_of
    assert conf.shape == (1000, 25)
    assert (fam[conf[:, :19]] == fam[:, None]).all()  # all 19 siblings first
    assert (fam[conf[:, 19:]] != fam[:, None]).all()  # then strangers
    assert not (conf == np.arange(1000)[:, None]).any()
    assert set(big.siblings(0)) == set(conf[0, :19])
    flat = World(WorldSpec.model_validate({"concepts": {"n_classes": 12}}))
    fc = flat.confusable(11)
    v = shape_vectors(flat.concepts.shape, flat.concepts.elongation)
    d = np.linalg.norm(v[0] - v[fc[0]], axis=1)
    assert (np.diff(d) >= 0).all() and len(flat.siblings(0)) == 0  # flat: nearest silhouette first
    with pytest.raises(UserError, match="between 1 and 11"):
        flat.confusable(12)


def test_scale_vocabulary_renders_and_captions(big: World) -> None:
    f = big.factors("train", np.arange(3000))
    img = big.render(big.factors("train", np.arange(64)))
    assert img.shape == (64, 3, 32, 32) and img.float().std() > 10
    assert f.colour.max() >= 10 and f.pattern.max() >= 4 and f.size.max() >= 3 and f.background.max() >= 16
    caps = big.captions(big.factors("train", np.arange(200)))
    assert any(w in " ".join(caps) for w in ("tiny", "huge")) and "a kind of" not in " ".join(caps)
    names = big.detail_names()
    assert len(names["colour"]) == 24 and len(names["pattern"]) == 8 and len(names["size"]) == 5
    assert len(names["background"]) == 128 and names["background"][:16] == [b[0] for b in BACKGROUNDS]


def test_captions_may_name_the_superclass() -> None:
    spec = {**scale_overrides(100), "captions": {"superclass_prob": 1.0, "level": "template"}}
    w = World(WorldSpec.model_validate(spec))
    f = w.factors("train", np.arange(20))
    for label, cap in zip(f.label, w.captions(f)):
        kind = w.superclass_names[w.superclass_of[label]]
        assert cap.endswith(f"{w.class_names[label]}, a kind of {kind}.")
    full = World(WorldSpec.model_validate({**spec, "captions": {"superclass_prob": 1.0}}))
    cap = full.captions(full.factors("train", np.arange(1)))[0]
    assert ", a kind of " in cap and ", on " in cap


def test_default_worlds_serialise_as_before() -> None:
    # the scale fields are left out while at their defaults: old specs and run ids do not change
    dump = WorldSpec().model_dump(mode="json")
    assert "hierarchy" not in dump and "n_colours" not in dump["details"]
    assert "superclass_prob" not in dump["captions"]
    complete = WorldSpec().model_dump(mode="json", context={"complete": True})
    assert complete["hierarchy"]["superclasses"] == 0 and complete["details"]["n_colours"] == 10
    s = WorldSpec.model_validate(scale_overrides(100))
    assert WorldSpec.model_validate(json.loads(s.model_dump_json())) == s
    assert WorldSpec.model_validate(yaml.safe_load(yaml.safe_dump(s.model_dump(mode="json")))) == s


def test_scale_preset() -> None:
    assert scale_overrides(10) == {"concepts": {"n_classes": 10}}
    p100, p1000 = scale_overrides(100), scale_overrides(1000)
    assert p100["hierarchy"]["superclasses"] == 10 and p1000["hierarchy"]["superclasses"] == 50
    assert p100["backgrounds"]["n_backgrounds"] == 25 > 16 and p1000["backgrounds"]["n_backgrounds"] == 128
    assert MAX_HABITATS >= 128 and len(habitat_table(MAX_HABITATS)) == MAX_HABITATS
    with pytest.raises(UserError, match="between 2 and 1000"):
        scale_overrides(1001)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"hierarchy": {"superclasses": 11}}, "superclasses = 11 must be ≤ concepts.n_classes = 10"),
        ({"captions": {"superclass_prob": 0.5}}, "superclass_prob > 0 needs hierarchy.superclasses > 0"),
        (
            {"hierarchy": {"superclasses": 2, "habitats_per_superclass": 11}},
            "habitats_per_superclass = 11 must be ≤ backgrounds.n_backgrounds = 10",
        ),
        ({"hierarchy": {"superclasses": 2, "names": ["a"]}}, "hierarchy.names has 1 entries"),
        ({"details": {"n_colours": 99}}, "details.n_colours = 99"),
        ({"backgrounds": {"n_backgrounds": 9999}}, "backgrounds.n_backgrounds = 9999"),
    ],
)
def test_bad_scale_specs_are_one_line(data: dict, needle: str) -> None:
    with pytest.raises(UserError) as e:
        configio.validate(WorldSpec, data, "w.yaml")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_user_given_superclass_names() -> None:
    w = World(WorldSpec.model_validate({"hierarchy": {"superclasses": 2, "names": ["bird", "fish"]}}))
    assert w.superclass_names == ["bird", "fish"] and list(w.superclass_of) == [0] * 5 + [1] * 5
