"""Running a study: plan it, skip what is complete, resume what was interrupted, execute the rest on an
executor, record every status in the results store, report progress; and reading a study's status.

Re-running a study is always safe (CLIP_benchmark's skip-existing habit): a run with a `done` marker is
never retrained (its rows are re-imported from eval.json if the store lacks them), a run with a
checkpoint resumes from it, a failed run is left alone unless `retry_failed`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from clipshift.errors import UserError
from clipshift.study import execute as ex
from clipshift.study.evaluation import FEATURES, feature_sharing
from clipshift.study.executors import make_executor
from clipshift.study.inert import plan_warnings
from clipshift.study.planner import HASH_EXCLUDE, PlannedRun, plan
from clipshift.study.spec import StudySpec, load_study, resolve
from clipshift.study.store import ResultsStore

SPEC_FILE = "study.yaml"
STORE_FILE = "results.sqlite"


@dataclass
class StudySummary:
    name: str
    out_dir: Path
    total: int  # planned runs
    done: int  # complete now (including those complete before)
    skipped: int  # complete before this call, not run again
    ran: int  # completed by this call
    failed: int
    pending: int  # neither done nor failed: another process was executing them
    wall_s: float
    failures: list[dict[str, Any]] = field(default_factory=list)  # run_id, factors, seed, reason
    warnings: list[str] = field(default_factory=list)  # factors that cannot act (study.inert)

    @property
    def ok(self) -> bool:
        """No run failed (runs another process is executing are not failures)."""
        return self.failed == 0

    def line(self) -> str:
        parts = [f"{self.done}/{self.total} runs done ({self.skipped} already, {self.ran} now)"]
        if self.failed:
            parts.append(f"{self.failed} failed (`clipshift study run ... --retry-failed` reruns them)")
        if self.pending:
            parts.append(f"{self.pending} pending (held by another process)")
        return f"study {self.name}: " + ", ".join(parts) + f" in {self.wall_s:.0f} s"


def git_revision() -> str | None:
    """The clipshift source revision when it runs from a git checkout (read-only git call)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip() if out.returncode == 0 else ""
    return rev or None


def _spec_of(spec: str | Path | StudySpec) -> StudySpec:
    return spec if isinstance(spec, StudySpec) else load_study(spec)


