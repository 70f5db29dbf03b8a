"""The study report: conclusions computed from a synthetic study with known effects, honest "no conclusion"
sentences without an effect or with one seed, a self-contained HTML file, and the `clipshift report` CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.special import expit, logit

from clipshift.analysis.stats import diff_ci
from clipshift.cli.main import main
from clipshift.report import build_report
from clipshift.report.build import write_report
from clipshift.report.estimates import interval, stratified_difference
from clipshift.study.store import ResultsStore

OBJ = "objective.name"
SIZE = "data.n"
N_CLASSES = 12

# the effects planted in the synthetic study (accuracy points)
TRUE_DROP = {"clip": 20.0, "supervised": 40.0}
TRUE_ER = {"clip": 6.0, "supervised": 0.0}
PROBE_GAIN = 0.15


def make_study(
    root: Path,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    drop: dict[str, float] = TRUE_DROP,
    er: dict[str, float] = TRUE_ER,
    tail_slope: dict[str, float] | None = None,
    noise: float = 1.0,
    failed: bool = True,
) -> Path:
    """A study directory written through the real ResultsStore: objective × data size × seeds.

    iid accuracy rises with data size (so the supervised runs spread along a line); sketch accuracy is
    that line, logit(y) = logit(x) − 1, plus `er` points; counter = common − `drop` points; per-class
    accuracy rises with the class's (Zipf) training frequency by `tail_slope` per unit of log frequency.
    """
    tail_slope = tail_slope or {"clip": 0.01, "supervised": 0.08}
    rng = np.random.default_rng(1234)
    d = root / "study"
    (d / "runs").mkdir(parents=True)
    spec = {
        "name": "synthetic",
        "base": {"epochs": 1},
        "grid": {OBJ: ["clip", "supervised"], SIZE: [1000, 4000, 16000]},
        "zip": [],
        "seeds": list(seeds),
        "profiles": {},
        "profile": None,
        "analyses": [
            {
                "kind": "effective_robustness",
                "compare": OBJ,
                "x": "iid",
                "y": ["sketch"],
                "baseline": {OBJ: "supervised"},
            },
            {"kind": "spurious_drop", "compare": OBJ},
            {"kind": "long_tail", "compare": OBJ},
            {"kind": "training_curves", "compare": OBJ},
            {"kind": "metrics", "compare": OBJ, "title": "Top-1 accuracy"},
        ],
    }
    (d / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    freq = np.round(2000 / np.arange(1, N_CLASSES + 1) ** 1.1)
    store = ResultsStore(d / "results.sqlite")
    store.set_meta("spec", spec)
    store.set_meta("name", "synthetic")
    base_iid = {1000: 0.55, 4000: 0.68, 16000: 0.80}
    for obj in ("clip", "supervised"):
        for n in (1000, 4000, 16000):
            for seed in seeds:
                run_id = f"{obj[:4]}-{n}-s{seed}"
                run_dir = d / "runs" / run_id
                run_dir.mkdir()
                x = base_iid[n] + rng.normal(0, noise / 100)
                sketch = expit(logit(x) - 1.0) + er[obj] / 100 + rng.normal(0, noise / 100)
                common = x + 0.05
                counter = common - drop[obj] / 100 + rng.normal(0, 2 * noise / 100)
                rows = [
                    ("iid", "acc1", -1, x),
                    ("sketch", "acc1", -1, sketch),
                    ("common", "acc1", -1, common),
                    ("counter", "acc1", -1, counter),
                    ("iid", "acc5", -1, min(x + 0.15, 1.0)),
                ]
                # a linear probe on the same sets: its acc1 is another quantity (planted 30 points higher
                # on iid) and must never mix with the model's own
                probe_rows = [("iid", "acc1", -1, min(x + PROBE_GAIN, 1.0)), ("sketch", "acc1", -1, sketch)]
                logf = np.log(freq)
                class_acc = np.clip(
                    x + tail_slope[obj] * (logf - logf.mean()) + rng.normal(0, 0.02 * noise, N_CLASSES), 0, 1
                )
                for c in range(N_CLASSES):
                    rows += [
                        ("train", "class_count", c, float(freq[c])),
                        ("iid", "class_acc", c, float(class_acc[c])),
                        (
                            "iid",
                            "class_pred_count",
                            c,
                            float(100 * class_acc[c] + 3 * tail_slope[obj] * logf[c]),
                        ),
                    ]
                store.upsert_run(
                    run_id,
                    study="synthetic",
                    factors={OBJ: obj, SIZE: n},
                    seed=seed,
                    status="done",
                    run_dir=str(run_dir),
                    wall_s=12.0,
                    samples_per_s=900.0,
                )
                own = "zeroshot_classification" if obj == "clip" else "classification"
                store.add_results(
                    run_id,
                    [(es, own, m, c, v) for es, m, c, v in rows]
                    + [(es, "linear_probe", m, c, v) for es, m, c, v in probe_rows],
                )
                with open(run_dir / "metrics.jsonl", "w") as fh:
                    for step in range(10, 101, 10):
                        loss = (3.0 if obj == "clip" else 2.0) * math.exp(-step / 60) + 0.1
                        fh.write(
                            json.dumps(
                                {"step": step, "epoch": 0, "loss": loss, "lr": 1e-3, "samples_per_s": 900}
                            )
                            + "\n"
                        )
                (run_dir / "done").write_text("")
    if failed:
        store.upsert_run(
            "clip-bad",
            study="synthetic",
            factors={OBJ: "clip", SIZE: 1000},
            seed=9,
            status="failed",
            reason="loss became NaN at step 40",
        )
    store.close()
    return d


def _numbers(summary, what):
    return [n for f in summary.findings for n in f.numbers if n["what"] == what]


def _check_ci_contains(num, truth):
    diff = num["diff"]
    assert diff["lo"] <= truth <= diff["hi"], (truth, diff)
    assert diff["lo"] > 0 or diff["hi"] < 0  # and the interval excludes 0: an effect was found


@pytest.fixture(scope="module")
def effect_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("effect")
    study = make_study(root)
    summary = build_report(study, root / "report.html", n_boot=200)
    return summary, (root / "report.html").read_text()


def test_known_effects_are_stated_with_a_ci_that_contains_them(effect_report):
    summary, _ = effect_report
    text = "\n".join(summary.headlines)
    # spurious drop: reference level = first grid level (clip); supervised drops 20 points more
    (drop,) = _numbers(summary, "drop")
    assert drop["level"] == "supervised" and drop["ref"] == "clip"
    _check_ci_contains(drop, TRUE_DROP["supervised"] - TRUE_DROP["clip"])
    assert re.search(r"Supervised's common−counter drop exceeds clip's by 2\d\.\d points \(95 % CI \d", text)
    # effective robustness: clip 6 points above the supervised line
    (ern,) = _numbers(summary, "effective_robustness")
    assert ern["level"] == "clip" and ern["ref"] == "supervised"
    _check_ci_contains(ern, TRUE_ER["clip"])
    assert re.search(
        r"Clip runs lie \d\.\d points \(95 % CI [\d.]+–[\d.]+\) above the line fitted through the "
        r"supervised runs on sketch\.",
        text,
    )
    # long tail: accuracy follows frequency more closely for supervised (reference level: clip)
    (rho,) = _numbers(summary, "corr_acc")
    assert (
        rho["diff"]["lo"] > 0
        and "follows training frequency more closely for supervised than for clip" in text
    )
    # metrics: no planted difference on iid / sketch... but common/counter/sketch differ
    assert "The training loss fell from the first to the last tenth of training in 18 of 18 runs" in text
    assert summary.status == {"done": 18, "failed": 1}
    assert all(summary.supported[:4])


def test_without_an_effect_or_with_one_seed_the_report_does_not_conclude(tmp_path):
    flat = make_study(
        tmp_path / "flat",
        drop={"clip": 30.0, "supervised": 30.0},
        er={"clip": 0.0, "supervised": 0.0},
        tail_slope={"clip": 0.05, "supervised": 0.05},
        failed=False,
    )
    s = build_report(flat, tmp_path / "flat.html", n_boot=100)
    by_kind = {f.kind: f for f in s.findings}
    for kind in ("effective_robustness", "spurious_drop", "long_tail"):
        f = by_kind[kind]
        assert f.supported == [False], (kind, f.conclusions)
        assert f.conclusions[0].startswith("The data do not support a conclusion"), f.conclusions
        assert "the CI includes 0" in f.conclusions[0]
    # seeds that all give the same value (a degenerate run) are no evidence either
    same = make_study(tmp_path / "same", noise=0.0, failed=False)
    s = build_report(same, tmp_path / "same.html", n_boot=100)
    drop = next(f for f in s.findings if f.kind == "spurious_drop")
    assert (
        drop.supported == [False]
        and "identical across seeds; a CI needs seeds that differ" in drop.conclusions[0]
    )
    one = make_study(tmp_path / "one", seeds=(0,), failed=False)
    s = build_report(one, tmp_path / "one.html", n_boot=100)
    for f in s.findings:
        if f.kind in ("effective_robustness", "spurious_drop", "long_tail"):
            assert f.supported == [False]
            assert "fewer than two seeds per level, so there is no CI across seeds" in f.conclusions[0]


def test_html_is_self_contained_and_embeds_the_figures(effect_report):
    summary, html = effect_report
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and 'src="data:image/svg+xml;base64,' in html
    n_figures = sum(len(f.figures) for f in summary.findings)
    assert n_figures == 4  # ER scatter, counter vs common, accuracy vs frequency, training curves
    assert html.count('<img src="data:image/svg+xml;base64,') == n_figures
    assert re.findall(r'(?:src|href)="([^"]*)"', html) and all(
        u.startswith(("data:", "#")) for u in re.findall(r'(?:src|href)="([^"]*)"', html)
    )
    for sentence in summary.headlines:
        assert sentence.replace("'", "&#x27;") in html
    assert "loss became NaN at step 40" in html  # the failed run and its reason
    assert "<details>" in html and "grid:" in html  # the spec, collapsible
    assert "acc1 (%)" in html and " ± " in html  # the metric table


def test_a_probes_results_stay_apart_from_the_models_own(effect_report, tmp_path):
    """The planted linear probe (iid 15 points above the model's own classifier) has its own table, and
    analyses read the model's own predictions unless they ask for the probe's."""
    from clipshift.report.data import read_study_dir

    summary, html = effect_report
    assert "acc1 (%), linear probe" in html and "acc1 (%)</" in html
    data = read_study_dir(summary.path.parent / "study")
    own, probe = data.scalar("iid", "acc1"), data.scalar("iid", "acc1", "linear_probe")
    assert own.keys() == probe.keys() and len(own) == 18
    assert all(abs(probe[r] - min(own[r] + PROBE_GAIN, 1.0)) < 1e-12 for r in own)
    assert data.tasks() == ["own", "linear_probe"]
    # an analysis of the probe (on a copy of the study): its default title says so
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(summary.path.parent / "study", copy)
    spec = yaml.safe_load((copy / "study.yaml").read_text())
    spec["analyses"] = [{"kind": "metrics", "compare": OBJ, "task": "linear_probe"}]
    with ResultsStore(copy / "results.sqlite") as store:
        store.set_meta("spec", spec)
    (f,) = build_report(copy, tmp_path / "probe.html", n_boot=50).findings
    assert f.title.endswith("(linear probe)")


def test_the_same_study_gives_the_same_report_bytes(tmp_path, monkeypatch):
    study = make_study(tmp_path, seeds=(0, 1), failed=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000000")
    a = build_report(study, tmp_path / "a.html", n_boot=50).path.read_bytes()
    b = build_report(study, tmp_path / "b.html", n_boot=50).path.read_bytes()
    assert a == b and b"Generated 2026-11-18 " in a


def test_runs_that_a_factor_does_not_reach_are_flagged_as_copies(tmp_path, capsys):
    """Supervised runs at three caption levels with identical results are copies, not replicates."""
    from clipshift.report.data import Run, StudyData

    runs, rows = [], []
    for obj in ("clip", "supervised"):
        for level in ("template", "full"):
            for seed in (0, 1):
                rid = f"{obj}-{level}-{seed}"
                runs.append(Run(rid, {OBJ: obj, "captions.level": level}, seed, "done"))
                acc = 0.5 + 0.1 * seed + (0.02 + 0.05 * (level == "full") if obj == "clip" else 0.0)
                rows.append(
                    {"run_id": rid, "eval_set": "iid", "metric": "acc1", "class_id": -1, "value": acc}
                )
    data = StudyData("copies", {"analyses": [{"kind": "metrics", "compare": OBJ}]}, runs, rows)
    copies = data.copies()
    assert sorted(len(g) for g, _ in copies) == [2, 2]  # the supervised pairs, one per seed
    assert all(differ == ["captions.level"] for _, differ in copies)
    assert all(r.factors[OBJ] == "supervised" for g, _ in copies for r in g)
    summary = write_report(data, tmp_path / "r.html", n_boot=50)
    (warning,) = summary.warnings
    assert "4 runs (objective.name=supervised) form 2 groups of copies" in warning
    assert warning in (tmp_path / "r.html").read_text()
    # clip's caption levels differ, so no clip run is a copy; without copies there is no warning
    data.rows = [r | {"value": r["value"] + 0.01 * i} for i, r in enumerate(rows)]
    assert data.copies() == [] and write_report(data, tmp_path / "s.html", n_boot=50).warnings == []


def test_an_unbalanced_zip_compares_within_the_strata_both_levels_have(tmp_path):
    """clip runs at two caption levels, supervised at one: clip vs supervised is compared at the shared
    level, and the means quoted beside the difference are those of the runs compared."""
    from clipshift.report.data import Run, StudyData

    drops = {("clip", "template"): 0.30, ("clip", "full"): 0.10, ("supervised", "template"): 0.20}
    runs, rows = [], []
    for (obj, level), drop in drops.items():
        for seed in (0, 1, 2):
            rid = f"{obj}-{level}-{seed}"
            runs.append(Run(rid, {OBJ: obj, "captions.level": level}, seed, "done"))
            common = 0.9 - 0.01 * seed
            counter = common - drop - 0.01 * seed
            rows += [
                {"run_id": rid, "eval_set": s, "metric": "acc1", "class_id": -1, "value": v}
                for s, v in (("common", common), ("counter", counter))
            ]
    spec = {
        "zip": [{OBJ: ["clip", "clip", "supervised"], "captions.level": ["template", "full", "template"]}],
        "analyses": [{"kind": "spurious_drop", "compare": OBJ}],
    }
    summary = write_report(StudyData("unbalanced", spec, runs, rows), tmp_path / "r.html", n_boot=50)
    (num,) = _numbers(summary, "drop")
    assert num["level"] == "supervised" and num["ref"] == "clip"
    assert num["ref_mean"]["value"] == pytest.approx(31.0)  # clip at the template level only
    assert num["diff"]["value"] == pytest.approx(num["level_mean"]["value"] - num["ref_mean"]["value"])
    assert num["diff"]["value"] == pytest.approx(-10.0)


def test_stratified_difference_is_welch_within_one_stratum_and_removes_stratum_shifts():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 1, 4), rng.normal(3, 2, 5)
    est = stratified_difference([(a, b)])
    assert np.allclose((est.value, est.lo, est.hi), diff_ci(a, b))
    # a factor that shifts both levels alike must not widen the interval of their difference
    cells = [(rng.normal(m + 2, 0.5, 3), rng.normal(m, 0.5, 3)) for m in (0, 20, 40)]
    strat = stratified_difference(cells)
    pooled = diff_ci(np.concatenate([c[0] for c in cells]), np.concatenate([c[1] for c in cells]))
    assert strat.lo > 0 and pooled[1] < 0 < strat.lo
    assert strat.hi - strat.lo < (pooled[2] - pooled[1]) / 5
    assert interval(-1.25, 2.0) == "−1.2 to 2.0" or interval(-1.25, 2.0) == "−1.3 to 2.0"


def test_effective_robustness_intervals_carry_the_uncertainty_of_the_fitted_line():
    """Runs far from the line's runs: their ER depends on the fitted slope. Over simulated studies with
    no true effect, the interval that includes the line's uncertainty covers 0 at about the nominal
    rate; the spread across seeds alone would cover it far less often."""
    from clipshift.analysis import effective_robustness as er
    from clipshift.analysis.compare import line_replicates as _line_replicates
    from clipshift.analysis.reference import ReferenceSet

    rng = np.random.default_rng(7)
    sims, covered, covered_seeds_only = 300, 0, 0
    models = [f"m{i}" for i in range(9)]
    for _ in range(sims):
        # six baseline runs at 40-60 % in-distribution accuracy, three compared runs near 85 %, all on
        # the same true line logit(y) = logit(x) − 1 (no effective robustness)
        x = np.concatenate([np.repeat([40.0, 50.0, 60.0], 2), np.full(3, 85.0)]) + rng.normal(0, 1, 9)
        y = 100 * expit(logit(x / 100) - 1.0 + rng.normal(0, 0.1, 9))
        ref = ReferenceSet(models, x, y, np.arange(9) < 6, "iid", "sketch", "simulated")
        ers = er.effective_robustness(er.fit_line(x[:6], y[:6], "logit"), x, y)
        line = _line_replicates(ref, "logit", 200)
        cells = [(ers[6:], ers[:6])]
        with_line = stratified_difference(cells, 0.95, *line.variance([(models[6:], models[:6])]))
        seeds_only = stratified_difference(cells, 0.95)
        covered += with_line.lo <= 0 <= with_line.hi
        covered_seeds_only += seeds_only.lo <= 0 <= seeds_only.hi
    assert covered / sims >= 0.92, covered / sims
    assert covered_seeds_only / sims < 0.85, covered_seeds_only / sims
    # compared runs among the line's own runs: the line's uncertainty barely moves their difference
    x = np.repeat([40.0, 50.0, 60.0], 3) + rng.normal(0, 1, 9)
    y = 100 * expit(logit(x / 100) - 1.0 + rng.normal(0, 0.1, 9))
    on_line = np.arange(9) % 3 != 0
    line = _line_replicates(ReferenceSet(models, x, y, on_line, "iid", "sketch", "simulated"), "logit", 200)
    near, _ = line.variance([([m for m, k in zip(models, on_line) if not k], models[:3])])
    far = _line_replicates(ref, "logit", 200).variance([(models[6:], models[:6])])[0]
    assert near < far / 10, (near, far)


def test_cli_prints_path_and_headlines(tmp_path, capsys):
    study = make_study(tmp_path, seeds=(0, 1), failed=False)
    out = tmp_path / "r.html"
    assert main(["report", str(study), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert str(out) in stdout.splitlines()[0] and "common−counter drop" in stdout
    assert out.is_file()
    assert main(["report", str(study), "--out", str(tmp_path / "j.html"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"].endswith("j.html") and data["headlines"] and data["n_runs"] == 12
    # --figures: every figure of the findings as a standalone SVG file
    assert main(["report", str(study), "--out", str(out), "--figures", str(tmp_path / "figs")]) == 0
    svgs = sorted((tmp_path / "figs").glob("*.svg"))
    assert svgs and f"figures: {len(svgs)} SVG files" in capsys.readouterr().out
    assert all(p.read_text().lstrip().startswith("<?xml") and "</svg>" in p.read_text() for p in svgs)


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "no such study directory"),
        ("plain", "not a study directory"),
        ("empty", "the results store is empty"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, case, needle):
    d = tmp_path / "s"
    if case != "missing":
        d.mkdir()
    if case == "empty":
        ResultsStore(d / "results.sqlite").close()
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and err.count("\n") == 0 and err.startswith("clipshift: error: ")


def test_analyses_without_a_compare_factor(tmp_path):
    study = make_study(tmp_path, failed=False)
    with ResultsStore(study / "results.sqlite") as store:
        spec = store.get_meta("spec")
        spec["analyses"] = [
            {"kind": "spurious_drop"},
            {"kind": "effective_robustness", "y": ["sketch"], "baseline": {OBJ: "supervised"}},
            {"kind": "metrics", "metric": "acc5"},
        ]
        store.set_meta("spec", spec)
    s = build_report(study, tmp_path / "r.html", n_boot=100)
    drop, er_, metrics = s.findings
    # pooled over both objectives: a 30-point drop on average
    assert drop.supported == [True] and re.match(
        r"acc1 falls by (29|30|31)\.\d points \(95 % CI", drop.conclusions[0]
    )
    assert er_.conclusions == [
        c
        for c in er_.conclusions
        if re.match(r"The other runs lie \d\.\d points .* above the line fitted through", c)
    ]
    assert len(er_.conclusions) == 1 and "no factor compared" in metrics.conclusions[0]


def test_theory_sweep_is_reported_beside_the_runs(tmp_path):
    study = make_study(tmp_path, failed=False)
    with ResultsStore(study / "results.sqlite") as store:
        spec = store.get_meta("spec")
        # a tiny simulator setting: the supervised learner's shifted accuracy falls as the spurious
        # correlation strengthens, which the sentence must state with a CI across the seeds
        spec["analyses"] = [
            {
                "kind": "theory",
                "theory": {"n_train": 600, "n_test": 400, "steps": 60, "learners": ["supervised"]},
                "sweep": {"p_spurious": [0.5, 0.99]},
                "seeds": [0, 1, 2],
            }
        ]
        store.set_meta("spec", spec)
    s = build_report(study, tmp_path / "r.html", n_boot=100)
    (theory,) = s.findings
    assert theory.kind == "theory" and len(theory.conclusions) == 1
    assert theory.conclusions[0].startswith("Simulator, supervised: raising p_spurious from 0.5 to 0.99")
    assert theory.supported == [True] and "points (95 % CI" in theory.conclusions[0]
    assert "by −" in theory.conclusions[0]  # shifted accuracy falls
    assert theory.tables[0].rows and theory.figures
    assert "Latent simulator" in (tmp_path / "r.html").read_text()


def test_a_difference_against_the_reference_quotes_the_interval_of_the_stated_direction(tmp_path):
    # the reference level (clip, first in the grid) has the larger drop: the sentence names clip first
    # and must quote a positive interval for clip − supervised, not the negative one of the reverse
    study = make_study(tmp_path, drop={"clip": 40.0, "supervised": 20.0}, failed=False)
    s = build_report(study, tmp_path / "r.html", n_boot=100)
    text = "\n".join(s.headlines)
    m = re.search(
        r"Clip's common−counter drop exceeds supervised's by (\d+\.\d) points \(95 % CI ([\d.]+)–([\d.]+)",
        text,
    )
    assert m, text
    value, lo, hi = (float(g) for g in m.groups())
    assert 0 < lo <= value <= hi and lo < 20.0 < hi


def test_where_narrows_the_runs_an_analysis_compares(tmp_path):
    study = make_study(tmp_path, failed=False)
    with ResultsStore(study / "results.sqlite") as store:
        spec = store.get_meta("spec")
        spec["analyses"] = [
            {"kind": "spurious_drop", "where": {OBJ: "clip"}},  # clip alone: a 20-point drop
            {
                "kind": "effective_robustness",
                "y": ["sketch"],
                "baseline": {OBJ: "supervised"},
                "where": {OBJ: "clip"},
                "compare": SIZE,
            },
        ]
        store.set_meta("spec", spec)
    drop, er_ = build_report(study, tmp_path / "r.html", n_boot=100).findings
    assert re.match(r"acc1 falls by (19|20|21)\.\d points", drop.conclusions[0]), drop.conclusions
    # the line is still fitted through the supervised runs although only clip runs are compared
    assert er_.numbers and all("line" not in c or "supervised" in c for c in er_.conclusions)
    assert f"Runs analysed: those with {OBJ}=clip." in drop.details


def test_axes_zipped_with_the_compared_one_are_not_strata():
    from clipshift.report.data import zipped_with

    spec = {"zip": [{"domains.photo": [1.0, 0.5], "domains.rendition": [0.0, 0.5]}], "grid": {"n": [1, 2]}}
    assert zipped_with(spec, "domains.photo") == {"domains.photo", "domains.rendition"}
    assert zipped_with(spec, "n") == {"n"} and zipped_with(spec, None) == set()
    # supervised ignores captions, so it runs at one caption level: the level is not a function of the
    # objective (a factor of its own, a stratum), while the objective is not a function of the level
    spec = {"zip": [{"obj": ["clip", "clip", "sup"], "level": ["a", "b", "a"], "tag": [1, 1, 2]}]}
    assert zipped_with(spec, "obj") == {"obj", "tag"}
    assert zipped_with(spec, "level") == {"level"}
