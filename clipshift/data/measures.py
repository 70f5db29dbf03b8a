"""What a run's training data actually were, measured from the rows and batches used (numpy only).

These are the manipulation checks of the data side: a study that varies the spurious strength, the caption
level or the class imbalance must show that the realised data differ between its levels; a dynamic
classification K means nothing when every batch holds more than K classes. Each function takes plain arrays
and returns plain numbers, so the same measures serve any data source.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def class_balance(counts: Sequence[int] | np.ndarray) -> dict[str, float]:
    """Imbalance of per-class counts: max / median over the classes present, and the Gini coefficient
    (0 = uniform, → 1 = one class holds everything) over all classes."""
    c = np.asarray(counts, dtype=float)
    present = c[c > 0]
    if present.size == 0:
        return {"classes_present": 0.0, "imbalance": float("nan"), "gini": float("nan")}
    s = np.sort(c)
    n = s.size
    gini = float((2 * np.arange(1, n + 1) - n - 1).dot(s) / (n * s.sum())) if s.sum() > 0 else float("nan")
    return {
        "classes_present": float(present.size),
        "imbalance": float(present.max() / np.median(present)),
        "gini": gini,
    }


def _groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a (batches, B) array of codes (< 0: none), each (batch, code) group's batch and size."""
    m = int(values.max()) + 2 if values.size else 1
    keys = np.arange(len(values), dtype=np.int64)[:, None] * m + values.astype(np.int64) + 1
    uniq, counts = np.unique(keys[values >= 0], return_counts=True)
    return uniq // m, counts


def _matrix(batches: Iterable[np.ndarray]) -> np.ndarray | None:
    """The batches as one (batches, B) index array when they are one (a run's steps): vectorised paths."""
    return batches if isinstance(batches, np.ndarray) and batches.ndim == 2 else None


def classes_per_batch(labels: np.ndarray, batches: Iterable[np.ndarray]) -> np.ndarray:
    """The number of distinct known classes (label ≥ 0) in each batch of row indices."""
    m = _matrix(batches)
    if m is not None:
        batch_of, _ = _groups(labels[m])
        return np.bincount(batch_of, minlength=len(m)).astype(np.int64)
    out = []
    for rows in batches:
        y = labels[rows]
        out.append(np.unique(y[y >= 0]).size)
    return np.asarray(out, dtype=np.int64)


def same_class_pair_shares(labels: np.ndarray, batches: Iterable[np.ndarray]) -> np.ndarray:
    """Per batch, the share of image pairs (i ≠ j) whose known labels agree (NaN with < 2 known)."""
    m = _matrix(batches)
    if m is not None:
        y = labels[m]
        batch_of, c = _groups(y)
        pairs = np.bincount(batch_of, weights=c * (c - 1.0), minlength=len(m))
        n = (y >= 0).sum(axis=1).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n >= 2, pairs / (n * (n - 1)), np.nan)
    shares = []
    for rows in batches:
        y = labels[rows]
        y = y[y >= 0]
        n = y.size
        counts = np.bincount(y) if n else np.zeros(0)
        shares.append(float((counts * (counts - 1)).sum() / (n * (n - 1))) if n >= 2 else np.nan)
    return np.asarray(shares, dtype=float)


def same_class_pair_share(labels: np.ndarray, batches: Iterable[np.ndarray]) -> float:
    """Mean over batches of the share of image pairs (i ≠ j) whose labels agree: for a contrastive loss,
    negatives that are of the same class (false negatives at the class level)."""
    shares = same_class_pair_shares(labels, batches)
    shares = shares[np.isfinite(shares)]
    return float(np.mean(shares)) if shares.size else float("nan")


def text_codes(texts: Sequence[str]) -> np.ndarray:
    """One integer per text, equal exactly where the texts are equal (for `duplicate_caption_shares`)."""
    index: dict[str, int] = {}
    return np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))


def duplicate_caption_shares(
    captions: Sequence[str] | np.ndarray, batches: Iterable[np.ndarray]
) -> np.ndarray:
    """Per batch, the share of rows whose caption is also another row's caption in the same batch.
    `captions`: the texts, or their `text_codes`."""
    codes = captions if isinstance(captions, np.ndarray) else text_codes(captions)
    m = _matrix(batches)
    if m is not None:
        batch_of, c = _groups(codes[m])
        dup = np.bincount(batch_of, weights=np.where(c > 1, c, 0).astype(float), minlength=len(m))
        return dup / max(m.shape[1], 1)
    shares = []
    for rows in batches:
        if len(rows) == 0:
            continue
        counts = Counter(codes[np.asarray(rows, dtype=np.int64)].tolist())
        shares.append(sum(n for n in counts.values() if n > 1) / len(rows))
    return np.asarray(shares, dtype=float)


def duplicate_caption_share(captions: Sequence[str] | np.ndarray, batches: Iterable[np.ndarray]) -> float:
    """Mean over batches of the share of rows whose caption is also another row's caption in the same batch
    (the contrastive loss treats the twin as a negative)."""
    shares = duplicate_caption_shares(captions, batches)
    return float(np.mean(shares)) if shares.size else float("nan")


