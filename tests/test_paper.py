"""A paper's claim against a study's comparison (`paper:` on an analysis): reproduced, contradicted, not
reproduced (with what the design could have detected) or not tested (the comparison was withheld), each
judged from the comparison's own verdict, planted in studies built in memory."""

from __future__ import annotations

import json

import pytest
from test_checks import OBJ, drop_finding, study

from clipshift.analysis.checks import Verdict
from clipshift.analysis.paper import PaperClaim, judge
from clipshift.cli.main import main

CLAIM = {
    "source": "Wang et al. 2024",
    "claim": "CLIP's common-counter drop exceeds the ImageNet models'",
    "higher": "clip",
    "lower": "supervised",
}
LEARNED = {
    "clip": {"objective/classes_scored_mean": 8.0},
    "supervised": {"objective/classes_scored_mean": 10.0},
}


def _claimed(iid: dict, counter: dict, gain: dict | None = None, noise: float = 0.01):
    data = study(OBJ, ["clip", "supervised"], iid, counter, LEARNED, gain, noise=noise)
    data.spec["analyses"][0]["paper"] = CLAIM
    return data


@pytest.mark.parametrize(
    "counter, status",
    [
        ({"clip": 0.40, "supervised": 0.70}, "reproduced"),  # CLIP drops 50 points, supervised 20
        ({"clip": 0.80, "supervised": 0.50}, "contradicted"),  # the other way
        ({"clip": 0.60, "supervised": 0.60}, "not_reproduced"),  # the same drop
    ],
)
def test_a_comparison_is_judged_against_the_paper_from_its_own_verdict(tmp_path, counter, status):
    data = _claimed({"clip": 0.9, "supervised": 0.9}, counter, noise=0.02)
    f, html = drop_finding(data, tmp_path)
    (p,) = f.paper
    assert p.status == status, p.text
    assert p.text.startswith("Wang et al. 2024: CLIP's common-counter drop exceeds the ImageNet models'")
    assert f'<span class="badge {status}">' in html and "Against the papers" in html
    if status == "not_reproduced":
        assert f.verdicts[0].status == "not_supported" and "could have detected" in p.text


def test_a_withheld_comparison_leaves_the_claim_not_tested_with_the_reason(tmp_path):
    data = _claimed({"clip": 0.9, "supervised": 0.9}, {"clip": 0.4, "supervised": 0.7}, gain={"clip": 0.08})
    f, _ = drop_finding(data, tmp_path)
    (p,) = f.paper
    assert f.verdicts[0].status == "withheld"
    assert p.status == "not_tested" and "had not converged" in p.text


def test_only_the_claimed_pair_is_judged():
    claim = PaperClaim.model_validate(CLAIM)
    assert judge(claim, "clip", "clip-classname", 5.0, Verdict("supported")) is None
    assert judge(claim, "supervised", "clip", -5.0, Verdict("supported")).status == "reproduced"  # type: ignore[union-attr]
    assert judge(claim, "clip", "supervised", -5.0, Verdict("supported")).status == "contradicted"  # type: ignore[union-attr]


def test_a_claim_judged_on_several_sets_names_the_set():
    """An effective-robustness analysis judges its claim once per shifted set: each verdict says where."""
    claim = PaperClaim.model_validate(CLAIM)
    on_sketch = judge(claim, "supervised", "clip", -5.0, Verdict("supported"), on="sketch")
    assert on_sketch is not None and "— on sketch, reproduced:" in on_sketch.text
    plain = judge(claim, "supervised", "clip", -5.0, Verdict("supported"))
    assert plain is not None and " on " not in plain.text.split("—")[1]
    # a comparison that left combinations out (at the floor) says so in the verdict it gives
    scoped = judge(claim, "supervised", "clip", -5.0, Verdict("supported"), scope="compared without rho=0.99")
    assert scoped is not None and scoped.text.endswith("direction (compared without rho=0.99).")
    withheld = judge(claim, "supervised", "clip", -5.0, Verdict("withheld", "x"), scope="compared without a")
    assert withheld is not None and "compared without" not in withheld.text


def test_report_json_and_cli_carry_the_paper_verdicts(tmp_path, capsys):
    from clipshift.report.build import write_report

    data = _claimed({"clip": 0.9, "supervised": 0.9}, {"clip": 0.4, "supervised": 0.7})
    summary = write_report(data, tmp_path / "r.html", n_boot=50)
    d = json.loads(json.dumps(summary.to_dict()))
    assert [p["status"] for p in d["paper"]] == ["reproduced"]
    assert d["findings"][0]["paper"][0]["source"] == "Wang et al. 2024"


def test_a_malformed_claim_is_one_line(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nbase: {data: {kind: world, n: 64}}\ngrid: {objective.name: [clip, supervised]}\n"
        "analyses:\n  - {kind: spurious_drop, compare: objective.name,\n"
        "     paper: {source: X, claim: Y, higher: clip}}\n"
    )
    assert main(["study", "plan", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "paper" in err[0] and "lower" in err[0], err


def test_a_claim_about_levels_the_study_never_compared_is_noted(tmp_path):
    data = _claimed({"clip": 0.9, "supervised": 0.9}, {"clip": 0.4, "supervised": 0.7})
    data.spec["analyses"][0]["paper"] = {**CLAIM, "higher": "siglip"}
    f, _ = drop_finding(data, tmp_path)
    assert not f.paper
    assert any(
        "was not judged: no comparison of objective.name = siglip with supervised" in n for n in f.notes
    )
    with pytest.raises(ValueError, match="the same level"):
        PaperClaim.model_validate({**CLAIM, "lower": "clip"})


def test_an_analysis_may_carry_several_claims_each_judged_or_noted(tmp_path):
    # one claim per pair of levels (Wen et al. compare CLIP and dynamic classification each with SL)
    data = _claimed({"clip": 0.9, "supervised": 0.9}, {"clip": 0.4, "supervised": 0.7})
    other = {**CLAIM, "claim": "a claim about a level not in this study", "higher": "siglip"}
    data.spec["analyses"][0]["paper"] = [CLAIM, other]
    f, _ = drop_finding(data, tmp_path)
    assert [(p.claim, p.status) for p in f.paper] == [(CLAIM["claim"], "reproduced")]
    assert sum("was not judged" in n for n in f.notes) == 1
    assert any("a claim about a level not in this study" in n for n in f.notes)
