"""'1 vs N confusable' accuracy (CounterAnimal's '1 vs 20'): planted logits on a world set with a hierarchy,
equality with acc1 when every other class is a confusable one, mappings for non-world sets, and the metric
through `clipshift eval` and a study's evaluation of small runs."""

import json

import numpy as np
import pytest
import torch

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.evaluate import EvalConfig, EvalData, evaluate_run, world_set
from clipshift.evaluate.confusable import confusable_accuracy, read_confusable
from clipshift.evaluate.scoring import scored_result
from clipshift.evaluate.units import is_declared, unit_of
from clipshift.train import TrainConfig, train
from clipshift.world import World, WorldSpec
from clipshift.world.hierarchy import scale_overrides

K = 40  # four families of ten: 9 siblings each, so N = 20 reaches past the family to its nearest strangers


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldSpec.model_validate(scale_overrides(K)))


def test_world_sets_carry_the_worlds_confusable_ranking(world):
    data = world_set(world, "iid", 80)
    assert data.confusable is not None and data.confusable.shape == (K, K - 1)
    assert np.array_equal(data.confusable[:, :20], world.confusable(20))
    fam = world.superclass_of
    assert all(set(world.confusable(9)[c]) == set(world.siblings(c)) for c in range(K))
    assert (fam[data.confusable[:, 9:]] != fam[:, None]).all()  # strangers only after the siblings


def test_planted_logits_beat_the_confusables_but_not_a_far_class(world):
    data = world_set(world, "iid", 200)
    y = data.labels
    conf = world.confusable(20)
    logits = torch.zeros((len(y), K))
    far = np.empty(len(y), dtype=np.int64)
    for i, c in enumerate(y):
        logits[i, conf[c]] = torch.linspace(1.0, 4.0, 20)  # near rivals, all below the true class
        logits[i, c] = 5.0
        far[i] = np.setdiff1d(np.arange(K), [c, *conf[c]])[0]
    wrong = np.arange(len(y)) % 2 == 0
    logits[wrong, far[wrong]] = 9.0  # half the samples lose to a class none of its 20 confusables
    res = scored_result("iid", "zeroshot_classification", logits, data, confusable_n=(1, 20, K - 1, 500))
    m = res.metrics
    assert m["acc1"] == pytest.approx(0.5) and m["acc1_vs20_confusable"] == 1.0
    assert m["acc1"] < m["acc1_vs20_confusable"]
    assert m["acc1_vs1_confusable"] == 1.0
    # N ≥ K − 1 is acc1 itself (the function computes it; a set's result leaves the copy out)
    assert f"acc1_vs{K - 1}_confusable" not in m and "acc1_vs500_confusable" not in m
    whole = confusable_accuracy(logits, y, data.confusable, (K - 1, 500))
    assert whole[f"acc1_vs{K - 1}_confusable"] == whole["acc1_vs500_confusable"] == m["acc1"]
    # a sample that loses to its most confusable class is wrong at every N
    logits[1, conf[y[1]][0]] = 6.0
    m2 = confusable_accuracy(logits, y, data.confusable, (1, 20))
    assert m2["acc1_vs1_confusable"] == m2["acc1_vs20_confusable"] == pytest.approx(1 - 1 / len(y))
    assert is_declared("acc1_vs20_confusable") and unit_of("acc1_vs20_confusable").unit == "fraction"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_other_class_as_confusable_is_acc1_exactly_ties_included(world, seed):
    """With all K - 1 others as confusables the metric is argmax's accuracy, ties broken as argmax breaks
    them (integer logits in a narrow range tie often)."""
    data = world_set(world, "counter", 300)
    rng = np.random.default_rng(seed)
    logits = torch.as_tensor(rng.integers(0, 6, size=(len(data), K)), dtype=torch.float32)
    labels = data.labels.copy()
    labels[:5] = -1  # unscored, as for acc1
    data.labels = labels
    m = scored_result("counter", "zeroshot_classification", logits, data).metrics
    whole = confusable_accuracy(logits, data.labels, data.confusable, (K - 1,))
    assert m["acc1"] == whole[f"acc1_vs{K - 1}_confusable"] and m["n_unscored"] == 5
    top = logits[5:].max(dim=1, keepdim=True).values
    assert ((logits[5:] == top).sum(dim=1) > 1).float().mean() > 0.5  # most rows tie at the top
    assert m["acc1"] > 0


