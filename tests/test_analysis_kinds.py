"""The analysis kinds: a registry of typed specs (a union keyed on `kind`), every kind run on a planted
study, a new kind added as one file, and the analyses and the report free of torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from test_report import OBJ, make_study

from clipshift.analysis import registry
from clipshift.analysis.base import AnalysisBase, ChecksSpec
from clipshift.analysis.spec import parse_analyses, parse_analysis
from clipshift.analysis.wording import NO_SUPPORT
from clipshift.errors import UserError
from clipshift.report.build import write_report
from clipshift.report.data import read_study_dir

ROOT = Path(__file__).resolve().parents[1]
COMMON = set(AnalysisBase.model_fields)
KINDS = registry.kinds()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return read_study_dir(make_study(tmp_path_factory.mktemp("planted"), seeds=(0, 1), failed=False))


def test_the_kinds_are_registered_by_the_name_their_spec_declares():
    assert set(KINDS) >= {"effective_robustness", "spurious_drop", "long_tail", "training_curves"}
    assert set(KINDS) >= {"metrics", "theory"}
    for name, kind in KINDS.items():
        assert kind.name == name == registry.kind_name(kind.spec)
        assert kind.title and kind.spec.__doc__, name  # a heading and a line saying what it computes
        assert set(kind.spec.model_fields) >= COMMON
        assert type(parse_analysis({"kind": name, **kind.example})) is kind.spec


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_registered_kind_runs_on_a_planted_study(name, planted, tmp_path):
    """Registering a kind is enough for it to be run here: its example, comparing the planted factor."""
    kind = KINDS[name]
    spec = {"kind": name, "compare": OBJ, **kind.example}
    planted.spec = {**planted.spec, "analyses": [spec]}
    summary = write_report(planted, tmp_path / "r.html", n_boot=50)
    (f,) = summary.findings
    assert f.kind == name and f.title == kind.title
    assert f.conclusions and len(f.supported) == len(f.conclusions)
    # a problem with the data (a UserError inside the computation) reads "…conclusion: <why>"
    assert not any(c.startswith(f"{NO_SUPPORT}:") for c in f.conclusions), f.conclusions
    json.dumps(f.to_dict())  # machine-readable
    html = (tmp_path / "r.html").read_text()
    assert f.title in html and all(c.replace("'", "&#x27;") in html for c in f.conclusions)


@pytest.mark.parametrize(
    "analysis, expected",
    [
        ({"kind": "metrics", "x": "photo"}, "analyses[0].x = 'photo': not a field of a 'metrics' analysis"),
        (
            {"kind": "spurious_drop", "baseline": {OBJ: "clip"}},
            "analyses[0].baseline: not a field of a 'spurious_drop' analysis (its fields: title, metric, "
            "task, where, compare, checks, paper, common, counter, within, group_by)",
        ),
        ({"kind": "long_tail", "sweep": {}}, "analyses[0].sweep: not a field of a 'long_tail' analysis"),
        ({"kind": "effective_robustness", "transform": "linear"}, "analyses[0].transform = 'linear': Input"),
        ({"kind": "trend"}, "analyses[0].kind = 'trend': not an analysis kind (effective_robustness, "),
        ({"compare": OBJ}, "analyses[0].kind: required field is missing"),
    ],
)
def test_a_field_the_kind_does_not_have_is_a_one_line_error(analysis, expected):
    with pytest.raises(UserError) as e:
        parse_analyses([analysis], "study.yaml")
    assert str(e.value).startswith("study.yaml: ") and expected in str(e.value) and "\n" not in str(e.value)


def test_each_kind_owns_only_its_fields_and_dumps_them():
    er = parse_analysis({"kind": "effective_robustness", "baseline": {OBJ: "supervised"}})
    assert set(er.model_dump()) == COMMON | {"x", "y", "baseline", "transform", "reference"}
    assert er.axis_filters() == {"baseline": {OBJ: "supervised"}, "where": {}}
    assert set(parse_analysis({"kind": "metrics"}).model_dump()) == COMMON


def test_a_study_directory_written_by_the_flat_spec_still_reads():
    """Before kinds had their own specs, a study directory recorded every field for every analysis."""
    flat = {
        **{"kind": "metrics", "title": None, "metric": "acc1", "task": "own", "where": {}, "compare": OBJ},
        **{"x": "photo", "y": [], "baseline": {}, "transform": "logit", "common": "common"},
        **{"counter": "counter", "eval_set": "iid", "theory": {}, "sweep": {}, "seeds": [0, 1, 2]},
    }
    dumped = parse_analysis(flat).model_dump()  # (dumps of that time had no `checks`: the default)
    defaults = {"checks": ChecksSpec().model_dump(), "paper": []}  # fields added since, at their defaults
    assert dumped == {**{k: flat[k] for k in COMMON if k in flat}, **defaults}
    with pytest.raises(UserError, match="x = 'photo': not a field of a 'metrics' analysis"):
        parse_analyses([{k: v for k, v in flat.items() if k != "seeds"}])  # not a dump: a mistake


def test_shipped_studies_give_each_analysis_only_its_kinds_fields():
    paths = [*ROOT.glob("studies/*.yaml"), ROOT / "clipshift/study/specs/demo.yaml"]
    n = 0
    for path in paths:
        spec = yaml.safe_load(path.read_text())
        lists = [spec.get("analyses")] + [p.get("analyses") for p in (spec.get("profiles") or {}).values()]
        for items in lists:
            n += len(parse_analyses(items, str(path)))
    assert len(paths) >= 5 and n >= 20


def test_register_refuses_a_spec_without_a_one_name_kind_and_a_second_module_for_a_name():
    class Loose(AnalysisBase):
        pass

    with pytest.raises(TypeError, match="Literal of one name"):
        registry.register(Loose, title="x")(lambda ctx: None)
    taken = KINDS["metrics"].spec

    class Clash(taken):  # declared here, in another module
        pass

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Clash, title="x")(lambda ctx: None)
    assert registry.kinds()["metrics"].spec is taken


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"},
        timeout=300,
    )


def test_a_new_kind_is_one_file(tmp_path):
    """A module dropped into the kinds package is validated in a study spec and run in its report."""
    plugin = tmp_path / "kinds"
    plugin.mkdir()
    (plugin / "run_count.py").write_text(
        textwrap.dedent(
            '''
            from typing import Literal

            from clipshift.analysis.base import AnalysisBase, ChecksSpec
            from clipshift.analysis.context import Context
            from clipshift.analysis.registry import register


            class RunCountSpec(AnalysisBase):
                """Run count: how many runs have the metric on one evaluation set."""

                kind: Literal["run_count"] = "run_count"
                eval_set: str = "iid"


            @register(RunCountSpec, title="Runs with results")
            def run_count(ctx: Context[RunCountSpec]) -> None:
                n = len(ctx.data.scalar(ctx.spec.eval_set, ctx.spec.metric, ctx.spec.task))
                ctx.finding.conclude(f"{n} runs have {ctx.spec.metric} on {ctx.spec.eval_set}.", True)
            '''
        )
    )
    out = _run(
        f"""
        from pathlib import Path

        import clipshift.analysis.kinds as kinds
        kinds.__path__.append({str(plugin)!r})  # as if the file were in clipshift/analysis/kinds/

        from clipshift.report.build import write_report
        from clipshift.report.data import read_study_dir
        from clipshift.study.spec import parse_study
        from test_report import make_study

        spec = parse_study({{"name": "s", "grid": {{"objective.name": ["clip"]}},
                             "analyses": [{{"kind": "run_count", "eval_set": "sketch"}}]}})
        assert spec.model_dump()["analyses"][0]["eval_set"] == "sketch"
        data = read_study_dir(make_study(Path({str(tmp_path)!r}), seeds=(0,), failed=False))
        data.spec = {{**data.spec, "analyses": [{{"kind": "run_count", "eval_set": "sketch"}}]}}
        print(write_report(data, Path({str(tmp_path / "r.html")!r}), n_boot=10).headlines)
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "['6 runs have acc1 on sketch.']" in out.stdout


def test_the_analyses_and_the_report_do_not_import_torch(tmp_path):
    """`clipshift.analysis` (every kind included) and the report import no torch; the union of the specs,
    which every study spec validation imports, not even scipy or matplotlib."""
    out = _run(
        """
        import sys

        import clipshift.analysis.spec
        from clipshift.analysis import registry
        registry.kinds()
        light = sorted(m for m in ("torch", "scipy", "matplotlib") if m in sys.modules)

        import clipshift.analysis.compare, clipshift.analysis.effective_robustness, clipshift.analysis.plots
        import clipshift.analysis.reference, clipshift.analysis.longtail, clipshift.analysis.spurious
        import clipshift.report, clipshift.report.build, clipshift.report.estimates, clipshift.cli.report
        print(light, "torch" in sys.modules)
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "False"]
