"""Public CPU pruner API: N:M activation pruning of numpy arrays and torch CPU tensors.

Inputs ``x[..., K]`` (float32 / float16 / bfloat16) are viewed as raw bits ``[rows, K]`` without
copying (see ``tensors``); the numba kernels in ``kernels_cpu`` do the work. Semantics (ranking,
ties, NaN, padding) are specified by ``reference`` and documented in docs/pruner.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern
from ampersim.kernels.cpu import rows as kernels_cpu
from ampersim.kernels.cpu.compressed import CompressedNM
from ampersim.kernels.cpu.tensors import Rows, as_factor, as_rows, empty_rows, wrap_like


def _prepare(x: Any, pattern: str | NMPattern, factor: Any, pad: bool, *,
             writable: bool = False) -> tuple[Rows, NMPattern, np.ndarray | None]:
    p = NMPattern.parse(pattern)
    rows = as_rows(x, "x", writable=writable)
    k = rows.shape[-1]
    if k % p.m and not pad:
        raise InvalidArgument(
            f"x's last dimension K={k} is not a multiple of M={p.m} (pattern {p}); pass pad=True to "
            f"treat the last {k % p.m} channels as a zero-padded partial group"
        )
    f = None if factor is None else as_factor(factor, k)
    return rows, p, f


def prune(x: Any, pattern: str | NMPattern, *, factor: Any = None, inplace: bool = False,
          pad: bool = False, out: Any = None) -> Any:
    """Keep the N highest-scoring entries in every group of M channels along x's last dim; zero the rest.

    x: numpy array or torch CPU tensor [..., K], float32/float16/bfloat16 (never copied unless it
    is not contiguous along K and ``inplace`` is False). Score = |x|, or |x| * factor[j] (factor:
    per-channel, length K, finite and >= 0). Ties go to the lower channel; NaN scores rank highest.
    Returns a new array/tensor of x's type, dtype and shape; with ``inplace=True`` x itself,
    modified; with ``out`` (same type, dtype and shape as x) the pruned values go there.
    Kept entries are copied bit-for-bit, dropped ones become +0.
    """
    if inplace and out is not None:
        raise InvalidArgument("pass either inplace=True or out=..., not both")
    rows, p, f = _prepare(x, pattern, factor, pad, writable=inplace)
    if inplace:
        target = rows
    elif out is not None:
        target = as_rows(out, "out", writable=True)
        if target.fmt != rows.fmt or target.shape != rows.shape:
            raise InvalidArgument(
                f"out must match x: {rows.fmt} {rows.shape}; got {target.fmt} {target.shape}"
            )
    else:
        target = None
    out_bits = empty_rows(*rows.bits.shape, rows.bits.dtype) if target is None else target.bits
    kernels_cpu.prune_rows(rows.bits, out_bits, rows.fmt, p.n, p.m, f)
    if target is None:
        return wrap_like(out_bits, rows)
    return target.source


def prune_mask(x: Any, pattern: str | NMPattern, *, factor: Any = None, pad: bool = False) -> np.ndarray:
    """Boolean keep mask (numpy, x's shape): True where ``prune`` keeps the entry."""
    rows, p, f = _prepare(x, pattern, factor, pad)
    mask = np.empty(rows.bits.shape, np.bool_)
    kernels_cpu.mask_rows(rows.bits, mask, rows.fmt, p.n, p.m, f)
    return mask.reshape(rows.shape)


def compress(x: Any, pattern: str | NMPattern, *, factor: Any = None, pad: bool = False) -> CompressedNM:
    """Prune and store compactly: kept values plus uint8 in-group indices (see CompressedNM)."""
    rows, p, f = _prepare(x, pattern, factor, pad)
    n_rows, k = rows.bits.shape
    groups = -(-k // p.m)
    values = np.empty((n_rows, groups, p.n), rows.bits.dtype)
    indices = np.empty((n_rows, groups, p.n), np.uint8)
    kernels_cpu.compress_rows(rows.bits, values, indices, rows.fmt, p.n, p.m, f)
    value_dtype = np.uint16 if rows.fmt == "bfloat16" else rows.fmt
    return CompressedNM(values.view(value_dtype), indices, rows.shape, p, rows.fmt)
