"""Counter-based randomness: every value is a pure function of (key, index, stream).

A sample's factors must not depend on which batch it was rendered in, so instead of a stateful
generator each draw hashes (key, index, stream) with splitmix64. Vectorised over index arrays.
"""

from __future__ import annotations

import hashlib

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def key_of(*parts: object) -> int:
    """A stable 64-bit key from any printable parts (seed, split name, ...)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def uniform(key: int, index: np.ndarray, stream: int, n: int = 1) -> np.ndarray:
    """Uniforms in [0, 1) of shape (len(index), n); column j is stream `stream*64 + j`."""
    idx = np.asarray(index, dtype=np.uint64).reshape(-1, 1)
    cols = np.arange(n, dtype=np.uint64).reshape(1, -1) + np.uint64(stream * 64)
    with np.errstate(over="ignore"):
        x = np.uint64(key) ^ _mix(idx * _GOLDEN + np.uint64(1))
        x = _mix(x ^ _mix(cols * _GOLDEN + np.uint64(0x632BE59BD9B4E019)))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def normal(key: int, index: np.ndarray, stream: int, n: int = 1) -> np.ndarray:
    """Standard normals by Box–Muller from two uniform streams."""
    u1 = uniform(key, index, stream, n)
    u2 = uniform(key, index, stream + 1, n)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * np.pi * u2)


def categorical(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: u (N,) uniforms, probs (N, C) or (C,) rows summing to 1 -> (N,) indices."""
    cdf = np.cumsum(probs, axis=-1)
    cdf = cdf / cdf[..., -1:]
    if cdf.ndim == 1:
        return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)


def rng_for(*parts: object) -> np.random.Generator:
    """A numpy Generator for world-level tables (class shapes, palettes) that are drawn once."""
    return np.random.default_rng(key_of(*parts))