def _dump_spec(spec: StudySpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json", exclude_none=False)
    if data.get("models") is None:
        data.pop("models", None)  # a training study: its study.yaml as before evaluation studies existed
    return data


def write_spec(spec: StudySpec, path: Path) -> None:
    """study.yaml: the spec as run (profile and --set folded into base)."""
    folded = f"profile {spec.profile_used!r} and any --set" if spec.profile_used else "any --set"
    head = f"# the study as run: {folded} overrides are folded into base\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(head + yaml.safe_dump(_dump_spec(spec), sort_keys=False))
    tmp.replace(path)


def run_study(
    spec: str | Path | StudySpec,
    out_dir: str | Path,
    *,
    profile: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> StudySummary:
    """Run (or continue) a study into `out_dir`; see the module docstring for what is skipped."""
    t0 = time.perf_counter()
    resolved = resolve(_spec_of(spec), profile, overrides)
    runs = plan(resolved)
    warnings = plan_warnings(resolved, runs)
    for w in warnings:  # before anything runs, even with --quiet: a factor that cannot act is no finding
        print(f"warning: {w}", file=sys.stderr, flush=True)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_spec(resolved, out / SPEC_FILE)
    rev = git_revision()
    store = ResultsStore(out / STORE_FILE)
    try:
        store.set_meta("spec", _dump_spec(resolved))
        store.set_meta("name", resolved.name)
        store.set_meta("profile", resolved.profile_used)
        store.set_meta("hash_exclude", list(HASH_EXCLUDE))
        store.set_meta("warnings", warnings)
        todo, done_before, failures = _reconcile(store, resolved.name, runs, out, retry_failed)
        if not todo:
            return _summary(resolved.name, out, runs, len(done_before), 0, failures, t0, warnings)
        ex_ = make_executor(
            executor, workers=workers, address=address, threads=max(r.config.threads or 1 for r in todo)
        )
        shared = feature_sharing(runs)
        ran = _drive(store, ex_, resolved.name, out, todo, len(runs), len(done_before), rev, progress, shared)
        failures += [f for f in ran if f.get("reason") is not None]
        n_ran = sum(1 for f in ran if f.get("reason") is None)
        return _summary(resolved.name, out, runs, len(done_before), n_ran, failures, t0, warnings)
    finally:
        store.close()


def _reconcile(
    store: ResultsStore, name: str, runs: list[PlannedRun], out: Path, retry_failed: bool
) -> tuple[list[PlannedRun], list[PlannedRun], list[dict[str, Any]]]:
    """Bring the store in line with the run directories and the plan; return (to run, done, failed)."""
    planned = {r.run_id for r in runs}
    known = {r["run_id"]: r for r in store.runs()}
    store.remove_runs([rid for rid in known if rid not in planned])  # no longer part of this study
    todo, done, failures = [], [], []
    for r in runs:
        d = ex.run_path(out, r.run_id)
        rel = str(d.relative_to(out))
        row = known.get(r.run_id)
        # every state of this run is recorded under the same identity; only status and its details vary
        record = partial(store.upsert_run, r.run_id, study=name, factors=r.factors, seed=r.seed, run_dir=rel)
        marker = ex.read_json(d / ex.DONE)
        if marker is not None:
            done.append(r)
            fresh = (
                row is None or row["status"] != "done" or row["factors"] != r.factors or row["study"] != name
            )
            if fresh or store.result_count(r.run_id) == 0:
                rows = ex.read_rows(d)
                if rows is not None:
                    store.add_results(r.run_id, rows)
                record(
                    status="done",
                    git_rev=marker.get("git_rev"),
                    wall_s=marker.get("wall_s"),
                    samples_per_s=marker.get("samples_per_s"),
                )
            continue
        failed = ex.read_json(d / ex.FAILED)
        if failed is not None and not retry_failed:
            reason = str(failed.get("reason") or "failed")
            failures.append({"run_id": r.run_id, "factors": r.factors, "seed": r.seed, "reason": reason})
            if row is None or row["status"] != "failed" or row["factors"] != r.factors:
                record(status="failed", reason=reason)
            continue
        todo.append(r)
        record(status="pending")
    return todo, done, failures


def _drive(
    store: ResultsStore,
    executor: Any,
    name: str,
    out: Path,
    todo: list[PlannedRun],
    total: int,
    done_before: int,
    rev: str | None,
    progress: bool,
    shared: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Keep the executor's slots full, record statuses, print a line per start and finish; returns the
    finished runs (with a `reason` when they failed). Evaluation runs in `shared` keep their image
    features in STUDY_DIR/features/ for the other runs of their checkpoint."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=done_before,
        desc=f"study {name}",
        unit="run",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}<{remaining}]",
    )

    def say(msg: str) -> None:
        if progress:
            bar.write(msg, file=sys.stderr)

    def task(r: PlannedRun) -> ex.RunTask:
        return ex.RunTask(
            run_id=r.run_id,
            config=r.config.model_dump(mode="json"),
            factors=r.factors,
            seed=r.seed,
            study=name,
            study_dir=str(out),
            git_rev=rev,
            # the inner train/eval bars only on a terminal: in a log they are noise
            progress=progress and executor.in_process and sys.stderr.isatty(),
            kind="train" if r.checkpoint is None else "eval",
            features_dir=str(out / FEATURES) if r.run_id in shared else None,
        )

    queue = deque(task(r) for r in todo)
    by_id = {r.run_id: r for r in todo}
    in_flight: dict[str, ex.RunTask] = {}
    finished: list[dict[str, Any]] = []
    try:
        while queue or in_flight:
            while queue and executor.can_start(queue[0], list(in_flight.values())):
                t = queue.popleft()
                r = by_id[t.run_id]
                store.set_status(r.run_id, "running")
                resuming = (ex.run_path(out, r.run_id) / "checkpoints" / "latest.pt").exists()
                say(
                    f"start  {r.run_id}  {r.label()}"
                    + ("  (resuming from its checkpoint)" if resuming else "")
                )
                executor.submit(t)
                in_flight[t.run_id] = t
            for res in executor.wait():
                in_flight.pop(res.run_id, None)
                r = by_id[res.run_id]
                rel = str(ex.run_path(out, r.run_id).relative_to(out))
                common: dict[str, Any] = {
                    "study": name,
                    "factors": r.factors,
                    "seed": r.seed,
                    "run_dir": rel,
                    "git_rev": rev,
                }
                if res.status == "done":
                    store.upsert_run(
                        r.run_id, status="done", wall_s=res.wall_s, samples_per_s=res.samples_per_s, **common
                    )
                    finished.append({"run_id": r.run_id})
                    bar.update(1)
                    rate = f", {res.samples_per_s:.0f} samples/s" if res.samples_per_s else ""
                    if res.info.get("reused_sets"):  # an evaluation resumed after an interruption
                        n = res.info["reused_sets"]
                        rate += f", {n} finished set{'s' if n > 1 else ''} reused"
                    say(f"done   {r.run_id}  {r.label()}  ({res.wall_s or 0:.1f} s{rate})")
                elif res.status == "failed":
                    store.upsert_run(r.run_id, status="failed", reason=res.reason, **common)
                    finished.append(
                        {"run_id": r.run_id, "factors": r.factors, "seed": r.seed, "reason": res.reason}
                    )
                    bar.update(1)
                    say(f"FAILED {r.run_id}  {r.label()}: {res.reason}")
                else:  # another process is executing it: leave its status alone
                    say(f"skip   {r.run_id}  {r.label()}: {res.reason}")
    except BaseException:
        executor.close(cancel=True)
        bar.close()
        raise
    executor.close()
    bar.close()
    return finished


