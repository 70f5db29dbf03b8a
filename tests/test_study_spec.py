"""Study specs and plans: validation errors located in the study file, grid x zip x seeds expansion,
hash-based run ids, profiles and overrides, `clipshift study plan`. Nothing is trained here."""

import copy
import json

import pytest
import yaml

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.study import HASH_EXCLUDE, load_study, parse_study, plan, resolve, run_id
from clipshift.study.planner import canonical_config
from clipshift.study.spec import DEFAULT_RUN_THREADS

SPEC = {
    "name": "bg",
    "base": {
        "data": {"kind": "world", "n": 8000, "world": {"backgrounds": {"rho": 0.9}}},
        "objective": {"name": "clip"},
        "epochs": 2,
        "eval": {"sets": ["iid", "common", "counter"], "n_per_set": 1000},
    },
    "grid": {"objective.name": ["clip", "supervised"], "data.world.backgrounds.rho": [0.5, 0.9]},
    "zip": [{"data.n": [4000, 16000], "optim.batch_size": [128, 256]}],
    "seeds": [0, 1, 2],
    "profiles": {"quick": {"data.n": 4000, "epochs": 1, "seeds": [0]}, "gpu": {"device": "cuda"}},
    "analyses": [{"kind": "spurious_drop", "compare": "objective.name"}],
}


def spec(**changes):
    d = copy.deepcopy(SPEC)
    for k, v in changes.items():
        d[k] = v
    return parse_study(d, "study.yaml")


