"""Image towers rewritten for inference: the same function as open_clip's, with less arithmetic.

Two rewrites, each exact in real arithmetic (float results move in the last bits only, as between thread
counts; tests hold features to 1e-5 and predictions equal):

- **Batch norm folded into the convolution before it.** In eval mode a BatchNorm2d is an affine map per
  channel, so ``bn(conv(x)) = conv'(x)`` with scaled weights and a bias (``torch.nn.utils.fusion.
  fuse_conv_bn_eval``, the fold every inference runtime does). It removes one pass over every
  activation map.
- **The attention pool computes its one output token only.** open_clip's ``AttentionPool2d`` runs
  multi-head attention with every position as a query and returns position 0 (the mean token); each
  query's output depends on its own query alone, so the query and output projections and the attention
  weights are computed for position 0 only. Keys and values still cover every position.

Only open_clip's ``ModifiedResNet`` is rewritten (the layout those rewrites are proven for: named
``convN``/``bnN`` pairs, a ``downsample`` of avgpool, conv, bn, an ``AttentionPool2d``); any other tower is
returned as it is. The rewritten tower is a copy: the model, its state dict and checkpoints are untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, Bottleneck, ModifiedResNet
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Named in the feature cache's key: features computed before (or without) the rewrite are not reused for
# features computed with it, and the other way round.
REWRITE = "fold-bn+pool-query-1"


class PooledTokenAttention(nn.Module):
    """``AttentionPool2d``'s output (position 0) with the query side computed for that position only."""

    def __init__(self, pool: AttentionPool2d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pool
        x = x.flatten(2).permute(2, 0, 1)  # NCHW -> (HW)NC, as open_clip
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x = x + p.positional_embedding[:, None, :].to(x.dtype)  # (HW+1)NC
        length, n, c = x.shape
        heads = p.num_heads
        q = F.linear(x[:1], p.q_proj.weight, p.q_proj.bias).reshape(1, n * heads, -1).transpose(0, 1)
        k = F.linear(x, p.k_proj.weight, p.k_proj.bias).reshape(length, n * heads, -1).transpose(0, 1)
        v = F.linear(x, p.v_proj.weight, p.v_proj.bias).reshape(length, n * heads, -1).transpose(0, 1)
        out = F.scaled_dot_product_attention(q, k, v)  # (N·heads, 1, C/heads); scale 1/sqrt(C/heads)
        return F.linear(out.transpose(0, 1).reshape(n, c), p.c_proj.weight, p.c_proj.bias)


def _pairs(visual: nn.Module) -> Iterator[tuple[nn.Module, str, str]]:
    """(module, conv name, batch-norm name) of every convolution a batch norm follows in the tower."""
    for i in (1, 2, 3):
        yield visual, f"conv{i}", f"bn{i}"
    for block in visual.modules():
        if isinstance(block, Bottleneck):
            for i in (1, 2, 3):
                yield block, f"conv{i}", f"bn{i}"
            if block.downsample is not None:
                yield block.downsample, "0", "1"


def can_rewrite(visual: nn.Module) -> bool:
    """True for the towers whose rewrite is exact: open_clip's ModifiedResNet in eval mode, with plain
    BatchNorm2d layers after Conv2d ones (a tower whose norms were frozen or replaced runs as it is)."""
    return (
        type(visual) is ModifiedResNet
        and not visual.training
        and isinstance(visual.attnpool, AttentionPool2d)
        and all(
            type(getattr(m, c, None)) is nn.Conv2d and type(getattr(m, b, None)) is nn.BatchNorm2d
            for m, c, b in _pairs(visual)
        )
    )


def for_inference(visual: nn.Module, channels_last: bool = False) -> nn.Module:
    """An eval-only copy of `visual` with the rewrites above, or `visual` itself when they do not apply;
    `channels_last` as the model was opened (folding makes new, contiguous weights)."""
    if not can_rewrite(visual):
        return visual
    fast = copy.deepcopy(visual)
    for m, conv, bn in list(_pairs(fast)):
        setattr(m, conv, fuse_conv_bn_eval(getattr(m, conv), getattr(m, bn)))
        setattr(m, bn, nn.Identity())
    fast.attnpool = PooledTokenAttention(fast.attnpool)
    for p in fast.parameters():
        p.requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast.eval()
