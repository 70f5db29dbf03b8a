"""A study directory read once into plain Python (`StudyData`: spec, runs, tidy result rows, training
curves); the types themselves live in `clipshift.analysis.data`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

from clipshift.analysis.data import (
    SEED,
    Run,
    StudyData,
    combo_label,
    label,
    matches,
    value_key,
    zipped_with,
)
from clipshift.errors import UserError

__all__ = [
    "SEED",
    "Run",
    "StudyData",
    "combo_label",
    "label",
    "matches",
    "read_study_dir",
    "value_key",
    "zipped_with",
]


def read_study_dir(study_dir: str | Path) -> StudyData:
    """Read STUDY_DIR (study.yaml + results.sqlite + runs/); UserError if it is not a study or is empty."""
    d = Path(study_dir)
    if not d.is_dir():
        raise UserError(f"{d}: no such study directory")
    db = d / "results.sqlite"
    if not db.is_file():
        raise UserError(f"{d}: not a study directory (no results.sqlite; run `clipshift study run` first)")
    from clipshift.study.store import ResultsStore

    try:
        with ResultsStore(db) as store:
            spec = store.get_meta("spec") or _read_yaml(d / "study.yaml")
            name = store.get_meta("name") or spec.get("name") or d.name
            run_rows = store.runs()
            rows = store.results()
            warnings = store.get_meta("warnings") or []
    except sqlite3.Error as e:
        raise UserError(f"{db}: cannot read the results store ({e})") from None
    if not run_rows and not rows:
        raise UserError(f"{d}: the results store is empty (no runs recorded yet)")
    runs = [_run(d, r) for r in run_rows]
    known = {r.run_id for r in runs}
    # results of runs the runs table lacks (e.g. imported rows) still belong in the report
    for row in rows:
        if row["run_id"] not in known:
            known.add(row["run_id"])
            runs.append(Run(row["run_id"], dict(row.get("factors") or {}), row.get("seed"), "done"))
    clean = [_row(r) for r in rows]
    return StudyData(
        name=str(name),
        spec=dict(spec or {}),
        runs=runs,
        rows=clean,
        study_dir=d,
        warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [],
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e.__class__.__name__})") from None
    return data if isinstance(data, dict) else {}


def _run(study_dir: Path, r: dict[str, Any]) -> Run:
    run_dir = r.get("run_dir")
    path: Path | None = None
    for cand in (Path(run_dir) if run_dir else None, study_dir / "runs" / str(r["run_id"])):
        if cand is not None:
            cand = cand if cand.is_absolute() else study_dir / cand
            if cand.is_dir():
                path = cand
                break
    return Run(
        run_id=str(r["run_id"]),
        factors=dict(r.get("factors") or {}),
        seed=r.get("seed"),
        status=str(r.get("status") or "unknown"),
        reason=r.get("reason"),
        run_dir=path,
        wall_s=r.get("wall_s"),
        samples_per_s=r.get("samples_per_s"),
    )


def _row(r: dict[str, Any]) -> dict[str, Any]:
    cid = r.get("class_id")
    return {
        "run_id": str(r["run_id"]),
        "factors": dict(r.get("factors") or {}),
        "seed": r.get("seed"),
        "eval_set": str(r["eval_set"]),
        "task": str(r.get("task") or "zeroshot_classification"),
        "metric": str(r["metric"]),
        "class_id": -1 if cid is None else int(cid),
        "value": float(r["value"]) if r["value"] is not None else float("nan"),
    }
