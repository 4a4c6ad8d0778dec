"""Plain numpy reference of N:M pruning: the specification the numba kernels are tested against.

Semantics (see docs/pruner.md):
- score = |x| (x decoded exactly to float32), or float32(|x| * f_j) with a per-channel factor f;
- in every group of M consecutive channels of a row, the N entries ranking first are kept, where
  the ranking is: NaN scores first, then higher score, then lower channel index (ties);
  so exactly N entries are kept in every full group;
- ``pad=True`` with K % M != 0: the row is extended with zeros (score 0) up to a multiple of M
  and cut back afterwards; a zero-padded entry never beats a real one (its index is higher), so
  the last, partial group of r channels keeps its min(N, r) best entries.
"""
from __future__ import annotations

import numpy as np

from ampersim.kernels.cpu.tensors import decode_float32


def group_keep(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep mask [rows, K] of the top-``n`` scores in each group of ``m`` (K % m == 0)."""
    rows, k = scores.shape
    groups = scores.reshape(rows, k // m, m)
    nan = np.isnan(groups)
    value = np.where(nan, np.float32(0), groups)
    index = np.broadcast_to(np.arange(m), groups.shape)
    # lexsort: the last key is primary. NaN first, then score descending, then index ascending.
    order = np.lexsort((index, -value, ~nan), axis=-1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, index, axis=-1)
    return (rank < n).reshape(rows, k)


def scores_of(values: np.ndarray, factor: np.ndarray | None) -> np.ndarray:
    """float32 scores |x| or |x| * factor (factor: float32 [K])."""
    score = np.abs(values.astype(np.float32, copy=False))
    if factor is None:
        return score
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 -> NaN and overflow are specified
        return score * factor.astype(np.float32, copy=False)


def _padded_k(k: int, m: int) -> int:
    return -(-k // m) * m


def keep_mask(bits: np.ndarray, fmt: str, n: int, m: int, factor: np.ndarray | None = None,
              pad: bool = False) -> np.ndarray:
    """Boolean keep mask [rows, K] of raw bits [rows, K] in format ``fmt``."""
    rows, k = bits.shape
    kp = _padded_k(k, m) if pad else k
    values = np.zeros((rows, kp), np.float32)
    values[:, :k] = decode_float32(bits, fmt)
    f = None
    if factor is not None:
        f = np.zeros(kp, np.float32)
        f[:k] = factor
    return group_keep(scores_of(values, f), n, m)[:, :k]


def prune_bits(bits: np.ndarray, fmt: str, n: int, m: int, factor: np.ndarray | None = None,
               pad: bool = False) -> np.ndarray:
    """Pruned copy of raw bits: kept entries bit-for-bit, dropped entries +0."""
    keep = keep_mask(bits, fmt, n, m, factor, pad)
    return np.where(keep, bits, np.zeros((), bits.dtype))


def compress_bits(bits: np.ndarray, fmt: str, n: int, m: int, factor: np.ndarray | None = None,
                  pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(values [rows, G, n] raw bits, indices [rows, G, n] uint8) of the kept entries, G = ceil(K/m).

    Within a group the kept entries appear in increasing channel order. With ``pad`` the last group
    may hold padded entries (value 0, index >= K % m).
    """
    rows, k = bits.shape
    kp = _padded_k(k, m)
    padded = np.zeros((rows, kp), bits.dtype)
    padded[:, :k] = bits
    f = None
    if factor is not None:
        f = np.zeros(kp, np.float32)
        f[:k] = factor
    keep = keep_mask(padded, fmt, n, m, f).reshape(rows, kp // m, m)
    index = np.broadcast_to(np.arange(m, dtype=np.uint8), keep.shape)
    # Stable sort of "not kept" puts the kept positions first, in increasing index order.
    order = np.argsort(~keep, axis=-1, kind="stable")[..., :n]
    values = np.take_along_axis(padded.reshape(rows, kp // m, m), order, axis=-1)
    return values, np.take_along_axis(index, order, axis=-1)
