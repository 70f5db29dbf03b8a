"""Manipulation-check measures of the training data, on constructed arrays with known answers."""

import math

import numpy as np
import pytest

from clipshift.data import measures as m


def test_class_balance():
    assert m.class_balance([10, 10, 10, 10]) == {"classes_present": 4.0, "imbalance": 1.0, "gini": 0.0}
    b = m.class_balance([100, 10, 10, 0])
    assert b["classes_present"] == 3 and b["imbalance"] == 10.0 and 0.5 < b["gini"] < 1
    assert math.isnan(m.class_balance([0, 0])["gini"])


def test_batch_measures():
    labels = np.array([0, 0, 1, 1, 2, 2, -1, 3])
    batches = [np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7])]
    assert m.classes_per_batch(labels, batches).tolist() == [2, 2]  # the unknown label is not a class
    # batch 1: pairs (0,1) and (2,3) of 12 ordered pairs -> 4/12; batch 2: known 2,2,3 -> 2/6
    assert m.same_class_pair_share(labels, batches) == pytest.approx((4 / 12 + 2 / 6) / 2)
    captions = ["a zorp", "a zorp", "a blick", "a red blick", "x", "y", "z", "z"]
    assert m.duplicate_caption_share(captions, batches) == pytest.approx((2 / 4 + 2 / 4) / 2)


def test_mention_rate_is_whole_word():
    captions = ["a zorp on snow", "a zorpling", "a photo", "Zorp!"]
    assert m.mention_rate(captions, ["zorp", "zorp", "zorp", "zorp"]) == pytest.approx(2 / 4)
    assert m.mention_rate(captions, [None, "snow", None, None]) == 0.0
    assert math.isnan(m.mention_rate(captions, [None] * 4))


def test_spurious_measures():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    common = np.array([5, 6])
    background = np.array([5, 5, 5, 6, 6, 6, 5, 6])  # class 0: 3/4 common, class 1: 3/4 common
    s = m.spurious_measures(labels, background, common)
    assert s["p_common_background"] == pytest.approx(0.75)
    assert s["background_bayes_acc"] == pytest.approx(6 / 8)  # bg 5 -> class 0 (3 of 4), bg 6 -> class 1


def test_mix_and_loss_slope():
    assert m.mix(np.array([0, 0, 1, 2]), ["photo", "sketch", "painting"]) == {
        "photo": 0.5,
        "sketch": 0.25,
        "painting": 0.25,
    }
    steps = np.arange(10, 1001, 10)
    assert m.loss_slope(steps, 5 - steps / 1000) == pytest.approx(-1.0)  # falls by 1 per 1,000 steps
    flat = np.where(steps < 500, 5 - steps / 100, 0.3)
    assert m.loss_slope(steps, flat) == pytest.approx(0.0, abs=1e-9)


def test_a_run_of_batches_as_one_array_gives_the_same_numbers():
    """The vectorised path (a run's steps as one (steps, B) array) and the per-batch loop agree."""
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 7, size=500)
    batches = rng.permutation(500)[:480].reshape(30, 16)
    as_list = list(batches)
    assert m.classes_per_batch(labels, batches).tolist() == m.classes_per_batch(labels, as_list).tolist()
    np.testing.assert_allclose(
        m.same_class_pair_shares(labels, batches), m.same_class_pair_shares(labels, as_list)
    )
    captions = [f"text {i % 37}" for i in range(500)]
    codes = m.text_codes(captions)
    assert codes[0] == codes[37] and codes[0] != codes[1]
    assert m.duplicate_caption_share(codes, batches) == pytest.approx(
        m.duplicate_caption_share(captions, as_list)
    )
    np.testing.assert_allclose(
        m.duplicate_caption_shares(codes, batches), m.duplicate_caption_shares(captions, as_list)
    )


def test_mention_rates_equal_mention_rate():
    texts = [
        "a striped zorp on snow",
        "a mid-sized blick",
        "zorp-like thing",
        "A Zorp.",
        "the red panda",
        "x",
    ]
    columns = {
        "a": ["zorp", "blick", "zorp", "zorp", "red panda", None],
        "b": ["snow", "mid-sized", "like", "a", "panda", "x"],
        "c": [None] * 6,
    }
    fast = m.mention_rates(texts, columns)
    for key, words in columns.items():
        slow = m.mention_rate(texts, words)
        assert (math.isnan(fast[key]) and math.isnan(slow)) or fast[key] == pytest.approx(slow), key
    assert fast["a"] == pytest.approx(4 / 5)  # "zorp-like" is not the word zorp; "red panda" (a space) is


def test_expected_classes_per_batch_matches_simulation():
    p = np.ones(10) / 10
    assert m.expected_classes_per_batch(p, 128) == pytest.approx(10 * (1 - 0.9**128))
    zipf = 1 / np.arange(1, 101)
    sim = m.simulated_classes_per_batch(zipf, 64)
    assert sim.mean() == pytest.approx(m.expected_classes_per_batch(zipf, 64), rel=0.02)
    assert (m.simulated_classes_per_batch(zipf, 64) == sim).all()  # seeded
