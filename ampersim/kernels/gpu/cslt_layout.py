"""cuSPARSELt 0.8.0 compressed 2:4 operand layout (sm90, row-major sparse A), as a numpy encoder.

Decoded offline from ``validation/probe/cslt_layouts.npz`` (``torch._cslt_compress`` on an H200,
torch 2.11 + cuSPARSELt 0.8.0) and reproduced bit-for-bit there for bf16/fp16/int8/fp8 at
32x64 ... 256x512. NVIDIA calls the layout internal: the GPU writer that follows it
(``triton_prune``) is re-checked against ``_cslt_compress`` at run time (``pruner.fused_layout_ok``).

Layout of ``_cslt_compress(x)`` for ``x`` of shape [R, K] (K a multiple of 64 here):

- values: the 2 kept elements of every group of 4, in row-major order (R * K/2 elements);
- metadata: right after the values, one 4-bit nibble per group, ``i0 | i1 << 2`` with i0 < i1 the
  kept positions in the group; nibbles fill bytes low half first. Rows are padded to a multiple of
  64 with the nibble 0xE (positions 2, 3). Nibble ``n`` of row r, group g (r = 64*rt + 16*m2 +
  8*m1 + m0):

  - 16-bit data, 8-group (32 element) K blocks kt, g = 8*kt + 4*k1 + 2*gb + ga:
    ``n = m1 + 2*k1 + 4*ga + 8*gb + 16*m0 + 128*m2 + 512*(kt + K/32*rt)``
  - 8-bit data, 16-group (64 element) K blocks kt, g = 16*kt + 8*k1 + 2*gb + ga (gb < 4):
    ``n = ga + 2*m1 + 4*k1 + 8*gb + 32*m0 + 256*m2 + 1024*(kt + K/64*rt)``

- torch allocates a [R, ceil(nbytes / (R * itemsize))] tensor; bytes past ``nbytes`` are unused.
"""
from __future__ import annotations

import numpy as np

from ampersim.core.errors import InvalidArgument

ROW_TILE = 64
K_MULTIPLE = 64
PAD_NIBBLE = 0xE


def _check(rows: int, cols: int, itemsize: int) -> None:
    if itemsize not in (1, 2):
        raise InvalidArgument(f"itemsize {itemsize} not supported: the 2:4 layout is known for 1- and 2-byte data")
    if rows <= 0 or cols <= 0 or cols % K_MULTIPLE:
        raise InvalidArgument(
            f"shape [{rows}, {cols}] not supported: need rows > 0 and cols a multiple of {K_MULTIPLE}"
        )


def padded_rows(rows: int) -> int:
    """Rows the metadata covers: ``rows`` rounded up to a multiple of 64."""
    return -(-rows // ROW_TILE) * ROW_TILE


def values_nbytes(rows: int, cols: int, itemsize: int) -> int:
    return rows * cols // 2 * itemsize


def metadata_nbytes(rows: int, cols: int) -> int:
    """One bit per dense element of the row-padded matrix (4 bits per group of 4)."""
    return padded_rows(rows) * cols // 8


def compressed_nbytes(rows: int, cols: int, itemsize: int) -> int:
    """Bytes cuSPARSELt writes for a [rows, cols] operand: values then metadata."""
    _check(rows, cols, itemsize)
    return values_nbytes(rows, cols, itemsize) + metadata_nbytes(rows, cols)


def compressed_shape(rows: int, cols: int, itemsize: int) -> tuple[int, int]:
    """Shape of the tensor ``torch._cslt_compress`` returns (dtype of the input)."""
    per_row = rows * itemsize
    return rows, -(-compressed_nbytes(rows, cols, itemsize) // per_row)


def nibble_offsets(rows: int, cols: int, itemsize: int) -> np.ndarray:
    """Nibble index within the metadata region of every group: int64 [padded_rows(rows), cols // 4]."""
    _check(rows, cols, itemsize)
    rp, groups = padded_rows(rows), cols // 4
    r = np.arange(rp, dtype=np.int64)[:, None]
    g = np.arange(groups, dtype=np.int64)[None, :]
    rt, m2, m1, m0 = r // 64, (r % 64) // 16, (r % 16) // 8, r % 8
    if itemsize == 2:
        kt, k1, gb, ga = g // 8, (g % 8) // 4, (g % 4) // 2, g % 2
        return m1 + 2 * k1 + 4 * ga + 8 * gb + 16 * m0 + 128 * m2 + 512 * (kt + cols // 32 * rt)
    kt, k1, gb, ga = g // 16, (g % 16) // 8, (g % 8) // 2, g % 2
    return ga + 2 * m1 + 4 * k1 + 8 * gb + 32 * m0 + 256 * m2 + 1024 * (kt + cols // 64 * rt)


def group_nibbles(keep: np.ndarray) -> np.ndarray:
    """Metadata nibble ``i0 | i1 << 2`` of every group of a 2:4 keep mask [R, K] -> uint8 [R, K/4]."""
    rows, cols = keep.shape
    k = keep.reshape(rows, cols // 4, 4)
    if not (k.sum(axis=-1) == 2).all():
        raise InvalidArgument("keep mask must keep exactly 2 of every 4 consecutive elements")
    pos = np.argsort(~k, axis=-1, kind="stable")[..., :2]  # kept positions, ascending
    return (pos[..., 0] | (pos[..., 1] << 2)).astype(np.uint8)


def encode(bits: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Compressed bytes (values + metadata, ``compressed_nbytes`` long) of raw-bit data and a 2:4 mask.

    ``bits``: [R, K] integer view of the data (int16/uint16 for 16-bit types, int8/uint8 for 8-bit);
    ``keep``: bool [R, K] with exactly 2 True per group of 4 along K.
    """
    if bits.ndim != 2 or bits.shape != keep.shape:
        raise InvalidArgument(f"bits {bits.shape} and keep {keep.shape} must be the same 2-D shape")
    rows, cols = bits.shape
    itemsize = bits.dtype.itemsize
    _check(rows, cols, itemsize)
    values = np.ascontiguousarray(bits[keep]).view(np.uint8)  # row-major order of kept elements
    nibbles = np.full((padded_rows(rows), cols // 4), PAD_NIBBLE, dtype=np.uint8)
    nibbles[:rows] = group_nibbles(keep)
    stream = np.empty(nibbles.size, dtype=np.uint8)
    stream[nibble_offsets(rows, cols, itemsize).ravel()] = nibbles.ravel()
    meta = stream[0::2] | (stream[1::2] << 4)
    return np.concatenate([values, meta])


def keep_from_nonzero(bits: np.ndarray, *, floating: bool = True) -> np.ndarray:
    """2:4 keep mask of an already pruned matrix whose kept entries are all non-zero.

    ``floating``: the bits hold a float format, so -0.0 (sign bit only) counts as zero.
    """
    magnitude = (0x7FFF if bits.dtype.itemsize == 2 else 0x7F) if floating else -1
    return (bits.astype(np.int64) & magnitude) != 0


__all__ = [
    "compressed_nbytes", "compressed_shape", "encode", "group_nibbles", "keep_from_nonzero",
    "metadata_nbytes", "nibble_offsets", "padded_rows", "values_nbytes",
]
