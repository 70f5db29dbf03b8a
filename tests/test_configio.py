"""The one override rule (`--set` of every command, study profiles and axes) and the one default data
source (`clipshift train` and studies)."""

import pytest

from clipshift.configio import apply_overrides, set_path
from clipshift.data.config import DEFAULT_DATA, with_default_source
from clipshift.errors import UserError


def test_a_mapping_merges_unless_its_kind_differs():
    base = {"data": {"kind": "world", "n": 5, "world": {"backgrounds": {"rho": 0.9}}}, "epochs": 1}
    merged = apply_overrides(base, ["data={n: 10, world: {captions: {level: full}}}"])
    assert merged["data"] == {
        "kind": "world",
        "n": 10,
        "world": {"backgrounds": {"rho": 0.9}, "captions": {"level": "full"}},
    }
    replaced = apply_overrides(base, ["data={kind: csv, path: x.csv}"])
    assert replaced["data"] == {"kind": "csv", "path": "x.csv"}  # another source inherits nothing
    assert apply_overrides(base, ["epochs=3", "optim.lr=0.001"]) == {
        **base,
        "epochs": 3,
        "optim": {"lr": 0.001},
    }
    assert base["data"]["n"] == 5  # the input is not changed
    # the same function, in place, is what studies use
    tree = {"objective": {"name": "clip"}}
    set_path(tree, ["objective"], {"dynamic_k": 3})
    assert tree == {"objective": {"name": "clip", "dynamic_k": 3}}


def test_a_path_through_a_value_is_one_clear_error():
    with pytest.raises(UserError) as e:
        apply_overrides({"eval": {"sets": ["iid"]}}, ["eval.sets.n=3"])
    assert str(e.value) == "override 'eval.sets.n=3': sets is not a mapping"
    with pytest.raises(UserError, match=r"expected dotted\.path=value"):
        apply_overrides({}, ["epochs"])


def test_the_world_is_the_default_data_source():
    assert with_default_source({})["data"] == DEFAULT_DATA
    assert with_default_source({"data": None})["data"] == DEFAULT_DATA
    assert with_default_source({"data": {"n": 3}})["data"] == {"kind": "world", "n": 3}
    csv = {"data": {"kind": "csv", "path": "x"}}
    assert with_default_source(csv) == csv and with_default_source(csv)["data"] is not csv["data"]
    from clipshift.train import TrainConfig

    assert TrainConfig().data.model_dump(include={"kind", "n"}) == DEFAULT_DATA
