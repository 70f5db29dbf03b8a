"""Analysis kinds by name. A kind is one module of `clipshift.analysis.kinds` that registers its typed
spec (an `AnalysisBase` whose `kind` is a one-value Literal, with the kind's own fields), its default
title and its computation, which fills the finding from the study's data:

    class DropSpec(AnalysisBase):
        '''My drop: what it measures, in one line.'''

        kind: Literal["my_drop"] = "my_drop"
        common: str = "common"

    @register(DropSpec, title="My drop")
    def my_drop(ctx: Context[DropSpec]) -> None:
        means, comps = ctx.compare_values(values)  # levels of `compare`, stratified by the other factors
        ctx.finding.conclude(sentence, supported)

Every module of that package is imported when the kinds are first asked for, and `clipshift.analysis.spec`
builds the union of their specs then, so a new kind is one new file there (and its test). Kind modules are
imported whenever a study spec is validated: they import light helpers at the top, and scipy/matplotlib
(fits, plots) or torch (the simulator) inside their computation.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from clipshift.analysis.base import OWN, TASK_NAMES, AnalysisBase
from clipshift.analysis.context import Context
from clipshift.analysis.data import StudyData, combo_label
from clipshift.analysis.finding import Finding
from clipshift.analysis.wording import NO_SUPPORT
from clipshift.errors import UserError

S = TypeVar("S", bound=AnalysisBase)
Compute = Callable[[Context[Any]], None]


@dataclass(frozen=True)
class Kind:
    """A registered analysis kind."""

    name: str
    spec: type[AnalysisBase]
    title: str  # the report's heading when the spec gives none
    compute: Compute  # fills ctx.finding: conclusions, details, notes, tables, figures, numbers

    example: dict[str, Any]  # fields of a small instance: what the registry-loop test runs


_KINDS: dict[str, Kind] = {}
_DISCOVERED = False


def kind_name(spec: type[AnalysisBase]) -> str:
    """The name a spec class declares: its `kind: Literal["name"]`."""
    names = get_args(spec.model_fields["kind"].annotation)
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{spec.__name__}.kind must be a Literal of one name, e.g. Literal['my_analysis']")
    return names[0]


def register(
    spec: type[S], title: str, example: dict[str, Any] | None = None
) -> Callable[[Callable[[Context[S]], None]], Callable[[Context[S]], None]]:
    """Register the decorated function as the computation of `spec`'s kind, with its default title and
    the fields of a small example (beyond `kind` and `compare`) that the test of every kind runs."""

    def add(compute: Callable[[Context[S]], None]) -> Callable[[Context[S]], None]:
        name = kind_name(spec)
        old = _KINDS.get(name)
        if old is not None and old.spec.__module__ != spec.__module__:
            raise ValueError(
                f"analysis kind {name!r} is registered twice ({old.spec.__module__}, {spec.__module__})"
            )
        _KINDS[name] = Kind(name, spec, title, compute, dict(example or {}))
        return compute

    return add


def kinds() -> dict[str, Kind]:
    """Every registered kind by name (importing `clipshift.analysis.kinds` once), sorted by name."""
    global _DISCOVERED
    if not _DISCOVERED:
        from clipshift.analysis import kinds as package

        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{info.name}")
        _DISCOVERED = True
    return dict(sorted(_KINDS.items()))


def get(name: str) -> Kind:
    known = kinds()
    if name not in known:
        raise UserError(f"unknown analysis kind {name!r} (known: {', '.join(known)})")
    return known[name]


def run_analysis(a: AnalysisBase, data: StudyData, ci: float = 0.95, n_boot: int = 1000) -> Finding:
    """One analysis of a study: its kind's computation on the data, as a Finding.

    A conclusion is drawn only when the confidence interval across seeds excludes zero (and has width:
    identical values from every seed signal a degenerate run, not certainty); otherwise (or with a single
    seed) the sentence says that the data do not support one. A problem with the analysis's data becomes
    such a sentence, so the rest of a report is still written."""
    kind = get(a.kind)
    probe = "" if a.task == OWN else f" ({TASK_NAMES[a.task]})"  # a probe's finding says so
    f = Finding(a.kind, a.title or kind.title + probe)
    if a.where:
        f.details.append(f"Runs analysed: those with {combo_label(a.where, list(a.where))}.")
    try:
        # the sets it names as the rows name them: rows carry a real-data set's spec as written
        # ('imagenet:/data/imagenet/val') while study files name it by kind (`x: imagenet`), which before
        # found no rows and withheld every conclusion
        ctx = Context(data, a.with_sets(data.eval_sets()), ci, n_boot, f)
        kind.compute(ctx)
    except UserError as e:
        f.conclude(f"{NO_SUPPORT}: {e}", False)
    return f
