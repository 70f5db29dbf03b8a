"""Before a comparison is worded: did the factor act, and had the arms learned the task?

Every run records what its factors actually did (the `checks` rows of eval set `train`: realised data,
what the objective scored, the logit scale, the loss) and its own accuracy at intermediate points of
training (`convergence` rows). An analysis that compares the levels of a factor asks two questions first:

1. **Manipulation check.** A factor claims to change some measures (`CLAIMS`: ρ changes the realised
   P(common background | class), the caption level what captions mention, K how many classes a step
   scores …). If none of them differs between the compared levels beyond the seeds' spread, the factor
   did not act in these runs and the comparison says nothing about it.
2. **Learning and convergence.** Each arm must have learned the task (its own in-distribution accuracy
   well above chance) and must not still be improving fast at the end of training; otherwise the
   comparison is between a trained model and an untrained one, or between two snapshots of moving
   targets.

A failed check *withholds* the conclusion, with the reason in one sentence. A check that cannot be made
(older runs without measures) withholds nothing, and the report says that it was not made.
"""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clipshift.analysis.base import ChecksSpec
from clipshift.analysis.data import Run, StudyData, label

CHECKS = "checks"
CONVERGENCE = "convergence"
STATUSES = ("supported", "not_supported", "withheld")


@dataclass(frozen=True)
class Verdict:
    """A conclusion's status: `supported`, `not_supported` (with `detectable`, the smallest difference the
    design could have detected at 80 % power) or `withheld` (with `reason`)."""

    status: str
    reason: str | None = None
    detectable: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.detectable is not None and math.isfinite(self.detectable):
            out["detectable"] = self.detectable
        return out


# -- what each factor claims to change ---------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A factor (a run-config path, or a prefix ending in '.') and the measures it claims to change."""

    factor: str
    measures: tuple[str, ...]  # names or fnmatch patterns of `checks` metrics
    what: str  # how the sentence names them
    # a further condition on the two arms' measures: None when the factor can act, else why it cannot
    condition: Callable[[dict[str, list[float]], dict[str, list[float]], Any, Any], str | None] | None = None

    def covers(self, axis: str) -> bool:
        return axis == self.factor or (self.factor.endswith(".") and axis.startswith(self.factor))


def _k_binds(a: dict[str, list[float]], b: dict[str, list[float]], lv: Any, ref: Any) -> str | None:
    """dynamic_k acts only when some batch held fewer than K classes (the top-up happened)."""
    shares = a.get("objective/topped_up_share", []) + b.get("objective/topped_up_share", [])
    if shares and max(shares) == 0.0:
        present = a.get("data/classes_per_batch_min", []) + b.get("data/classes_per_batch_min", [])
        least = f" (the fewest in any batch: {min(present):.0f})" if present else ""
        return (
            f"K had no effect: every batch held at least K classes{least}, at K = {label(lv)} and "
            f"K = {label(ref)}, so dynamic classification scored exactly the classes present"
        )
    return None


def _weighting_acts(a: dict[str, list[float]], b: dict[str, list[float]], lv: Any, ref: Any) -> str | None:
    """How absent classes are drawn matters only when some are drawn."""
    shares = a.get("objective/topped_up_share", []) + b.get("objective/topped_up_share", [])
    if shares and max(shares) == 0.0:
        return "the weighting had no effect: no step topped up the classes present, so no class was drawn"
    return None


def _objective_acts(a: dict[str, list[float]], b: dict[str, list[float]], lv: Any, ref: Any) -> str | None:
    """Dynamic classification differs from full cross-entropy only when a step scores fewer classes than
    the label space holds."""
    for name, m in ((lv, a), (ref, b)):
        share = m.get("objective/scored_share", [])
        if name == "dynamic" and share and min(share) >= 0.999:
            return (
                "dynamic classification scored every class at every step (every batch held every class), "
                "so it was plain cross-entropy"
            )
    return None


