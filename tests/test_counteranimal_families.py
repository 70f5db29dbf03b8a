"""CounterAnimal in an evaluation study: common and counter are groups of one set (group_acc/group=…, as
the counteranimal loader stores them); the drop is compared across families, and the counter-vs-common
figure draws each family's least-squares line (planted rows)."""

from __future__ import annotations

import numpy as np
import pytest

from clipshift.analysis.data import Run, StudyData
from clipshift.report.findings import findings

CA = "counteranimal:/data/counteranimal"
# name: (family, common, counter)
MODELS = {
    "clip-a": ("clip", 0.70, 0.60),
    "clip-b": ("clip", 0.78, 0.69),
    "clip-c": ("clip", 0.85, 0.77),
    "sup-a": ("imagenet", 0.72, 0.50),
    "sup-b": ("imagenet", 0.80, 0.60),
    "sup-c": ("imagenet", 0.86, 0.63),
}


def planted(analysis: dict) -> StudyData:
    runs, rows = [], []
    for name, (family, common, counter) in MODELS.items():
        rid = f"run-{name}"
        runs.append(Run(rid, {"model": name, "family": family}, None, "done"))
        base = {"run_id": rid, "class_id": -1, "task": "zeroshot_classification", "eval_set": CA}
        rows += [
            {**base, "metric": "acc1", "value": (common + counter) / 2},
            {**base, "metric": "group_acc/group=common", "value": common},
            {**base, "metric": "group_acc/group=counter", "value": counter},
            {**base, "metric": "subset/present/group_acc/group=common", "value": 0.99},
        ]
    spec = {"models": [{"name": n, "family": f} for n, (f, *_) in MODELS.items()], "analyses": [analysis]}
    return StudyData("zoo", spec, runs, rows)


@pytest.mark.parametrize("within", ["counteranimal", CA])
def test_the_drop_between_groups_of_one_set_by_family(within):
    (f,) = findings(planted({"kind": "spurious_drop", "within": within, "compare": "family"}), n_boot=100)
    (comp,) = [n for n in f.numbers if n.get("what") == "drop"]
    drop = {fam: [100 * (c - k) for ff, c, k in MODELS.values() if ff == fam] for fam in ("clip", "imagenet")}
    assert comp["ref_mean"]["value"] == pytest.approx(np.mean(drop["clip"]))
    assert comp["level_mean"]["value"] == pytest.approx(np.mean(drop["imagenet"]))
    assert comp["diff"]["value"] == pytest.approx(np.mean(drop["imagenet"]) - np.mean(drop["clip"]))
    # each family's mean drop with its interval across the family's models
    (table,) = f.tables[:1]
    assert [row[0] for row in table.rows] == ["clip", "imagenet"] and table.rows[0][1] == "3"
    # each family's least-squares line of counter on common accuracy
    lines = {n["family"]: n for n in f.numbers if n.get("what") == "counter_vs_common_line"}
    for fam in ("clip", "imagenet"):
        cx = [100 * c for ff, c, _ in MODELS.values() if ff == fam]
        ky = [100 * k for ff, _, k in MODELS.values() if ff == fam]
        slope, intercept = np.polyfit(cx, ky, 1)
        assert lines[fam]["slope"] == pytest.approx(slope) and lines[fam]["intercept"] == pytest.approx(
            intercept
        )
    assert f.figures


def test_a_set_within_names_nothing_is_one_sentence():
    (f,) = findings(planted({"kind": "spurious_drop", "within": "imagenet-a"}), n_boot=100)
    assert not any(f.supported) and "counteranimal:/data/counteranimal" in f.conclusions[0]