def test_no_confusable_table_or_no_n_means_no_metric(world):
    data = world_set(world, "iid", 40)
    logits = torch.randn(len(data), K)
    assert not any("confusable" in k for k in scored_result("iid", "t", logits, data).metrics)
    data.confusable = None
    res = scored_result("iid", "t", logits, data, confusable_n=(5,))
    assert not any("confusable" in k for k in res.metrics)


def test_a_mapping_file_for_other_sets(tmp_path):
    names = ["cat", "dog", "fox", "owl"]
    path = tmp_path / "conf.json"
    mapping = {"cat": ["dog", "fox"], "dog": ["cat"], "fox": ["dog", "cat", "owl"], "x": []}
    path.write_text(json.dumps(mapping))
    labels = np.array([0, 1, 2, 0])
    table = read_confusable(path, names, labels)
    assert table.tolist() == [[1, 2, -1], [0, -1, -1], [1, 0, 3], [-1, -1, -1]]
    logits = torch.tensor(
        [
            [5.0, 1, 2, 9],  # cat: beats dog and fox, loses to owl (not a confusable)
            [1.0, 5, 0, 9],  # dog: beats cat
            [1.0, 2, 5, 9],  # fox: loses to owl, which is its third confusable
            [1.0, 6, 2, 0],  # cat: loses to dog
        ]
    )
    m = confusable_accuracy(logits, labels, table, (1, 2, 3))
    assert m == {"acc1_vs1_confusable": 0.75, "acc1_vs2_confusable": 0.75, "acc1_vs3_confusable": 0.5}
    data = EvalData("pets", torch.zeros(4, 3, 8, 8, dtype=torch.uint8), labels, names, confusable=table)
    assert scored_result("pets", "t", logits, data, confusable_n=(2,)).metrics["acc1_vs2_confusable"] == 0.75
    path.write_text(json.dumps({"cat": ["dog"], "dog": ["cat"]}))
    with pytest.raises(UserError, match="no entry for class 'fox'"):
        read_confusable(path, names, labels)
    path.write_text(json.dumps({"cat": ["wolf"], "dog": [], "fox": []}))
    with pytest.raises(UserError, match="'wolf', not a class"):
        read_confusable(path, names, labels)
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="expected an object"):
        read_confusable(path, names, labels)


def test_eval_config_confusable_fields_keep_run_ids():
    default = EvalConfig()
    assert default.confusable_n == [20] and "confusable_n" not in default.model_dump(mode="json")
    assert "confusable" not in default.model_dump(mode="json")
    dumped = EvalConfig(confusable_n=[20, 5, 5]).model_dump(mode="json")
    assert dumped["confusable_n"] == [5, 20]
    assert EvalConfig(confusable_n=[]).model_dump(mode="json")["confusable_n"] == []
    assert "confusable_n" in default.model_dump(mode="json", context={"complete": True})
    with pytest.raises(ValueError, match="≥ 1"):
        EvalConfig(confusable_n=[0])


RUN = {
    "data": {
        "kind": "world",
        "n": 64,
        "world": {"concepts": {"n_classes": 24}, "hierarchy": {"superclasses": 3}},
    },
    "optim": {"batch_size": 32},
    "model": {"tokenizer": "vocab"},
    "threads": 1,
}


