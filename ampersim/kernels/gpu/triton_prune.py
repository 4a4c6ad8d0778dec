"""Triton kernels for N:M activation pruning on NVIDIA GPUs (launched by ``ampersim.kernels.gpu.pruner``).

Semantics: ``ampersim.kernels.reference``: score = |x| (times a static per-channel fp32 factor if
given, the product taken in fp32); in every group of M consecutive elements along the last dim the
N best scores are kept; equal scores: the lower index wins; NaN scores rank above everything (+inf
too). Pruned elements are written as +0.

Kernels:
- ``mask_kernel``: any N:M with M a power of two, dense masked output (the ``fused_mask`` impl).
  2:4 compares the four keys directly (6 comparisons); larger M splits each group into M "wires"
  (one value per group and thread), finds the N-th largest key with Batcher's odd-even merge
  sort (N is a compile-time constant, so only the comparators that feed wire N - 1 survive) and
  keeps the keys above it, ties to the lower index: cost per element ~2·S(M)/M + a few ops
  (S = 19, 63, 191 comparators for M = 8, 16, 32) instead of M comparisons per element.
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

from ampersim.kernels.networks import batcher_pairs


@triton.jit
def _key(x, f, HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr):
    """Integer key whose order is the score order (NaN highest, all NaNs tie, -0 == +0).

    NAN_KEY > 0 (16-bit data, no factor): the magnitude bits of x, NaNs clamped to NAN_KEY (one above
    the format's +inf), which orders exactly like |x|. Otherwise the bits of the fp32 score
    |x| (* f), sign cleared (a NaN product may carry one), NaNs clamped to one above +inf.
    """
    if NAN_KEY > 0 and not HAS_FACTOR:
        key = tl.minimum(x.to(tl.int16, bitcast=True).to(tl.int32) & 0x7FFF, NAN_KEY)
    else:
        s = tl.abs(x.to(tl.float32))
        if HAS_FACTOR:
            s = s * f
        key = tl.minimum(s.to(tl.int32, bitcast=True) & 0x7FFFFFFF, 0x7F800001)
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
    """N:M prune with dense masked output; M a power of two dividing BK and K. For M > 4 the tile
    should hold at least one group per thread (BR * BK / M >= 32 * num_warps), else threads
    repeat each other's selection."""
    pid_r = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_r * BR + tl.arange(0, BR)
    cols = pid_k * BK + tl.arange(0, BK)
    ok = (rows[:, None] < R) & (cols[None, :] < K)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_x + cols[None, :], mask=ok, other=0.0)
    f = tl.load(f_ptr + cols, mask=cols < K, other=1.0)[None, :] if HAS_FACTOR else 0.0
    if (M == 4) and (N == 2):
        k0, k1, k2, k3 = _split4(_key(x, f, HAS_FACTOR, NAN_KEY), BR, BK // 4)
        c0, c1, c2, c3 = _keep24(k0, k1, k2, k3)
        out = tl.where(tl.reshape(tl.join(tl.join(c0, c2), tl.join(c1, c3)), (BR, BK)), x, 0.0)
    else:
        out = _select_wires(x, f, N, M, HAS_FACTOR, NAN_KEY, BR, BK)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * stride_o + cols[None, :], out, mask=ok)


_batcher_pairs = triton.constexpr_function(batcher_pairs)


@triton.constexpr_function
def _n_pairs(p):
    return len(_batcher_pairs(p))


@triton.constexpr_function
def _pair(p, c, side):
    return _batcher_pairs(p)[c][side]


@triton.constexpr_function
def _log2(m):
    return m.bit_length() - 1


@triton.constexpr_function
def _bit_reverse(i, m):
    """i < m = 2^k with its k bits reversed: the tuple position of channel i after ``_split_wires``,
    and the channel at position i (the reversal is its own inverse)."""
    bits = m.bit_length() - 1
    return int(format(i, f"0{bits}b")[::-1], 2) if bits else 0


