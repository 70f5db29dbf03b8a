"""A run's manipulation and convergence checks (`clipshift.train.checks`): they measure what the data,
the objective and the training did, planted factors come out as planted, and they change no number."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clipshift.data.table import world_table
from clipshift.evaluate.units import is_declared
from clipshift.objectives import ObjectiveConfig, build_objective
from clipshift.train import TrainConfig, train
from clipshift.train import run as run_mod
from clipshift.train.checks import run_checks
from clipshift.train.data import epoch_order
from clipshift.world import World, WorldSpec

TINY = {
    "data": {"kind": "world", "n": 384, "world": {"concepts": {"n_classes": 5}}},
    "optim": {"batch_size": 64, "lr": 2e-3},
    "log_every": 1,
    "threads": 2,
}


def cfg(**over) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    for k, v in over.items():
        data[k] = v if not isinstance(v, dict) else {**data.get(k, {}), **v}
    return TrainConfig.model_validate(data)


def state(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def checks_of(world: dict, n: int, objective: str = "clip", batch_size: int = 64, **options) -> dict:
    """The data and objective checks of a rendered world split, as a run of 2 epochs would record them."""
    split = World(WorldSpec.model_validate(world)).split("train", n)
    table = world_table(split)
    obj = build_objective(
        ObjectiveConfig.model_validate({"name": objective, **options}), table.class_counts()
    )
    return run_checks(
        table, obj, batch_size=batch_size, per_epoch=n // batch_size, epochs=2, seed=0,
        metrics_path=Path("/nonexistent"),
    )  # fmt: skip


# ---------------------------------------------------------------------------------- planted factors


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_spurious_strength_comes_out_as_planted(rho):
    # with prob. rho the class's common background, else uniform over all 10 (which includes it)
    c = checks_of({"concepts": {"n_classes": 10}, "backgrounds": {"rho": rho}}, 3000, "supervised")
    assert c["data/p_common_background"] == pytest.approx(rho + (1 - rho) / 10, abs=0.03)
    # each class has its own common background: reading it alone is right about as often
    assert c["data/background_bayes_acc"] == pytest.approx(rho + (1 - rho) / 10, abs=0.05)
    assert "data/mention/class" not in c  # a classifier reads no text


def test_caption_mentions_and_domain_mix_come_out_as_planted():
    world = {
        "concepts": {"n_classes": 10},
        "captions": {"level": "full", "detail_prob": 0.3, "missing_name_prob": 0.5},
        "domains": {"photo": 1.0, "painting": 1.0},
    }
    c = checks_of(world, 3000)
    for detail in ("colour", "pattern", "size", "background", "domain"):
        assert c[f"data/mention/{detail}"] == pytest.approx(0.3, abs=0.04), detail
    assert c["data/mention/class"] == pytest.approx(0.5, abs=0.04)
    assert c["data/domain/photo"] == pytest.approx(0.5, abs=0.04) and c["data/domain/sketch"] == 0.0
    assert c["data/domain/photo"] + c["data/domain/painting"] == pytest.approx(1.0)
    # clip-classname feeds the text tower class-name prompts, not the captions: the class always, no
    # detail, and 10 classes x 4 templates = 40 texts, so a row shares its text with another of the 63
    # others in its batch with probability 1 - (39/40)^63
    named = checks_of(world, 3000, "clip-classname")
    assert named["data/mention/class"] == 1.0 and named["data/mention/colour"] == 0.0
    assert named["data/duplicate_caption_share"] == pytest.approx(1 - (39 / 40) ** 63, abs=0.03)
    assert named["data/duplicate_caption_share"] > c["data/duplicate_caption_share"]
    assert named["data/same_class_pair_share"] == c["data/same_class_pair_share"]  # same data, same batches


def test_checks_read_a_world_at_scale():
    """Generated habitats and the extra colours, patterns and sizes of a world at scale have their words
    (a caption names them as often as the level says)."""
    from clipshift.world.hierarchy import scale_overrides

    world = {**scale_overrides(400), "captions": {"level": "full", "detail_prob": 1.0}}
    c = checks_of(world, 1024, batch_size=256)
    for detail in ("class", "background", "colour", "pattern", "size"):
        assert c[f"data/mention/{detail}"] == 1.0, detail


ZIPF20 = {"concepts": {"n_classes": 20}, "frequency": {"profile": "zipf", "alpha": 1.5}}


def test_class_imbalance_and_batches():
    c = checks_of(ZIPF20, 2000)
    assert c["data/imbalance"] > 10 and c["data/gini"] > 0.5 and c["data/rows"] == 2000
    # the batches the loop takes (epoch_order, 31 steps of 64 per epoch, 2 epochs), counted by hand
    labels = World(WorldSpec.model_validate(ZIPF20)).split("train", 2000).labels
    per = [
        len(set(labels[epoch_order(2000, 0, e)[i * 64 : (i + 1) * 64]].tolist()))
        for e in range(2)
        for i in range(2000 // 64)
    ]
    assert c["data/classes_per_batch_mean"] == pytest.approx(np.mean(per))
    assert (c["data/classes_per_batch_min"], c["data/classes_per_batch_max"]) == (min(per), max(per))
    assert max(per) < 20  # a Zipf batch of 64 misses rare classes
    # CLIP contrasts the batch: the classes it scores are the batch's distinct classes
    assert c["objective/classes_scored_mean"] == c["data/classes_per_batch_mean"]
    assert c["objective/scored_share"] == pytest.approx(c["data/classes_per_batch_mean"] / 20)
    uniform = checks_of({"concepts": {"n_classes": 20}}, 2000)
    assert uniform["data/imbalance"] < 1.3 and uniform["data/gini"] < 0.05


@pytest.mark.parametrize("k", [3, 19])
def test_dynamic_k_binds_only_above_the_classes_a_batch_holds(k):
    """Batches of 16 rows from 20 classes hold at most 16: K = 3 never tops up (it scores the classes
    present, so K does not act); K = 19 tops up every step and scores exactly 19."""
    c = checks_of({"concepts": {"n_classes": 20}}, 800, "dynamic", batch_size=16, dynamic_k=k)
    assert c["data/classes_per_batch_max"] <= 16
    if k == 3:
        assert c["objective/topped_up_share"] == 0.0
        assert c["objective/classes_scored_mean"] == c["data/classes_per_batch_mean"]
    else:
        assert c["objective/topped_up_share"] == 1.0 and c["objective/classes_scored_mean"] == 19
    assert c["objective/scored_share"] == pytest.approx(c["objective/classes_scored_mean"] / 20)


def test_dynamic_measures_follow_each_ranks_slice():
    """Under DDP each rank chooses from its half of the global batch: fewer classes present per choice."""
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    batches = np.array([[0, 1, 2, 3, 4, 5, 6, 7]])
    cfg_ = ObjectiveConfig.model_validate({"name": "dynamic", "dynamic_k": 3})
    one = build_objective(cfg_, np.ones(4)).measures(labels, batches, 4)
    two = build_objective(cfg_, np.ones(4), world_size=2).measures(labels, batches, 4)
    assert one["objective/topped_up_share"] == 0.0 and one["objective/classes_scored_mean"] == 4
    assert two["objective/topped_up_share"] == 0.0 and two["objective/classes_scored_mean"] == 4
    halves = np.array([[0, 4, 1, 5, 2, 6, 3, 7]])  # each rank sees 2 classes: topped up to 3
    two = build_objective(cfg_, np.ones(4), world_size=2).measures(labels, halves, 4)
    assert two["objective/topped_up_share"] == 1.0 and two["objective/classes_scored_mean"] == 3


# ------------------------------------------------------------------------------------- real runs


@pytest.mark.parametrize(
    "over",
    [
        {"objective": {"name": "clip"}},
        # 20 classes, batches of 8: at most 8 present, so K = 12 tops up every step
        {
            "objective": {"name": "dynamic", "dynamic_k": 12},
            "data": {"world": {"concepts": {"n_classes": 20}}},
            "optim": {"batch_size": 8},
        },
    ],
    ids=["clip", "dynamic"],
)
def test_checks_and_snapshots_change_no_number(tmp_path, monkeypatch, over):
    """The checks and the snapshots are computed beside training: a run with neither has the same weights
    and losses. final.json holds the checks, every one with a declared unit."""
    rec = train(cfg(snapshots=[0.5], **over), tmp_path / "with", progress=False)
    monkeypatch.setattr(run_mod, "run_checks", lambda *a, **k: {})
    bare = train(cfg(**over), tmp_path / "without", progress=False)
    assert same(
        state(tmp_path / "with/checkpoints/final.pt"), state(tmp_path / "without/checkpoints/final.pt")
    )
    losses = [[json.loads(x)["loss"] for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
              for r in ("with", "without")]  # fmt: skip
    assert losses[0] == losses[1] and bare["checks"] == {}
    checks = rec["checks"]
    assert json.loads((tmp_path / "with/final.json").read_text())["checks"] == checks
    assert all(is_declared(k) for k in checks), [k for k in checks if not is_declared(k)]
    assert rec["snapshots"] == {"0.50": "checkpoints/at-0.50.pt"} and rec["checks_s"] < 5
    assert checks["loss/last"] < checks["loss/first"] and np.isfinite(checks["loss/slope_last_fifth"])
    if over["objective"]["name"] == "clip":
        assert {"logit_scale/first", "logit_scale/last", "logit_scale/max"} <= checks.keys()
        assert checks["data/mention/class"] == 1.0 and "objective/topped_up_share" not in checks
    else:
        assert checks["objective/topped_up_share"] == 1.0 and checks["objective/classes_scored_mean"] == 12
        assert checks["data/classes_per_batch_max"] <= 8 and "data/mention/class" not in checks


def test_snapshots_survive_an_interruption_and_load_as_models(tmp_path):
    """12 steps, snapshots after steps 3 and 9, checkpoints every 2: interrupted after step 5, the first
    snapshot is on disk already and the second is taken after the resume; both hold the weights of an
    uninterrupted run, in final.pt's format."""
    from clipshift.evaluate import open_model

    c = cfg(epochs=2, checkpoint_every=2, snapshots=[0.25, 0.75], log_every=2)
    train(c, tmp_path / "full", progress=False)
    assert train(c, tmp_path / "r", progress=False, stop_after=5)["status"] == "interrupted"
    assert (tmp_path / "r/checkpoints/at-0.25.pt").is_file() and not (
        tmp_path / "r/checkpoints/at-0.75.pt"
    ).exists()
    first = (tmp_path / "r/checkpoints/at-0.25.pt").stat().st_mtime_ns
    rec = train(c, tmp_path / "r", progress=False)
    assert rec["snapshots"] == {"0.25": "checkpoints/at-0.25.pt", "0.75": "checkpoints/at-0.75.pt"}
    assert (tmp_path / "r/checkpoints/at-0.25.pt").stat().st_mtime_ns == first  # not taken again
    for name in ("at-0.25.pt", "at-0.75.pt", "final.pt"):
        assert same(state(tmp_path / "full/checkpoints" / name), state(tmp_path / "r/checkpoints" / name)), (
            name
        )
    assert not same(state(tmp_path / "r/checkpoints/at-0.25.pt"), state(tmp_path / "r/checkpoints/final.pt"))
    model = open_model(tmp_path / "r/checkpoints/at-0.75.pt")
    assert model.kind == "clip" and same(
        model.module.state_dict(), state(tmp_path / "r/checkpoints/at-0.75.pt")
    )


def test_snapshots_are_numerics_free():
    from clipshift.study.planner import run_id
    from clipshift.study.spec import RunConfig

    a = RunConfig.model_validate({**TINY, "snapshots": [0.3]})
    b = RunConfig.model_validate(TINY)
    assert run_id(a) == run_id(b)
    assert b.train_config().snapshots == [0.5, 0.75]  # the convergence check's points
    assert a.train_config().snapshots == [0.3, 0.5, 0.75]
    with pytest.raises(ValueError, match="not a fraction of training"):
        TrainConfig.model_validate({"snapshots": [1.0]})
    with pytest.raises(ValueError, match=r"same name at-0\.50\.pt"):
        TrainConfig.model_validate({"snapshots": [0.5, 0.501]})
