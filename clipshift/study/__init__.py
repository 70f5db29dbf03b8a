"""Studies: a grid of runs from one YAML spec, executed locally, in a process pool or on Ray, with every
run's results in one SQLite store (one tidy row per run x eval set x metric).

    spec.py       StudySpec / RunConfig, profiles, errors located in the study file
    planner.py    grid x zip x seeds -> PlannedRun, run id = hash of the resolved config
    store.py      ResultsStore (SQLite, WAL; several writers)
    execute.py    one run in a worker: train, evaluate, rows, `done` marker
    executors.py  local | process | ray
    runner.py     run_study (skip done, resume interrupted, record failures), study_status
    export.py     the tidy table as CSV or Parquet
"""

from __future__ import annotations

from typing import Any

# Exported lazily: `clipshift.study.store` (read by the report) must not pull in torch via the configs.
_EXPORTS = {
    "HASH_EXCLUDE": "planner",
    "PlannedRun": "planner",
    "plan": "planner",
    "run_id": "planner",
    "StudySummary": "runner",
    "run_study": "runner",
    "study_status": "runner",
    "RunConfig": "spec",
    "StudySpec": "spec",
    "load_study": "spec",
    "parse_study": "spec",
    "resolve": "spec",
    "ResultsStore": "store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clipshift.study' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"clipshift.study.{_EXPORTS[name]}"), name)