def _summary(
    name: str,
    out: Path,
    runs: list[PlannedRun],
    skipped: int,
    ran: int,
    failures: list[dict[str, Any]],
    t0: float,
    warnings: list[str],
) -> StudySummary:
    return StudySummary(
        name=name,
        out_dir=out,
        total=len(runs),
        done=skipped + ran,
        skipped=skipped,
        ran=ran,
        failed=len(failures),
        pending=len(runs) - skipped - ran - len(failures),
        wall_s=time.perf_counter() - t0,
        failures=failures,
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------------------
# status


def open_study(study_dir: str | Path) -> tuple[StudySpec, Path]:
    d = Path(study_dir)
    if not (d / SPEC_FILE).is_file():
        raise UserError(f"{d}: not a study directory (no {SPEC_FILE}; `clipshift study run` creates one)")
    return load_study(d / SPEC_FILE), d


def study_status(study_dir: str | Path) -> dict[str, Any]:
    """Each planned run's state from its directory (the truth) and the store (timing, reasons):
    done, running (a process holds it now), failed, or pending (with `resume_step` when it has a
    checkpoint to resume from)."""
    spec, d = open_study(study_dir)
    runs = plan(spec)
    rows: dict[str, dict[str, Any]] = {}
    if (d / STORE_FILE).is_file():
        store = ResultsStore(d / STORE_FILE)
        try:
            rows = {r["run_id"]: r for r in store.runs()}
        finally:
            store.close()
    out = []
    counts = {"done": 0, "running": 0, "failed": 0, "pending": 0}
    for r in runs:
        rd = ex.run_path(d, r.run_id)
        row = rows.get(r.run_id, {})
        rec: dict[str, Any] = {"run_id": r.run_id, "factors": r.factors, "seed": r.seed, "run_dir": str(rd)}
        marker = ex.read_json(rd / ex.DONE)
        failed = ex.read_json(rd / ex.FAILED)
        if marker is not None:
            rec.update(status="done", wall_s=marker.get("wall_s"), samples_per_s=marker.get("samples_per_s"))
        elif ex.is_locked(rd):
            rec["status"] = "running"
        elif failed is not None:
            rec.update(status="failed", reason=failed.get("reason") or row.get("reason"))
        else:
            rec["status"] = "pending"
            if (rd / "checkpoints" / "latest.pt").exists():
                rec["resumable"] = True  # interrupted mid-training: resumes from its checkpoint
        counts[rec["status"]] += 1
        out.append(rec)
    return {"name": spec.name, "dir": str(d), "total": len(runs), "counts": counts, "runs": out}
