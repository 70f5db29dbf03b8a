"""One training run: config -> run directory with resolved config, metrics.jsonl, checkpoints, final.json.

`train` puts the pieces together: the data (`train.data`), what it trains with (`train.setup`), the loop
(`train.loop`), resuming (`train.resume`) and the final record (`train.record`).

Determinism and resume: model init, the data order of epoch e and every sampled choice of step s are
functions of (seed, e, s) only, and a resumable checkpoint holds model, optimiser, schedule and step.
A run interrupted after any checkpoint and resumed therefore ends with the same weights as one that
was never interrupted (on CPU, same thread count).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from clipshift.data.table import ImageTextTable
from clipshift.fsio import write_json
from clipshift.train.checkpoint import restore, snapshot_path
from clipshift.train.checks import run_checks
from clipshift.train.config import TrainConfig, snapshot_label
from clipshift.train.data import (
    RankContext,
    close_distributed,
    init_distributed,
    load_data,
    steps_per_epoch,
)
from clipshift.train.loop import RunFailed, run_loop
from clipshift.train.record import done_record, failed_record, save_final
from clipshift.train.resume import RESUME_MAY_DIFFER, check_resume, finished_record, truncate_log
from clipshift.train.setup import Setup, build_setup

__all__ = ["RESUME_MAY_DIFFER", "RunFailed", "finished_record", "train"]


def train(
    cfg: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = True,
    progress: bool = True,
    table: ImageTextTable | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train one run into `out_dir`; returns the final record (also written to final.json).

    `table` skips loading the data (a study may share one rendered split between runs);
    `stop_after` ends the run after that many optimiser steps as if interrupted (for tests).
    """
    ctx = init_distributed(cfg.device)
    clean = False
    try:
        record = _train(cfg, Path(out_dir), ctx, resume, progress, table, stop_after)
        clean = True
        return record
    finally:
        close_distributed(ctx, clean=clean)


def _train(
    cfg: TrainConfig,
    out_dir: Path,
    ctx: RankContext,
    resume: bool,
    progress: bool,
    table: ImageTextTable | None,
    stop_after: int | None,
) -> dict[str, Any]:
    config = cfg.model_dump(mode="json")
    if resume and (done := check_resume(out_dir, config)) is not None:
        if ctx.main:
            print(f"{out_dir} already holds this finished run (--no-resume trains it again)", file=sys.stderr)
        return done
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if ctx.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (out_dir / "final.json").unlink(missing_ok=True)

    t_start = time.perf_counter()
    if table is None:
        table = load_data(cfg, ctx, progress)
    total_steps = steps_per_epoch(table, cfg) * cfg.epochs
    setup = build_setup(cfg, table, ctx, total_steps)
    ckpt_path = out_dir / "checkpoints" / "latest.pt"
    step, threads = 0, [torch.get_num_threads()]  # the thread count of each segment of the run, in order
    if resume and ckpt_path.exists():
        step, threads = _resume(ckpt_path, setup, threads, ctx, f"resuming {out_dir}", total_steps)
    # a resumed run continues its metrics from its checkpoint: lines logged after that checkpoint (before
    # the interruption) are dropped, so each step is logged once; a run at step 0 starts a new log
    if ctx.main and step > 0:
        truncate_log(out_dir / "metrics.jsonl", step)
    samples_before = step * cfg.optim.batch_size
    try:
        end = run_loop(
            cfg,
            table,
            setup,
            ctx,
            out_dir,
            step=step,
            threads=threads,
            progress=progress,
            stop_after=stop_after,
        )
    except RunFailed as e:
        if ctx.main:
            write_json(out_dir / "final.json", failed_record(str(e), e.step, total_steps))
        raise
    if end.interrupted:
        return {"status": "interrupted", "step": end.step}

    record = done_record(
        cfg,
        table,
        ctx,
        total_steps=total_steps,
        final_loss=end.last_loss,
        wall=time.perf_counter() - t_start,
        samples_this_segment=total_steps * cfg.optim.batch_size - samples_before,
        threads=threads,
    )
    # the checks: numpy on what the run did, after the loop (the weights cannot depend on them) and
    # outside the record's timing (their own cost is checks_s)
    checks: dict[str, Any] = {}
    t_checks = time.perf_counter()
    if ctx.main:
        checks = run_checks(
            table,
            setup.objective,
            batch_size=cfg.optim.batch_size,
            per_epoch=steps_per_epoch(table, cfg),
            epochs=cfg.epochs,
            seed=cfg.seed,
            metrics_path=out_dir / "metrics.jsonl",
        )
    t_checks = time.perf_counter() - t_checks
    record["checks"] = checks
    record["checks_s"] = round(t_checks, 3)
    # the snapshots on disk (one missing was due before a resume that first asked for it)
    record["snapshots"] = {
        snapshot_label(f): str(snapshot_path(out_dir, f).relative_to(out_dir))
        for f in cfg.snapshots
        if snapshot_path(out_dir, f).is_file()
    }
    if ctx.main:
        save_final(out_dir, cfg, setup)
        ckpt_path.unlink(missing_ok=True)  # the final checkpoint supersedes the resumable one
        write_json(out_dir / "final.json", record)
    return record


def _resume(
    path: Path, setup: Setup, threads: list[int], ctx: RankContext, what: str, total_steps: int
) -> tuple[int, list[int]]:
    """Load latest.pt into `setup`: (its step, the thread counts of every segment including this one)."""
    step, before = restore(path, setup)
    threads = [*before, *([] if before[-1:] == threads else threads)]
    if ctx.main:
        print(f"{what} from step {step}/{total_steps}", file=sys.stderr)
        if len(threads) > 1:
            print(
                f"note: this segment runs on {threads[-1]} CPU threads, an earlier one on {threads[-2]}: "
                "on CPU the last bits of the numbers may differ from an uninterrupted run",
                file=sys.stderr,
            )
    return step, threads
