"""One run of a study, as a worker executes it: train (resuming from its checkpoint), evaluate, write the
results to the store, then the `done` marker — last and atomically, so a run with a marker is complete
and a run without one is resumed or redone. An evaluation study's run (`kind` eval) only evaluates its
checkpoint (`study.evaluation.evaluate_checkpoint`) and writes the same records.

The run directory `runs/<run_id>/` is the train run dir (config.yaml, metrics.jsonl, checkpoints/,
final.json) plus run.json (id, factors, seed, full run config), eval.json (every EvalResult and the tidy
rows), `done` (a small JSON summary) or failed.json (the reason), and `.lock` (held while a process
executes the run). Everything in the store can be rebuilt from these files.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clipshift.evaluate.result import Row, result_rows
from clipshift.fsio import write_json

try:  # advisory locks: POSIX only; elsewhere a run is never seen as busy
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

DONE = "done"
FAILED = "failed.json"
EVAL = "eval.json"
RUN = "run.json"
LOCK = ".lock"
LOCK_WAIT_S = 2.0  # `study status` probes the lock for an instant; a starting worker outwaits that


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs, picklable (sent to pool processes and Ray workers)."""

    run_id: str
    config: dict[str, Any]  # the RunConfig as JSON
    factors: dict[str, Any]
    seed: int
    study: str
    study_dir: str
    git_rev: str | None = None
    progress: bool = False  # the training bar (in-process runs only)
    # train: train, then evaluate (config: a RunConfig); eval: evaluate a checkpoint (an EvalRunConfig)
    kind: str = "train"
    features_dir: str | None = None  # eval: image features shared with the checkpoint's other runs


@dataclass
class RunOutcome:
    run_id: str
    status: str  # done | failed | busy (another process holds the run)
    reason: str | None = None
    wall_s: float | None = None
    samples_per_s: float | None = None
    trained: bool = False  # False when the run was already complete or only needed evaluating
    info: dict[str, Any] = field(default_factory=dict)


def run_path(study_dir: str | Path, run_id: str) -> Path:
    return Path(study_dir) / "runs" / run_id


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when missing or unreadable (a crash cannot leave a partial marker,
    but a user may have edited one)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_rows(run_dir: Path) -> list[Row] | None:
    """The tidy rows a finished run wrote to eval.json (rebuilt from its results when it was written
    before rows carried their task)."""
    data = read_json(run_dir / EVAL)
    if data is None or not isinstance(data.get("rows"), list):
        return None
    rows = data["rows"]
    if rows and len(rows[0]) == 4 and isinstance(data.get("results"), list):
        return [
            row
            for r in data["results"]
            for row in result_rows(r["dataset"], r["task"], r.get("metrics", {}), r.get("per_class", {}))
        ]
    return [(s, t, m, int(c), math.nan if v is None else float(v)) for s, t, m, c, v in rows]


