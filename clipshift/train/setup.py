"""What one run trains with: objective, model (and tokenizer), optimiser, schedule, mixed precision."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from clipshift.data.table import ImageTextTable
from clipshift.models.text import Tokenizer
from clipshift.objectives import Objective, build_objective
from clipshift.train.config import TrainConfig
from clipshift.train.data import RankContext
from clipshift.train.schedule import build_optimizer, warmup_cosine

DEFAULT_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, the open_clip default
DEFAULT_STD = (0.26862954, 0.26130258, 0.27577711)

Head = Literal["linear", "cosine", "texthead"]


class TrainedModules(nn.Module):
    """Model and objective under one module so parameter groups see both by name."""

    def __init__(self, model: nn.Module, objective: nn.Module):
        super().__init__()
        self.model = model
        self.objective = objective


@dataclass
class Setup:
    parameters: TrainedModules  # model and objective together: everything the optimiser updates
    model: nn.Module  # on the run's device; DistributedDataParallel under DDP
    objective: Objective[Any]
    tokenizer: Tokenizer | None  # CLIP models only
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    mean: tuple[float, ...]
    std: tuple[float, ...]
    use_amp: bool
    amp_dtype: torch.dtype
    channels_last: bool

    @property
    def kind(self) -> Literal["clip", "classifier"]:
        return self.objective.model_kind


def build_setup(cfg: TrainConfig, table: ImageTextTable, ctx: RankContext, total_steps: int) -> Setup:
    """Objective, model, optimiser and schedule of a run. The model is initialised from `cfg.seed` alone
    (the torch RNG is reseeded just before it is built), so it does not depend on the tokenizer's work."""
    from clipshift.models.factory import build_classifier, build_clip
    from clipshift.models.text import build_tokenizer

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    objective = build_objective(cfg.objective, table.class_counts(), rank=ctx.rank, world_size=ctx.world_size)
    tokenizer: Tokenizer | None = None
    model: nn.Module
    if objective.model_kind == "clip":
        corpus = (
            itertools.chain(table.captions, table.class_names, objective.corpus(table.class_names))
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
        model = build_classifier(cfg.model, n_classes, cast(Head, objective.head or "linear"), text_emb)
    pp = getattr(model.visual, "preprocess_cfg", None) or {}
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
    parameters = TrainedModules(model, objective)
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
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    return Setup(
        parameters,
        model,
        objective,
        tokenizer,
        optimizer,
        scheduler,
        scaler,
        mean,
        std,
        use_amp,
        amp_dtype,
        cfg.model.channels_last,
    )
