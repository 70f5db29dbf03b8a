"""Text encoding without the padding: the same function as open_clip's, on fewer positions.

open_clip's CLIP text tower runs its transformer over the whole context (32 positions for the tiny
configs, 77 for OpenAI's) and then reads one position: the end-of-text token, found as the argmax of the
token ids. Under its causal attention mask, position i only ever sees positions <= i, so positions after
the last end-of-text token of the batch cannot change any pooled feature. ``TrimmedTextCLIP`` runs the
transformer on the batch's first ``max(argmax) + 1`` positions only: the outputs and gradients are those
of open_clip's ``encode_text`` (tested against it to float tolerance), and for world captions (≤ 17
BPE tokens in a 32-token context) the text tower does about half the work.

Only models whose result provably does not depend on the dropped positions are converted: the plain
``open_clip.CLIP`` class with a causal mask and argmax pooling (every clipshift config, and OpenAI-style
architectures). Anything else keeps open_clip's own ``encode_text``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import text_global_pool
from torch import nn


class TrimmedTextCLIP(CLIP):
    """open_clip's CLIP with ``encode_text`` cut to the positions the pooled feature can depend on.

    Same parameters, state dict and checkpoints as ``CLIP``; instances are made by ``trim_text`` (the
    class of a built model is swapped), never constructed directly."""

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        # one device read per batch; the trainer reads the loss every step anyway
        n = int(text.argmax(dim=-1).max()) + 1
        text = text[:, :n]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(text).to(cast_dtype) + self.positional_embedding[:n].to(cast_dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:n, :n])
        x = self.ln_final(x)
        x = text_global_pool(x, text, "argmax")
        if isinstance(self.text_projection, nn.Linear):
            x = self.text_projection(x)
        elif self.text_projection is not None:
            x = x @ self.text_projection
        return F.normalize(x, dim=-1) if normalize else x


def can_trim(model: nn.Module) -> bool:
    """True when dropping trailing positions provably leaves every pooled text feature unchanged."""
    mask = getattr(model, "attn_mask", None)
    return (
        type(model) is CLIP
        and getattr(model, "text_pool_type", None) == "argmax"
        and isinstance(mask, torch.Tensor)
        and mask.dim() == 2
        and bool(torch.equal(torch.isinf(mask), torch.ones_like(mask, dtype=torch.bool).triu(1)))
    )


def trim_text(model: nn.Module) -> nn.Module:
    """`model` with padding-trimmed text encoding when that is exact (see `can_trim`), else unchanged."""
    if can_trim(model):
        model.__class__ = TrimmedTextCLIP
    return model