@pytest.mark.parametrize("objective", ["clip", "supervised"])
def test_the_metric_goes_through_clipshift_eval_and_a_study(tmp_path, capsys, objective):
    run = tmp_path / objective
    train(TrainConfig.model_validate({**RUN, "objective": {"name": objective}}), run, progress=False)
    argv = ["eval", "--model", str(run), "--dataset", "iid", "--n", "96", "--confusable-n", "5,23",
            "--quiet", "--json"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    m = doc["metrics"]
    assert doc["task"] == ("zeroshot_classification" if objective == "clip" else "classification")
    assert 0 <= m["acc1"] <= m["acc1_vs5_confusable"] <= 1 and "acc1_vs23_confusable" not in m  # 24 classes
    assert main([*argv[:-2], "--confusable-n", "", "--quiet"]) == 0  # off: the summary lists none
    assert "confusable" not in capsys.readouterr().out
    assert main([*argv[:-4], "--confusable-n", "x"]) == 2
    assert "--confusable-n" in capsys.readouterr().err
    cfg = EvalConfig(sets=["iid"], n_per_set=96, confusable_n=[5], convergence_points=[])
    study = {(r.dataset, r.task): r.metrics for r in evaluate_run(run, cfg)}
    own = study["iid", doc["task"]]
    assert own["acc1_vs5_confusable"] == m["acc1_vs5_confusable"]


def test_the_report_tables_the_metric_in_percent():
    from clipshift.report.data import Run, StudyData
    from clipshift.report.tables import metric_tables

    runs, rows = [], []
    for seed in (0, 1):
        rid = f"clip-{seed}"
        runs.append(Run(rid, {"objective.name": "clip"}, seed, "done"))
        for metric, value in (("acc1", 0.5), ("acc1_vs20_confusable", 0.75 + 0.01 * seed)):
            rows.append({"run_id": rid, "eval_set": "iid", "metric": metric, "class_id": -1, "value": value})
    tables = {t.title: t for t in metric_tables(StudyData("s", {}, runs, rows))}
    table = tables["acc1_vs20_confusable (%)"]
    assert table.columns[-1] == "iid" and table.rows[0][-1].startswith("75.5")


def test_an_evaluation_studys_report_tables_1_vs_all_beside_1_vs_confusable():
    """Each model's acc1 and acc1_vs20_confusable side by side, on the sets that have the latter."""
    from clipshift.report.data import Run, StudyData
    from clipshift.report.tables import metric_tables

    models = {"clip-a": ("clip", 0.50, 0.80), "sup-a": ("imagenet", 0.60, 0.70)}
    runs, rows = [], []
    for name, (family, acc1, vs20) in models.items():
        runs.append(Run(name, {"model": name, "family": family}, None, "done"))
        base = {"run_id": name, "class_id": -1}
        rows += [
            {**base, "eval_set": "iid", "metric": "acc1", "value": acc1},
            {**base, "eval_set": "iid", "metric": "acc1_vs20_confusable", "value": vs20},
            {**base, "eval_set": "imagenet:/d/val", "metric": "acc1", "value": 0.4},  # no confusable
        ]
    spec = {"models": [{"name": n, "family": f} for n, (f, *_) in models.items()]}
    tables = metric_tables(StudyData("zoo", spec, runs, rows))
    side = tables[0]
    assert side.title.startswith("1-vs-all and 1-vs-confusable")
    assert side.columns == ["model", "family", "n", "iid: 1 vs all", "iid: 1 vs 20"]
    assert [r[:3] for r in side.rows] == [["clip-a", "clip", "1"], ["sup-a", "imagenet", "1"]]
    assert side.rows[0][3].startswith("50.0") and side.rows[0][4].startswith("80.0")
    assert side.rows[1][3].startswith("60.0") and side.rows[1][4].startswith("70.0")
    # a training study's report keeps its one table per metric
    assert not any(t.title.startswith("1-vs-all") for t in metric_tables(StudyData("s", {}, runs, rows)))