def mention_rate(captions: Sequence[str], words: Sequence[str | None]) -> float:
    """Share of rows whose caption contains its own word (e.g. the row's class or habitat name) as a whole
    word, case-insensitively; rows with no word are left out."""
    hits, n = 0, 0
    for text, word in zip(captions, words):
        if not word:
            continue
        n += 1
        hits += re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", text.lower()) is not None
    return hits / n if n else float("nan")


def spurious_measures(labels: np.ndarray, background: np.ndarray, common: np.ndarray) -> dict[str, float]:
    """Realised spurious correlation: P(background = the class's common one | class), averaged over the
    classes present, and the Bayes accuracy of predicting the class from the background alone (what a
    model that reads only the background can reach on these data)."""
    keep = labels >= 0
    y, b = labels[keep], background[keep]
    if y.size == 0:
        return {"p_common_background": float("nan"), "background_bayes_acc": float("nan")}
    per_class = [float(np.mean(b[y == c] == common[c])) for c in np.unique(y)]
    joint = Counter(zip(b.tolist(), y.tolist()))
    best: dict[int, int] = {}
    for (bg, _), n in joint.items():
        best[bg] = max(best.get(bg, 0), n)
    return {
        "p_common_background": float(np.mean(per_class)),
        "background_bayes_acc": float(sum(best.values()) / y.size),
    }


def mix(values: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Share of rows at each categorical value (e.g. the realised domain mixture)."""
    v = np.asarray(values)
    return {name: float(np.mean(v == i)) for i, name in enumerate(names)}


def loss_slope(steps: Sequence[float], losses: Sequence[float], last: float = 0.2) -> float:
    """Least-squares slope of the loss over the last `last` share of the logged steps, per 1,000 steps
    (≈ 0 once the loss has flattened; clearly negative while it still falls)."""
    s = np.asarray(steps, dtype=float)
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(s) & np.isfinite(y)
    s, y = s[ok], y[ok]
    if s.size < 3:
        return float("nan")
    cut = s.max() - last * (s.max() - s.min())
    sel = s >= cut
    if sel.sum() < 2:
        sel = np.zeros_like(sel)
        sel[-2:] = True
    return float(np.polyfit(s[sel], y[sel], 1)[0] * 1000.0)


_TOKEN = re.compile(r"[\w-]+")
_PLAIN = re.compile(r"^[\w-]+$")


def mention_rates(texts: Sequence[str], words: Mapping[str, Sequence[str | None]]) -> dict[str, float]:
    """`mention_rate` of several word columns at once (e.g. class name, background, colour per row), each
    text split into words once: the same numbers as `mention_rate` (a test checks), at a fraction of the
    cost on a whole training set."""
    return {key: hits / n if n else float("nan") for key, (hits, n) in mention_counts(texts, words).items()}


def mention_counts(
    texts: Sequence[str], words: Mapping[str, Sequence[str | None]]
) -> dict[str, tuple[int, int]]:
    """For each word column, (rows whose text names the row's word, rows with a word): `mention_rates`'
    numerator and denominator, so the rates of a data set seen in chunks add up exactly."""
    tokens: dict[str, frozenset[str]] = {}
    out: dict[str, tuple[int, int]] = {}
    for key, column in words.items():
        hits, n = 0, 0
        for text, word in zip(texts, column):
            if not word:
                continue
            n += 1
            w = word.lower()
            if _PLAIN.match(w):  # a whole word is a maximal run of [\w-]: a set look-up
                toks = tokens.get(text)
                if toks is None:
                    toks = tokens[text] = frozenset(_TOKEN.findall(text.lower()))
                hits += w in toks
            else:  # a name with spaces or punctuation: the regex itself
                hits += mention_rate([text], [word]) == 1.0
        out[key] = (hits, n)
    return out


def expected_classes_per_batch(probs: Sequence[float] | np.ndarray, batch_size: int) -> float:
    """E[distinct classes in a batch of `batch_size` rows drawn with class probabilities `probs`]:
    Σ_c 1 − (1 − p_c)^B."""
    p = np.asarray(probs, dtype=float)
    p = p[p > 0] / p.sum()
    return float(np.sum(1.0 - (1.0 - p) ** batch_size))


def simulated_classes_per_batch(
    probs: Sequence[float] | np.ndarray, batch_size: int, draws: int = 4000, seed: int = 0
) -> np.ndarray:
    """Distinct classes in each of `draws` simulated batches of rows drawn with class probabilities `probs`
    (seeded, so a plan prints the same numbers each time)."""
    p = np.asarray(probs, dtype=float)
    y = np.random.default_rng(seed).choice(len(p), size=(draws, batch_size), p=p / p.sum())
    y.sort(axis=1)
    return 1 + (np.diff(y, axis=1) != 0).sum(axis=1)
