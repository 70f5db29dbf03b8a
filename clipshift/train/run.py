"""One training run: config -> run directory with resolved config, metrics.jsonl, checkpoints, final.json.

Determinism and resume: model init, the data order of epoch e and every sampled choice of step s are
functions of (seed, e, s) only, and a resumable checkpoint holds model, optimiser, schedule and step.
A run interrupted after any checkpoint and resumed therefore ends with the same weights as one that
was never interrupted (on CPU, same thread count).
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn

from clipshift.data.table import Batch, ImageTextTable
from clipshift.errors import UserError
from clipshift.fsio import write_json
from clipshift.train.checkpoint import atomic_save, load, unwrap
from clipshift.train.config import NUMERICS_FREE, TrainConfig, first_difference
from clipshift.train.schedule import build_optimizer, clamp_logit_scales, warmup_cosine

DEFAULT_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, the open_clip default
DEFAULT_STD = (0.26862954, 0.26130258, 0.27577711)


class RunFailed(Exception):
    """The run stopped itself (e.g. non-finite loss); final.json records why."""


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Context:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        rank = dist.get_rank()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        return Context(rank, world, dev)
    return Context(0, 1, torch.device("cuda" if use_cuda else "cpu"))


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
    out_dir = Path(out_dir)
    ctx = init_distributed(cfg.device)
    config = cfg.model_dump(mode="json")
    if resume and (done := _check_resume(out_dir, config)) is not None:
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
        table = _load_data(cfg, ctx, progress)
    steps_per_epoch = len(table) // cfg.optim.batch_size
    if steps_per_epoch < 1:
        raise UserError(
            f"data has {len(table)} rows, fewer than one batch (optim.batch_size = {cfg.optim.batch_size})"
        )
    total_steps = steps_per_epoch * cfg.epochs
    setup = _build(cfg, table, ctx, total_steps)
    model, objective, tokenizer = setup.model, setup.objective, setup.tokenizer
    optimizer, scheduler = setup.optimizer, setup.scheduler
    scaler = torch.amp.GradScaler("cuda", enabled=setup.use_amp and setup.amp_dtype == torch.float16)
    step = 0
    threads = [torch.get_num_threads()]  # the thread count of each segment of the run, in order
    ckpt_path = out_dir / "checkpoints" / "latest.pt"
    if resume and ckpt_path.exists():
        step, before = _restore(ckpt_path, model, optimizer, scheduler, scaler)
        threads = [*before, *([] if before[-1:] == threads else threads)]
        if ctx.main:
            print(f"resuming {out_dir} from step {step}/{total_steps}", file=sys.stderr)
            if len(threads) > 1:
                print(
                    f"note: this segment runs on {threads[-1]} CPU threads, an earlier one on {threads[-2]}: "
                    "on CPU the last bits of the numbers may differ from an uninterrupted run",
                    file=sys.stderr,
                )

    # a resumed run continues its metrics from its checkpoint: lines logged after that checkpoint (before
    # the interruption) are dropped, so each step is logged once; a run at step 0 starts a new log
    if ctx.main and step > 0:
        _truncate_log(out_dir / "metrics.jsonl", step)
    mode = "a" if step > 0 else "w"
    metrics = open(out_dir / "metrics.jsonl", mode) if ctx.main else None  # noqa: SIM115
    mean = torch.tensor(setup.mean, device=ctx.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(setup.std, device=ctx.device).view(1, 3, 1, 1) * 255
    local_bs = cfg.optim.batch_size // ctx.world_size
    ckpt_every = cfg.checkpoint_every or steps_per_epoch
    class_names = table.class_names

    from tqdm import tqdm

    bar = tqdm(
        total=total_steps,
        initial=step,
        desc="train",
        unit="step",
        disable=not (progress and ctx.main),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    window_t, window_n, last_loss = time.perf_counter(), 0, float("nan")
    samples_seen_t0 = step * cfg.optim.batch_size
    model.train()
    order_epoch, order = -1, np.zeros(0, dtype=np.int64)
    try:
        while step < total_steps:
            epoch, in_epoch = divmod(step, steps_per_epoch)
            if epoch != order_epoch:  # one permutation per epoch, not per step
                order_epoch, order = epoch, _epoch_order(len(table), cfg.seed, epoch)
            rows = order[in_epoch * cfg.optim.batch_size : (in_epoch + 1) * cfg.optim.batch_size]
            rows = rows[ctx.rank * local_bs : (ctx.rank + 1) * local_bs]
            batch = table.batch(rows)
            gen = torch.Generator().manual_seed(_step_seed(cfg.seed, step))

            loss = _step(model, objective, batch, gen, tokenizer, class_names, mean, std, ctx, setup)
            if not torch.isfinite(loss):
                raise RunFailed(f"non-finite loss ({loss.item()}) at step {step}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            clamp_logit_scales(setup.parameters)
            scheduler.step()
            step += 1
            window_n += len(rows) * ctx.world_size
            last_loss = float(loss.detach())

            if step % cfg.log_every == 0 or step == total_steps:
                now = time.perf_counter()
                rate = window_n / max(now - window_t, 1e-9)
                rec = {
                    "step": step,
                    "epoch": epoch,
                    "loss": round(last_loss, 6),
                    "lr": scheduler.get_last_lr()[0],
                    "samples_per_s": round(rate, 1),
                }
                scale = _logit_scale(model)
                if scale is not None:
                    rec["logit_scale"] = round(scale, 4)
                if metrics:
                    metrics.write(json.dumps(rec) + "\n")
                    metrics.flush()
                bar.set_postfix(loss=f"{last_loss:.3f}", samples_s=f"{rate:.0f}")
                window_t, window_n = now, 0
            bar.update(1)
            if step % ckpt_every == 0 and step < total_steps and ctx.main:
                _save_resumable(ckpt_path, model, optimizer, scheduler, scaler, step, threads)
            if stop_after is not None and step >= stop_after and step < total_steps:
                if ctx.main:
                    _save_resumable(ckpt_path, model, optimizer, scheduler, scaler, step, threads)
                return {"status": "interrupted", "step": step}
    except RunFailed as e:
        record = {"status": "failed", "reason": str(e), "step": step, "total_steps": total_steps}
        if ctx.main:
            write_json(out_dir / "final.json", record)
        raise
    finally:
        bar.close()
        if metrics:
            metrics.close()

    wall = time.perf_counter() - t_start
    record = {
        "status": "done",
        "steps": total_steps,
        "epochs": cfg.epochs,
        "samples": total_steps * cfg.optim.batch_size,
        "final_loss": last_loss,
        "wall_s": round(wall, 2),
        "samples_per_s": round((total_steps * cfg.optim.batch_size - samples_seen_t0) / wall, 1),
        "objective": cfg.objective.name,
        "model": cfg.model.name,
        "world_size": ctx.world_size,
        "threads": threads[0] if len(threads) == 1 else threads,
        "data": {"source": table.source, "rows": len(table), **table.stats, **_cache_by_rank(table, ctx)},
        # the evaluation label space and how often each of its classes was seen in training, so
        # evaluation and long-tail analyses need not reload the data
        "class_names": list(table.class_names[: table.eval_classes]),
        "class_counts": [int(c) for c in table.class_counts()[: table.eval_classes]],
    }
    if ctx.main:
        _save_final(out_dir, model, setup, cfg, tokenizer, objective.model_overrides())
        ckpt_path.unlink(missing_ok=True)  # the final checkpoint supersedes the resumable one
        write_json(out_dir / "final.json", record)
    return record


def finished_record(out_dir: Path) -> dict[str, Any] | None:
    """final.json of a run in `out_dir` that ran to the end (its final checkpoint written), else None."""
    try:
        record = json.loads((out_dir / "final.json").read_text())
    except (OSError, ValueError):
        return None
    done = isinstance(record, dict) and record.get("status") == "done"
    if not done or not (out_dir / "checkpoints" / "final.pt").is_file():
        return None
    return record


# a resumed run may differ from its saved config only in these (threads: see TrainConfig.threads; a
# change is printed and recorded in final.json)
RESUME_MAY_DIFFER = (*NUMERICS_FREE, "threads")


def _check_resume(out_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """Before resuming into `out_dir`: the finished record when it holds this run finished (None when
    there is nothing to continue). A finished or interrupted run of *another* config is never continued:
    that would train other weights and optimiser state under this config's name."""
    done = finished_record(out_dir)
    interrupted = (out_dir / "checkpoints" / "latest.pt").is_file()
    if done is None and not interrupted:
        return None
    try:
        saved = yaml.safe_load((out_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        saved = None
    diff = (
        first_difference(saved, config, RESUME_MAY_DIFFER) if isinstance(saved, dict) else ("config", "?", "")
    )
    if diff is not None:
        what = "a finished run" if done is not None else "an interrupted run"
        path, old, new = diff
        raise UserError(
            f"{out_dir} holds {what} with another config ({path}: {_show(old)} there, {_show(new)} now); "
            "--no-resume trains this config from scratch there, or give another --out"
        )
    return done


def _show(v: Any) -> str:
    return "unset" if v is None else json.dumps(v) if not isinstance(v, str) else repr(v)


def _truncate_log(path: Path, step: int) -> None:
    """Keep the metrics.jsonl lines of steps up to `step` (and drop a line cut short by a kill)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] <= step:
            keep.append(line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- pieces


def _load_data(cfg: TrainConfig, ctx: Context, progress: bool) -> ImageTextTable:
    """The run's table. Under DDP, files on disk are decoded by rank 0 first and the other ranks wait,
    then read its decoded-image cache instead of each decoding every image again; the world is
    rendered by every rank at once (nothing to share)."""
    from clipshift.data.config import load_table

    size = _image_size(cfg)
    if ctx.world_size == 1 or cfg.data.kind == "world":
        return load_table(cfg.data, size, progress=progress and ctx.main)
    if not ctx.main:
        dist.barrier()  # released once rank 0 has published the cache
    table = load_table(cfg.data, size, progress=progress and ctx.main)
    if ctx.main:
        dist.barrier()
    return table


def _cache_by_rank(table: ImageTextTable, ctx: Context) -> dict[str, Any]:
    """Under DDP, each rank's decoded-image cache outcome (e.g. ['miss', 'hit']): the record shows that
    only the first rank decoded."""
    if ctx.world_size == 1 or "cache" not in table.stats:
        return {}
    states: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(states, table.stats["cache"])
    return {"cache_by_rank": states}


@dataclass
class _Setup:
    parameters: nn.Module  # model and objective together: everything the optimiser updates
    model: nn.Module
    objective: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    tokenizer: Any
    mean: tuple[float, ...]
    std: tuple[float, ...]
    use_amp: bool
    amp_dtype: torch.dtype
    channels_last: bool
    kind: str


def _image_size(cfg: TrainConfig) -> int:
    if cfg.model.image_size:
        return cfg.model.image_size
    import open_clip

    from clipshift.models import register_configs

    register_configs()
    mc = open_clip.get_model_config(cfg.model.name)
    if mc is None:
        raise UserError(f"model.name = {cfg.model.name!r}: unknown open_clip architecture")
    size = mc["vision_cfg"]["image_size"]
    return int(size if isinstance(size, int) else size[0])


def _build(cfg: TrainConfig, table: ImageTextTable, ctx: Context, total_steps: int) -> _Setup:
    from clipshift.models.factory import build_classifier, build_clip
    from clipshift.models.text import build_tokenizer
    from clipshift.objectives import build_objective

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    objective = build_objective(cfg.objective, table.class_counts(), rank=ctx.rank, world_size=ctx.world_size)
    tokenizer = None
    if objective.model_kind == "clip":
        corpus = (
            table.captions + list(table.class_names) + objective.corpus(table.class_names)
            if cfg.model.tokenizer == "vocab"
            else None
        )
        tokenizer = build_tokenizer(cfg.model.tokenizer, cfg.model.context_length, corpus)
        torch.manual_seed(cfg.seed)
        model = build_clip(cfg.model, tokenizer, **objective.model_overrides())
    else:
        n_classes = max(len(table.class_names), len(table.class_counts()))
        text_emb = objective.text_embeddings(table.class_names) if objective.head == "texthead" else None
        torch.manual_seed(cfg.seed)
        model = build_classifier(cfg.model, n_classes, objective.head or "linear", text_emb)  # type: ignore[arg-type]
    visual = model.visual
    pp = getattr(visual, "preprocess_cfg", None) or {}
    mean = tuple(pp.get("mean", DEFAULT_MEAN))
    std = tuple(pp.get("std", DEFAULT_STD))
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(ctx.device)
    objective = objective.to(ctx.device)
    if ctx.world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    # one optimiser over the model and any learnable parameters of the objective
    parameters = _Named(model, objective)
    optimizer = build_optimizer(
        parameters,
        cfg.optim.lr,
        cfg.optim.weight_decay,
        (cfg.optim.beta1, cfg.optim.beta2),
        cfg.optim.eps,
    )
    warm = int(cfg.optim.warmup * total_steps) if cfg.optim.warmup < 1 else int(cfg.optim.warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warm))  # type: ignore[arg-type]
    use_amp = ctx.device.type == "cuda" and cfg.precision in ("auto", "amp")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    return _Setup(
        parameters,
        model,
        objective,
        optimizer,
        scheduler,
        tokenizer,
        mean,
        std,
        use_amp,
        amp_dtype,
        cfg.model.channels_last,
        objective.model_kind,
    )


class _Named(nn.Module):
    """Model and objective under one module so parameter groups see both by name."""

    def __init__(self, model: nn.Module, objective: nn.Module):
        super().__init__()
        self.model = model
        self.objective = objective


def _step(
    model: nn.Module,
    objective: Any,
    batch: Batch,
    gen: torch.Generator,
    tokenizer: Any,
    class_names: list[str],
    mean: torch.Tensor,
    std: torch.Tensor,
    ctx: Context,
    setup: _Setup,
) -> torch.Tensor:
    images = batch.images.to(ctx.device, non_blocking=True).float().sub_(mean).div_(std)
    if setup.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    batch.labels = batch.labels.to(ctx.device)
    amp = torch.autocast("cuda", dtype=setup.amp_dtype) if setup.use_amp else nullcontext()
    with amp:
        if setup.kind == "clip":
            tokens = tokenizer(objective.texts(batch, class_names)).to(ctx.device)
            out = model(images, tokens)
        else:
            out = model(images)
        loss: torch.Tensor = objective(out, batch, gen)
        return loss


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.default_rng([seed, step, 0x57E9]).integers(2**62))


def _logit_scale(model: nn.Module) -> float | None:
    m = unwrap(model)
    p = getattr(m, "logit_scale", None)
    if p is None:
        head = getattr(m, "head", None)
        p = getattr(head, "logit_scale", None)
    return float(p.detach().exp()) if isinstance(p, torch.Tensor) else None


def _save_resumable(
    path: Path, model: nn.Module, opt: Any, sched: Any, scaler: Any, step: int, threads: list[int]
) -> None:
    atomic_save(
        {
            "state_dict": unwrap(model).state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "threads": threads,
        },
        path,
    )


def _restore(path: Path, model: nn.Module, opt: Any, sched: Any, scaler: Any) -> tuple[int, list[int]]:
    """Load a resumable checkpoint into the pieces; (its step, the thread counts it was trained with)."""
    ck = load(path)
    unwrap(model).load_state_dict(ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    scaler.load_state_dict(ck["scaler"])
    torch.set_rng_state(ck["torch_rng"])
    return int(ck["step"]), [int(t) for t in ck.get("threads", [])]


def _save_final(
    out_dir: Path,
    model: nn.Module,
    setup: _Setup,
    cfg: TrainConfig,
    tokenizer: Any,
    overrides: dict[str, Any],
) -> None:
    """final.pt holds {'state_dict': ...}: for CLIP runs open_clip loads it by architecture name."""
    m = unwrap(model)
    atomic_save(
        {"state_dict": m.state_dict(), "name": cfg.model.name, "kind": setup.kind},
        out_dir / "checkpoints" / "final.pt",
    )
    if tokenizer is not None:
        write_json(out_dir / "tokenizer.json", tokenizer.state())
        from clipshift.models.factory import open_clip_config

        cfg_dir = out_dir / "open_clip_config"
        cfg_dir.mkdir(exist_ok=True)
        write_json(cfg_dir / f"{cfg.model.name}.json", open_clip_config(cfg.model, tokenizer, **overrides))