CLAIMS: list[Claim] = [
    Claim(
        "data.world.backgrounds.rho",
        ("data/p_common_background",),
        "the realised P(common background | class)",
    ),
    Claim(
        "data.world.captions.",
        ("data/mention/*", "data/duplicate_caption_share"),
        "what the captions mention",
    ),
    Claim("data.world.domains.", ("data/domain/*",), "the realised domain mix"),
    Claim("data.world.frequency.", ("data/imbalance", "data/gini"), "the realised class imbalance"),
    Claim("data.world.concepts.", ("data/classes_present", "data/classes_per_batch_mean"), "the classes"),
    Claim(
        "data.subsample.", ("data/rows", "data/imbalance", "data/gini"), "the rows and their class balance"
    ),
    Claim("data.n", ("data/rows",), "the number of training rows"),
    Claim("optim.batch_size", ("data/classes_per_batch_mean",), "the classes per batch"),
    Claim("objective.dynamic_k", ("objective/classes_scored_mean",), "the classes scored per step", _k_binds),
    Claim("objective.dynamic_weighting", (), "which classes are drawn", _weighting_acts),
    Claim("objective.name", (), "the objective", _objective_acts),
]


def claim_for(axis: str) -> Claim | None:
    return next((c for c in CLAIMS if c.covers(axis)), None)


# -- reading the checks -------------------------------------------------------------------------------