def is_locked(run_dir: Path) -> bool:
    """Is a process executing this run right now?"""
    if fcntl is None or not (run_dir / LOCK).exists():
        return False
    with open(run_dir / LOCK, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


@contextmanager
def _run_lock(path: Path) -> Iterator[bool]:
    """Hold the run's lock for the block; yields False if another process holds it."""
    if fcntl is None:  # pragma: no cover
        yield True
        return
    with open(path, "a") as f:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def one_line(e: BaseException) -> str:
    """A failure reason in one line: the message (with its type unless it is a clipshift error)."""
    from clipshift.errors import UserError
    from clipshift.train.run import RunFailed

    lines = str(e).strip().splitlines()
    msg = lines[0] if lines else ""
    if isinstance(e, (RunFailed, UserError)) and msg:
        return msg
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def execute_run(task: RunTask) -> RunOutcome:
    """Run one study run to completion (or a failure record). Never raises for a failing run; an
    interrupt (KeyboardInterrupt, SIGKILL) leaves the run resumable."""
    d = run_path(task.study_dir, task.run_id)
    d.mkdir(parents=True, exist_ok=True)
    with _run_lock(d / LOCK) as held:
        if not held:
            return RunOutcome(task.run_id, "busy", "another process is executing this run")
        done = read_json(d / DONE)
        if done is not None:
            return RunOutcome(task.run_id, "done", None, done.get("wall_s"), done.get("samples_per_s"))
        try:
            return _execute(task, d)
        except Exception as e:
            reason = one_line(e)
            (d / "error.log").write_text(traceback.format_exc())
            write_json(
                d / FAILED,
                {"run_id": task.run_id, "status": "failed", "reason": reason, "finished": _now()},
            )
            return RunOutcome(task.run_id, "failed", reason)


def _execute(task: RunTask, d: Path) -> RunOutcome:
    import torch

    # the run's own thread count, for training and evaluation alike, whichever executor runs it: on CPU
    # float results depend on it, and a run id must mean one set of numbers (the driver's setting returns)
    threads = task.config.get("threads")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        if task.kind == "eval":
            from clipshift.study.evaluation import evaluate_checkpoint

            return evaluate_checkpoint(task, d)
        from clipshift.study.spec import RunConfig

        return _train_and_evaluate(task, RunConfig.model_validate(task.config), d)
    finally:
        torch.set_num_threads(before)


def start_record(task: RunTask, d: Path, **extra: Any) -> None:
    """run.json (id, study, factors, seed, full config, and `extra`), with any old failure record gone."""
    (d / FAILED).unlink(missing_ok=True)
    write_json(
        d / RUN,
        {
            "run_id": task.run_id,
            "study": task.study,
            "factors": task.factors,
            "seed": task.seed,
            "config": task.config,
            **extra,
        },
    )


def record_results(task: RunTask, d: Path, results: list[Any]) -> list[Row]:
    """eval.json (every EvalResult and the tidy rows) and the rows in the store; returns the rows."""
    from clipshift.study.store import ResultsStore

    rows = [row for res in results for row in res.rows()]
    write_json(
        d / EVAL,
        {
            "run_id": task.run_id,
            "results": [res.to_dict() for res in results],
            "rows": [[s, t, m, int(c), None if math.isnan(v) else float(v)] for s, t, m, c, v in rows],
        },
    )
    store = ResultsStore(Path(task.study_dir) / "results.sqlite")
    try:
        store.add_results(task.run_id, rows)
    finally:
        store.close()
    return rows


def finish_record(task: RunTask, d: Path, wall: float, samples_per_s: Any, **extra: Any) -> None:
    """The `done` marker, last and atomically: the run is complete."""
    summary = {
        "run_id": task.run_id,
        "status": "done",
        "factors": task.factors,
        "seed": task.seed,
        "wall_s": wall,
        "samples_per_s": samples_per_s,
        **extra,
        "git_rev": task.git_rev,
        "finished": _now(),
    }
    write_json(d / DONE, summary)


def _train_and_evaluate(task: RunTask, cfg: Any, d: Path) -> RunOutcome:
    from clipshift.train.run import finished_record, train

    start_record(task, d)
    t0 = time.perf_counter()
    # the run directory is the run's identity (a hash of its config), so any finished record counts
    final = finished_record(d)
    trained = final is None
    if trained:  # else: interrupted between training and evaluation; only evaluate again
        final = train(cfg.train_config(), d, resume=True, progress=task.progress)
    assert final is not None

    from clipshift.evaluate import evaluate_run

    results = evaluate_run(d, cfg.eval, progress=task.progress)
    rows = record_results(task, d, results)
    wall = round(time.perf_counter() - t0, 2)
    sps = final.get("samples_per_s")
    loss = _finite(final.get("final_loss"))
    finish_record(task, d, wall, sps, steps=final.get("steps"), final_loss=loss, rows=len(rows))
    return RunOutcome(task.run_id, "done", None, wall, sps, trained)


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
