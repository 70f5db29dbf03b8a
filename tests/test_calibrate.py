"""A smaller version of the calibration check: in the default world the core is learnable and the
background shortcut is strong but not total. The full-size figures come from `clipshift world
calibrate` (README and BENCHMARKS.md)."""

import pytest

from clipshift.calibrate import bayes_accuracy, calibrate, format_report
from clipshift.world import World, WorldSpec


@pytest.fixture(scope="module")
def report():
    spec = WorldSpec.model_validate({"concepts": {"n_classes": 5}})
    return calibrate(spec, samples=6000, eval_n=500, progress=False, batch_size=64)


def test_core_is_learnable_without_spurious_correlation(report):
    assert report["core"]["iid"] >= 80.0


def test_background_shortcut_is_strong_but_not_total(report):
    sp = report["spurious"]
    assert sp["drop"] >= 15.0
    assert sp["counter"] > report["chance"] + 5.0
    assert sp["common"] > sp["counter"]


def test_report_table_names_every_probe(report):
    text = format_report(report)
    for needle in ("core: iid accuracy at rho=0", "counter accuracy", "drop", "colour alone", "sketch"):
        assert needle in text


def test_bayes_accuracy_of_shortcuts():
    w = World(WorldSpec.model_validate({"concepts": {"n_classes": 10}, "backgrounds": {"n_backgrounds": 10}}))
    assert bayes_accuracy(w, "background", rho=0.0) == pytest.approx(10.0)
    # rho = 1 with one habitat per class: the background alone identifies the class
    assert bayes_accuracy(w, "background", rho=1.0) == pytest.approx(100.0)
    assert 10.0 <= bayes_accuracy(w, "colour") <= 100.0
    shared = World(WorldSpec.model_validate({"details": {"colour_concentration": 100.0}}))
    assert bayes_accuracy(shared, "colour") < bayes_accuracy(w, "colour")
