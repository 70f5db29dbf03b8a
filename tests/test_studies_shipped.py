"""The four shipped training studies: every profile plans, and each `full` profile runs through the real
loaders on world data exported in the real layouts (ImageNet-Captions JSON + image folders,
CounterAnimal), with the ImageNet-family evaluation folders stood in for by an ImageFolder export of the
same world."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from clipshift.analysis.spec import parse_analysis
from clipshift.report import build_report
from clipshift.study.planner import plan
from clipshift.study.runner import run_study
from clipshift.study.spec import load_study, resolve
from clipshift.study.store import ResultsStore
from clipshift.world import World
from clipshift.world.export import export_split
from clipshift.world.spec import WorldSpec

SHIPPED = sorted((Path(__file__).resolve().parent.parent / "studies").glob("*.yaml"))
# the training studies; an evaluation study (`models:`, studies/zoo.yaml) names the user's own
# checkpoints, so it cannot plan here (tests/test_eval_study.py checks it)
STUDIES = [p for p in SHIPPED if not load_study(p).evaluates]
PAPERS = {"data-diversity", "spurious-backgrounds", "rich-captions", "long-tail"}


def test_one_study_per_paper():
    assert {p.stem for p in STUDIES} == PAPERS
    assert {p.stem for p in SHIPPED} - PAPERS == {"zoo"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_profile_plans(path):
    spec = load_study(path)
    assert {"quick", "full"} <= set(spec.profiles) and spec.profile == "quick" and len(spec.seeds) >= 3
    for profile in spec.profiles:
        runs = plan(spec, profile=profile)
        assert runs and len({r.run_id for r in runs}) == len(runs)


# runs per profile (3 seeds each); rich-captions and long-tail's extended profile cross the objectives with
# settings only some of them read (captions, dynamic's K and weighting): the others are trained once per
# seed and cell
RUNS = {
    "data-diversity": {"quick": 36, "extended": 36, "full": 18},
    "long-tail": {"quick": 9, "extended": 312, "full": 24},
    "rich-captions": {"quick": 18, "extended": 18, "full": 12},
    "spurious-backgrounds": {"quick": 36, "extended": 36, "full": 6},
}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_profile_plans_its_runs_once(path):
    spec = load_study(path)
    runs = {profile: plan(spec, profile=profile) for profile in spec.profiles}
    assert {p: len(r) for p, r in runs.items()} == RUNS[path.stem]
    if path.stem == "rich-captions":
        sup = [r for r in runs["quick"] if r.config.objective.name == "supervised"]
        assert len(sup) == 3 and {r.factors["data.world.captions.level"] for r in sup} == {"template"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_no_factor_of_a_quick_profile_is_known_not_to_act(path):
    """The quick profiles are what users run first: none may compare a factor the plan already knows
    cannot act (the long-tail study once shipped dynamic_k = 3 below the 10 classes of every batch)."""
    from clipshift.study.inert import plan_warnings

    spec = load_study(path)
    inert = [w for w in plan_warnings(spec, plan(spec, profile="quick")) if "cannot act" in w]
    assert not inert, inert


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-layouts")
    world = World(WorldSpec.model_validate({"concepts": {"n_classes": 4}, "captions": {"detail_prob": 0.3}}))
    for split, n, fmt in [
        ("train", 192, "imagenet-captions"),
        ("iid", 48, "counteranimal"),
        ("iid", 48, "imagefolder"),
    ]:
        export_split(world, split, n, fmt, root / fmt, overwrite=True, progress=False)
    return root


def _localise(text: str, root: Path) -> str:
    """The study file with its /data paths pointing at the world exports; an analysis that names an
    ImageNet-family set by its dataset kind (`x: imagenet`) names its stand-in by its spec."""
    ic = root / "imagenet-captions"
    text = text.replace("/data/imagenet-captions/imagenet_captions.json", str(ic / "imagenet_captions.json"))
    text = text.replace("/data/imagenet-captions/wnid_names.tsv", str(ic / "wnids.txt"))
    text = text.replace("/data/imagenet/train", str(ic / "images"))
    text = text.replace("counteranimal:/data/counteranimal", f"counteranimal:{root / 'counteranimal'}")
    stood_in: dict[str, str] = {}  # dataset kind -> its stand-in's spec

    def stand_in(m: re.Match[str]) -> str:  # one folder name per set: results are keyed by set name
        link = root / f"imagefolder-{m.group(1)}"
        if not link.exists():
            link.symlink_to(root / "imagefolder", target_is_directory=True)
        stood_in[m.group(1)] = f"imagefolder:{link}"
        return f'"imagefolder:{link}"'

    data = yaml.safe_load(re.sub(r'"?([a-z0-9-]+):/data/[^"\s\],]+"?', stand_in, text))
    for analyses in [
        data.get("analyses") or [],
        *[p.get("analyses") or [] for p in data["profiles"].values()],
    ]:
        for a in analyses:
            for field in parse_analysis(a).set_fields():
                value = a.get(field)
                if isinstance(value, list):
                    a[field] = [stood_in.get(v, v) for v in value]
                elif value is not None:
                    a[field] = stood_in.get(value, value)
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_full_profile_runs_on_world_data_in_real_layouts(path, layouts, tmp_path):
    local = tmp_path / path.name
    local.write_text(_localise(path.read_text(), layouts))
    assert "/data/" not in local.read_text()
    spec = resolve(load_study(local), profile="full")
    # one run of the grid, tiny and on the CPU: the first value of every axis
    first = [
        f"grid.{axis}={yaml.safe_dump(values[:1], default_flow_style=True).strip()}"
        for axis, values in spec.grid.items()
    ]
    first.append(
        "zip=" + json.dumps([{axis: values[:1] for axis, values in group.items()} for group in spec.zip])
    )
    small = ["seeds=[0]", "model.name=clipshift-rn-tiny", "model.tokenizer=vocab", "epochs=1", "device=cpu",
             "optim.batch_size=32", "threads=1", "eval.templates=world"]  # fmt: skip
    out = tmp_path / "study"
    summary = run_study(local, out, profile="full", overrides=[*first, *small], progress=False)
    assert summary.ok and summary.done == 1, summary.line()
    with ResultsStore(out / "results.sqlite") as store:
        sets = {r["eval_set"] for r in store.results() if r["metric"] == "acc1"}
    assert sets == set(spec.base["eval"]["sets"]) - {"train"}
    summary = build_report(out, tmp_path / "report.html")
    # every analysis found the sets it names (a real-data set by its dataset kind, CounterAnimal's groups
    # within its one set), whatever it could conclude from one run
    said = [c for f in summary.findings for c in f.conclusions]
    assert said and not [c for c in said if "no run has" in c or "names no set" in c], said
