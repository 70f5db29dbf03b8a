"""Manipulation checks, convergence checks and power in the analyses: each failure is planted in a study
built in memory (rows as the store gives them) and must withhold the conclusion with its reason; a real
planted effect whose checks pass stays supported; the detectable difference of a null comparison matches
a simulation of the same design."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clipshift.analysis.data import Run, StudyData
from clipshift.analysis.stats import diff_ci
from clipshift.cli.main import main
from clipshift.report.build import write_report

OBJ, K = "objective.name", "objective.dynamic_k"
N_CLASSES = 10


def _rows(run_id: str, iid: float, counter: float, checks: dict[str, float], gain: float) -> list[dict]:
    base = {"run_id": run_id, "class_id": -1}
    rows = [
        {**base, "eval_set": "iid", "task": "classification", "metric": "acc1", "value": iid},
        {**base, "eval_set": "common", "task": "classification", "metric": "acc1", "value": iid},
        {**base, "eval_set": "counter", "task": "classification", "metric": "acc1", "value": counter},
        *[
            {**base, "eval_set": "train", "task": "checks", "metric": k, "value": v}
            for k, v in checks.items()
        ],
        {**base, "eval_set": "iid", "task": "convergence", "metric": "acc1@0.75", "value": iid - gain},
        {**base, "eval_set": "iid", "task": "convergence", "metric": "acc1@1.00", "value": iid},
    ]
    rows += [
        {
            **base,
            "eval_set": "train",
            "task": "classification",
            "metric": "class_count",
            "class_id": c,
            "value": 100,
        }
        for c in range(N_CLASSES)
    ]
    return rows


def study(
    axis: str,
    levels: list,
    iid: dict,
    counter: dict,
    checks: dict,
    gain: dict | None = None,
    seeds: int = 3,
    noise: float = 0.01,
) -> StudyData:
    """Runs of `axis` at `levels` × seeds; per level: iid and counter accuracy (fractions), checks rows
    and the accuracy gained over the last quarter of training."""
    rng = np.random.default_rng(5)
    runs, rows = [], []
    for lv in levels:
        for s in range(seeds):
            rid = f"{lv}-{s}"
            runs.append(Run(rid, {axis: lv}, s, "done"))
            a = iid[lv] + rng.normal(0, noise)
            c = counter[lv] + rng.normal(0, noise)
            rows += _rows(rid, a, c, checks[lv], (gain or {}).get(lv, 0.0))
    spec = {"grid": {axis: levels}, "analyses": [{"kind": "spurious_drop", "compare": axis}]}
    return StudyData("planted", spec, runs, rows)


def drop_finding(data: StudyData, tmp_path):
    summary = write_report(data, tmp_path / "r.html", n_boot=50)
    (f,) = [f for f in summary.findings if f.kind == "spurious_drop"]
    return f, (tmp_path / "r.html").read_text()


BINDS = {
    "objective/topped_up_share": 0.6,
    "objective/classes_scored_mean": 5.0,
    "data/classes_per_batch_min": 2,
}


def test_an_inert_k_is_withheld_with_its_reason(tmp_path):
    """K = 3 and 5 with every batch holding all 10 classes: dynamic scored the classes present, whatever
    K said. A large planted difference in the drop must not be reported as K's effect."""
    inert = {"objective/topped_up_share": 0.0, "objective/classes_scored_mean": 10.0}
    inert |= {"data/classes_per_batch_min": 10.0}
    data = study(K, [3, 5], {3: 0.9, 5: 0.9}, {3: 0.5, 5: 0.7}, {3: inert, 5: inert})
    f, html = drop_finding(data, tmp_path)
    (v,) = f.verdicts
    assert v.status == "withheld" and not f.supported[0]
    assert v.reason.startswith(
        "K had no effect: every batch held at least K classes (the fewest in any batch: 10)"
    )
    assert f.conclusions[0].startswith("Withheld (dynamic_k=5 vs dynamic_k=3): K had no effect")
    assert any(d.startswith("Computed but not concluded") for d in f.details)  # the numbers stay visible
    assert 'class="conclusion withheld"' in html and '<span class="badge withheld">' in html
    assert "Manipulation checks" in html and "objective.dynamic_k: what its levels did" in html
    # the same study with K binding (the top-up happened) concludes
    binding = {3: BINDS, 5: {**BINDS, "objective/classes_scored_mean": 6.0}}
    data = study(K, [3, 5], {3: 0.9, 5: 0.9}, {3: 0.5, 5: 0.7}, binding)
    f, _ = drop_finding(data, tmp_path)
    assert [v.status for v in f.verdicts] == ["supported"]