def error(data_or_spec, **kw) -> str:
    with pytest.raises(UserError) as e:
        s = data_or_spec if not isinstance(data_or_spec, dict) else parse_study(data_or_spec, "study.yaml")
        plan(s, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_plan_expands_grid_zip_and_seeds_with_seeds_outermost():
    runs = plan(spec())
    assert len(runs) == 2 * 2 * 2 * 3 == spec().n_points()
    assert [r.seed for r in runs] == [0] * 8 + [1] * 8 + [2] * 8
    first = runs[0]
    assert first.factors == {
        "objective.name": "clip",
        "data.world.backgrounds.rho": 0.5,
        "data.n": 4000,
        "optim.batch_size": 128,
    }
    assert first.config.data.n == 4000 and first.config.optim.batch_size == 128  # zipped together
    assert runs[1].factors["data.n"] == 16000 and runs[1].config.optim.batch_size == 256
    assert first.config.data.world.backgrounds.rho == 0.5 and first.config.epochs == 2
    assert first.config.eval.sets == ["iid", "common", "counter"]
    assert {r.config.seed for r in runs} == {0, 1, 2}
    assert len({r.run_id for r in runs}) == 24
    assert (
        first.label()
        == "objective.name=clip data.world.backgrounds.rho=0.5 data.n=4000 optim.batch_size=128 seed=0"
    )


def test_run_ids_are_hashes_of_the_resolved_config():
    a, b = plan(spec()), plan(spec())
    assert [r.run_id for r in a] == [r.run_id for r in b]
    r = a[0]
    assert r.run_id == run_id(r.config) and len(r.run_id) == 12 and int(r.run_id, 16) >= 0
    # fields that cannot change results are not part of the id ...
    assert set(HASH_EXCLUDE) >= {"log_every", "checkpoint_every"}
    quiet = r.config.model_copy(update={"log_every": 99, "checkpoint_every": 7})
    assert run_id(quiet) == r.run_id
    # ... everything else is, the thread count included (on CPU it changes the last bits of the numbers):
    # a run leaves the planner with a fixed count, so every executor and machine runs it identically
    assert r.config.threads == DEFAULT_RUN_THREADS and "threads" not in HASH_EXCLUDE
    assert run_id(r.config.model_copy(update={"threads": 3})) != r.run_id
    assert run_id(r.config.model_copy(update={"epochs": 3})) != r.run_id
    assert (
        run_id(r.config.model_copy(update={"eval": r.config.eval.model_copy(update={"n_per_set": 5})}))
        != r.run_id
    )


def test_specs_that_resolve_identically_share_runs_and_duplicates_run_once():
    explicit = plan(spec(base={**SPEC["base"], "optim": {"lr": 2e-3}, "device": "auto"}))
    assert [r.run_id for r in explicit] == [r.run_id for r in plan(spec())]  # defaults written out
    dup = plan(spec(grid={"objective.name": ["clip", "clip"]}, zip=[], seeds=[0]))
    assert (
        len(dup) == 1 and spec(grid={"objective.name": ["clip", "clip"]}, zip=[], seeds=[0]).n_points() == 2
    )


def test_profiles_and_overrides():
    quick = resolve(spec(), "quick")
    assert quick.profile_used == "quick" and quick.profile is None and quick.seeds == [0]
    assert quick.base["epochs"] == 1
    runs = plan(spec(), profile="quick")
    assert len(runs) == 8 and all(r.config.epochs == 1 for r in runs)
    assert plan(quick) == runs  # resolving again changes nothing (study.yaml is the resolved spec)
    # the default profile, a run-config --set that wins over the profile, and study-level --set
    assert all(r.config.epochs == 1 for r in plan(spec(profile="quick")))
    over = plan(spec(profile="quick"), overrides=["epochs=3", "grid.objective.name=[siglip]", "zip=[]"])
    assert len(over) == 2 and all(r.config.epochs == 3 and r.config.objective.name == "siglip" for r in over)
    late = resolve(spec(), "quick", ["seeds=[5]", "base.epochs=4", "profiles.quick.data.n=64"])
    assert late.seeds == [5] and late.base["epochs"] == 4 and late.base["data"]["n"] == 64
    # a nested map merges into base; a data source of another kind replaces it
    merged = resolve(spec(profiles={"p": {"data": {"n": 10}}}), "p").base["data"]
    assert merged == {"kind": "world", "n": 10, "world": {"backgrounds": {"rho": 0.9}}}
    real = {"data": {"kind": "csv", "path": "x.csv"}, "eval.sets": ["imagefolder:val"]}
    csv = resolve(spec(grid={}, zip=[], analyses=[], profiles={"p": real}), "p")
    assert csv.base["data"] == {"kind": "csv", "path": "x.csv"}
    # world set names need world training data, and are checked before anything trains
    assert "base.eval.sets[0] = 'iid': world set 'iid' needs world training data" in error(
        spec(grid={}, zip=[], analyses=[], profiles={"p": {"data": real["data"]}}), profile="p"
    )


def ids_study(grid, seeds=(0,), **base):
    return parse_study(
        {"name": "ids", "base": {"data": {"n": 64}, **base}, "grid": grid, "seeds": list(seeds)}
    )


def test_a_runs_identity_covers_only_what_its_objective_and_model_read():
    """A setting that cannot reach a run makes no new run: a supervised model reads no captions, a clip
    run none of dynamic's options, a classifier no tokenizer. Deduplicated points keep the first one's
    factors."""
    levels = ["template", "attributes", "full"]
    runs = plan(
        ids_study({"objective.name": ["clip", "supervised"], "data.world.captions.level": levels}, (0, 1))
    )
    assert [(r.config.objective.name, r.factors["data.world.captions.level"], r.seed) for r in runs] == [
        *[("clip", level, 0) for level in levels],
        ("supervised", "template", 0),
        *[("clip", level, 1) for level in levels],
        ("supervised", "template", 1),
    ]
    assert len({r.run_id for r in runs}) == len(runs) == 8
    clip, sup = runs[0], runs[3]
    assert "captions" in canonical_config(clip.config)["data"]["world"]
    assert "captions" not in canonical_config(sup.config)["data"]["world"]
    assert "tokenizer" not in canonical_config(sup.config)["model"]

    # a base setting dynamic's K (or an axis over it) does not multiply or change the clip runs
    ks = plan(ids_study({"objective.name": ["clip", "dynamic"], "objective.dynamic_k": [3, 6]}))
    assert [(r.config.objective.name, r.factors["objective.dynamic_k"]) for r in ks] == [
        ("clip", 3),
        ("dynamic", 3),
        ("dynamic", 6),
    ]
    assert ks[0].config.objective.model_dump() == {"name": "clip"}
    plain = plan(ids_study({"objective.name": ["clip"]}))
    assert ks[0].run_id == plan(ids_study({"objective.name": ["clip"]}, objective={"dynamic_k": 9}))[0].run_id
    assert ks[0].run_id == plain[0].run_id

    # a classifier's tokenizer setting is moot; its context length is not (it shifts the RNG draws of the
    # head's initialisation), and everything a clip run reads stays in its identity
    grid = {"model.tokenizer": ["openclip", "vocab"], "model.context_length": [16, 32]}
    assert len(plan(ids_study({"objective.name": ["supervised"], **grid}))) == 2
    assert len(plan(ids_study({"objective.name": ["clip"], **grid}))) == 4
    assert (
        len(
            plan(
                ids_study(
                    {"objective.name": ["dynamic", "clip"], "data.world.captions.detail_prob": [0.3, 1]}
                )
            )
        )
        == 3
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"grid": {"objective.name": ["clip", "supervised", "clipp"]}},
            "study.yaml: grid.objective.name[2] = 'clipp': Input should be 'clip', 'siglip'",
        ),
        ({"grid": {"objective.nme": ["clip"]}}, "study.yaml: grid.objective.nme: unknown field"),
        (
            {"grid": {"objective": [{"name": "clip"}, {"nam": "x"}]}},
            "study.yaml: grid.objective[1].nam: unknown field",
        ),
        (
            {"grid": {"data.world.backgrounds.rho": [0.5, 2]}},
            "study.yaml: grid.data.world.backgrounds.rho[1] = 2: Input should be less than or equal to 1",
        ),
        (
            {"zip": [{"data.n": [4000, -1], "optim.batch_size": [1, 2]}]},
            "study.yaml: zip[0].data.n[1] = -1: Input should be greater than or equal to 1",
        ),
        (
            {"zip": [{"data.n": [1], "optim.batch_size": [1, 2]}]},
            "study.yaml: zip[0]: axes that vary together",
        ),
        ({"base": {"epochz": 1}}, "study.yaml: base.epochz: unknown field"),
        (
            {"base": {"data": {"n": 5, "world": {"concepts": {"n_classes": "x"}}}}},
            "base.data.world.concepts.n_classes = 'x'",
        ),
        ({"profiles": {"quick": {"epochs": 0}}, "profile": "quick"}, "study.yaml: profiles.quick.epochs = 0"),
        ({"seeds": [0, -1]}, "study.yaml: seeds[1] = -1"),
        (
            {"grid": {"objective.name": "clip"}},
            "study.yaml: grid.objective.name = 'clip': Input should be a valid list",
        ),
        (
            {"grid": {"seed": [1, 2]}},
            "study.yaml: grid.seed: not a run-config path (list seeds under `seeds`)",
        ),
        ({"gird": {}}, "study.yaml: gird: unknown field"),
        (
            {"analyses": [{"kind": "spurious_drop", "compare": "objective.nme"}]},
            "analyses[0].compare = 'objective.nme'",
        ),
        ({"profile": "fast"}, "study.yaml: profile 'fast' is not in profiles (quick, gpu)"),
        (
            {"grid": {"eval.sets": [["iid"], ["iid", "cuonter"]]}},
            "grid.eval.sets[1][1] = 'cuonter': unknown split",
        ),
        (
            {"grid": {"eval.sets": [["iid", "counter", "iid"]]}},
            "evaluation set 'iid' is listed twice",
        ),
    ],
)
def test_validation_errors_name_the_place_in_the_study_file(change, expected):
    data = copy.deepcopy(SPEC)
    data.update(change)
    assert expected in error(data)


