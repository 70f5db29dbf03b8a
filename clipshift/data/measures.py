"""What a run's training data actually were, measured from the rows and batches used (numpy only).

These are the manipulation checks of the data side: a study that varies the spurious strength, the caption
level or the class imbalance must show that the realised data differ between its levels; a dynamic
classification K means nothing when every batch holds more than K classes. Each function takes plain arrays
and returns plain numbers, so the same measures serve any data source.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

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


def classes_per_batch(labels: np.ndarray, batches: Iterable[np.ndarray]) -> np.ndarray:
    """The number of distinct known classes (label ≥ 0) in each batch of row indices."""
    out = []
    for rows in batches:
        y = labels[rows]
        out.append(np.unique(y[y >= 0]).size)
    return np.asarray(out, dtype=np.int64)


def same_class_pair_share(labels: np.ndarray, batches: Iterable[np.ndarray]) -> float:
    """Mean over batches of the share of image pairs (i ≠ j) whose labels agree: for a contrastive loss,
    negatives that are of the same class (false negatives at the class level)."""
    shares = []
    for rows in batches:
        y = labels[rows]
        y = y[y >= 0]
        n = y.size
        if n < 2:
            continue
        counts = np.bincount(y)
        shares.append(float((counts * (counts - 1)).sum() / (n * (n - 1))))
    return float(np.mean(shares)) if shares else float("nan")


def duplicate_caption_share(captions: Sequence[str], batches: Iterable[np.ndarray]) -> float:
    """Mean over batches of the share of rows whose caption is also another row's caption in the same batch
    (the contrastive loss treats the twin as a negative)."""
    shares = []
    for rows in batches:
        texts = [captions[int(i)] for i in rows]
        if not texts:
            continue
        counts = Counter(texts)
        shares.append(sum(n for n in counts.values() if n > 1) / len(texts))
    return float(np.mean(shares)) if shares else float("nan")


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