def test_a_factor_whose_measures_did_not_move_is_withheld(tmp_path):
    """rho 0.5 vs 0.9 that left the realised P(common background | class) unchanged did not act."""
    same = {"data/p_common_background": 0.7}
    rho = "data.world.backgrounds.rho"
    data = study(rho, [0.5, 0.9], {0.5: 0.9, 0.9: 0.9}, {0.5: 0.8, 0.9: 0.4}, {0.5: same, 0.9: same})
    f, _ = drop_finding(data, tmp_path)
    assert f.verdicts[0].status == "withheld"
    assert "had no effect on the realised P(common background | class)" in f.verdicts[0].reason
    moved = {0.5: {"data/p_common_background": 0.5}, 0.9: {"data/p_common_background": 0.9}}
    data = study(rho, [0.5, 0.9], {0.5: 0.9, 0.9: 0.9}, {0.5: 0.8, 0.9: 0.4}, moved)
    f, _ = drop_finding(data, tmp_path)
    assert f.verdicts[0].status == "supported"
    assert "exceeds" in f.conclusions[0]


@pytest.mark.parametrize(
    "iid, gain, needle",
    [
        ({"clip": 0.12, "supervised": 0.85}, {}, "clip runs had not learned the task (iid accuracy 12."),
        (
            {"clip": 0.80, "supervised": 0.85},
            {"clip": 0.08},
            "clip runs had not converged: iid accuracy was still rising by 8.0 points",
        ),
    ],
)
def test_an_arm_that_had_not_learned_or_converged_is_withheld(tmp_path, iid, gain, needle):
    checks = {
        "clip": {"objective/classes_scored_mean": 8.0},
        "supervised": {"objective/classes_scored_mean": 10.0},
    }
    data = study(OBJ, ["clip", "supervised"], iid, {"clip": 0.05, "supervised": 0.5}, checks, gain)
    f, _ = drop_finding(data, tmp_path)
    (v,) = f.verdicts
    assert v.status == "withheld" and needle in v.reason, v.reason


def test_a_null_comparison_states_what_it_could_have_detected_and_a_simulation_agrees(tmp_path):
    """No planted difference: not supported, with the minimum detectable difference (80 % power) of this
    design; simulating the design (3 seeds per arm, the same spread) detects that difference about 80 %
    of the time, and the difference it detects 80 % of the time is within 20 % of the stated one."""
    binds = {3: BINDS, 5: {**BINDS, "objective/classes_scored_mean": 6.0}}
    data = study(K, [3, 5], {3: 0.9, 5: 0.9}, {3: 0.6, 5: 0.6}, binds, noise=0.03)
    f, _ = drop_finding(data, tmp_path)
    (v,) = f.verdicts
    assert v.status == "not_supported" and v.detectable is not None and v.detectable > 0
    assert f"could have detected a difference of {v.detectable:.1f} points at 80 % power" in f.conclusions[0]
    common, counter = data.scalar("common", "acc1"), data.scalar("counter", "acc1")
    drops = {lv: [100 * (common[r] - counter[r]) for r in common if r.startswith(f"{lv}-")] for lv in (3, 5)}
    sd = [float(np.std(drops[lv], ddof=1)) for lv in (3, 5)]
    rng = np.random.default_rng(11)

    def power(delta: float, reps: int) -> float:
        hits = 0
        for _ in range(reps):
            _, lo, hi = diff_ci(rng.normal(delta, sd[1], 3), rng.normal(0.0, sd[0], 3))
            hits += lo > 0 or hi < 0
        return hits / reps

    assert 0.65 <= power(v.detectable, 3000) <= 0.9
    lo, hi = 0.4 * v.detectable, 1.6 * v.detectable
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(mid, 1000) < 0.8 else (lo, mid)
    assert abs((lo + hi) / 2 - v.detectable) / v.detectable < 0.2


