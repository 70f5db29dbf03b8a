"""Evaluation: metrics on constructed logits, zero-shot and classifier runs end to end, every dataset
layout from a world export, retrieval, linear probe / kNN, CLIP_benchmark equality, the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_objectnet_mappings
from PIL import Image

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.evaluate import (
    WD_GRID,
    EvalConfig,
    EvalData,
    classification_metrics,
    evaluate_model,
    evaluate_run,
    knn_logits,
    linear_probe,
    load_eval_data,
    open_model,
    resolve_templates,
    retrieval_metrics,
    to_clip_benchmark_json,
    world_set,
)
from clipshift.evaluate.datasets import imagenet_tables
from clipshift.train import TrainConfig, train
from clipshift.world import World
from clipshift.world.export import export_split

# a 3-class world with template captions: 40 CLIP steps are enough for zero-shot above chance
WORLD = {
    "concepts": {"n_classes": 3},
    "backgrounds": {"n_backgrounds": 4},
    "captions": {"level": "template"},
}
RUN = {
    "data": {"kind": "world", "n": 1280, "world": WORLD},
    "model": {"tokenizer": "vocab"},
    "optim": {"batch_size": 32, "lr": 5e-3, "warmup": 0.1},
    "log_every": 20,
    "threads": 2,
}


pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "clip"
    train(TrainConfig.model_validate(RUN), out, progress=False)
    return out


@pytest.fixture(scope="module")
def sup_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sup"
    train(
        TrainConfig.model_validate({**RUN, "objective": {"name": "supervised-cosine"}}), out, progress=False
    )
    return out


@pytest.fixture(scope="module")
def world() -> World:
    return World(TrainConfig.model_validate(RUN).data.world)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def exports(tmp_path_factory, world) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt, split, n in [
        ("imagefolder", "iid", 150),
        ("counteranimal", "counteranimal", 60),
        ("csv", "iid", 90),
    ]:
        out[fmt] = root / fmt
        export_split(world, split, n, fmt, out[fmt], progress=False)
    return out


# ---------------------------------------------------------------------------------------------- metrics


def test_metrics_against_hand_computed_values():
    # 6 samples, 5 classes; predictions: 0 ✓, 0 ✗(true 1), 1 ✓, 2 ✓, 2 ✗(true 3), 4 ✓
    logits = torch.tensor(
        [
            [9, 1, 0, 0, 0],
            [5, 4, 3, 0, 0],
            [0, 9, 0, 1, 0],
            [0, 0, 9, 0, 0],
            [0, 0, 8, 1, 7],  # true 3 ranks 3rd
            [0, 0, 0, 1, 9],
        ],
        dtype=torch.float32,
    )
    labels = np.array([0, 1, 1, 2, 3, 4])
    groups = {"background": (np.array([0, 0, 1, 1, 1, 0]), ["snow", "sand"])}
    m, per_class, conf = classification_metrics(logits, labels, groups)
    assert m["acc1"] == pytest.approx(4 / 6)
    assert m["acc5"] == 1.0
    # per-class recall: 1, 1/2, 1, 0, 1 → mean 0.7
    assert m["mean_per_class_recall"] == pytest.approx(0.7)
    assert per_class["class_acc"] == pytest.approx([1, 0.5, 1, 0, 1])
    assert per_class["class_count"] == [1, 2, 1, 1, 1]
    assert per_class["class_pred_count"] == [2, 1, 2, 0, 1]
    assert conf[1, 0] == 1 and conf[3, 2] == 1 and conf.trace() == 4 and conf.sum() == 6
    # snow: samples 0,1,5 → 2/3; sand: samples 2,3,4 → 2/3
    assert m["group_acc/background=snow"] == pytest.approx(2 / 3)
    assert m["group_acc/background=sand"] == pytest.approx(2 / 3)
    assert m["worst_group_acc"] == pytest.approx(2 / 3)
    top2 = classification_metrics(logits[:, :4], labels)[0]  # 4 classes: no acc5; label 4 is not scored
    assert "acc5" not in top2 and top2["n_unscored"] == 1 and top2["acc1"] == pytest.approx(3 / 5)
    # min_group_size drops small groups
    m2, _, _ = classification_metrics(logits, labels, {"g": (np.array([0, 0, 0, 0, 0, 1]), ["a", "b"])}, 2)
    assert "group_acc/g=b" not in m2 and m2["worst_group_acc"] == pytest.approx(3 / 5)


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
def test_metrics_equal_sklearn_balanced_accuracy():
    import sklearn.metrics as sklearn_metrics  # installed by the Makefile with clip-benchmark

    sklearn = sklearn_metrics
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(300, 7)), dtype=torch.float32)
    labels = rng.integers(0, 7, 300)
    labels[labels == 6] = 5  # a class without samples is left out of the mean, as in sklearn
    m, _, _ = classification_metrics(logits, labels)
    pred = logits.argmax(1).numpy()
    assert m["mean_per_class_recall"] == sklearn.balanced_accuracy_score(labels, pred)
    assert m["acc1"] == float((pred == labels).sum()) / len(labels)


def test_retrieval_recall_at_k_by_hand():
    img = torch.eye(4)
    # text 0 matches image 0; text 1 is shared by images 1 and 2 (identical captions); text 2 by image 3
    txt = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0.9]])
    m = retrieval_metrics(img, txt, np.array([0, 1, 1, 2]), ks=(1, 2))
    # texts: 0 → image 0 ✓; 1 → image 2 ✓ (one of its images); 2 → image 1 ✗ at 1, image 3 at 2 ✓
    assert m["image_retrieval_recall@1"] == pytest.approx(2 / 3) and m["image_retrieval_recall@2"] == 1.0
    # images: 0 → text 0 ✓; 1 → text 2 ✗; 2 → text 1 ✓; 3 → text 2 ✓
    assert m["text_retrieval_recall@1"] == pytest.approx(3 / 4)


def test_linear_probe_and_knn_beat_chance_and_pick_from_the_grid():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 2
    y = torch.arange(400) % 4
    x = centres[y] + torch.randn(400, 16, generator=g) * 2
    probe = linear_probe(x[:200], y[:200].numpy(), 4)
    assert probe.wd in WD_GRID and set(probe.val_acc) == set(WD_GRID)
    acc = (probe.logits(x[200:]).argmax(1) == y[200:]).float().mean()
    assert acc > 0.6
    knn = knn_logits(x[:200], y[:200].numpy(), x[200:], 4, k=10)
    assert (knn.argmax(1) == y[200:]).float().mean() > 0.6
    again = linear_probe(x[:200], y[:200].numpy(), 4)
    assert torch.equal(again.weight, probe.weight)  # deterministic


def test_templates():
    assert len(resolve_templates("openai")) == 80 and len(resolve_templates("simple")) == 7
    assert resolve_templates("single") == ["a photo of a {}."]
    assert all("{}" in t for t in resolve_templates("world"))
    with pytest.raises(UserError, match="not one of"):
        resolve_templates("fancy")


# ---------------------------------------------------------------------------------------------- runs


def test_zero_shot_run_end_to_end(clip_run):
    cfg = EvalConfig(sets=["iid", "counter"], n_per_set=300, group_by=["background", "common"])
    results = evaluate_run(clip_run, cfg)
    by = {(r.dataset, r.task): r for r in results}
    iid = by["iid", "zeroshot_classification"]
    assert iid.metrics["acc1"] > 0.45  # 3 classes: chance is 1/3
    assert 0 <= iid.metrics["worst_group_acc"] <= iid.metrics["acc1"]
    assert {"nc1", "prototype_coherence"} <= iid.metrics.keys()
    assert "nc1" not in by["counter", "zeroshot_classification"].metrics
    rows = iid.rows()
    zs = "zeroshot_classification"
    assert ("iid", zs, "acc1", -1, iid.metrics["acc1"]) in rows
    assert [r for r in rows if r[2] == "class_acc"] == [
        ("iid", zs, "class_acc", c, v) for c, v in enumerate(iid.per_class["class_acc"])
    ]
    assert all(len(r) == 5 and isinstance(r[3], int) for r in rows)
    train_res = by["train", "zeroshot_classification"]
    final = json.loads((clip_run / "final.json").read_text())
    assert train_res.per_class["class_count"] == final["class_counts"] and sum(final["class_counts"]) == 1280
    assert final["class_names"] == train_res.class_names and len(final["class_names"]) == 3
    assert list((clip_run / "eval_cache").glob("zeroshot-*.pt"))  # classifier weights cached on disk
    again = evaluate_run(clip_run, cfg)  # cached weights and sets: the same numbers
    assert json.dumps([r.metrics for r in again]) == json.dumps([r.metrics for r in results])  # NaN too


def test_classifier_run_uses_its_head(sup_run):
    cfg = EvalConfig(sets=["iid"], n_per_set=150, linear_probe=True, knn=True, probe_n=300)
    results = evaluate_run(sup_run, cfg)
    tasks = {r.task: r for r in results if r.dataset == "iid"}
    assert set(tasks) == {"classification", "linear_probe", "knn"}
    assert tasks["classification"].metrics["acc1"] > 0.4
    assert tasks["linear_probe"].metrics["probe_wd"] in WD_GRID
    assert 0 <= tasks["classification"].metrics["prototype_coherence"] <= 1
    assert ("train", "classification") in {(r.dataset, r.task) for r in results}


def test_zero_shot_scores_the_whole_set_whether_or_not_a_probe_runs(clip_run, exports):
    """On a set without a training split (and no world to draw probe samples from), a probe learns from a
    stratified half and scores the other half; zero-shot always scores the whole set, so toggling a probe
    cannot change zero-shot numbers."""
    from clipshift.evaluate import evaluate_dataset

    model = open_model(clip_run)
    data = load_eval_data(f"imagefolder:{exports['imagefolder']}", model.image_size)
    templates = resolve_templates("world")
    zs = "zeroshot_classification"
    (alone,), _, _ = evaluate_dataset(model, data, [zs], templates, min_group_size=1)
    both, _, _ = evaluate_dataset(model, data, [zs, "linear_probe", "knn"], templates, min_group_size=1)
    by = {r.task: r for r in both}
    assert set(by) == {zs, "linear_probe", "knn"}
    assert by[zs].metrics == alone.metrics and alone.metrics["n"] == 150
    for task in ("linear_probe", "knn"):
        info = by[task].info
        assert info["probe_test_n"] == by[task].metrics["n"] == 75  # 3 classes x 50: 25 each learn
        assert "stratified half, 75 of 150 images" in info["probe_train"]
    # a world run's probe learns from fresh world samples and scores every image of the set
    spec = f"imagefolder:{exports['imagefolder']}"
    res = evaluate_run(clip_run, EvalConfig(sets=[spec], linear_probe=True, probe_n=90, min_group_size=1))
    lp = next(r for r in res if r.task == "linear_probe")
    assert lp.metrics["n"] == lp.info["probe_test_n"] == 150 and lp.info["probe_train"].startswith(
        "world:iid["
    )


def test_in_memory_zero_shot_weights_follow_the_weights():
    """Zero-shot weights of an in-memory model are cached by the weights' content: a model trained further
    (same object) gets new weights, the same weights again hit the cache."""
    from clipshift.evaluate import from_module, zeroshot_weights
    from clipshift.models import ModelConfig, build_clip
    from clipshift.models.text import build_tokenizer

    tok = build_tokenizer("vocab", None, ["a photo of a zorp", "a photo of a blick"])
    module = build_clip(ModelConfig(tokenizer="vocab"), tok)
    model = from_module(module, tok)
    names, templates = ["zorp", "blick"], ["a photo of a {}"]
    before = zeroshot_weights(model, names, templates)
    assert zeroshot_weights(model, names, templates) is before  # unchanged weights: a cache hit
    with torch.no_grad():
        module.text_projection.mul_(-1.0)  # as an optimiser step would, in place
    after = zeroshot_weights(model, names, templates)
    assert torch.allclose(after, -before, atol=1e-5)


def test_world_export_layouts(clip_run, world, exports):
    model = open_model(clip_run)
    mem = evaluate_model(model, world_set(world, "iid", 150), templates="world")
    disk_data = load_eval_data(f"imagefolder:{exports['imagefolder']}", model.image_size)
    disk = evaluate_model(model, disk_data, templates="world")
    # PNGs are lossless: the exported images give exactly the in-memory numbers
    assert disk.metrics["acc1"] == mem.metrics["acc1"] and disk.class_names == world.class_names
    assert disk.per_class["class_pred_count"] == mem.per_class["class_pred_count"]

    ca = load_eval_data(f"counteranimal:{exports['counteranimal']}", model.image_size)
    assert ca.class_names == world.class_names and ca.subsets["present"] == [[0], [1], [2]]
    res = evaluate_model(model, ca, templates="world")
    assert {"group_acc/group=common", "group_acc/group=counter", "subset/present/acc1"} <= res.metrics.keys()
    assert res.metrics["n"] == 120

    csv = load_eval_data(f"csv:{exports['csv']}", model.image_size)
    ret = evaluate_model(model, csv, task="retrieval")
    assert ret.task == "zeroshot_retrieval" and ret.per_class == {}
    r = ret.metrics
    assert (
        0
        <= r["image_retrieval_recall@1"]
        <= r["image_retrieval_recall@5"]
        <= r["image_retrieval_recall@10"]
        <= 1
    )
    assert r["n_texts"] <= 90  # template captions repeat: identical captions are one text


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.transpose(1, 2, 0)).save(path)


def test_imagenet_variants_and_objectnet_layouts(tmp_path, clip_run, world):
    model = open_model(clip_run)
    imgs = world_set(world, "iid", 12).images.numpy()
    tables = imagenet_tables()
    wnids, r = tables["wnids"], tables["imagenet-r"]
    assert (
        len(wnids) == 1000 and wnids == sorted(wnids) and len(r) == 200 and len(tables["imagenet-a"]) == 200
    )
    picked = [r[0], r[5], r[199]]
    for j, w in enumerate(picked):
        for i in range(2):
            _png(tmp_path / "inr" / w / f"{i}.png", imgs[2 * j + i])
            _png(tmp_path / "inv" / w / f"{i}.png", imgs[2 * j + i])
            _png(tmp_path / "v2" / str(wnids.index(w)) / f"{i}.png", imgs[2 * j + i])
    d = load_eval_data(f"imagenet-r:{tmp_path / 'inr'}", model.image_size)
    assert len(d.class_names) == 200 and d.labels.tolist() == [0, 0, 5, 5, 199, 199]
    assert d.columns is not None and d.columns[5] == [wnids.index(r[5])]
    res = evaluate_model(model, d, templates="single")
    assert res.metrics["n"] == 6 and len(res.per_class["class_acc"]) == 200
    val = load_eval_data(f"imagenet:{tmp_path / 'inv'}", model.image_size)
    v2 = load_eval_data(f"imagenet-v2:{tmp_path / 'v2'}", model.image_size)
    assert val.labels.tolist() == v2.labels.tolist() == [wnids.index(w) for w in picked for _ in range(2)]
    res = evaluate_model(model, val, templates="single")
    assert {"subset/imagenet-r/acc1", "subset/imagenet-a/acc1"} <= res.metrics.keys()
    assert res.metrics["subset/imagenet-r/n"] == 6  # every image is of an ImageNet-R class
    with pytest.raises(UserError, match="is not one of imagenet-a's 200 classes"):
        load_eval_data(f"imagenet-a:{tmp_path / 'inr'}", model.image_size)

    # ObjectNet: two classes, one of them mapped to two ImageNet classes, and an unmapped folder
    m = tmp_path / "on" / "mappings"
    write_objectnet_mappings(m, {"mug": "Mug", "pens": "Pen", "other": "Other"})
    for folder, k in [("mug", 0), ("pens", 1), ("other", 2)]:
        _png(tmp_path / "on" / "images" / folder / "0.png", imgs[k])
    on = load_eval_data(f"objectnet:{tmp_path / 'on'}", model.image_size)
    assert on.class_names == ["mug", "pen"] and on.columns == [[504], [418, 563]] and len(on) == 2


def test_clip_benchmark_gives_the_same_accuracy(clip_run, exports):
    from clipshift.bench.eval import clip_benchmark_zeroshot

    model = open_model(clip_run)
    data = load_eval_data(f"imagefolder:{exports['imagefolder']}", model.image_size)
    ours = evaluate_model(model, data, templates="world")
    theirs = clip_benchmark_zeroshot(
        model.module, model.tokenizer, exports["imagefolder"], data.class_names, resolve_templates("world"),
        model.image_size, model.mean, model.std, batch_size=64,
    )  # fmt: skip
    assert theirs["n"] == ours.metrics["n"] == 150
    assert theirs["acc1"] == ours.metrics["acc1"]
    assert theirs["mean_per_class_recall"] == ours.metrics["mean_per_class_recall"]


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_writes_clip_benchmark_shaped_json(clip_run, exports, tmp_path, capsys):
    out = tmp_path / "result.json"
    argv = ["eval", "--model", str(clip_run), "--dataset", "iid", "--n", "120", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert {"dataset", "model", "pretrained", "task", "metrics"} <= doc.keys()
    assert (
        doc["dataset"] == "iid"
        and doc["task"] == "zeroshot_classification"
        and doc["model"] == "clipshift-rn-tiny"
    )
    assert {"acc1", "acc5", "mean_per_class_recall"} <= doc["metrics"].keys() and 0 <= doc["metrics"][
        "acc1"
    ] <= 1
    assert len(doc["confusion"]) == 3 and len(doc["per_class"]["class_acc"]) == 3
    assert "acc1" in capsys.readouterr().out
    # several datasets, one file each; --json prints them
    pattern = str(tmp_path / "{dataset}.json")
    argv = ["eval", "--model", str(clip_run), "--dataset", f"imagefolder:{exports['imagefolder']}",
            "--dataset", f"csv:{exports['csv']}", "--out", pattern, "--quiet", "--json"]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [d["task"] for d in printed] == ["zeroshot_classification", "zeroshot_retrieval"]
    assert (tmp_path / "imagefolder.json").is_file() and (tmp_path / "csv_iid.json").is_file()


def test_cli_linear_probe_on_a_classifier(sup_run, capsys):
    argv = ["eval", "--model", str(sup_run), "--dataset", "iid", "--n", "90", "--task", "linear_probe",
            "--probe-n", "150", "--few-shot", "20", "--quiet", "--json"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "linear_probe" and doc["metrics"]["probe_wd"] in WD_GRID


def test_cli_and_a_study_evaluate_alike(clip_run, capsys):
    """`clipshift eval` and a study's evaluate_run go through one function (evaluate_sets): the same
    settings give the same numbers (the study adds representation statistics on its iid set)."""
    base = ["eval", "--model", str(clip_run), "--dataset", "iid", "--n", "120", "--quiet", "--json"]
    assert main([*base, "--task", "linear_probe", "--probe-n", "150"]) == 0
    cli_lp = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    cli_zs = json.loads(capsys.readouterr().out)
    cfg = EvalConfig(sets=["iid"], n_per_set=120, linear_probe=True, probe_n=150)
    results = evaluate_run(clip_run, cfg)
    study = {r.task: to_clip_benchmark_json(r, "", "") for r in results if r.dataset == "iid"}
    assert cli_lp["metrics"] == study["linear_probe"]["metrics"]
    assert cli_lp["info"]["probe_train"] == study["linear_probe"]["info"]["probe_train"]
    zs = study["zeroshot_classification"]
    stats = ("nc1", "prototype_coherence")
    assert cli_zs["metrics"] == {k: v for k, v in zs["metrics"].items() if k not in stats}
    assert cli_zs["per_class"] == zs["per_class"] and cli_zs["confusion"] == zs["confusion"]


def test_cli_bad_inputs_are_one_line(clip_run, sup_run, exports, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    ckpt = clip_run / "checkpoints" / "final.pt"
    cases = [
        (["--dataset", "tarball:/x"], "unknown dataset kind 'tarball'"),
        (["--dataset", f"counteranimal:{exports['imagefolder']}"], "not a CounterAnimal layout"),
        (["--dataset", f"imagefolder:{exports['imagefolder']}", "--classnames", str(names)], "2 class names"),
        (["--dataset", "sideways"], "unknown split 'sideways'"),
    ]
    for extra, needle in cases:
        assert main(["eval", "--model", str(clip_run), "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0 and err.startswith("clipshift: error: "), err
    bad_models = [
        ([f"clipshift-vit-tiny:{ckpt}"], "does not match the architecture"),
        (["RN50:openai"], "not a local file"),
        ([str(tmp_path / "nothing")], "no such run directory"),
    ]
    for model, needle in bad_models:
        assert main(["eval", "--model", *model, "--dataset", "iid", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0, err


def test_to_clip_benchmark_json_shape():
    from clipshift.evaluate import EvalResult

    r = EvalResult(
        "iid", "zeroshot_classification", {"acc1": 0.5, "acc5": float("nan")}, {"class_acc": [1.0, 0.0]}
    )
    doc = to_clip_benchmark_json(r, "RN50", "w.pt")
    assert list(doc)[:5] == ["dataset", "model", "pretrained", "task", "metrics"]
    assert doc["metrics"] == {"acc1": 0.5, "acc5": None} and json.dumps(doc)
    assert EvalData("x", torch.zeros((0, 3, 8, 8)), np.zeros(0), []).retrieval is False


def test_bench_eval_smoke(tmp_path, capsys):
    argv = ["bench", "eval", "--n", "60", "--steps", "2", "--batch-size", "32", "--repeats", "1",
            "--workers", "0", "--cache", str(tmp_path), "--large-arch", "clipshift-vit-tiny",
            "--large-n", "20", "--json"]  # fmt: skip
    assert main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["eval_images_per_s"] > 0 and figures["images"] == 60
    assert figures["acc1"] == figures["imagefolder_acc1"]
    assert figures["same_acc1"] and figures["same_mean_per_class_recall"]
    assert {"clip_benchmark_images_per_s", "speedup_vs_clip_benchmark"} <= figures.keys()
    # the large model's line (a tiny architecture here), both tools on the same images
    assert figures["large_model"] == "clipshift-vit-tiny" and figures["large_images"] == 20
    assert figures["large_eval_images_per_s"] > 0 and figures["large_clip_benchmark_images_per_s"] > 0
    assert figures["large_same_acc1"]
    assert main(["bench", "eval", "--large-arch", "ViT-Q-99"]) == 2
