"""The results store: one SQLite file per study (standard library, WAL mode).

Tables: `meta` (key -> JSON), `runs` (one row per run: factors, seed, status, provenance, timing) and
`results` (one tidy row per run x eval set x task x metric x class; class_id -1 for scalar metrics).

Several processes may write at once (pool or Ray workers write their run's results while the driver
updates statuses): WAL lets readers proceed during a write, every write is one short transaction that
takes the write lock up front (BEGIN IMMEDIATE), and a busy timeout makes writers queue instead of failing.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STATUSES = ("pending", "running", "done", "failed")
RUN_COLUMNS = (
    "run_id",
    "study",
    "factors",
    "seed",
    "status",
    "reason",
    "run_dir",
    "git_rev",
    "wall_s",
    "samples_per_s",
    "updated",
)
BUSY_TIMEOUT_S = 120.0
_UPSERT_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
    f"ON CONFLICT(run_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in RUN_COLUMNS[1:])}"
)

SCHEMA = """
-- JSON values are TEXT: a column declared JSON would get NUMERIC affinity and turn '24' into 24
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    factors TEXT NOT NULL,  -- JSON object: axis -> value
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    reason TEXT,
    run_dir TEXT,
    git_rev TEXT,
    wall_s REAL,
    samples_per_s REAL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    eval_set TEXT NOT NULL,
    task TEXT NOT NULL,  -- zeroshot_classification, classification, linear_probe, knn, ...
    metric TEXT NOT NULL,
    class_id INTEGER NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, eval_set, task, metric, class_id)
);
"""


class ResultsStore:
    """A study's results. Values are JSON in `meta` ('spec': the study spec, 'name': its name)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: transactions are explicit and short (see _write)
        self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self._retry(lambda: self._db.execute("PRAGMA journal_mode = WAL"))
        self._db.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
        with self._write() as db:
            cols = [r[1] for r in db.execute("PRAGMA table_info(results)").fetchall()]
            if cols and "task" not in cols:
                # a store from before results had a task: its rows are re-imported from the run
                # directories (eval.json) by the next `study run`
                db.execute("DROP TABLE results")
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)

    # -- plumbing -----------------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its start (no lock upgrade deadlocks)."""
        self._retry(lambda: self._db.execute("BEGIN IMMEDIATE"))
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @staticmethod
    def _retry(fn: Any) -> Any:
        """Switching to WAL and starting a transaction can report 'locked' without waiting on the busy
        handler while another process opens the same new file; retry those for the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # -- meta ---------------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- runs ---------------------------------------------------------------------------------------

    def upsert_run(
        self,
        run_id: str,
        *,
        study: str,
        factors: dict[str, Any],
        seed: int,
        status: str,
        reason: str | None = None,
        run_dir: str | None = None,
        git_rev: str | None = None,
        wall_s: float | None = None,
        samples_per_s: float | None = None,
    ) -> None:
        """Insert or replace a run's row (every column takes the given value, None included)."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        row = (
            run_id,
            study,
            json.dumps(factors),
            int(seed),
            status,
            reason,
            run_dir,
            git_rev,
            wall_s,
            samples_per_s,
            _now(),
        )
        with self._write() as db:
            db.execute(_UPSERT_RUN, row)

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        """Change only a run's status (and reason) — e.g. a driver marking a run as running."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, reason = ?, updated = ? WHERE run_id = ?",
                (status, reason, _now(), run_id),
            )

    def remove_runs(self, run_ids: Iterable[str]) -> None:
        """Forget runs (and their results), e.g. those a changed spec no longer plans."""
        ids = [(r,) for r in run_ids]
        if not ids:
            return
        with self._write() as db:
            db.executemany("DELETE FROM results WHERE run_id = ?", ids)
            db.executemany("DELETE FROM runs WHERE run_id = ?", ids)

    def runs(self) -> list[dict[str, Any]]:
        cur = self._db.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY rowid")
        cols = [c[0] for c in cur.description]
        out = []
        for values in cur.fetchall():
            rec = dict(zip(cols, values))
            rec["factors"] = json.loads(rec["factors"])
            out.append(rec)
        return out

    # -- results ------------------------------------------------------------------------------------

    def add_results(self, run_id: str, rows: Iterable[tuple[str, str, str, int, float]]) -> None:
        """Replace a run's `(eval_set, task, metric, class_id, value)` rows in one transaction (readers
        see the old rows or all new ones)."""
        data = [(run_id, str(s), str(t), str(m), int(c), _float(v)) for s, t, m, c, v in rows]
        with self._write() as db:
            db.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
            db.executemany(
                "INSERT INTO results (run_id, eval_set, task, metric, class_id, value) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                data,
            )

    def results(self) -> list[dict[str, Any]]:
        """Tidy rows of done runs, in a stable order (run id, eval set, task, metric, class)."""
        cur = self._db.execute(
            "SELECT r.study, x.run_id, r.factors, r.seed, x.eval_set, x.task, x.metric, x.class_id, x.value "
            "FROM results x JOIN runs r ON r.run_id = x.run_id WHERE r.status = 'done' "
            "ORDER BY x.run_id, x.eval_set, x.task, x.metric, x.class_id"
        )
        out = []
        for study, rid, factors, seed, eval_set, task, metric, class_id, value in cur.fetchall():
            out.append(
                {
                    "study": study,
                    "run_id": rid,
                    "factors": json.loads(factors),
                    "seed": seed,
                    "eval_set": eval_set,
                    "task": task,
                    "metric": metric,
                    "class_id": class_id,
                    "value": math.nan if value is None else value,  # SQLite keeps NaN as NULL
                }
            )
        return out

    def result_count(self, run_id: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0])


def _float(v: Any) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
