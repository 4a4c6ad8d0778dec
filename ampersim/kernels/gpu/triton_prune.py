"""Triton kernels for N:M activation pruning on NVIDIA GPUs (launched by ``ampersim.kernels.gpu.pruner``).

Semantics: ``ampersim.kernels.reference``: score = |x| (times a static per-channel fp32 factor if
given, the product taken in fp32); in every group of M consecutive elements along the last dim the
N best scores are kept; equal scores: the lower index wins; NaN scores rank above everything (+inf
too). Pruned elements are written as +0.

Kernels:
- ``mask_kernel``: any N:M with M a power of two, dense masked output (the ``fused_mask`` impl).
- ``compress24_kernel``: 2:4 prune + cuSPARSELt compression in one pass (``fused_cslt``): reads X
  once, writes the kept values and the metadata in the layout of ``cslt_layout`` (16-bit data).
- ``absmax_kernel`` then ``quant_compress24_kernel``: per-token absmax (atomic max per row), then
  2:4 prune + int8 quantization + compression in the 8-bit layout; both grids cover rows x K blocks.
- ``absmax_kernel`` then ``quant_kernel``: per-token int8 quantization, optionally 2:4-pruned, dense.
"""
from __future__ import annotations

import os

import triton
import triton.language as tl
from triton.language.extra import libdevice


@triton.jit
def _key(x, f, HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr):
    """Integer key whose signed order is the score order (NaN highest, -0 == +0).

    NAN_KEY > 0 (16-bit data, no factor): the magnitude bits of x, NaNs clamped to NAN_KEY (one above
    the format's +inf), which orders exactly like |x|. Otherwise the fp32 score's bits, sign-folded.
    """
    if NAN_KEY > 0 and not HAS_FACTOR:
        key = tl.minimum(x.to(tl.int16, bitcast=True).to(tl.int32) & 0x7FFF, NAN_KEY)
    else:
        s = tl.abs(x.to(tl.float32))
        if HAS_FACTOR:
            s = s * f
        bits = s.to(tl.int32, bitcast=True)
        key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
        key = tl.where(s == 0.0, 0, key)
        key = tl.where(s != s, 0x7FC00000, key)
    return key


@triton.jit
def _split4(t, BR: tl.constexpr, G: tl.constexpr):
    """[BR, 4*G] -> four [BR, G] tensors: elements 0, 1, 2, 3 of every group."""
    even, odd = tl.split(tl.reshape(t, (BR, G, 2, 2)))
    e0, e2 = tl.split(even)
    e1, e3 = tl.split(odd)
    return e0, e1, e2, e3


@triton.jit
def _keep24(k0, k1, k2, k3):
    """Top-2 of 4 by key; ties to the lower index. Returns the four keep flags (6 comparisons)."""
    a01 = (k0 >= k1).to(tl.int32)
    a02 = (k0 >= k2).to(tl.int32)
    a03 = (k0 >= k3).to(tl.int32)
    a12 = (k1 >= k2).to(tl.int32)
    a13 = (k1 >= k3).to(tl.int32)
    a23 = (k2 >= k3).to(tl.int32)
    # wins of each element over the other three; kept iff it wins at least two
    return (a01 + a02 + a03 >= 2), (a12 + a13 - a01 >= 1), (a23 - a02 - a12 >= 0), (a03 + a13 + a23 <= 1)


@triton.jit
def _select24(x, f, HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr):
    """2:4 selection of a [BR, BK] tile: (first kept, second kept, metadata nibble), each [BR, BK/4]."""
    G: tl.constexpr = BK // 4
    key = _key(x, f, HAS_FACTOR, NAN_KEY)
    k0, k1, k2, k3 = _split4(key, BR, G)
    x0, x1, x2, x3 = _split4(x, BR, G)
    c0, c1, c2, c3 = _keep24(k0, k1, k2, k3)
    v0 = tl.where(c0, x0, tl.where(c1, x1, x2))
    v1 = tl.where(c3, x3, tl.where(c2, x2, x1))
    i0 = tl.where(c0, 0, tl.where(c1, 1, 2))
    i1 = tl.where(c3, 3, tl.where(c2, 2, 1))
    return v0, v1, i0 | (i1 << 2)