def run_measures(data: StudyData) -> dict[str, dict[str, float]]:
    """run id -> {measure: value} from the `checks` rows."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in data.rows:
        if r.get("task") == CHECKS and r["class_id"] < 0:
            out[r["run_id"]][r["metric"]] = float(r["value"])
    return dict(out)


def _collect(measures: dict[str, dict[str, float]], runs: Sequence[Run]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        for k, v in measures.get(r.run_id, {}).items():
            if math.isfinite(v):
                out[k].append(v)
    return dict(out)


def _differs(a: list[float], b: list[float]) -> bool:
    """Do two groups of a measure differ beyond their seeds' spread (2 standard errors), and beyond
    rounding? A measure fixed by the data (no spread) differs as soon as the values do."""
    if not a or not b:
        return False
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    scale = max(abs(ma), abs(mb), 1e-12)
    if abs(ma - mb) <= 1e-6 * scale:
        return False

    def var(x: list[float], m: float) -> float:
        return sum((v - m) ** 2 for v in x) / (len(x) - 1) if len(x) > 1 else 0.0

    se = math.sqrt(var(a, ma) / len(a) + var(b, mb) / len(b))
    return abs(ma - mb) > 2 * se


def manipulation_check(
    data: StudyData, axis: str, level: Any, ref: Any, level_runs: Sequence[Run], ref_runs: Sequence[Run]
) -> tuple[bool | None, str]:
    """(acted, why): True when a claimed measure differs between the arms (and the claim's condition holds),
    False with the reason when it provably did not act, None when the runs carry no measures to tell."""
    claim = claim_for(axis)
    measures = run_measures(data)
    a, b = _collect(measures, level_runs), _collect(measures, ref_runs)
    if not a or not b:
        return None, "the runs recorded no manipulation-check measures"
    if claim is None:
        return None, f"no manipulation check is defined for {axis}"
    if claim.condition is not None:
        why = claim.condition(a, b, level, ref)
        if why is not None:
            return False, why
    if not claim.measures:
        return True, f"{axis} changes {claim.what} by definition"
    names = sorted({k for k in [*a, *b] if any(fnmatch.fnmatchcase(k, p) for p in claim.measures)})
    if not names:
        return None, f"the runs recorded none of {', '.join(claim.measures)}"
    moved = [k for k in names if _differs(a.get(k, []), b.get(k, []))]
    if moved:
        return True, f"{axis} changed {', '.join(moved)}"
    shown = "; ".join(f"{k} {_mean(a.get(k, []))} vs {_mean(b.get(k, []))}" for k in names[:3])
    return False, (
        f"{axis} had no effect on {claim.what} ({label(level)} vs {label(ref)}: {shown}, within the seeds' "
        "spread)"
    )


def _mean(v: list[float]) -> str:
    return f"{sum(v) / len(v):.3g}" if v else "n/a"


def convergence_sets(data: StudyData) -> list[str]:
    """The evaluation sets the runs scored their snapshots on (the first set of each run's config)."""
    return sorted({r["eval_set"] for r in data.rows if r.get("task") == CONVERGENCE})


def own_accuracy(data: StudyData) -> tuple[str | None, dict[str, float]]:
    """(evaluation set, run id -> the model's own top-1 accuracy there): `iid`, else the set the runs'
    convergence check used (the first of their config's sets: the training distribution's own, such as
    data-diversity's `photo`), else the first set by name."""
    sets = data.eval_sets()
    checked = convergence_sets(data)
    for es in ["iid", *checked, *sets]:
        values = data.scalar(es, "acc1")
        if values:
            return es, values
    return None, {}


def n_classes(data: StudyData) -> int | None:
    """The size of the evaluation label space, from the training class counts every run records."""
    counts = data.per_class("train", "class_count")
    sizes = {len(v) for v in counts.values()}
    return max(sizes) if sizes else None


def late_gain(data: StudyData) -> dict[str, float]:
    """run id -> accuracy gained over the last quarter of training (acc1@1.00 − acc1@0.75), from the
    convergence rows."""
    by_run: dict[str, dict[str, float]] = defaultdict(dict)
    for r in data.rows:
        if r.get("task") == CONVERGENCE and r["class_id"] < 0:
            by_run[r["run_id"]][r["metric"]] = float(r["value"])
    return {
        run: m["acc1@1.00"] - m["acc1@0.75"]
        for run, m in by_run.items()
        if "acc1@1.00" in m and "acc1@0.75" in m
    }


def share_above_chance(acc: float, chance: float, perfect: float = 1.0) -> float:
    """How much of the way from chance to `perfect` an accuracy covers (the learned and floor checks'
    measure; all three in one unit: fractions, or percent with `perfect` = 100)."""
    return (acc - chance) / (perfect - chance)


@dataclass(frozen=True)
class StudyFacts:
    """What the learning and floor checks read of the whole study. Each scans every row, and the checks
    are made within every combination of the other factors of every comparison, so an analysis reads
    them once (`Context.facts`)."""

    eval_set: str | None  # where the own accuracy is read (`own_accuracy`)
    accuracy: dict[str, float]  # run id -> own accuracy there
    classes: int | None  # `n_classes`
    gains: dict[str, float]  # run id -> `late_gain`
    gain_set: str  # where the snapshots were scored, as sentences name it


def study_facts(data: StudyData) -> StudyFacts:
    es, acc = own_accuracy(data)
    checked = convergence_sets(data)
    gain_set = checked[0] if len(checked) == 1 else "in-distribution"
    return StudyFacts(es, acc, n_classes(data), late_gain(data), gain_set)


def learning_check(
    data: StudyData, arms: Mapping[str, Sequence[Run]], spec: ChecksSpec, facts: StudyFacts | None = None
) -> str | None:
    """Why the arms cannot be compared (one had not learned the task, or was still improving), or None.
    Arms are named groups of runs (e.g. "clip runs"); `facts`: `study_facts(data)`, if already read."""
    f = facts or study_facts(data)
    es, acc, c, gains, gain_set = f.eval_set, f.accuracy, f.classes, f.gains, f.gain_set
    problems = []
    for name, runs in arms.items():
        ids = [r.run_id for r in runs]
        accs = [acc[i] for i in ids if i in acc]
        if accs and c:
            chance = 1.0 / c
            mean = sum(accs) / len(accs)
            if share_above_chance(mean, chance) < spec.min_learned:
                problems.append(
                    f"{name} had not learned the task ({es} accuracy {100 * mean:.1f} % against chance "
                    f"{100 * chance:.1f} %)"
                )
                continue
        g = [gains[i] for i in ids if i in gains]
        if g and sum(g) / len(g) > spec.max_late_gain:
            epochs = _epochs(data, runs)
            per = f" ({400 * sum(g) / len(g) / epochs:.1f} points per epoch)" if epochs else ""
            rise = 100 * sum(g) / len(g)
            problems.append(
                f"{name} had not converged: {gain_set} accuracy was still rising by {rise:.1f} "
                f"points over the last quarter of training{per}"
            )
    return "; ".join(problems) if problems else None


@dataclass(frozen=True)
class Shifted:
    """A shifted evaluation set a comparison is made on, for the floor check: its name, run id -> accuracy
    there (percent), and its chance level (percent; None: one over the classes, as for top-1)."""

    name: str
    acc: Mapping[str, float]
    chance: float | None = None


def floor_check(
    data: StudyData,
    arms: Mapping[str, Sequence[Run]],
    shifted: Shifted,
    spec: ChecksSpec,
    facts: StudyFacts | None = None,
) -> str | None:
    """Why the arms cannot be compared on a shifted set: one of them is at the floor there (its mean
    accuracy less than `spec.min_transfer` of the way from chance to 100 %), or None. A set every model
    fails (e.g. a sketch of a world trained on photos) says that no arm transferred, which the tables show;
    a line or a difference fitted there measures where accuracy bottoms out, not robustness."""
    c = facts.classes if facts is not None else n_classes(data)
    chance = shifted.chance if shifted.chance is not None else (100.0 / c if c else None)
    if chance is None:
        return None
    problems = []
    for name, runs in arms.items():
        mean = _arm_mean(runs, shifted.acc)
        if mean is not None and share_above_chance(mean, chance, 100.0) < spec.min_transfer:
            problems.append(
                f"{name} are at the floor on {shifted.name} ({mean:.1f} % against chance {chance:.1f} %, "
                f"less than {100 * spec.min_transfer:.0f} % of the way to 100 %)"
            )
    return "; ".join(problems) if problems else None


# a check of two named arms (groups of runs) within one combination of the other factors: why they cannot
# be compared there, or None (`Context.compare_values(within=...)`)
ArmCheck = Callable[[Mapping[str, Sequence[Run]]], "str | None"]


def line_range_check(
    arms: Mapping[str, Sequence[Run]],
    x: Mapping[str, float],
    line_x: Sequence[float],
    x_name: str,
    spec: ChecksSpec,
) -> str | None:
    """Why effective robustness cannot be compared: an arm's mean accuracy on `x_name` (percent, run id
    -> value) lies further outside the range of the line's own runs (`line_x`) than `spec.max_extrapolation`
    of that range's width. Effective robustness is a distance from a line fitted through those runs; far
    outside them it measures the line's extrapolation (e.g. a line through supervised models at 88-92 %
    that predicts more than 100 % for a CLIP at 63 %), which the line's bootstrap does not bound."""
    if not line_x:
        return None
    lo, hi = min(line_x), max(line_x)
    margin = spec.max_extrapolation * (hi - lo)
    problems = []
    for name, runs in arms.items():
        mean = _arm_mean(runs, x)
        if mean is not None and (mean < lo - margin or mean > hi + margin):
            problems.append(
                f"{name} lie outside the line's range on {x_name} ({mean:.1f} % against its runs' "
                f"{lo:.1f}–{hi:.1f} %): their effective robustness is an extrapolation of the line"
            )
    return "; ".join(problems) if problems else None


def _arm_mean(runs: Sequence[Run], values: Mapping[str, float]) -> float | None:
    """The mean of `values` (run id -> value) over an arm's runs that have one; None if none has."""
    v = [values[r.run_id] for r in runs if r.run_id in values]
    return sum(v) / len(v) if v else None


def _epochs(data: StudyData, runs: Sequence[Run]) -> float | None:
    """The runs' epochs, from the study spec's base (grid values for epochs are in the factors)."""
    values = {v for r in runs if isinstance(v := r.factors.get("epochs"), (int, float))}
    if len(values) == 1:
        return float(next(iter(values)))
    base = data.spec.get("base") if isinstance(data.spec, dict) else None
    e = base.get("epochs") if isinstance(base, dict) else None
    return float(e) if isinstance(e, (int, float)) else None
