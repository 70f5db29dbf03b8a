"""Tests of `clipshift.world.describe`: statistics of a split computed from its factors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from clipshift.errors import UserError
from clipshift.world import World, WorldSpec
from clipshift.world.describe import describe_split


def _world(**spec: Any) -> World:
    return World(WorldSpec.model_validate(spec))


def test_counts_and_shapes() -> None:
    w = _world(
        concepts={"n_classes": 6},
        backgrounds={"n_backgrounds": 5},
        open_world={"n_concepts": 2, "fraction": 0.2},
    )
    d = describe_split(w, "train", 5000)
    json.dumps(d)  # JSON-serialisable as is
    assert d["n"] == 5000 and d["split"] == "train"
    assert len(d["class_counts"]) == 8 and sum(d["class_counts"]) == 5000
    assert d["class_names"] == w.class_names and len(d["open_world_class_names"]) == 2
    assert sum(d["class_counts"][6:]) == pytest.approx(1000, abs=60)  # the open-world fraction
    cooc = np.array(d["background_class_cooccurrence"])
    assert cooc.shape == (6, 5) and cooc.sum() == sum(d["class_counts"][:6])
    assert cooc.sum(axis=1).tolist() == d["class_counts"][:6]
    assert d["background_names"] == w.background_names
    assert d["spec"] == w.spec.model_dump(mode="json")
    assert d["caption_level"] == "full" and d["corruption"] == {"kind": "none", "severity": 0}
    f = w.factors("train", np.arange(5))
    assert d["example_captions"] == w.captions(f)
    assert d["class_frequency_imbalance"] == pytest.approx(1.0, abs=0.05)  # uniform profile


def test_common_fraction_follows_rho() -> None:
    d1 = describe_split(_world(backgrounds={"rho": 1.0}), "train", 4000)
    assert d1["common_fraction"] == 1.0
    cooc = np.array(d1["background_class_cooccurrence"])
    assert (np.count_nonzero(cooc, axis=1) == 1).all()  # each class on exactly one habitat
    d0 = describe_split(_world(backgrounds={"rho": 0.0}), "train", 20000)
    assert d0["common_fraction"] == pytest.approx(1 / 10, abs=0.015)
    assert describe_split(_world(), "counter", 500)["common_fraction"] == 0.0
    assert describe_split(_world(), "common", 500)["common_fraction"] == 1.0


def test_domain_mix_and_imbalance() -> None:
    w = _world(domains={"photo": 3.0, "painting": 1.0}, frequency={"profile": "zipf", "alpha": 1.0})
    d = describe_split(w, "train", 20000)
    mix = d["domain_mix"]
    assert set(mix) == {"photo", "sketch", "rendition", "painting"}
    assert mix["photo"] == pytest.approx(0.75, abs=0.02) and mix["painting"] == pytest.approx(0.25, abs=0.02)
    assert mix["sketch"] == mix["rendition"] == 0.0
    counts = np.array(d["class_counts"])
    assert d["class_frequency_imbalance"] == pytest.approx(counts.max() / np.median(counts))
    assert d["class_frequency_imbalance"] > 2  # Zipf over 10 classes: max/median is about 1/(1/5.5)
    e = describe_split(w, "corrupt-blur-2", 100)
    assert e["corruption"] == {"kind": "blur", "severity": 2}
    assert e["class_counts"] == [10] * 10  # evaluation sets are class-balanced
    # a corruption set keeps the training domain mixture; only `photo|sketch|...` sets fix the domain
    assert e["domain_mix"]["photo"] + e["domain_mix"]["painting"] == pytest.approx(1.0)
    assert describe_split(w, "sketch", 100)["domain_mix"]["sketch"] == 1.0


def test_bad_arguments() -> None:
    w = _world()
    with pytest.raises(UserError, match="got 0"):
        describe_split(w, "train", 0)
    with pytest.raises(UserError, match="unknown split"):
        describe_split(w, "sideways", 10)