@triton.jit
def _store_meta(meta_ptr, nib, row0, kcol0, K, BR: tl.constexpr, BK: tl.constexpr, ITEM: tl.constexpr):
    """Pack the [BR, BK/4] nibbles of a tile into 32-bit metadata words at their layout positions.

    BR is a multiple of 16 and row0 of BR; BK a multiple of 32 (16-bit data) or 64 (8-bit); the word
    index and nibble position follow ``gpu_layout.nibble_offsets`` (8 nibbles per word). Tensors stay
    at rank <= 3: one masked sum per word column (gb), then a sum over the row pair (m1).
    """
    G: tl.constexpr = BK // 4
    MB: tl.constexpr = BR // 16
    r = tl.arange(0, BR)[:, None]
    g = tl.arange(0, G)[None, :]
    m1 = (r % 16) // 8
    if ITEM == 2:  # kt = 8 groups; g % 8 = 4*k1 + 2*gb + ga; j = m1 + 2*k1 + 4*ga
        GPB: tl.constexpr = 8
        NGB: tl.constexpr = 2
        shift = 4 * (m1 + 2 * ((g % 8) // 4) + 4 * (g % 2))
        W_M0: tl.constexpr = 2
        W_M2: tl.constexpr = 16
        W_KT: tl.constexpr = 64
    else:  # kt = 16 groups; g % 16 = 8*k1 + 2*gb + ga; j = ga + 2*m1 + 4*k1
        GPB: tl.constexpr = 16
        NGB: tl.constexpr = 4
        shift = 4 * ((g % 2) + 2 * m1 + 4 * ((g % 16) // 8))
        W_M0: tl.constexpr = 4
        W_M2: tl.constexpr = 32
        W_KT: tl.constexpr = 128
    NKT: tl.constexpr = G // GPB
    t = tl.reshape(nib << shift, (BR, NKT, GPB))
    gbs = (tl.arange(0, GPB)[None, None, :] // 2) % NGB
    kt0 = kcol0 // (4 * GPB)
    kts = K // (4 * GPB)
    rt = row0 // 64
    m2 = (row0 % 64) // 16 + tl.arange(0, MB)[:, None]
    m0_kt = tl.arange(0, 8 * NKT)[None, :]  # index m0 * NKT + kt
    base = W_KT * (kt0 + m0_kt % NKT + kts * rt) + W_M2 * m2 + W_M0 * (m0_kt // NKT)
    for gb in tl.static_range(NGB):
        part = tl.sum(tl.where(gbs == gb, t, 0), axis=2)  # [BR, NKT]
        word = tl.sum(tl.reshape(part, (MB, 2, 8 * NKT)), axis=1)  # OR of rows r and r + 8
        tl.store(meta_ptr + base + gb, word)


@triton.jit
def compress24_kernel(x_ptr, f_ptr, val_ptr, meta_ptr, R, R_OUT, K, stride_x,
                      HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr):
    """2:4 prune + compress of 16-bit X [R, K] into an operand of R_OUT >= R rows.

    Rows R..R_OUT-1 are zero rows (token padding); metadata rows past R_OUT (up to the next multiple
    of 64, which the grid covers) get the padding nibble 0xE, as cuSPARSELt writes them.
    """
    pid_r = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_r * BR + tl.arange(0, BR)
    cols = pid_k * BK + tl.arange(0, BK)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_x + cols[None, :], mask=rows[:, None] < R, other=0.0)
    f = tl.load(f_ptr + cols)[None, :] if HAS_FACTOR else 0.0
    v0, v1, nib = _select24(x, f, HAS_FACTOR, NAN_KEY, BR, BK)
    vals = tl.reshape(tl.join(v0, v1), (BR, BK // 2))
    vcols = pid_k * (BK // 2) + tl.arange(0, BK // 2)
    out_rows = rows[:, None] < R_OUT
    tl.store(val_ptr + rows[:, None].to(tl.int64) * (K // 2) + vcols[None, :], vals, mask=out_rows)
    _store_meta(meta_ptr, tl.where(out_rows, nib, 0xE), pid_r * BR, pid_k * BK, K, BR, BK, 2)


@triton.jit
def absmax_kernel(x_ptr, f_ptr, amax_ptr, R, K, stride_x, HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr,
                  PRUNE: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr):
    """Per-row max |x| of the (2:4-pruned if PRUNE) tile, atomically maxed into int32 ``amax_ptr``
    (the fp32 bits: non-negative floats order like their bits). Without a factor the largest |x|
    of every group is always kept, so the pruned row's max is the row's max: no selection needed."""
    pid_r = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_r * BR + tl.arange(0, BR)
    cols = pid_k * BK + tl.arange(0, BK)
    ok = (rows[:, None] < R) & (cols[None, :] < K)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_x + cols[None, :], mask=ok, other=0.0)
    if PRUNE and HAS_FACTOR:
        f = tl.load(f_ptr + cols, mask=cols < K, other=1.0)[None, :]
        v0, v1, nib = _select24(x, f, HAS_FACTOR, NAN_KEY, BR, BK)
        m = tl.maximum(tl.abs(v0.to(tl.float32)), tl.abs(v1.to(tl.float32)))
    else:
        m = tl.abs(x.to(tl.float32))
    amax = tl.max(m, axis=1)
    tl.atomic_max(amax_ptr + rows, amax.to(tl.int32, bitcast=True), mask=rows < R, sem="relaxed")


@triton.jit
def _scale(amax_ptr, scale_ptr, rows, R_OUT, pid_k):
    """Per-row scale absmax / 127 (1 for zero rows) from the int32 absmax bits; column block 0 stores it."""
    amax = tl.load(amax_ptr + rows, mask=rows < R_OUT, other=0).to(tl.float32, bitcast=True)
    scale = tl.where(amax > 0.0, amax / 127.0, 1.0)
    tl.store(scale_ptr + rows, scale, mask=(rows < R_OUT) & (pid_k == 0))
    return (1.0 / scale)[:, None]


if os.environ.get("TRITON_INTERPRET") == "1":  # the interpreter has no libdevice

    @triton.jit
    def _rint(v):
        return (v + 12582912.0) - 12582912.0  # |v| <= ~127 here: rounds half to even in fp32
else:

    @triton.jit
    def _rint(v):
        return libdevice.rint(v)


@triton.jit
def _quantize(v, inv_scale):
    """int8(clamp(round_half_even(v * inv_scale), -127, 127))."""
    q = _rint(v.to(tl.float32) * inv_scale)
    return tl.minimum(tl.maximum(q, -127.0), 127.0).to(tl.int8)


@triton.jit
def quant_compress24_kernel(x_ptr, f_ptr, val_ptr, meta_ptr, amax_ptr, scale_ptr, R, R_OUT, K, stride_x,
                            HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr):
    """2:4 prune of 16-bit X, int8 quantization of the kept values with the per-row scales from
    ``absmax_kernel``, 8-bit compression. Rows as in ``compress24_kernel``; scales for R_OUT rows."""
    pid_r = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_r * BR + tl.arange(0, BR)
    cols = pid_k * BK + tl.arange(0, BK)
    inv = _scale(amax_ptr, scale_ptr, rows, R_OUT, pid_k)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_x + cols[None, :], mask=rows[:, None] < R, other=0.0)
    f = tl.load(f_ptr + cols)[None, :] if HAS_FACTOR else 0.0
    v0, v1, nib = _select24(x, f, HAS_FACTOR, NAN_KEY, BR, BK)
    vals = tl.reshape(tl.join(_quantize(v0, inv), _quantize(v1, inv)), (BR, BK // 2))
    vcols = pid_k * (BK // 2) + tl.arange(0, BK // 2)
    out_rows = rows[:, None] < R_OUT
    tl.store(val_ptr + rows[:, None].to(tl.int64) * (K // 2) + vcols[None, :], vals, mask=out_rows)
    _store_meta(meta_ptr, tl.where(out_rows, nib, 0xE), pid_r * BR, pid_k * BK, K, BR, BK, 1)


@triton.jit
def quant_kernel(x_ptr, f_ptr, q_ptr, amax_ptr, scale_ptr, R, K, stride_x, HAS_FACTOR: tl.constexpr,
                 NAN_KEY: tl.constexpr, PRUNE: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr):
    """int8 quantization of X (2:4-pruned first if PRUNE) with the scales from ``absmax_kernel``."""
    pid_r = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_r * BR + tl.arange(0, BR)
    cols = pid_k * BK + tl.arange(0, BK)
    inv = _scale(amax_ptr, scale_ptr, rows, R, pid_k)
    ok = (rows[:, None] < R) & (cols[None, :] < K)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_x + cols[None, :], mask=ok, other=0.0)
    if PRUNE:
        f = tl.load(f_ptr + cols)[None, :] if HAS_FACTOR else 0.0
        key = _key(x, f, HAS_FACTOR, NAN_KEY)
        k0, k1, k2, k3 = _split4(key, BR, BK // 4)
        c0, c1, c2, c3 = _keep24(k0, k1, k2, k3)
        keep = tl.reshape(tl.join(tl.join(c0, c2), tl.join(c1, c3)), (BR, BK))
        x = tl.where(keep, x, 0.0)
    tl.store(q_ptr + rows[:, None].to(tl.int64) * K + cols[None, :], _quantize(x, inv), mask=ok)


@triton.jit
def mask_kernel(x_ptr, f_ptr, out_ptr, R, K, stride_x, stride_o,
                N: tl.constexpr, M: tl.constexpr, HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr,
                BR: tl.constexpr, BK: tl.constexpr):
    """N:M prune with dense masked output; M a power of two dividing BK and K."""
    pid_r = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_r * BR + tl.arange(0, BR)
    cols = pid_k * BK + tl.arange(0, BK)
    ok = (rows[:, None] < R) & (cols[None, :] < K)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_x + cols[None, :], mask=ok, other=0.0)
    f = tl.load(f_ptr + cols, mask=cols < K, other=1.0)[None, :] if HAS_FACTOR else 0.0
    key = _key(x, f, HAS_FACTOR, NAN_KEY)
    if (M == 4) and (N == 2):
        k0, k1, k2, k3 = _split4(key, BR, BK // 4)
        c0, c1, c2, c3 = _keep24(k0, k1, k2, k3)
        keep = tl.reshape(tl.join(tl.join(c0, c2), tl.join(c1, c3)), (BR, BK))
    else:
        keep = _rank_keep(key, x_ptr, f_ptr, rows, pid_k * BK, R, K, stride_x, N, M, HAS_FACTOR, NAN_KEY, BR, BK)
    out = tl.where(keep, x, 0.0)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * stride_o + cols[None, :], out, mask=ok)


@triton.jit
def _rank_keep(key, x_ptr, f_ptr, rows, col0, R, K, stride_x, N: tl.constexpr, M: tl.constexpr,
               HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr):
    """Keep flags [BR, BK]: rank in the group (better keys, plus equal keys at lower index) < N.

    Element j of every group is reloaded (an L1 hit) as a [BR, G, 1] column and compared with all M.
    """
    G: tl.constexpr = BK // M
    ki = tl.reshape(key, (BR, G, M))
    pos = tl.arange(0, M)[None, None, :]
    gcol = col0 + M * tl.arange(0, G)[None, :, None]
    r3 = rows[:, None, None]
    ok = (r3 < R) & (gcol < K)
    rank = tl.zeros((BR, G, M), dtype=tl.int32)
    for j in tl.static_range(M):
        xj = tl.load(x_ptr + r3.to(tl.int64) * stride_x + gcol + j, mask=ok, other=0.0)
        fj = tl.load(f_ptr + gcol + j, mask=gcol < K, other=1.0) if HAS_FACTOR else 0.0
        kj = _key(xj, fj, HAS_FACTOR, NAN_KEY)
        rank += ((kj > ki) | ((kj == ki) & (pos > j))).to(tl.int32)
    return tl.reshape(rank < N, (BR, BK))