@triton.jit
def _split_wires(t, BR: tl.constexpr, G: tl.constexpr, M: tl.constexpr):
    """[BR, G*M] -> M tensors [BR, G]: position w holds channel ``bit-reverse(w)`` of every group."""
    ws = (tl.reshape(t, (BR, G, M)),)
    for level in tl.static_range(_log2(M)):
        halves = ()
        for j in tl.static_range(len(ws)):
            if (M >> (level + 1)) == 1:
                even, odd = tl.split(tl.reshape(ws[j], (BR, G, 2)))
            else:
                even, odd = tl.split(tl.reshape(ws[j], (BR, G, M >> (level + 1), 2)))
            halves = halves + (even, odd)
        ws = halves
    return ws


@triton.jit
def _join_wires(ws, BR: tl.constexpr, G: tl.constexpr, M: tl.constexpr):
    """Inverse of ``_split_wires``."""
    for level in tl.static_range(_log2(M)):
        pairs = ()
        for j in tl.static_range(len(ws) // 2):
            pairs = pairs + (tl.reshape(tl.join(ws[2 * j], ws[2 * j + 1]), (BR, G, 2 << level)),)
        ws = pairs
    return tl.reshape(ws[0], (BR, G * M))


@triton.jit
def _exchange(ws, A: tl.constexpr, B: tl.constexpr):
    """Comparator: the larger of wires A < B to A, the smaller to B."""
    return ws[:A] + (tl.maximum(ws[A], ws[B]),) + ws[A + 1:B] + (tl.minimum(ws[A], ws[B]),) + ws[B + 1:]


@triton.jit
def _select_wires(x, f, N: tl.constexpr, M: tl.constexpr, HAS_FACTOR: tl.constexpr, NAN_KEY: tl.constexpr,
                  BR: tl.constexpr, BK: tl.constexpr):
    """x [BR, BK] with all but the N best of every group of M set to +0, via M wires.

    Keys of 16-bit data without a factor (< 2^15) are made distinct by appending 31 - channel, so
    "key >= the N-th largest" keeps exactly N, ties to the lower index. 32-bit keys keep at least
    N that way, exactly N unless keys tie with the N-th largest: a tile with such a group walks
    its groups in channel order instead (the reference's rule)."""
    G: tl.constexpr = BK // M
    UNIQUE: tl.constexpr = NAN_KEY > 0 and not HAS_FACTOR
    xs = _split_wires(x, BR, G, M)
    if HAS_FACTOR:
        fs = _split_wires(tl.broadcast_to(f, (BR, BK)), BR, G, M)
    ks = ()
    for w in tl.static_range(M):
        k = _key(xs[w], fs[w] if HAS_FACTOR else 0.0, HAS_FACTOR, NAN_KEY)
        if UNIQUE:
            k = k * 32 + (31 - _bit_reverse(w, M))
        ks = ks + (k,)
    s = ks
    for c in tl.static_range(_n_pairs(M)):
        s = _exchange(s, _pair(M, c, 0), _pair(M, c, 1))
    t = s[N - 1]
    outs = ()
    for w in tl.static_range(M):
        outs = outs + (tl.where(ks[w] >= t, xs[w], 0.0),)
    if not UNIQUE:
        reached = (ks[0] >= t).to(tl.int32)
        for w in tl.static_range(1, M):
            reached += (ks[w] >= t).to(tl.int32)
        if tl.max(tl.max(reached, axis=1), axis=0) > N:
            count = (s[0] > t).to(tl.int32)  # keys above the cut: all among the first N - 1
            for j in tl.static_range(1, N - 1):
                count += (s[j] > t).to(tl.int32)
            for ch in tl.static_range(M):
                k = ks[_bit_reverse(ch, M)]
                tie = k == t
                kept = tl.where((k > t) | (tie & (count < N)), xs[_bit_reverse(ch, M)], 0.0)
                outs = outs[:_bit_reverse(ch, M)] + (kept,) + outs[_bit_reverse(ch, M) + 1:]
                count += tie.to(tl.int32)
    return _join_wires(outs, BR, G, M)
