"""An evaluation study's report places each model on the shipped imagenet-testbed line (planted rows, as
the store gives them): its effective robustness is y − line(x) with the line through the testbed's
reference models and x on the shift's class subset; its interval holds it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from clipshift.analysis.data import Run, StudyData
from clipshift.analysis.reference import load_reference
from clipshift.report.findings import findings

X, Y = "imagenet:/data/imagenet/val", "imagenet-r:/data/imagenet-r"
# name: (family, val acc1 on all 1000 classes, val acc1 on the ImageNet-R classes, imagenet-r acc1)
MODELS = {
    "clip-a": ("clip", 0.60, 0.78, 0.70),
    "clip-b": ("clip", 0.68, 0.84, 0.77),
    "clip-c": ("clip", 0.72, 0.88, 0.80),
    "sup-a": ("imagenet", 0.76, 0.86, 0.36),
    "sup-b": ("imagenet", 0.79, 0.90, 0.42),
    "sup-c": ("imagenet", 0.81, 0.91, 0.45),
}


def planted(analysis: dict) -> StudyData:
    runs, rows = [], []
    for name, (family, full, sub, r) in MODELS.items():
        rid = f"run-{name}"
        runs.append(Run(rid, {"model": name, "family": family}, None, "done"))
        base = {"run_id": rid, "class_id": -1, "task": "zeroshot_classification"}
        rows += [
            {**base, "eval_set": X, "metric": "acc1", "value": full},
            {**base, "eval_set": X, "metric": "n", "value": 50000},
            {**base, "eval_set": X, "metric": "subset/imagenet-r/acc1", "value": sub},
            {**base, "eval_set": X, "metric": "subset/imagenet-r/n", "value": 10000},
            {**base, "eval_set": Y, "metric": "acc1", "value": r},
            {**base, "eval_set": Y, "metric": "n", "value": 30000},
        ]
    spec = {
        "models": [{"name": n, "family": fam} for n, (fam, *_) in MODELS.items()],
        "analyses": [analysis],
    }
    return StudyData("zoo", spec, runs, rows)


def er_finding(**extra):
    analysis = {"kind": "effective_robustness", "x": X, "y": [Y], "reference": "imagenet-testbed", **extra}
    (f,) = findings(planted(analysis), n_boot=200)
    return f


def test_each_model_is_placed_on_the_testbed_line_of_the_shifts_class_subset():
    f = er_finding()
    placed = {n["model"]: n for n in f.numbers if n.get("what") == "placement"}
    assert set(placed) == set(MODELS)
    # the line by hand: least squares in logit space through the testbed's reference models, with x on
    # ImageNet val restricted to ImageNet-R's classes (the testbed's plot of this shift)
    ref = load_reference("imagenet-testbed", "val", "imagenet-r")
    assert ref.x_name == "val-on-imagenet-r-classes"
    k = ref.is_reference
    slope, intercept = np.polyfit(special.logit(ref.x[k] / 100), special.logit(ref.y[k] / 100), 1)
    for name, (_, _, sub, r) in MODELS.items():
        line = 100 * special.expit(slope * special.logit(sub) + intercept)
        p = placed[name]
        assert p["x"] == pytest.approx(100 * sub) and p["y"] == pytest.approx(100 * r)
        assert p["er"] == pytest.approx(100 * r - line, abs=1e-6)
        lo, hi = p["ci"]
        assert lo < p["er"] < hi and hi - lo < 10
    # one table row per model, and a figure of the testbed scatter with the models on it
    (table,) = [t for t in f.tables if "each model" in t.title]
    assert [row[0] for row in table.rows] == list(MODELS)
    assert table.rows[0][1] == "clip"
    assert f.figures


def test_families_compared_from_the_testbed_line():
    """CLIPs planted far above the line, the ImageNet models near it: the difference is supported."""
    f = er_finding(compare="family")
    (comp,) = [n for n in f.numbers if n.get("what") == "effective_robustness"]
    assert comp["diff"]["value"] < -20  # imagenet − clip (clip is the first level, the reference)
    assert any("testbed line" in c for c in f.conclusions)


def test_a_metric_the_testbed_has_no_line_for_is_refused():
    f = er_finding(metric="acc5")
    assert not any(f.supported) and "acc1" in f.conclusions[0]


def test_the_interval_widens_with_fewer_images_and_without_n_covers_the_line_only():
    def widths(data: StudyData) -> tuple[dict[str, float], list]:
        (f,) = findings(data, n_boot=400)
        placed = [n for n in f.numbers if n.get("what") == "placement"]
        (table,) = [t for t in f.tables if "each model" in t.title]
        return {n["model"]: n["ci"][1] - n["ci"][0] for n in placed}, table

    analysis = {"kind": "effective_robustness", "x": X, "y": [Y], "reference": "imagenet-testbed"}
    many, t_many = widths(planted(analysis))
    few_data = planted(analysis)
    for row in few_data.rows:
        if row["metric"].endswith("n"):
            row["value"] = 200
    few, _ = widths(few_data)
    none_data = planted(analysis)
    none_data.rows = [row for row in none_data.rows if not row["metric"].endswith("n")]
    line_only, t_none = widths(none_data)
    for m in MODELS:
        assert line_only[m] < many[m] < few[m]
    assert t_many.note is None and "line only" in t_none.note