def test_override_errors_name_the_override():
    assert "--set epochs = -1" in error(spec(), overrides=["epochs=-1"])


def test_cli_plan_lists_runs_and_reports_spec_errors_in_one_line(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    assert main(["study", "plan", str(path), "--profile", "quick"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split() == [
        "run_id",
        "objective.name",
        "data.world.backgrounds.rho",
        "data.n",
        "optim.batch_size",
        "seed",
    ]
    assert len(lines) == 1 + 8 and "study bg, profile quick: 8 runs" in err
    assert main(["study", "plan", str(path), "--set", "seeds=[4]", "--set", "zip=[]", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["runs"]) == 4 and {r["seed"] for r in data["runs"]} == {4}
    assert (
        data["runs"][0]["config"]["seed"] == 4
        and data["runs"][0]["run_id"] == plan(load_study(path), overrides=["seeds=[4]", "zip=[]"])[0].run_id
    )

    assert main(["study", "plan", str(path), "--set", "grid.objective.name=[clip,clipp]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"clipshift: error: {path}: grid.objective.name[1] = 'clipp'") and "\n" not in err
    path.write_text("name: x\ngrid: [")
    assert main(["study", "plan", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_executor_choices_and_ray_resource_requests():
    from clipshift.study.executors import make_executor, run_resources

    assert run_resources({"threads": 4, "device": "cuda"}) == {"num_cpus": 4.0, "num_gpus": 1.0}
    assert run_resources({"threads": None, "device": "auto"}) == {"num_cpus": 1.0, "num_gpus": 0.0}
    with pytest.raises(UserError, match="--workers 2: the local executor runs one run at a time"):
        make_executor("local", workers=2)
    with pytest.raises(UserError, match="choose from local, process, ray"):
        make_executor("slurm")
    local = make_executor("local")
    assert local.in_process and not make_executor("process", workers=1).in_process


def _task(threads: int, device: str = "auto"):
    from clipshift.study.execute import RunTask

    return RunTask(f"r{threads}", {"threads": threads, "device": device}, {}, 0, "s", "/nowhere")


def test_ray_slots_come_from_each_runs_own_resources():
    """A heterogeneous study on a 4-CPU cluster: whether a run may start depends on its own threads and
    those of the runs in flight, not on the first run's; a run that can never fit is refused, not queued."""
    from clipshift.study.executors import RayExecutor

    ray_ex = object.__new__(RayExecutor)  # the scheduling logic without starting a cluster
    ray_ex.slots, ray_ex._total, ray_ex._refused = 1_000_000, {"CPU": 4.0}, []
    one, two, three = _task(1), _task(2), _task(3)
    assert ray_ex.can_start(three, [])  # an idle cluster takes any run that fits it
    assert ray_ex.can_start(two, [two]) and not ray_ex.can_start(three, [two])
    assert ray_ex.can_start(one, [three]) and not ray_ex.can_start(one, [two, two])
    assert not ray_ex.can_start(one, [_task(1, "cuda")])  # no GPU on this cluster
    ray_ex.submit(_task(8))
    (refused,) = ray_ex.wait()
    assert refused.status == "failed" and "needs 8 CPU" in (refused.reason or "")
    assert "the cluster has 4" in (refused.reason or "")
    ray_ex.slots = 1  # --workers 1 caps the runs at once whatever their size
    assert not ray_ex.can_start(one, [one])
