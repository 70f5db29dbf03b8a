"""Every registered objective, through the real trainer: it trains two steps, and a run interrupted after
the first and resumed ends with the very same weights. A new objective is tested here by registering it.

An objective that reads no captions resumes under *other* captions (another caption level of the same
world): the captions cannot reach it, so the resume check lets it continue and its weights are those of
the run that never saw them. This is what lets a run's identity leave caption settings out for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from clipshift.data import world_table
from clipshift.errors import UserError
from clipshift.objectives import OBJECTIVES
from clipshift.train import TrainConfig, train
from clipshift.world import World, WorldSpec

WORLD: dict[str, Any] = {"concepts": {"n_classes": 4}}
LEVELS = ("template", "full")


def config(name: str, level: str, **objective: Any) -> TrainConfig:
    world = {**WORLD, "captions": {"level": level}}
    return TrainConfig.model_validate(
        {
            "data": {"kind": "world", "n": 32, "world": world},
            "model": {"tokenizer": "vocab"},
            "objective": {"name": name, **objective},
            "optim": {"batch_size": 16},  # two steps
            "log_every": 1,
            "threads": 2,
        }
    )


@pytest.fixture(scope="module")
def tables():
    """The training split at two caption levels: the same images and labels, other captions."""
    out = {}
    for level in LEVELS:
        spec = WorldSpec.model_validate({**WORLD, "captions": {"level": level}})
        out[level] = world_table(World(spec).split("train", 32))
    assert torch.equal(out["template"].images, out["full"].images)
    assert (out["template"].labels == out["full"].labels).all()
    assert out["template"].captions != out["full"].captions
    return out


@pytest.fixture(scope="module")
def clip_run(tables, tmp_path_factory) -> str:
    """A CLIP run directory, for objectives that read one (`texthead_from`)."""
    run = tmp_path_factory.mktemp("clip") / "run"
    train(config("clip", "template"), run, table=tables["template"], progress=False)
    return str(run)


def options(name: str, clip_run: str) -> dict[str, Any]:
    return {"texthead_from": clip_run} if "texthead_from" in OBJECTIVES[name].Options.model_fields else {}


def weights(run: Path) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = torch.load(run / "checkpoints" / "final.pt", weights_only=True)[
        "state_dict"
    ]
    return sd


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_trains_two_steps_and_resumes_to_identical_weights(name, tables, clip_run, tmp_path):
    cls = OBJECTIVES[name]
    cfg = config(name, "template", **options(name, clip_run))
    full = train(cfg, tmp_path / "full", table=tables["template"], progress=False)
    assert (
        full["status"] == "done" and full["steps"] == 2 and torch.isfinite(torch.tensor(full["final_loss"]))
    )

    part = train(cfg, tmp_path / "resumed", table=tables["template"], progress=False, stop_after=1)
    assert part == {"status": "interrupted", "step": 1}
    if cls.reads_captions:  # other captions would train other weights: refused, nothing lost
        other = config(name, "full", **options(name, clip_run))
        with pytest.raises(UserError, match=r"another config \(data\.world\.captions\.level"):
            train(other, tmp_path / "resumed", table=tables["full"], progress=False)
    level = "template" if cls.reads_captions else "full"  # captions cannot reach it: other ones resume
    again = config(name, level, **options(name, clip_run))
    resumed = train(again, tmp_path / "resumed", table=tables[level], progress=False)
    assert resumed["status"] == "done" and resumed["final_loss"] == full["final_loss"]
    a, b = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
