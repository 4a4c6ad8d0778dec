"""CPU pruning kernels (temporary: numpy reference backend; numba SIMD kernels follow)."""
from __future__ import annotations

import numpy as np

from ampersim.prune import reference


def prune_rows(bits, out, fmt, n, m, factor):
    out[...] = reference.prune_bits(bits, fmt, n, m, factor, pad=True)


def mask_rows(bits, mask, fmt, n, m, factor):
    mask[...] = reference.keep_mask(bits, fmt, n, m, factor, pad=True)


def compress_rows(bits, values, indices, fmt, n, m, factor):
    v, i = reference.compress_bits(bits, fmt, n, m, factor, pad=True)
    values[...] = v
    indices[...] = i
