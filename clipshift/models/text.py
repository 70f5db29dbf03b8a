"""Tokenizers for the text tower: open_clip's BPE, or a small word vocabulary built from the captions.

Trade-off:

* ``openclip`` — open_clip's bundled BPE (49 408 tokens, no download). A checkpoint trained with it is a
  plain open_clip checkpoint: anyone can load it with ``open_clip.create_model(name, pretrained=path)``
  and ``open_clip.get_tokenizer(name)``, no extra file. The price is a 49 408 x width token embedding
  (6.3 M parameters at width 128 — more than the whole tiny image tower), which AdamW updates every step.
* ``vocab`` — a word-level vocabulary of the training captions (+ class names): a world has a few hundred
  words, so the embedding table is ~100x smaller (faster optimiser steps, less memory), and the context is
  as long as the longest caption instead of open_clip's fixed length. The checkpoint then needs the
  vocabulary (``state()``, saved next to it as tokenizer.json) and the model config with its
  ``vocab_size``/``context_length`` (``clipshift.models.factory.open_clip_config``).

Both cache the token row of every distinct caption (the world repeats captions a lot), so tokenising a
batch is a dictionary look-up per caption plus one gather.

Measured on 256 default-world captions, 2 busy CPU threads: tokenising takes 14-22 ms with BPE on first
sight, 0.9 ms with the vocabulary, 0.05 ms for either once cached. One clipshift-rn-tiny CLIP step at
batch 256 (forward, backward, AdamW) took ~620-670 ms with BPE (context 32) vs ~380-420 ms with the
vocabulary (context 12) while the text tower ran over the whole context; now that it stops at the
batch's last end-of-text token (``clipshift.models.trim``: 15-17 BPE positions for world captions) it
takes ~335-395 ms with BPE vs ~325 ms with the vocabulary, whose remaining edge is fewer tokens per
caption and a smaller embedding table for AdamW.

open_clip's text tower pools the sequence at ``argmax(token id)`` (``text_cfg.pool_type = 'argmax'``, the
default, used by every clipshift config): the end-of-text token must be the largest id in every row —
true for the BPE vocabulary (EOT = 49407) and guaranteed by construction for ``VocabTokenizer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from clipshift.errors import UserError

MAX_CONTEXT = 77  # open_clip's (and OpenAI CLIP's) longest context
_CACHE_LIMIT = 200_000  # distinct captions whose rows are kept (real data rarely repeats captions)
_WORD = re.compile(r"[^\W_]+")  # runs of letters/digits: punctuation and spaces separate words


@runtime_checkable
class Tokenizer(Protocol):
    kind: str
    vocab_size: int
    context_length: int | None

    def __call__(self, texts: list[str]) -> torch.Tensor: ...

    def state(self) -> dict[str, Any]: ...


class _RowCache:
    """Token rows of distinct texts in one growing int32 table; a batch is one fancy-index gather."""

    def __init__(self, width: int):
        self.width = width
        self.index: dict[str, int] = {}
        self.rows = np.zeros((256, width), dtype=np.int32)

    def lookup(self, texts: list[str], encode: Any) -> torch.Tensor:
        idx = self.index
        missing = [t for t in dict.fromkeys(texts) if t not in idx]
        if missing:
            if len(idx) + len(missing) > _CACHE_LIMIT:  # cache full: encode this batch directly
                return torch.from_numpy(
                    np.asarray(encode(texts), dtype=np.int64).reshape(len(texts), self.width)
                )
            new = np.asarray(encode(missing), dtype=np.int32).reshape(len(missing), self.width)
            n = len(idx)
            if n + len(missing) > len(self.rows):
                grown = np.zeros((max(2 * len(self.rows), n + len(missing)), self.width), dtype=np.int32)
                grown[:n] = self.rows[:n]
                self.rows = grown
            self.rows[n : n + len(missing)] = new
            for j, t in enumerate(missing):
                idx[t] = n + j
        pos = np.fromiter((idx[t] for t in texts), dtype=np.int64, count=len(texts))
        return torch.from_numpy(self.rows[pos].astype(np.int64))


class OpenClipTokenizer:
    """open_clip's BPE tokenizer (the bundled vocabulary file; nothing is downloaded).

    ``context_length=None`` means "the model's": ``build_clip`` binds it to the architecture's text
    context length (what ``open_clip.get_tokenizer(name)`` would use)."""

    kind = "openclip"
    vocab_size = 49408

    def __init__(self, context_length: int | None = None):
        from open_clip.tokenizer import SimpleTokenizer

        self._tok = SimpleTokenizer()
        self._cache: _RowCache | None = None
        self.context_length: int | None = None
        if context_length is not None:
            self.bind(context_length)

    def bind(self, context_length: int) -> None:
        """Fix the context length (rows are cached per length)."""
        if not 2 <= context_length <= MAX_CONTEXT:
            raise UserError(f"context_length = {context_length}: must be between 2 and {MAX_CONTEXT}")
        if context_length != self.context_length:
            self.context_length = int(context_length)
            self._cache = _RowCache(self.context_length)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        if self._cache is None or self.context_length is None:
            raise RuntimeError("OpenClipTokenizer has no context length yet (build_clip binds it)")
        n = self.context_length
        return self._cache.lookup(list(texts), lambda ts: self._tok(ts, context_length=n).numpy())

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "context_length": self.context_length}


class VocabTokenizer:
    """Word-level vocabulary: 0 = pad, 1 = unknown, words 2..V+1, SOT = V+2, EOT = V+3 (the largest
    id, so open_clip's argmax text pooling lands on the end of the caption)."""

    kind = "vocab"
    PAD, UNK = 0, 1

    def __init__(self, words: list[str], context_length: int):
        if len(set(words)) != len(words):
            raise ValueError("duplicate words in the vocabulary")
        if not 2 <= context_length <= MAX_CONTEXT:
            raise UserError(f"context_length = {context_length}: must be between 2 and {MAX_CONTEXT}")
        self.words = list(words)
        self.ids = {w: i + 2 for i, w in enumerate(self.words)}
        self.vocab_size = len(self.words) + 4
        self.sot = self.vocab_size - 2
        self.eot = self.vocab_size - 1
        self.context_length: int | None = int(context_length)
        self._cache = _RowCache(int(context_length))

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD.findall(text.lower())

    @classmethod
    def build(cls, corpus: Iterable[str], context_length: int | None = None) -> VocabTokenizer:
        """Vocabulary of every word in `corpus` (first-seen order, so it does not depend on hashing);
        the default context is the longest text in words + SOT + EOT, capped at 77."""
        words: dict[str, None] = {}
        longest = 0
        for text in dict.fromkeys(corpus):
            ws = cls.split(text)
            longest = max(longest, len(ws))
            words.update(dict.fromkeys(ws))
        if not words:
            raise UserError("vocab tokenizer: the corpus has no words")
        n = context_length if context_length is not None else min(longest + 2, MAX_CONTEXT)
        return cls(list(words), n)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(w, self.UNK) for w in self.split(text)]

    def _encode_rows(self, texts: list[str]) -> np.ndarray:
        n = self.context_length or 0
        out = np.zeros((len(texts), n), dtype=np.int64)
        for i, text in enumerate(texts):
            row = [*[self.sot, *self.encode(text)][: n - 1], self.eot]  # truncated rows still end in EOT
            out[i, : len(row)] = row
        return out

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return self._cache.lookup(list(texts), self._encode_rows)

    def decode(self, row: torch.Tensor | list[int]) -> str:
        inv = {i: w for w, i in self.ids.items()}
        ids = row.tolist() if isinstance(row, torch.Tensor) else row
        return " ".join(inv.get(int(i), "<unk>") for i in ids if int(i) not in (self.PAD, self.sot, self.eot))

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "context_length": self.context_length, "words": list(self.words)}


def build_tokenizer(
    kind: Literal["openclip", "vocab"],
    context_length: int | None = None,
    corpus: Iterable[str] | None = None,
) -> OpenClipTokenizer | VocabTokenizer:
    """`vocab` needs the corpus (training captions + class names, read once: an iterator will do);
    `openclip` ignores it."""
    if kind == "openclip":
        return OpenClipTokenizer(context_length)
    if kind == "vocab":
        if corpus is None or (isinstance(corpus, Sequence) and not corpus):
            raise UserError("tokenizer 'vocab' needs a corpus of captions to build its vocabulary from")
        return VocabTokenizer.build(corpus, context_length)
    raise UserError(f"unknown tokenizer {kind!r}; choose 'openclip' or 'vocab'")


def tokenizer_from_state(state: dict[str, Any]) -> OpenClipTokenizer | VocabTokenizer:
    """Inverse of `state()` (e.g. tokenizer.json saved next to a checkpoint)."""
    kind = state.get("kind")
    if kind == "openclip":
        return OpenClipTokenizer(state.get("context_length"))
    if kind == "vocab":
        return VocabTokenizer(list(state["words"]), int(state["context_length"]))
    raise UserError(f"tokenizer state: unknown kind {kind!r}")
