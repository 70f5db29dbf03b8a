"""Tests of the latent simulator (`clipshift.theory`) and the `clipshift theory` command."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from clipshift.errors import UserError
from clipshift.theory import ALL_LEARNERS, TheorySpec, simulate, sweep

# Smaller than the default so the file stays fast; the mechanism shows at this size too.
SMALL: dict[str, Any] = {"n_train": 2000, "n_test": 2000, "steps": 200}


def test_same_spec_same_numbers_and_seed_matters() -> None:
    spec = TheorySpec(**SMALL)
    a, b = simulate(spec), simulate(TheorySpec(**SMALL))
    assert a == b
    assert set(a["results"]) == set(ALL_LEARNERS)
    c = simulate(TheorySpec(**SMALL, seed=1))
    assert c["results"] != a["results"]


def test_learner_result_does_not_depend_on_other_learners() -> None:
    both = simulate(TheorySpec(**SMALL, learners=["supervised", "contrastive-linear"]))["results"]
    alone = simulate(TheorySpec(**SMALL, learners=["contrastive-linear"]))["results"]
    assert both["contrastive-linear"] == alone["contrastive-linear"]


def test_result_shape() -> None:
    res = simulate(TheorySpec(**SMALL, learners=["supervised"]))["results"]["supervised"]
    assert set(res) == {"id_acc", "shift_acc", "drop"}
    assert 0 <= res["shift_acc"] <= 100 and 0 <= res["id_acc"] <= 100
    assert res["drop"] == pytest.approx(res["id_acc"] - res["shift_acc"])


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("p_spurious", 1.5, "less than or equal to 1"),
        ("caption_richness", -0.1, "greater than or equal to 0"),
        ("d_core", 0, "greater than or equal to 1"),
        ("shift", "sideways", "decorrelated"),
        ("learners", ["svm"], "contrastive-linear"),
    ],
)
def test_spec_validation_names_field(field: str, value: Any, needle: str) -> None:
    from clipshift.configio import validate

    with pytest.raises(UserError) as e:
        validate(TheorySpec, {field: value}, source="--set")
    msg = str(e.value)
    assert field in msg and needle in msg and "\n" not in msg


def test_spec_rejects_unknown_field_and_too_small_views() -> None:
    from clipshift.configio import validate

    with pytest.raises(UserError, match="core_strenght: unknown field"):
        validate(TheorySpec, {"core_strenght": 1.0})
    with pytest.raises(UserError, match="d_image"):
        validate(TheorySpec, {"d_image": 10})


def test_spec_json_round_trip(tmp_path: Any) -> None:
    from clipshift import configio

    spec = TheorySpec(p_spurious=0.7, shift="flipped", learners=["supervised"], seed=5)
    assert TheorySpec.model_validate_json(spec.model_dump_json()) == spec
    assert TheorySpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json")))) == spec
    for name in ("spec.json", "spec.yaml"):
        configio.dump(spec, tmp_path / name)
        assert configio.load(TheorySpec, tmp_path / name) == spec


def test_sweep_rows_and_unknown_field() -> None:
    base = TheorySpec(**SMALL, learners=["supervised"])
    rows = sweep(base, {"p_spurious": [0.0, 0.9], "seed": [0, 1, 2]})
    assert len(rows) == 6
    assert [(r["p_spurious"], r["seed"]) for r in rows[:3]] == [(0.0, 0), (0.0, 1), (0.0, 2)]
    assert all(set(r["results"]) == {"supervised"} for r in rows)
    with pytest.raises(UserError) as e:
        sweep(base, {"p_spurios": [0.1]})
    assert "p_spurios" in str(e.value) and "p_spurious" in str(e.value)  # lists the valid names
    with pytest.raises(UserError, match="p_spurious"):
        sweep(base, {"p_spurious": [0.5, 2.0]})


# Margins measured over seeds 0-5 with the default spec: at p_spurious=0 every |drop| <= 0.75; the
# supervised drop was 5.7-8.7 at p=0.5, 24.7-35.0 at p=0.9; contrastive-linear |drop| <= 0.75 at p=0.9.
@pytest.mark.parametrize("seed", [0, 1])
def test_no_spurious_correlation_means_no_drop(seed: int) -> None:
    results = simulate(TheorySpec(seed=seed, p_spurious=0.0))["results"]
    for learner, r in results.items():
        assert abs(r["drop"]) < 2.0, (learner, r)


@pytest.mark.parametrize("seed", [0, 1])
def test_supervised_drop_grows_with_spurious_correlation(seed: int) -> None:
    drops = [
        simulate(TheorySpec(seed=seed, p_spurious=p, learners=["supervised"]))["results"]["supervised"][
            "drop"
        ]
        for p in (0.0, 0.5, 0.9)
    ]
    assert drops[0] + 3 < drops[1] < drops[2] - 10, drops


def test_contrastive_drops_less_than_supervised_at_high_correlation() -> None:
    res = simulate(TheorySpec(p_spurious=0.9, learners=["supervised", "contrastive-linear"]))["results"]
    assert abs(res["contrastive-linear"]["drop"]) < 2.0, res
    assert res["supervised"]["drop"] > res["contrastive-linear"]["drop"] + 15, res


# --- CLI ------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_main() -> Any:
    from clipshift.cli.main import main

    return main


def test_cli_json(cli_main: Any, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["theory", "--json", "--set", "learners=[supervised]", "--set", "steps=100", "--set", "seed=2"]
    assert cli_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spec"]["seed"] == 2 and out["spec"]["learners"] == ["supervised"]
    assert set(out["results"]["supervised"]) == {"id_acc", "shift_acc", "drop"}
    spec = TheorySpec(learners=["supervised"], steps=100, seed=2)
    assert out == json.loads(json.dumps(simulate(spec)))


def test_cli_sweep_table(cli_main: Any, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["theory", "--set", "learners=[supervised]", "--set", "steps=50", "--sweep", "p_spurious=0,0.9"]
    assert cli_main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["p_spurious", "learner", "id_acc", "shift_acc", "drop"]
    assert len(lines) == 3 and lines[2].split()[:2] == ["0.9", "supervised"]


def test_cli_bad_set_is_one_line(cli_main: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["theory", "--set", "p_spurious=1.5"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "p_spurious" in err[0] and "1" in err[0]
    assert captured.out == ""
    assert cli_main(["theory", "--sweep", "no_such_field=1,2"]) == 2
    assert "no_such_field" in capsys.readouterr().err


def test_cli_module_does_not_import_torch() -> None:
    """`clipshift --help` stays fast only if the command module leaves torch to the handler."""
    import subprocess

    code = "import sys, clipshift.cli.theory; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
