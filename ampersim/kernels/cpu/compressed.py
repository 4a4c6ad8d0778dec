"""Compressed N:M format (kept values + in-group indices), decompression, and a numba
compressed x dense matmul that serves as the format's correctness reference."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern
from ampersim.kernels.cpu.tensors import STORAGE, as_rows, decode_float32

_VALUE_DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
                 "bfloat16": np.dtype(np.uint16)}


@dataclass(frozen=True, eq=False)
class CompressedNM:
    """N:M-pruned activations ``x[..., K]`` stored as kept values plus their positions.

    Layout (C order, rows = product of x's leading dimensions, G = ceil(K / M) groups per row):

    - ``values[rows, G, N]``: the N kept entries of every group, in increasing channel order,
      bit-for-bit (dtype float32, float16, or uint16 holding bfloat16 bit patterns);
    - ``indices[rows, G, N]`` (uint8): position of each kept entry inside its group, 0 <= i < M,
      strictly increasing along the last axis; channel = g * M + i.
    - ``shape``: x's shape; ``pattern``: the N:M pattern; ``dtype``: "float32" | "float16" |
      "bfloat16". If K % M != 0 (pruned with ``pad=True``) the last group was zero-padded: its
      entries with g * M + i >= K have value 0 and are dropped by ``decompress``.

    Memory: rows * G * N * (itemsize + 1) bytes, i.e. N/M of the dense values plus one byte per
    kept value (GPU formats pack the indices tighter, e.g. 2 bits per value for 2:4).
    """

    values: np.ndarray
    indices: np.ndarray
    shape: tuple[int, ...]
    pattern: NMPattern
    dtype: str

    def __post_init__(self) -> None:
        if self.dtype not in _VALUE_DTYPES:
            raise InvalidArgument(f"CompressedNM.dtype '{self.dtype}' not in {sorted(_VALUE_DTYPES)}")
        expected = (self.rows, self.groups, self.pattern.n)
        if self.values.shape != expected or self.indices.shape != expected:
            raise InvalidArgument(
                f"CompressedNM values/indices must have shape {expected} for x shape {self.shape} "
                f"and pattern {self.pattern}; got {self.values.shape} and {self.indices.shape}"
            )
        if self.values.dtype != _VALUE_DTYPES[self.dtype] or self.indices.dtype != np.uint8:
            raise InvalidArgument(
                f"CompressedNM needs values of dtype {_VALUE_DTYPES[self.dtype]} and uint8 indices; "
                f"got {self.values.dtype} and {self.indices.dtype}"
            )

    @property
    def k(self) -> int:
        return self.shape[-1]

    @property
    def rows(self) -> int:
        return int(np.prod(self.shape[:-1], dtype=np.int64))

    @property
    def groups(self) -> int:
        return -(-self.k // self.pattern.m)

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self.indices.nbytes

    def values_float32(self) -> np.ndarray:
        """Kept values decoded exactly to float32, shape [rows, G, N]."""
        return decode_float32(self.values.view(STORAGE[self.dtype]), self.dtype)


def decompress(c: CompressedNM) -> np.ndarray:
    """Dense array of shape ``c.shape``: kept values at their channels, +0 elsewhere.

    dtype float32 / float16, or uint16 bit patterns for bfloat16 (for a torch tensor use
    ``torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)``).
    """
    m = c.pattern.m
    dense = np.zeros((c.rows, c.groups, m), c.values.dtype)
    np.put_along_axis(dense, c.indices.astype(np.intp), c.values, axis=-1)
    return dense.reshape(c.rows, c.groups * m)[:, : c.k].reshape(c.shape)


@njit(cache=True, parallel=True)
def _compressed_matmul_kernel(values, indices, w, m, k):  # pragma: no cover - compiled
    rows, groups, n = values.shape
    out = w.shape[0]
    y = np.zeros((rows, out), np.float64)
    for r in prange(rows):
        for o in range(out):
            acc = 0.0
            for g in range(groups):
                for t in range(n):
                    col = g * m + indices[r, g, t]
                    if col < k:
                        acc += np.float64(values[r, g, t]) * np.float64(w[o, col])
            y[r, o] = acc
    return y


def compressed_matmul(c: CompressedNM, w: Any) -> np.ndarray:
    """``X @ W.T`` with X given compressed (``c``, logical shape [..., K]) and W dense [out, K].

    A correctness reference, not a fast path: products are formed in float64 from the exact
    float32 values of X and W (float32/float16/bfloat16, numpy or torch CPU) and summed in
    float64 in channel order; returns float64 of shape ``c.shape[:-1] + (out,)``.
    """
    if getattr(w, "ndim", None) != 2:
        raise InvalidArgument(f"w must be a 2-D weight [out, K={c.k}], got shape {getattr(w, 'shape', None)}")
    w_rows = as_rows(w, "w")
    if w_rows.shape[1] != c.k:
        raise InvalidArgument(f"w must have shape [out, K={c.k}] to match x; got {w_rows.shape}")
    w32 = decode_float32(w_rows.bits, w_rows.fmt)
    y = _compressed_matmul_kernel(c.values_float32(), c.indices, w32, c.pattern.m, c.k)
    return y.reshape(c.shape[:-1] + (w_rows.shape[0],))
