"""What an analysis kind's computation is given: the study's data, its typed spec, the confidence level,
the finding it fills, and the comparison of the `compare` factor's levels on those runs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

from clipshift.analysis.base import AnalysisBase
from clipshift.analysis.checks import (
    ArmCheck,
    Shifted,
    StudyFacts,
    Verdict,
    floor_check,
    learning_check,
    manipulation_check,
    study_facts,
)
from clipshift.analysis.compare import Comparison, Estimate, LineReplicates, compare_levels, level_name
from clipshift.analysis.data import Run, StudyData, combo_label, label, matches, value_key, zipped_with
from clipshift.analysis.finding import Finding, Table
from clipshift.analysis.paper import judge

S = TypeVar("S", bound=AnalysisBase)


@dataclass
class Context(Generic[S]):
    data: StudyData
    spec: S
    ci: float
    n_boot: int
    finding: Finding
    _compare: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        c = self.spec.compare
        if c and c not in self.data.axes():
            known = ", ".join(self.data.axes()) or "none"
            self.finding.notes.append(
                f"compare: {c!r} does not vary across the runs (factors that vary: {known}); "
                "the runs are analysed as one group."
            )
            c = None
        self._compare = c
        if c:
            # levels the study planned whose runs all failed or are still pending
            planned = self.data.levels(c, self.data.runs)
            done = {value_key(v) for v in self.data.levels(c, self.runs)}
            for lv in planned:
                if value_key(lv) not in done:
                    runs = [r for r in self.data.runs if value_key(r.factors.get(c)) == value_key(lv)]
                    states = ", ".join(
                        f"{n} {st}" for st, n in sorted(Counter(r.status for r in runs).items())
                    )
                    self.finding.notes.append(f"{c}={label(lv)} has no finished runs ({states}).")

    @property
    def compare(self) -> str | None:
        return self._compare

    @property
    def runs(self) -> list[Run]:
        """The finished runs this analysis compares (`where` narrows them; an effective-robustness line
        is still fitted through every baseline run)."""
        return [r for r in self.data.done_runs if matches(r.factors, self.spec.where)]

    def level_of(self, run: Run) -> Any:
        return run.factors.get(self.compare) if self.compare else None

    def levels(self, runs: Sequence[Run] | None = None) -> list[Any]:
        return self.data.levels(self.compare, runs) if self.compare else [None]

    def reference_level(self, levels: Sequence[Any]) -> Any:
        """The spec's reference runs' level of the compare factor if it names one, else the first level."""
        reference = self.spec.reference_filter()
        if self.compare and self.compare in reference:
            want = reference[self.compare]
            for lv in levels:
                if matches({self.compare: lv}, {self.compare: want}) and not isinstance(want, list):
                    return lv
        return levels[0]

    def strata_axes(self) -> list[str]:
        # axes zipped with the compared one move with it: they are not other factors to stratify by
        same = zipped_with(self.data.spec, self.compare)
        # an evaluation study's models are the replicates of the groups compared (families), not strata;
        # only a comparison every model takes part in at several levels (a grid over evaluation
        # settings) is made within each model
        units = [u for u in self.data.unit_axes() if not self._crossed(u)]
        return [a for a in self.data.axes() if a != self.compare and a not in same and a not in units]

    def _crossed(self, axis: str) -> bool:
        """Does every level of `axis` occur at several levels of the compare factor?"""
        if not self.compare:
            return False
        seen: dict[str, set[str]] = {}
        for r in self.runs:
            seen.setdefault(value_key(r.factors.get(axis)), set()).add(value_key(self.level_of(r)))
        return bool(seen) and all(len(v) > 1 for v in seen.values())

    def compare_values(
        self,
        values: dict[str, float],
        level_of: Callable[[Run], Any] | None = None,
        levels: Sequence[Any] | None = None,
        ref: Any = None,
        strata_axes: list[str] | None = None,
        line: LineReplicates | None = None,
        within: Sequence[ArmCheck | None] = (),
    ) -> tuple[dict[str, Estimate], list[Comparison]]:
        """Per-level means (keyed by level key) and each level's difference to the reference level.

        By default the levels are those of the compare factor; `level_of`/`levels`/`ref` group the runs
        otherwise, and `strata_axes` must then leave out the factors that define those groups. `line`
        (values measured from a fitted line) adds the line's own uncertainty to each difference.
        `within`: checks of the two arms made within each combination of the other factors (e.g.
        `self.floor(shifted)`). A combination one of them fails is left out of that difference: it
        would otherwise hide in the pooled arm's mean (CLIP at chance on counter at ρ = 0.99 but not at
        0.5 is above the floor averaged over ρ). A comparison every combination is left out of is
        withheld (`withhold_reason`)."""
        axis = self.compare if level_of is None else None
        level_of = level_of or self.level_of
        runs = [r for r in self.runs if r.run_id in values and math.isfinite(values[r.run_id])]
        if levels is None:
            levels = self.levels(runs)
            ref = self.reference_level(levels) if levels else None
        if strata_axes is None:
            strata_axes = self.strata_axes()
        groups = [
            (r.run_id, level_of(r), "|".join(value_key(r.factors.get(a)) for a in strata_axes)) for r in runs
        ]
        checks = [self.learned(), *[c for c in within if c is not None]]
        if not self.spec.checks.convergence:
            checks = []
        leave_out = _leave_out(checks, runs, strata_axes, axis, ref) if checks else None
        return compare_levels(values, groups, levels, ref, self.ci, line, axis, leave_out)

    @cached_property
    def facts(self) -> StudyFacts:
        """What the learning and floor checks read of the whole study, read once."""
        return study_facts(self.data)

    def learned(self) -> ArmCheck:
        """The learning and convergence check (`checks.learning_check`), as a check of arms: every
        comparison makes it within each combination of the other factors."""
        return lambda arms: learning_check(self.data, arms, self.spec.checks, self.facts)

    def floor(self, shifted: Shifted) -> ArmCheck | None:
        """The floor check on a shifted set, as a check of arms (None when `checks.min_transfer` is 0)."""
        if self.spec.checks.min_transfer <= 0:
            return None
        return lambda arms: floor_check(self.data, arms, shifted, self.spec.checks, self.facts)

    # -- verdicts ------------------------------------------------------------------------------------

    def withhold_reason(self, comp: Comparison | None) -> str | None:
        """Why no conclusion may be drawn from this comparison (or, without one, from the runs analysed):
        the compared factor did not act, or an arm had not learned the task or was still improving (for a
        comparison: in every combination of the other factors, as every check `within` it)."""
        checks = self.spec.checks
        arms: dict[str, list[Run]] = {"the runs analysed": self.runs}
        if comp is not None and self.compare and comp.axis == self.compare:
            level = [r for r in self.runs if value_key(self.level_of(r)) == value_key(comp.level)]
            ref = [r for r in self.runs if value_key(self.level_of(r)) == value_key(comp.ref)]
            arms = {f"{comp.name} runs": level, f"{comp.ref_name} runs": ref}
            if checks.manipulation:
                acted, why = manipulation_check(self.data, self.compare, comp.level, comp.ref, level, ref)
                if acted is False:
                    return why
        if not checks.convergence:
            return None
        if comp is None:
            return learning_check(self.data, arms, checks, self.facts)
        # a comparison made its checks within each combination (`compare_values`): withheld when every
        # combination failed one
        if comp.left_out and comp.strata == 0:
            if len(comp.left_out) == 1:
                return _left_out_reason(*comp.left_out[0])
            return (
                f"in each of the {len(comp.left_out)} combinations of the other factors an arm fails a "
                f"check (e.g. {_left_out_reason(*comp.left_out[0])}; each in the details)"
            )
        return None

    def conclude(
        self,
        sentence: str,
        supported: bool,
        comp: Comparison | None = None,
        estimate: Estimate | None = None,
        units: str | None = None,
        checked: bool = True,
        judged_on: str | None = None,
    ) -> None:
        """Add a conclusion about a comparison (`comp`) or a single estimate, with its verdict:
        `withheld` when a check fails (the computed sentence moves to the details), `supported` when the
        interval excludes 0, else `not_supported` with the smallest difference the design could have
        detected at 80 % power (appended to the sentence in `units`, default the metric's points).
        `checked=False` skips the checks (e.g. the simulator, whose arms are not trained runs); a
        comparison that left combinations out (a check `within` failed there) says which; `judged_on`
        names the set in the paper verdicts of an analysis that judges its claim on several."""
        from clipshift.analysis.wording import num, points

        f = self.finding
        est = comp.diff if comp is not None else estimate
        u = points(self.spec.metric) if units is None else units
        reason = self.withhold_reason(comp) if checked else None
        scope = None
        if comp is not None and comp.left_out:
            f.details += [
                f"Left out of {comp.name} vs {comp.ref_name}: {_left_out_reason(*x)}." for x in comp.left_out
            ]
            n, out = comp.strata + len(comp.left_out), len(comp.left_out)
            kept_out = (
                "; ".join(stratum for stratum, _ in comp.left_out)
                if out <= 2
                else f"{out} of the {n} combinations of the other factors"
            )
            sentence = f"{sentence.rstrip('.')}. Compared without {kept_out} (see details)."
            scope = f"compared without {kept_out}"
        if reason is not None:
            subject = f"{comp.name} vs {comp.ref_name}" if comp is not None else "these runs"
            verdict = Verdict("withheld", reason)
            f.conclude(f"Withheld ({subject}): {reason}.", False, verdict)
            if comp is None or comp.strata > 0:  # (with every stratum left out nothing was computed)
                f.details.append(f"Computed but not concluded ({subject}): {sentence}")
        elif supported:
            verdict = Verdict("supported")
            f.conclude(sentence, True, verdict)
        else:
            mdd = est.detectable() if est is not None else math.nan
            if math.isfinite(mdd):
                sentence = (
                    f"{sentence.rstrip('.')}. This design could have detected a difference of "
                    f"{num(mdd, 2 if not u else 1)}{' ' + u if u else ''} at 80 % power."
                )
            verdict = Verdict("not_supported", detectable=mdd)
            f.conclude(sentence, False, verdict)
        if comp is not None:
            for claim in self.spec.paper:
                judged = judge(claim, comp.level, comp.ref, comp.diff.value, verdict, u, judged_on, scope)
                if judged is not None:
                    f.paper.append(judged)

    def record(self, what: str, comp: Comparison, **extra: Any) -> None:
        self.finding.numbers.append(
            {
                "what": what,
                "level": comp.level,
                "ref": comp.ref,
                "diff": comp.diff.to_dict(),
                "level_mean": comp.level_mean.to_dict(),
                "ref_mean": comp.ref_mean.to_dict(),
                **extra,
            }
        )

    def level_table(self, title: str, columns: list[str], rows: list[list[str]]) -> Table:
        head = [self.compare or "runs", "n", *columns]
        return Table(title, head, rows, numeric_from=1)


def _left_out_reason(stratum: str, why: str) -> str:
    """Why a stratum was left out, naming it unless the comparison has no other factors."""
    return why if stratum == "all runs" else f"at {stratum}, {why}"


def _leave_out(
    checks: Sequence[ArmCheck], runs: Sequence[Run], strata_axes: list[str], axis: str | None, ref: Any
) -> Callable[[Any, str, Sequence[str], Sequence[str]], tuple[str, str] | None]:
    """`compare_levels`' leave_out: a stratum where a check fails for the level's or the reference's
    runs there, as (the stratum's name, why)."""
    by_id = {r.run_id: r for r in runs}

    def rule(lv: Any, key: str, a: Sequence[str], b: Sequence[str]) -> tuple[str, str] | None:
        arms = {
            f"{level_name(axis, lv)} runs": [by_id[i] for i in a],
            f"{level_name(axis, ref)} runs": [by_id[i] for i in b],
        }
        why = [w for check in checks if (w := check(arms)) is not None]
        return (combo_label(by_id[a[0]].factors, strata_axes), "; ".join(why)) if why else None

    return rule
