"""Latency distributions in fixed memory: log-binned histograms with 0.1 % wide bins.

A value's bin is its binary exponent and the top 10 bits of its mantissa (1,024 bins per octave,
relative width 2⁻¹⁰ ≈ 0.1 %), from 2⁻²⁰ s (≈ 1 µs) to 2¹⁶ s (≈ 18 h); values outside land in the
first or last bin. Percentiles interpolate between the bins of the two ranks numpy's default
(linear) method would use, so they match ``np.percentile`` of the raw values within a bin width.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

SUB_BITS = 10
MIN_EXP = -19  # frexp exponent of the smallest binned value (2**-20 <= x < 2**-19)
MAX_EXP = 16
BINS = (MAX_EXP - MIN_EXP + 1) << SUB_BITS


@njit(cache=True)
def bin_of(x):  # pragma: no cover - compiled
    """Bin index of ``x`` seconds (x <= 0 and tiny values go to bin 0, huge ones to the last)."""
    if x <= 0.0:
        return 0
    m, e = math.frexp(x)
    if e < MIN_EXP:
        return 0
    if e > MAX_EXP:
        return BINS - 1
    return ((e - MIN_EXP) << SUB_BITS) + int((m - 0.5) * (2 << SUB_BITS))


def bin_values() -> np.ndarray:
    """Midpoint (s) of every bin."""
    idx = np.arange(BINS)
    exp = MIN_EXP + (idx >> SUB_BITS)
    mant = 0.5 + ((idx & ((1 << SUB_BITS) - 1)) + 0.5) / (2 << SUB_BITS)
    return np.ldexp(mant, exp)


_VALUES = bin_values()


def percentile(counts: np.ndarray, p: float) -> float:
    """The ``p``-th percentile of the values counted in ``counts`` (nan when empty)."""
    n = int(counts.sum())
    if n == 0:
        return math.nan
    cum = np.cumsum(counts)
    k = p / 100.0 * (n - 1)
    lo, hi = math.floor(k), math.ceil(k)
    v_lo = _VALUES[np.searchsorted(cum, lo + 1)]
    v_hi = _VALUES[np.searchsorted(cum, hi + 1)]
    return float(v_lo + (k - lo) * (v_hi - v_lo))


def new_histogram() -> np.ndarray:
    return np.zeros(BINS, dtype=np.int64)
