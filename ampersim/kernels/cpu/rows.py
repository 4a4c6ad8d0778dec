"""Numba CPU kernels: rows in parallel (prange), each row walked in SIMD blocks (``simd``).

Every kernel is compiled once per variant (a ``simd.BlockSpec``: group size M, storage format,
scored) and array layout, and cached on disk (``cache=True``); nothing is compiled at import.
A block is L whole groups (``simd.channels_of``). A row whose length is not a multiple of the
block ends in a partial block, which is copied into a zero-filled scratch block, processed there
and copied back: the zeros behave exactly like the documented ``pad=True`` padding (score 0,
after every real channel).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from ampersim.kernels.cpu import simd

STREAM_MIN_BYTES = 64 << 20  # out-of-place outputs from this size on are written with streaming stores
PARALLEL_MIN_BYTES = 4 << 20  # smaller inputs run on the calling thread only (see _threads_for)


@njit(cache=True, parallel=True)
def _prune_kernel(x, out, factor, n, spec, tail_spec):  # pragma: no cover - compiled
    rows, k = x.shape
    block = simd.channels_of(spec)
    full = k - k % block
    for r in prange(rows):
        for c in range(0, full, block):
            simd.prune_block(x, r, c, out, r, c, factor, c, n, spec)
        simd.stream_fence(spec)
        if full < k:
            src = np.zeros((1, block), x.dtype)
            dst = np.empty((1, block), x.dtype)
            for i in range(k - full):
                src[0, i] = x[r, full + i]
            simd.prune_block(src, 0, 0, dst, 0, 0, factor, full, n, tail_spec)
            for i in range(k - full):
                out[r, full + i] = dst[0, i]


@njit(cache=True, parallel=True)
def _mask_kernel(x, mask, factor, n, spec):  # pragma: no cover - compiled
    rows, k = x.shape
    block = simd.channels_of(spec)
    full = k - k % block
    for r in prange(rows):
        for c in range(0, full, block):
            simd.mask_block(x, r, c, mask, r, c, factor, c, n, spec)
        if full < k:
            src = np.zeros((1, block), x.dtype)
            dst = np.empty((1, block), mask.dtype)
            for i in range(k - full):
                src[0, i] = x[r, full + i]
            simd.mask_block(src, 0, 0, dst, 0, 0, factor, full, n, spec)
            for i in range(k - full):
                mask[r, full + i] = dst[0, i]


@njit(cache=True, parallel=True)
def _compress_kernel(x, values, indices, factor, n, spec):  # pragma: no cover - compiled
    rows, k = x.shape
    block = simd.channels_of(spec)
    lanes = simd.lanes_of(spec)
    m = simd.group_of(spec)
    kept = block // m * n  # values per block
    width = values.shape[1]  # kept values per row
    for r in prange(rows):
        for c in range(0, k, block):
            at = c // m * n
            if c + block <= k and at + kept + lanes <= width:
                # Writes up to `lanes` slots past its own: they land in the next block's region.
                simd.compress_block(x, r, c, values, indices, r, at, factor, c, n, spec)
            else:  # last blocks of the row: through scratch, so nothing is written past the row
                src = np.zeros((1, block), x.dtype)
                vals = np.empty((1, block), values.dtype)
                idx = np.empty((1, block), indices.dtype)
                for i in range(min(block, k - c)):
                    src[0, i] = x[r, c + i]
                simd.compress_block(src, 0, 0, vals, idx, 0, 0, factor, c, n, spec)
                for i in range(min(kept, width - at)):
                    values[r, at + i] = vals[0, i]
                    indices[r, at + i] = idx[0, i]


@contextmanager
def _threads_for(nbytes: int) -> Iterator[None]:
    """Run small inputs on the calling thread: waking the worker pool costs ~10 us on an idle
    machine but milliseconds when the cores are busy (measured, docs/pruner.md), far more than
    pruning a few MB. ``numba.set_num_threads`` is per calling thread, so this is thread-safe."""
    threads = numba.get_num_threads()
    if nbytes >= PARALLEL_MIN_BYTES or threads == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def _variant(k: int, m: int, fmt: str, factor: np.ndarray | None) -> tuple[simd.BlockSpec, np.ndarray]:
    """The kernel variant, and the factor zero-padded to whole blocks (or a dummy if unscored)."""
    spec = simd.BlockSpec(m, fmt, factor is not None)
    if factor is None:
        return spec, np.zeros(1, np.float32)
    padded = np.zeros(-(-k // spec.channels) * spec.channels, np.float32)
    padded[:k] = factor
    return spec, padded


def can_stream(bits: np.ndarray, out: np.ndarray) -> bool:
    """Streaming stores pay off for large outputs that are not also the input (no cache reuse),
    and need every register of a block aligned to its size (32 or 64 bytes, see simd.BlockSpec)."""
    return (out.nbytes >= STREAM_MIN_BYTES and not np.may_share_memory(bits, out)
            and out.ctypes.data % 64 == 0 and out.strides[0] % 64 == 0
            and out.strides[1] == out.itemsize)


def prune_rows(bits: np.ndarray, out: np.ndarray, fmt: str, n: int, m: int,
               factor: np.ndarray | None, stream: bool | None = None) -> None:
    """out[rows, K] = bits with all but the top-n of every m-group zeroed (out may be bits).

    ``stream``: write with non-temporal stores (requires ``can_stream``); None = when it can.
    """
    if bits.size:
        spec, f = _variant(bits.shape[1], m, fmt, factor)
        stream = can_stream(bits, out) if stream is None else stream
        with _threads_for(bits.nbytes):
            _prune_kernel(bits, out, f, n, dataclasses.replace(spec, stream=stream), spec)


def mask_rows(bits: np.ndarray, mask: np.ndarray, fmt: str, n: int, m: int,
              factor: np.ndarray | None) -> None:
    """mask[rows, K] (bool) = entries kept by prune_rows."""
    if bits.size:
        spec, f = _variant(bits.shape[1], m, fmt, factor)
        with _threads_for(bits.nbytes):
            _mask_kernel(bits, mask, f, n, spec)


def compress_rows(bits: np.ndarray, values: np.ndarray, indices: np.ndarray, fmt: str, n: int,
                  m: int, factor: np.ndarray | None) -> None:
    """values/indices[rows, G, n] = kept entries of each m-group and their in-group positions."""
    if bits.size:
        spec, f = _variant(bits.shape[1], m, fmt, factor)
        rows = bits.shape[0]
        with _threads_for(bits.nbytes):
            _compress_kernel(bits, values.reshape(rows, -1), indices.reshape(rows, -1), f, n, spec)
