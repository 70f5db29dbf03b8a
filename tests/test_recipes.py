"""Named training recipes, the initial temperature, and `clipshift bench learn` (on a tiny budget)."""

import json
import math

import pytest
import yaml

from clipshift.cli.main import main
from clipshift.models.factory import ModelConfig, build_clip
from clipshift.study.planner import canonical_config
from clipshift.study.spec import RunConfig
from clipshift.train.recipes import RECIPES


def test_a_recipe_sits_under_flags_and_set(capsys):
    assert main(["train", "--recipe", "clip-cpu", "--set", "optim.batch_size=64", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["tokenizer"] == "vocab"  # from the recipe
    assert cfg["data"]["n"] == RECIPES["clip-cpu"].settings["data.n"]
    assert cfg["optim"]["batch_size"] == 64  # --set wins


def test_an_unknown_recipe_is_one_line(capsys):
    assert main(["train", "--recipe", "nope", "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown recipe 'nope'" in err[0] and "clip-cpu" in err[0]


def test_init_temperature_sets_the_logit_scale_and_leaves_old_ids_alone():
    model = build_clip(ModelConfig(init_temperature=0.02))
    assert math.isclose(float(model.logit_scale.detach().exp()), 50.0, rel_tol=1e-5)
    assert math.isclose(float(build_clip(ModelConfig()).logit_scale.detach().exp()), 1 / 0.07, rel_tol=1e-5)
    # unset, it is not in the serialised config, so a run id from before the field is unchanged
    assert "init_temperature" not in canonical_config(RunConfig())["model"]
    assert canonical_config(RunConfig(model={"init_temperature": 0.02}))["model"]["init_temperature"] == 0.02


@pytest.mark.parametrize("bad", ["0.001", "2"])
def test_init_temperature_is_bounded(bad, capsys):
    assert main(["train", "--set", f"model.init_temperature={bad}", "--print-config"]) == 2
    assert "init_temperature" in capsys.readouterr().err


def test_bench_learn_reports_both_models_and_a_learning_curve(tmp_path, capsys):
    argv = ["bench", "learn", "--classes", "4", "--eval-n", "80", "--threads", "1", "--json", "--quiet"]
    argv += ["--set", "data.n=2048", "--set", "optim.batch_size=64", "--out", str(tmp_path)]
    assert main(argv) == 0
    fig = json.loads(capsys.readouterr().out)
    for label, acc in (("clip", "clip_zeroshot_acc_4cls"), ("supervised", "supervised_acc_4cls")):
        assert 0.0 <= fig[acc] <= 1.0
        assert fig[f"{label}_samples"] == 2048 and fig[f"{label}_samples_per_s"] > 0
        curve = fig[f"{label}_curve"]
        assert list(curve) == ["512", "1024", "1536", "2048"]  # samples seen at 25/50/75/100 %
        assert curve["2048"] == fig[acc]
        assert fig[f"{label}_within_budget"] is (fig[f"{label}_train_wall_s"] <= fig["budget_s"])
    # the supervised model learns 4 classes from 2,048 samples well above chance: the scoring is real
    assert fig["supervised_acc_4cls"] > 0.4