def test_report_json_gives_each_conclusion_a_status(tmp_path, capsys):
    """The contract: `clipshift report DIR --json` lists conclusions with status, reason for withheld and
    detectable for not_supported."""
    from clipshift.study.store import ResultsStore

    inert = {"objective/topped_up_share": 0.0, "objective/classes_scored_mean": 10.0}
    data = study(K, [3, 5], {3: 0.9, 5: 0.9}, {3: 0.5, 5: 0.7}, {3: inert, 5: inert})
    d = tmp_path / "study"
    d.mkdir()
    with ResultsStore(d / "results.sqlite") as store:
        store.set_meta("spec", {**data.spec, "name": "planted"})
        store.set_meta("name", "planted")
        store.set_meta("warnings", ["dynamic_k = 3 cannot act"])
        for r in data.runs:
            store.upsert_run(r.run_id, study="planted", factors=r.factors, seed=r.seed or 0, status="done")
            store.add_results(
                r.run_id,
                [(x["eval_set"], x["task"], x["metric"], x["class_id"], x["value"]) for x in data.rows
                 if x["run_id"] == r.run_id],
            )  # fmt: skip
    assert main(["report", str(d), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (c,) = [c for c in out["conclusions"] if c["status"] == "withheld"]
    assert c["reason"].startswith("K had no effect") and "detectable" not in c
    assert {"text", "status"} <= set(out["findings"][0]["conclusions"][0])
    assert any("dynamic_k = 3 cannot act" in w for w in out["warnings"])
    assert main(["report", str(d)]) == 0
    assert "[WITHHELD] Withheld (dynamic_k=5 vs dynamic_k=3)" in capsys.readouterr().out
    assert all(math.isfinite(c.get("detectable", 0.0)) for c in out["conclusions"])


def test_the_learning_check_reads_the_set_the_snapshots_were_scored_on(tmp_path):
    """A study without `iid` (data diversity: its in-distribution set is `photo`): the learning and
    convergence checks read `photo`, where the run scored its snapshots, not the alphabetically first
    set (`corrupt-blur-3`, where every model is weak)."""
    checks = {
        "clip": {"objective/classes_scored_mean": 8.0},
        "supervised": {"objective/classes_scored_mean": 10.0},
    }
    iid, counter = {"clip": 0.8, "supervised": 0.85}, {"clip": 0.3, "supervised": 0.5}
    data = study(OBJ, ["clip", "supervised"], iid, counter, checks, {"clip": 0.06})
    rename = {"iid": "photo", "common": "photo-common"}
    for r in data.rows:
        r["eval_set"] = rename.get(r["eval_set"], r["eval_set"])
    for rid in {r["run_id"] for r in data.rows}:  # a weak set that sorts first
        data.rows.append({"run_id": rid, "class_id": -1, "eval_set": "corrupt-blur-3",
                          "task": "classification", "metric": "acc1", "value": 0.12})  # fmt: skip
    from clipshift.analysis.checks import ChecksSpec, learning_check

    arms = {f"{o} runs": [r for r in data.runs if r.factors[OBJ] == o] for o in ("clip", "supervised")}
    why = learning_check(data, arms, ChecksSpec())
    assert why is not None and why.startswith(
        "clip runs had not converged: photo accuracy was still rising by 6.0"
    )
    assert "not learned" not in why


def er_finding(tmp_path, iid: dict, counter: dict, checks: dict, spec_checks: dict | None = None, **kw):
    """The effective-robustness finding on `counter` of a planted clip-vs-supervised study, the line
    through the supervised runs."""
    data = study(OBJ, ["clip", "supervised"], iid, counter, checks, noise=kw.pop("noise", 0.005), **kw)
    factors = {r.run_id: r.factors for r in data.runs}
    for row in data.rows:  # the ER line reads each run's factors from its rows, as the store gives them
        row["factors"] = factors[row["run_id"]]
    er = {"kind": "effective_robustness", "x": "iid", "y": ["counter"], "compare": OBJ}
    data.spec["analyses"] = [{**er, "baseline": {OBJ: "supervised"}, "checks": spec_checks or {}}]
    summary = write_report(data, tmp_path / "r.html", n_boot=50)
    (f,) = [f for f in summary.findings if f.kind == "effective_robustness"]
    return f


def test_effective_robustness_far_outside_the_lines_runs_is_withheld(tmp_path):
    """CLIP at 60 % iid against a line through supervised runs at 89-91 %: its effective robustness is
    the line's extrapolation (a planted 20-point difference on counter), withheld with the range; the
    same arms with CLIP inside the range widened by half its width are concluded."""
    checks = {
        "clip": {"objective/classes_scored_mean": 8.0},
        "supervised": {"objective/classes_scored_mean": 10.0},
    }
    counter = {"clip": 0.30, "supervised": 0.50}
    f = er_finding(tmp_path, {"clip": 0.60, "supervised": 0.90}, counter, checks, noise=0.01)
    (v,) = f.verdicts
    assert v.status == "withheld", v
    assert "clip runs lie outside the line's range on iid (" in v.reason and "extrapolation" in v.reason
    assert "supervised runs lie" not in v.reason
    f = er_finding(tmp_path, {"clip": 0.90, "supervised": 0.90}, counter, checks, noise=0.01)
    assert [v.status for v in f.verdicts] == ["supported"]


def test_an_effective_robustness_comparison_at_the_floor_of_a_shifted_set_is_withheld(tmp_path):
    """Both arms learned (iid 80-90 %) but sit at chance on `counter` (10 classes: 10 %): an ER
    difference fitted there measures where accuracy bottoms out. The same planted difference on a set
    well above the floor is concluded."""
    checks = {
        "clip": {"objective/classes_scored_mean": 8.0},
        "supervised": {"objective/classes_scored_mean": 10.0},
    }
    iid = {"clip": 0.80, "supervised": 0.90}

    def er_verdicts(counter: dict) -> list:
        # the line through three supervised seeds spans 1 point of iid: clip is far off it, which the
        # line-range check (tested below) would withhold; this test is about the floor
        return er_finding(tmp_path, iid, counter, checks, {"max_extrapolation": 100}).verdicts

    (v,) = er_verdicts({"clip": 0.11, "supervised": 0.10})
    assert v.status == "withheld", v
    assert "runs are at the floor on counter (" in v.reason and "against chance 10.0 %" in v.reason
    (v,) = er_verdicts({"clip": 0.60, "supervised": 0.40})
    assert v.status != "withheld", v


def test_a_drop_comparison_with_an_arm_at_chance_on_counter_is_withheld(tmp_path):
    """An arm at chance on `counter` drops by as much as its common accuracy allows: comparing its drop
    with another arm's compares common accuracies, not reliance on the background."""
    checks = {
        "clip": {"objective/classes_scored_mean": 8.0},
        "supervised": {"objective/classes_scored_mean": 10.0},
    }
    iid = {"clip": 0.40, "supervised": 0.90}
    data = study(OBJ, ["clip", "supervised"], iid, {"clip": 0.10, "supervised": 0.50}, checks, noise=0.005)
    f, _ = drop_finding(data, tmp_path)
    (v,) = f.verdicts
    assert v.status == "withheld" and "clip runs are at the floor on counter (" in v.reason, v
    data = study(OBJ, ["clip", "supervised"], iid, {"clip": 0.25, "supervised": 0.50}, checks, noise=0.005)
    f, _ = drop_finding(data, tmp_path)
    assert [v.status for v in f.verdicts] == ["supported"]


RHO = "data.world.backgrounds.rho"
OBJ_CHECKS = {
    "clip": {"objective/classes_scored_mean": 8.0},
    "supervised": {"objective/classes_scored_mean": 10.0},
}


def over_rho(counter: dict[float, dict], gain: dict[float, dict] | None = None) -> StudyData:
    """clip vs supervised at each ρ of `counter` (ρ -> objective -> counter accuracy), iid 60 / 90 %,
    3 seeds; `gain` (ρ -> objective -> accuracy gained over the last quarter of training)."""
    runs, rows = [], []
    for r, c in counter.items():
        iid = {"clip": 0.60, "supervised": 0.90}
        part = study(OBJ, ["clip", "supervised"], iid, c, OBJ_CHECKS, (gain or {}).get(r), noise=0.005)
        for run in part.runs:
            runs.append(Run(f"{run.run_id}@{r}", {**run.factors, RHO: r}, run.seed, "done"))
        rows += [{**x, "run_id": f"{x['run_id']}@{r}"} for x in part.rows]
    spec = {"grid": {OBJ: ["clip", "supervised"], RHO: list(counter)},
            "analyses": [{"kind": "spurious_drop", "compare": OBJ}]}  # fmt: skip
    return StudyData("planted", spec, runs, rows)


def test_a_combination_where_an_arm_is_still_improving_is_left_out(tmp_path):
    """CLIP still rising by 5 points at ρ = 0.99 and settled at 0.5: 2.5 points averaged over ρ, under
    the 3-point threshold, so the pooled check let the rising combination into the difference. Within
    each combination, ρ = 0.99 is left out."""
    counter = {"clip": 0.30, "supervised": 0.70}
    data = over_rho({0.5: counter, 0.99: counter}, gain={0.99: {"clip": 0.05}})
    f, _ = drop_finding(data, tmp_path)
    (v,) = f.verdicts
    assert v.status == "supported" and f"Compared without {RHO}=0.99" in f.conclusions[0], v
    (why,) = [d for d in f.details if d.startswith("Left out of")]
    assert f"at {RHO}=0.99, clip runs had not converged: iid accuracy was still rising by 5.0" in why


def test_a_combination_at_the_floor_is_left_out_of_the_pooled_comparison(tmp_path):
    """A drop comparison pooled over ρ: CLIP at chance on counter at ρ = 0.99 but not at 0.5, so its mean
    over ρ (27.5 %) is above the floor. The combination at the floor is still left out of the pooled
    difference, which the sentence says and the details explain; every combination at the floor
    withholds it; with CLIP above the floor at both ρ nothing is left out."""

    def two_factor(clip_counter: dict[float, float]) -> StudyData:
        return over_rho({r: {"clip": c, "supervised": 0.5} for r, c in clip_counter.items()})

    f, _ = drop_finding(two_factor({0.5: 0.45, 0.99: 0.10}), tmp_path)
    (v,) = f.verdicts
    assert v.status == "supported", v
    (drop,) = [n for n in f.numbers if n["what"] == "drop"]
    # the difference is ρ = 0.5's alone: drops 15 (clip) and 40 (supervised) points
    assert drop["diff"]["value"] == pytest.approx(25.0, abs=2.0)
    assert f"Compared without {RHO}=0.99 (see details)" in f.conclusions[0]
    (why,) = [d for d in f.details if d.startswith("Left out of")]
    assert f"at {RHO}=0.99, clip runs are at the floor on counter (" in why and "supervised runs" not in why
    f, _ = drop_finding(two_factor({0.9: 0.11, 0.99: 0.10}), tmp_path)
    (v,) = f.verdicts
    assert v.status == "withheld" and v.reason.startswith("in each of the 2 combinations of the other"), v
    assert sum("clip runs are at the floor on counter" in d for d in f.details) == 2
    f, _ = drop_finding(two_factor({0.5: 0.45, 0.99: 0.30}), tmp_path)
    assert [v.status for v in f.verdicts] == ["supported"] and "Compared without" not in f.conclusions[0]


def test_the_floor_of_one_vs_n_confusable_is_one_in_n_plus_one():
    from clipshift.analysis.kinds.spurious_drop import SpuriousDropSpec, _counter_floor

    spec = SpuriousDropSpec.model_validate({"kind": "spurious_drop", "metric": "acc1_vs20_confusable"})
    floor = _counter_floor(spec, {"r": 0.05}, 100.0)
    assert floor is not None and floor.chance == pytest.approx(100 / 21) and floor.acc == {"r": 5.0}
    nll = SpuriousDropSpec.model_validate({"kind": "spurious_drop", "metric": "nll"})
    assert _counter_floor(nll, {"r": 1.0}, 1.0) is None
