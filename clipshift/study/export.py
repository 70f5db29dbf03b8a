"""The results store as one tidy table — study, run_id, one column per factor, seed, eval_set, task,
metric, class_id, value — written as CSV or Parquet."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from clipshift.errors import UserError
from clipshift.study.store import ResultsStore

FORMATS = ("csv", "parquet")
HEAD = ["study", "run_id"]
TAIL = ["seed", "eval_set", "task", "metric", "class_id", "value"]


def tidy_table(store: ResultsStore) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of the done runs' results; factor columns in the spec's axis order."""
    results = store.results()
    spec = store.get_meta("spec") or {}
    axes = list(spec.get("grid") or {}) + [a for group in spec.get("zip") or [] for a in group]
    for r in results:
        for a in r["factors"]:
            if a not in axes:
                axes.append(a)
    reserved = set(HEAD + TAIL)
    columns = HEAD + [f"factor.{a}" if a in reserved else a for a in axes] + TAIL
    rows = []
    for r in results:
        row = {"study": r["study"], "run_id": r["run_id"]}
        for a, col in zip(axes, columns[len(HEAD) :]):
            row[col] = r["factors"].get(a)
        row.update({k: r[k] for k in TAIL})
        rows.append(row)
    return columns, rows


def export_results(study_dir: str | Path, fmt: str, out: str | Path) -> int:
    """Write the table to `out`; returns the number of rows."""
    from clipshift.study.runner import STORE_FILE

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    db = Path(study_dir) / STORE_FILE
    if not db.is_file():
        raise UserError(f"{study_dir}: not a study directory (no {STORE_FILE})")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("--format parquet needs pyarrow: pip install pyarrow") from None
    store = ResultsStore(db)
    try:
        columns, rows = tidy_table(store)
    finally:
        store.close()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        _write_csv(path, columns, rows)
    else:
        _write_parquet(path, columns, rows)
    return len(rows)


def _cell(v: Any) -> Any:
    """Lists and mappings (a factor set to a whole sub-config) as JSON text."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow(["" if row[c] is None else _cell(row[c]) for c in columns])


def _write_parquet(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {}
    for c in columns:
        values = [_cell(r[c]) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and kinds != {int, float}:  # a column of mixed types becomes text
            values = [None if v is None else str(v) for v in values]
        data[c] = values
    pq.write_table(pa.table(data), path)
