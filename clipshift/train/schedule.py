"""Learning-rate schedule and optimiser parameter groups (open_clip's conventions)."""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_LOG_SCALE = math.log(100)  # CLIP's cap on the logit scale (scale <= 100)


def warmup_cosine(total_steps: int, warmup_steps: int) -> object:
    """Multiplier for LambdaLR: linear warm-up to 1, then cosine decay to 0 at `total_steps`."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def decays(name: str, p: nn.Parameter) -> bool:
    """open_clip_train's rule (main.py): no weight decay on 1-D parameters (gains, biases, norms) or on
    names containing "bn", "ln", "bias" or "logit_scale"; embeddings and every other matrix decay."""
    return not (p.ndim < 2 or any(k in name for k in ("bn", "ln", "bias", "logit_scale")))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Two AdamW groups: the parameters `decays` excludes (weight decay 0) and the rest."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if decays(name, p) else no_decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


@torch.no_grad()
def clamp_logit_scales(model: nn.Module) -> None:
    """Keep every learnable log-temperature in [0, ln 100] in place after each optimiser step, as
    open_clip_train does (train.py) and Wen et al. do for the cosine classifier. Clamping the parameter,
    not its use in the forward pass, keeps its gradient alive: a forward clamp past ln 100 has zero
    gradient, so the parameter could never come back."""
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1] == "logit_scale":
            p.clamp_(0.0, MAX_LOG_SCALE)


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
