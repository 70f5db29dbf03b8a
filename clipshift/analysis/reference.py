"""Reference sets for effective robustness: which models, their (x, y) accuracies, and which define the line.

Three sources:

- `load_reference("imagenet-testbed", x, y)`: the shipped imagenet-testbed table (Taori et al., 2020)
  with the testbed's own selection rule per shift (see `testbed_rule`).
- `load_reference("my.csv", x, y)`: a user CSV with columns `model, x, y[, is_reference][, model_type]`,
  or with `x`/`y` naming other columns of the file.
- `reference_from_rows(rows, x_set, y_set, baseline=...)`: clipshift's own results store.

All accuracies in a `ReferenceSet` are percentages (0–100).
"""

from __future__ import annotations

import csv
import difflib
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from clipshift.analysis.effective_robustness import DEFAULT_EPS, Fit, effective_robustness, fit_line
from clipshift.analysis.spec import OWN, task_kind
from clipshift.errors import UserError

TESTBED = "imagenet-testbed"
KNOWN_REFERENCES: tuple[str, ...] = (TESTBED,)

# The testbed plots each of these shifts against ImageNet val accuracy restricted to the shift's classes.
SUBSET_X: dict[str, str] = {
    "imagenet-r": "val-on-imagenet-r-classes",
    "imagenet-a": "val-on-imagenet-a-classes",
    "objectnet-1.0-beta": "val-on-objectnet-classes",
}
# Friendly names for the testbed's column names.
Y_ALIASES: dict[str, str] = {
    "objectnet": "objectnet-1.0-beta",
    "imagenetv2": "imagenetv2-matched-frequency-format-val",
    "imagenet-v2": "imagenetv2-matched-frequency-format-val",
}

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass
class ReferenceSet:
    """Models' accuracies x (in-distribution) and y (shift) in percent; `is_reference`: the line's models."""

    models: list[str]
    x: FloatArray
    y: FloatArray
    is_reference: BoolArray
    x_name: str
    y_name: str
    source: str
    model_types: list[str] | None = None
    meta: list[dict[str, Any]] | None = None  # per model (e.g. run factors and seed), when known
    notes: list[str] = field(default_factory=list)  # decisions taken while building the set

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=float)
        self.y = np.asarray(self.y, dtype=float)
        self.is_reference = np.asarray(self.is_reference, dtype=bool)
        n = len(self.models)
        for name, arr in (("x", self.x), ("y", self.y), ("is_reference", self.is_reference)):
            if arr.shape != (n,):
                raise ValueError(f"ReferenceSet.{name} has shape {arr.shape}, expected ({n},)")

    @property
    def n_reference(self) -> int:
        return int(self.is_reference.sum())

    def reference_models(self) -> list[str]:
        return [m for m, r in zip(self.models, self.is_reference) if r]

    def fit(self, kind: str = "logit", eps: float = DEFAULT_EPS, clip: bool = True) -> Fit:
        """The line through the reference models."""
        if self.n_reference < 2:
            raise UserError(
                f"{self.source}: {self.n_reference} reference model(s) for {self.x_name} → {self.y_name}; "
                "a line needs at least 2"
            )
        ref = self.is_reference
        return fit_line(self.x[ref], self.y[ref], kind, eps, clip, names=self.reference_models())

    def effective_robustness(self, fit: Fit) -> FloatArray:
        """Effective robustness (accuracy points) of every model in the set."""
        return effective_robustness(fit, self.x, self.y, names=self.models)


# ----------------------------------------------------------------------------------------------------
# imagenet-testbed


@dataclass(frozen=True)
class TestbedRule:
    """The testbed's choice of line-fit models for one (x, y) plot."""

    model_type: str = "STANDARD"
    min_x: float = 55.0  # models below this x accuracy are not shown and not fitted
    name_excludes: tuple[str, ...] = ("aws", "batch64", "subsample")  # substrings, lower-case
    name_exact_excludes: tuple[str, ...] = ()

    def selects(self, model: str, model_type: str, x: float) -> bool:
        low = model.lower()
        return (
            model_type == self.model_type
            and x >= self.min_x
            and not any(s in low for s in self.name_excludes)
            and low not in self.name_exact_excludes
        )

    def describe(self) -> str:
        parts = [f"model type {self.model_type}", f"x ≥ {self.min_x:g} %"]
        parts.append("name without " + "/".join(repr(s) for s in self.name_excludes))
        if self.name_exact_excludes:
            parts.append("excluding " + ", ".join(self.name_exact_excludes))
        return "reference line: " + ", ".join(parts)


def testbed_rule(y: str, x: str) -> TestbedRule:
    """Line-fit selection of the testbed's plotting scripts for shift `y` against `x`.

    STANDARD models, names without 'aws'/'batch64' (duplicated training runs) or 'subsample' (trained on
    ImageNet subsets); x ≥ 75 % for ImageNet-R and -A on their class-subset x axes, else x ≥ 55 %;
    ImageNet-A also drops `resnet50` (the testbed uses it as a pivot). The testbed fits ImageNet-A
    piecewise around ResNet-50's accuracy; clipshift fits a single line.
    """
    on_subset = SUBSET_X.get(y) == x
    if y in ("imagenet-r", "imagenet-a") and on_subset:
        excl = ("resnet50",) if y == "imagenet-a" else ()
        return TestbedRule(min_x=75.0, name_exact_excludes=excl)
    if y == "imagenet-a":
        return TestbedRule(name_exact_excludes=("resnet50",))
    return TestbedRule()


