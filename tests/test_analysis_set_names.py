"""An analysis names an evaluation set as the results do (a world set's name, a real-data set's spec
`imagenet:/data/imagenet/val`) or a real-data set by its dataset kind (`x: imagenet`, as the shipped
studies' full profiles do) when the study evaluates one set of that kind: the same finding as naming the
spec. A kind several sets share, or a name no set has, is one line at `study plan`."""

from __future__ import annotations

import dataclasses

import pytest
from test_report import OBJ, make_study

from clipshift.analysis.base import named_set
from clipshift.analysis.wording import NO_SUPPORT
from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.report.data import read_study_dir
from clipshift.report.findings import findings

VAL, SKETCH = "imagenet:/some/path/val", "imagenet-sketch:/some/path/sketch"
SETS = ["iid", "counter", VAL, SKETCH, "counteranimal:/d/ca"]


def test_a_name_is_a_set_or_the_one_set_of_that_dataset_kind():
    assert named_set("counter", SETS) == "counter"  # not counteranimal:…: a kind is the whole prefix
    assert named_set(VAL, SETS) == VAL
    assert named_set("imagenet", SETS) == VAL  # not imagenet-sketch:…
    assert named_set("counteranimal", SETS) == "counteranimal:/d/ca"
    assert named_set("imagenet-r", SETS) == "imagenet-r"  # none: the analysis finds no rows and says so
    with pytest.raises(UserError) as e:
        named_set("imagenet", [*SETS, "imagenet:/other/val"])
    assert str(e.value) == (
        f"2 evaluated sets have dataset kind 'imagenet' ({VAL}, imagenet:/other/val); name one by its spec"
    )


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The planted study (tests/test_report.py) with iid and sketch results named as real-data sets."""
    data = read_study_dir(make_study(tmp_path_factory.mktemp("planted"), seeds=(0, 1), failed=False))
    rename = {"iid": VAL, "sketch": SKETCH}
    rows = [{**r, "eval_set": rename.get(r["eval_set"], r["eval_set"])} for r in data.rows]
    return dataclasses.replace(data, rows=rows)


def _finding(data, analysis: dict):
    (f,) = findings(dataclasses.replace(data, spec={**data.spec, "analyses": [analysis]}), n_boot=50)
    return f


@pytest.mark.parametrize(
    ("by_kind", "by_spec"),
    [
        ({"x": "imagenet", "y": ["imagenet-sketch"]}, {"x": VAL, "y": [SKETCH]}),
        ({"x": "imagenet"}, {"x": VAL}),  # y: every other set, the x set itself not among them
    ],
)
def test_effective_robustness_names_imagenet_by_its_kind(real, by_kind, by_spec):
    er = {"kind": "effective_robustness", "baseline": {OBJ: "supervised"}, "compare": OBJ}
    f = _finding(real, {**er, **by_kind})
    assert f.to_dict() == _finding(real, {**er, **by_spec}).to_dict()
    assert not any("no run has" in c for c in f.conclusions), f.conclusions  # it found its rows
    shifts = {n["eval_set"] for n in f.numbers if n["what"] == "effective_robustness"}
    assert SKETCH in shifts and VAL not in shifts


def test_long_tail_names_its_set_by_kind(real):
    f = _finding(real, {"kind": "long_tail", "eval_set": "imagenet", "compare": OBJ})
    assert f.to_dict() == _finding(real, {"kind": "long_tail", "eval_set": VAL, "compare": OBJ}).to_dict()
    assert f.numbers and f"Long-tail statistics on {VAL}" in f.tables[0].title


def test_a_kind_several_sets_share_is_a_sentence_in_the_report(real):
    rows = [
        *real.rows,
        *[{**r, "eval_set": "imagenet:/other/val"} for r in real.rows if r["eval_set"] == VAL],
    ]
    f = _finding(dataclasses.replace(real, rows=rows), {"kind": "effective_robustness", "x": "imagenet"})
    assert f.conclusions == [
        f"{NO_SUPPORT}: x = 'imagenet' (effective_robustness): 2 evaluated sets have dataset kind 'imagenet' "
        f"(imagenet:/other/val, {VAL}); name one by its spec"
    ]


@pytest.mark.parametrize(
    ("analysis", "error"),
    [
        (
            "{kind: effective_robustness, x: imagenet, y: [imagenet-r]}",
            "analyses[1].x = 'imagenet' (effective_robustness): 2 evaluated sets have dataset kind "
            "'imagenet' (imagenet:/data/a/val, imagenet:/data/b/val); name one by its spec",
        ),
        (
            "{kind: long_tail, eval_set: imagnet}",
            "analyses[1].eval_set = 'imagnet' (long_tail): names no evaluated set (the runs evaluate iid, "
            "imagenet:/data/a/val, imagenet:/data/b/val, imagenet-r:/data/r)",
        ),
        (
            "{kind: effective_robustness, x: 'imagenet:/data/a/val', y: [imagenet-r, sketch]}",
            "analyses[1].y[1] = 'sketch' (effective_robustness): names no evaluated set",
        ),
        (  # CounterAnimal's common and counter are groups of its one set, not two sets
            "{kind: spurious_drop, compare: objective.name}",
            "analyses[1].common = 'common' (spurious_drop): names no evaluated set",
        ),
    ],
)
def test_study_plan_refuses_a_set_name_it_cannot_match_in_one_line(analysis, error, tmp_path, capsys):
    """Checked when the study is planned (the sets' folders need not exist yet)."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nbase:\n  data: {kind: world, n: 64}\n"
        '  eval: {sets: [iid, "imagenet:/data/a/val", "imagenet:/data/b/val", "imagenet-r:/data/r"]}\n'
        "grid: {objective.name: [clip, supervised]}\n"
        "analyses:\n  - {kind: effective_robustness, x: 'imagenet:/data/b/val', y: [imagenet-r]}\n"
        f"  - {analysis}\n"
    )
    assert main(["study", "plan", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"clipshift: error: {spec}: {error}"), err
