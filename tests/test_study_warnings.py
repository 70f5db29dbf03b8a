"""Plan-time warnings (`clipshift.study.inert`): a factor that provably cannot act is named before anything
runs, by `study plan` and by `study run` (which also records it in the store)."""

import json

import pytest
import torch
import yaml

from clipshift.cli.main import main
from clipshift.study import ResultsStore, parse_study, plan, run_study
from clipshift.study.inert import plan_warnings


def warnings_of(spec: dict) -> list[str]:
    s = parse_study(spec)
    return plan_warnings(s, plan(s))


def study(grid: dict, n_classes: int = 10, batch_size: int = 128, **base) -> dict:
    data = {"kind": "world", "n": 4096, "world": {"concepts": {"n_classes": n_classes}}}
    return {"name": "w", "base": {"data": data, "optim": {"batch_size": batch_size}, **base}, "grid": grid}


def test_a_k_below_the_classes_per_batch_is_named_and_a_binding_k_is_not():
    # 10 uniform classes, batches of 128: every batch holds all 10, so K = 3 is never reached
    w = warnings_of(study({"objective.dynamic_k": [3, 8]}, objective={"name": "dynamic"}))
    assert w == [
        "dynamic_k = 3 cannot act in any run of the study: a batch of 128 holds 10.0 classes on average "
        "(at least 3 in 100.0 % of batches), and dynamic scores the classes present",
        "dynamic_k = 8 cannot act in any run of the study: a batch of 128 holds 10.0 classes on average "
        "(at least 8 in 100.0 % of batches), and dynamic scores the classes present",
    ]
    # 200 classes, batches of 32: about 30 present, so K = 50 tops up every step and K = 20 does not
    w = warnings_of(study({"objective.dynamic_k": [20, 50]}, 200, 32, objective={"name": "dynamic"}))
    assert len(w) == 1 and w[0].startswith(
        "dynamic_k = 20 cannot act in any run of the study: a batch of 32 holds 29."
    )
    # named by the factors of the runs it concerns
    w = warnings_of(study({"optim.batch_size": [4, 128]}, 10, objective={"name": "dynamic", "dynamic_k": 5}))
    assert len(w) == 1 and w[0].startswith(
        "dynamic_k = 5 cannot act in runs with optim.batch_size=128: a batch of 128"
    )
    # K at or above the label space: every step scores every class
    w = warnings_of(study({"data.n": [512, 1024]}, 10, 4, objective={"name": "dynamic", "dynamic_k": 10}))
    assert w == [
        "dynamic_k = 10 cannot act in any run of the study: the data have 10 classes, so every step "
        "scores all of them"
    ]


def test_a_zipf_profile_is_read_before_rendering():
    """The expected classes per batch come from the class counts the data will have (world labels drawn
    without rendering, after subsampling): a long tail holds fewer classes per batch than uniform data."""
    spec = study({"objective.dynamic_k": [40]}, 100, 64, objective={"name": "dynamic"})
    assert warnings_of(spec)  # uniform: ~48 classes in a batch of 64
    spec["base"]["data"]["world"]["frequency"] = {"profile": "zipf", "alpha": 1.5}
    assert warnings_of(spec) == []  # a steep tail: far fewer
    spec["base"]["data"]["world"].pop("frequency")
    spec["base"]["data"]["subsample"] = {"zipf_alpha": 1.5}
    assert warnings_of(spec) == []


def test_an_axis_that_cannot_reach_some_runs_is_named():
    spec = study(
        {"objective.name": ["clip", "supervised", "dynamic"], "data.world.captions.level": ["name", "full"]},
        100,
        4,
        objective={"dynamic_k": 50},
    )
    w = warnings_of(spec)
    assert w == [
        "data.world.captions.level does not reach runs with objective.name=supervised or dynamic "
        "(one run serves all its levels)"
    ]
    spec["grid"] = {
        "objective.name": ["clip", "dynamic"],
        "objective.dynamic_k": [20, 50],
        "log_every": [1, 5],
    }
    w = warnings_of(spec)
    assert (
        w[0]
        == "objective.dynamic_k does not reach runs with objective.name=clip (one run serves all its levels)"
    )
    assert w[1] == "log_every does not reach any run of the study (one run serves all its levels)"
    assert len(w) == 2
    assert (
        warnings_of(study({"objective.name": ["clip", "siglip"], "data.world.captions.level": ["name"]}))
        == []
    )


def test_plan_prints_and_run_records_the_warnings(tmp_path, capsys):
    n = torch.get_num_threads()
    spec = study(
        {"data.world.captions.level": ["name", "full"]},
        5,
        64,
        objective={"name": "supervised"},
        eval={"sets": ["iid"], "n_per_set": 40, "convergence_points": []},
    )
    spec["base"]["data"]["n"] = 128
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    line = "warning: data.world.captions.level does not reach any run of the study"
    line += " (one run serves all its levels)"
    assert main(["study", "plan", str(path), "--json"]) == 0
    out = capsys.readouterr()
    assert line in out.err and json.loads(out.out)["warnings"] == [line.removeprefix("warning: ")]
    try:
        summary = run_study(path, tmp_path / "s", progress=False)
    finally:
        torch.set_num_threads(n)
    assert summary.ok and summary.warnings == [line.removeprefix("warning: ")]
    assert line in capsys.readouterr().err  # printed even without progress lines
    with ResultsStore(tmp_path / "s" / "results.sqlite") as store:
        assert store.get_meta("warnings") == summary.warnings
        rows = store.results()
    assert {r["task"] for r in rows} >= {"checks", "classification"} and "convergence" not in {
        r["task"] for r in rows
    }


@pytest.mark.parametrize("bad", [[0.0], [1.0], [0.5, 0.5]])
def test_convergence_points_are_checked(bad):
    from clipshift.errors import UserError

    spec = study({}, eval={"convergence_points": bad})
    with pytest.raises(UserError, match="convergence_points"):
        plan(parse_study(spec))