def _data_file(name: str) -> Any:
    return resources.files("clipshift.analysis").joinpath("reference_data").joinpath(name)


@functools.lru_cache(maxsize=1)
def _testbed_table() -> tuple[tuple[str, ...], dict[str, FloatArray]]:
    with _data_file("imagenet_testbed_top1.csv").open("r", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    models = tuple(r[0] for r in rows)
    cols = {
        name: np.array([float(r[j]) if r[j] != "" else math.nan for r in rows])
        for j, name in enumerate(header)
        if j > 0
    }
    return models, cols


@functools.lru_cache(maxsize=1)
def _testbed_types() -> dict[str, str]:
    with _data_file("imagenet_testbed_model_types.csv").open("r", encoding="utf-8") as f:
        return {row["model"]: row["model_type"] for row in csv.DictReader(f)}


def testbed_columns() -> list[str]:
    """The evaluation settings (columns) of the shipped imagenet-testbed table."""
    return list(_testbed_table()[1])


def _unknown_column(where: str, role: str, name: str, columns: Iterable[str]) -> UserError:
    cols = list(columns)
    close = difflib.get_close_matches(name, cols, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"{where}: no column {name!r} for {role}{hint}")


def _load_testbed(x: str | None, y: str | None, auto_subset: bool) -> ReferenceSet:
    models, cols = _testbed_table()
    notes: list[str] = []
    if y is None:
        raise UserError(f"{TESTBED}: y is required (e.g. imagenetv2-matched-frequency-format-val)")
    if y in Y_ALIASES:
        notes.append(f"y {y!r} is the testbed column {Y_ALIASES[y]!r}")
        y = Y_ALIASES[y]
    if y not in cols:
        raise _unknown_column(TESTBED, "y", y, cols)
    x = x or "val"
    if auto_subset and x == "val" and y in SUBSET_X:
        notes.append(
            f"x 'val' → {SUBSET_X[y]!r}: ImageNet accuracy on the classes {y} shares, as the testbed plots it"
        )
        x = SUBSET_X[y]
    if x not in cols:
        raise _unknown_column(TESTBED, "x", x, cols)
    types = _testbed_types()
    xs, ys = cols[x], cols[y]
    keep = np.isfinite(xs) & np.isfinite(ys)
    rule = testbed_rule(y, x)
    kept = [m for m, k in zip(models, keep) if k]
    kept_types = [types.get(m, "UNKNOWN") for m in kept]
    xk, yk = xs[keep], ys[keep]
    is_ref = np.array([rule.selects(m, t, float(v)) for m, t, v in zip(kept, kept_types, xk)], dtype=bool)
    notes.append(rule.describe())
    if (~keep).any():
        notes.append(f"{int((~keep).sum())} model(s) without both accuracies left out")
    return ReferenceSet(kept, xk, yk, is_ref, x, y, TESTBED, model_types=kept_types, notes=notes)


# ----------------------------------------------------------------------------------------------------
# user CSV

_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n", ""}


def _parse_float(path: Path, line: int, col: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{path}, line {line}: column {col!r} = {text!r} is not a number") from None


def _load_csv(path: Path, x: str | None, y: str | None) -> ReferenceSet:
    x, y = x or "x", y or "y"
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    for col in ("model", x, y):
        if col not in columns:
            shown = ", ".join(columns) if columns else "none"
            raise UserError(f"{path}: missing column {col!r} (columns: {shown})")
    models: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    refs: list[bool] = []
    types: list[str] = []
    skipped = 0
    for line, row in enumerate(rows, start=2):
        tx, ty = (row.get(x) or "").strip(), (row.get(y) or "").strip()
        if not tx or not ty:
            skipped += 1
            continue
        models.append((row.get("model") or "").strip() or f"line {line}")
        xs.append(_parse_float(path, line, x, tx))
        ys.append(_parse_float(path, line, y, ty))
        flag = (row.get("is_reference") or "").strip().lower() if "is_reference" in columns else "1"
        if flag not in _TRUE | _FALSE:
            raise UserError(f"{path}, line {line}: column 'is_reference' = {flag!r} is not true/false")
        refs.append(flag in _TRUE)
        types.append((row.get("model_type") or "").strip())
    if not models:
        raise UserError(f"{path}: no row has both {x!r} and {y!r}")
    for col, vals in ((x, xs), (y, ys)):
        bad = [v for v in vals if not 0.0 <= v <= 100.0]
        if bad:
            raise UserError(f"{path}: column {col!r} has {bad[0]}, not a percentage in [0, 100]")
    if max(xs + ys) <= 1.0:
        raise UserError(
            f"{path}: every accuracy in {x!r} and {y!r} is ≤ 1; give percentages (0–100), not fractions"
        )
    notes = [] if "is_reference" in columns else ["no 'is_reference' column: every model defines the line"]
    if skipped:
        notes.append(f"{skipped} row(s) without both accuracies left out")
    return ReferenceSet(
        models,
        np.array(xs),
        np.array(ys),
        np.array(refs),
        x,
        y,
        str(path),
        model_types=types if "model_type" in columns else None,
        notes=notes,
    )


def load_reference(
    name_or_path: str | Path, x: str | None = None, y: str | None = None, *, auto_subset: bool = True
) -> ReferenceSet:
    """A reference set by name (`imagenet-testbed`) or from a CSV file.

    For the testbed, `x` defaults to `val` and, when `auto_subset`, `x='val'` with ImageNet-R/-A or
    ObjectNet as `y` becomes the matching class-subset column (stated in `notes`). For a CSV, `x`/`y`
    name its columns (default `x`, `y`).
    """
    text = str(name_or_path)
    if text.lower() in KNOWN_REFERENCES:
        return _load_testbed(x, y, auto_subset)
    path = Path(text).expanduser()
    if not path.is_file():
        known = ", ".join(KNOWN_REFERENCES)
        raise UserError(f"reference {text!r}: neither a known reference ({known}) nor an existing CSV file")
    return _load_csv(path, x, y)


# ----------------------------------------------------------------------------------------------------
# clipshift's results store

_MISSING = object()


def factor_value(factors: Mapping[str, Any], key: str) -> Any:
    """A factor by dotted name from a flat (`{'objective.name': ...}`) or nested mapping; else `_MISSING`."""
    if key in factors:
        return factors[key]
    node: Any = factors
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (list, tuple, set)):
        return any(_matches(value, w) for w in wanted)
    return bool(value == wanted) or str(value) == str(wanted)


def reference_from_rows(
    rows: Iterable[Mapping[str, Any]],
    x_set: str,
    y_set: str,
    metric: str = "acc1",
    baseline: Mapping[str, Any] | None = None,
    task: str = OWN,
) -> ReferenceSet:
    """One point per run from tidy result rows `{run_id, factors, seed, eval_set, task, metric, class_id,
    value}`.

    Only aggregate rows (class_id −1 or absent) of `metric` from `task` (a TaskKind; rows without a task
    are the model's own) count; values are fractions (0–1) and become percentages. `baseline` is a factor
    filter (`{'objective.name': 'supervised'}`; a list value means any of) selecting the runs that define
    the line; None or empty: every run.
    """
    per_run: dict[str, dict[str, float]] = {}
    info: dict[str, dict[str, Any]] = {}
    eval_sets: set[str] = set()
    for row in rows:
        if row.get("metric") != metric or task_kind(row.get("task")) != task:
            continue
        cid = row.get("class_id", -1)
        if cid is not None and int(cid) != -1:
            continue
        es = str(row.get("eval_set"))
        eval_sets.add(es)
        if es not in (x_set, y_set):
            continue
        run = str(row["run_id"])
        value = float(row["value"])
        if not (0.0 <= value <= 1.0):
            raise UserError(f"run {run}, eval set {es!r}: {metric} = {value} is not a fraction in [0, 1]")
        slot = per_run.setdefault(run, {})
        if es in slot:
            raise UserError(f"run {run}: two aggregate {metric} rows for eval set {es!r}")
        slot[es] = 100.0 * value
        info.setdefault(run, {"factors": dict(row.get("factors") or {}), "seed": row.get("seed")})
    runs = [r for r, v in per_run.items() if x_set in v and y_set in v]
    if not runs:
        shown = ", ".join(sorted(eval_sets)) or "none"
        raise UserError(f"no run has {metric} on both {x_set!r} and {y_set!r} (eval sets present: {shown})")
    metas = [{**info[r]["factors"], "seed": info[r]["seed"]} for r in runs]
    if baseline:
        for key in baseline:
            if all(factor_value(m, key) is _MISSING for m in metas):
                known = sorted({k for m in metas for k in m})
                raise UserError(f"baseline: {key!r} is not a factor of any run (factors: {', '.join(known)})")
        is_ref = np.array(
            [all(_matches(factor_value(m, k), v) for k, v in baseline.items()) for m in metas], dtype=bool
        )
        if not is_ref.any():
            raise UserError(f"baseline {dict(baseline)}: matches none of the {len(runs)} runs")
        notes = [f"reference line: runs with {dict(baseline)} ({int(is_ref.sum())} of {len(runs)})"]
    else:
        is_ref = np.ones(len(runs), dtype=bool)
        notes = [f"reference line: every run ({len(runs)})"]
    dropped = len(per_run) - len(runs)
    if dropped:
        notes.append(f"{dropped} run(s) without both eval sets left out")
    return ReferenceSet(
        runs,
        np.array([per_run[r][x_set] for r in runs]),
        np.array([per_run[r][y_set] for r in runs]),
        is_ref,
        x_set,
        y_set,
        "results",
        meta=metas,
        notes=notes,
    )
