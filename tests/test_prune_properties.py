"""Property tests (hypothesis): numba kernels == numpy reference bit for bit, and the pruning laws."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampersim.kernels import reference
from ampersim.kernels.cpu import rows as kernels_cpu
from ampersim.kernels.cpu import simd
from ampersim.kernels.cpu.tensors import decode_float32, empty_rows
from ampersim.kernels.networks import batcher_pairs

FMTS = ["float32", "float16", "bfloat16"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bit patterns that matter: zeros of both signs, denormals, ones, inf, NaNs (several payloads).
_SPECIAL = {
    "float32": [0, 0x80000000, 1, 0x80000002, 0x007FFFFF, 0x3F800000, 0xBF800000, 0x7F7FFFFF,
                0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001],
    "float16": [0, 0x8000, 1, 0x8002, 0x03FF, 0x3C00, 0xBC00, 0x7BFF, 0x7C00, 0xFC00, 0x7E00,
                0xFE01, 0x7C01],
    "bfloat16": [0, 0x8000, 1, 0x8002, 0x007F, 0x3F80, 0xBF80, 0x7F7F, 0x7F80, 0xFF80, 0x7FC0,
                 0xFFC1, 0x7F81],
}


@st.composite
def cases(draw, fmt, m, scored, allow_pad=True):
    """(bits [rows, K], n, factor | None, pad): values from a small pool (many ties) or random bits."""
    n = draw(st.integers(1, m - 1))
    rows = draw(st.integers(1, 4))
    groups = draw(st.integers(1, 5))
    extra = draw(st.integers(0, m - 1)) if allow_pad else 0
    k = groups * m + extra
    width = 32 if fmt == "float32" else 16
    dtype = np.uint32 if width == 32 else np.uint16
    mode = draw(st.sampled_from(["random", "pool", "special"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "random":
        bits = rng.integers(0, 2**width, (rows, k), dtype=np.uint64).astype(dtype)
    elif mode == "pool":  # few distinct magnitudes and signs: ties everywhere
        pool = rng.integers(0, 2**width, 3, dtype=np.uint64).astype(dtype)
        bits = pool[rng.integers(0, 3, (rows, k))] ^ (rng.integers(0, 2, (rows, k)).astype(dtype) << (width - 1))
    else:
        pool = np.array(_SPECIAL[fmt], dtype)
        bits = pool[rng.integers(0, len(pool), (rows, k))]
    factor = None
    if scored:
        kind = draw(st.sampled_from(["random", "ones", "with_zeros"]))
        factor = rng.uniform(0.5, 4.0, k).astype(np.float32)
        if kind == "ones":
            factor[:] = 1
        elif kind == "with_zeros":
            factor[rng.integers(0, 2, k).astype(bool)] = 0
    return bits, n, factor, extra > 0


def _kernel_prune(bits, fmt, n, m, factor):
    out = np.empty_like(bits)
    kernels_cpu.prune_rows(bits, out, fmt, n, m, factor)
    return out


def _kernel_mask(bits, fmt, n, m, factor):
    mask = np.empty(bits.shape, np.bool_)
    kernels_cpu.mask_rows(bits, mask, fmt, n, m, factor)
    return mask


def _kernel_compress(bits, fmt, n, m, factor):
    groups = -(-bits.shape[1] // m)
    values = np.empty((bits.shape[0], groups, n), bits.dtype)
    indices = np.empty((bits.shape[0], groups, n), np.uint8)
    kernels_cpu.compress_rows(bits, values, indices, fmt, n, m, factor)
    return values, indices


# The prune kernel over the full matrix of compiled variants; mask and compress over a subset
# that still covers every storage width, key width and block shape (M < lanes, M == lanes, M > lanes).
PRUNE_VARIANTS = [(f, m, s) for f in FMTS for m in (4, 8, 16, 32) for s in (False, True)]
OTHER_VARIANTS = [("float32", 4, False), ("float32", 32, True), ("float16", 8, True),
                  ("float16", 32, False), ("bfloat16", 16, False), ("bfloat16", 4, True)]
# Group sizes that are not powers of two (odd factors take the q-way deinterleave; 2 the smallest M).
ODD_M_VARIANTS = [("float32", 12, True), ("bfloat16", 7, False), ("float16", 3, False), ("bfloat16", 2, True)]


@pytest.mark.parametrize("fmt,m,scored", PRUNE_VARIANTS)
@SETTINGS
@given(data=st.data())
def test_prune_matches_reference(fmt, m, scored, data):
    bits, n, factor, pad = data.draw(cases(fmt, m, scored))
    expected = reference.prune_bits(bits, fmt, n, m, factor, pad=pad)
    np.testing.assert_array_equal(_kernel_prune(bits, fmt, n, m, factor), expected)
    inplace = bits.copy()
    kernels_cpu.prune_rows(inplace, inplace, fmt, n, m, factor)
    np.testing.assert_array_equal(inplace, expected)


@pytest.mark.parametrize("fmt,m,scored", OTHER_VARIANTS + ODD_M_VARIANTS)
@SETTINGS
@given(data=st.data())
def test_mask_and_compress_match_reference(fmt, m, scored, data):
    bits, n, factor, pad = data.draw(cases(fmt, m, scored))
    np.testing.assert_array_equal(_kernel_mask(bits, fmt, n, m, factor),
                                  reference.keep_mask(bits, fmt, n, m, factor, pad=pad))
    values, indices = _kernel_compress(bits, fmt, n, m, factor)
    ref_values, ref_indices = reference.compress_bits(bits, fmt, n, m, factor, pad=pad)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(indices, ref_indices)


def _order_key(score, index):
    """Total order of the specification: NaN first, then higher score, then lower index."""
    return (np.isnan(score), -np.inf if np.isnan(score) else score, -index)


@pytest.mark.parametrize("fmt,m,scored", OTHER_VARIANTS + ODD_M_VARIANTS)
@SETTINGS
@given(data=st.data())
def test_laws(fmt, m, scored, data):
    bits, n, factor, _ = data.draw(cases(fmt, m, scored, allow_pad=False))
    rows, k = bits.shape
    keep = _kernel_mask(bits, fmt, n, m, factor)
    # exactly n kept in every group, whatever the values (NaN, inf, ties)
    assert (keep.reshape(rows, -1, m).sum(-1) == n).all()
    # kept = the n best: every kept entry outranks every dropped one of its group
    scores = reference.scores_of(decode_float32(bits, fmt), factor).reshape(rows, -1, m)
    for r, g in np.ndindex(rows, k // m):
        kept = [_order_key(scores[r, g, i], i) for i in range(m) if keep[r, g * m + i]]
        dropped = [_order_key(scores[r, g, i], i) for i in range(m) if not keep[r, g * m + i]]
        assert min(kept) > max(dropped)
    # prune == x where kept, +0 elsewhere; idempotent
    pruned = _kernel_prune(bits, fmt, n, m, factor)
    np.testing.assert_array_equal(pruned, np.where(keep, bits, 0))
    np.testing.assert_array_equal(_kernel_prune(pruned, fmt, n, m, factor), pruned)
    # decompress(compress(x)) == prune(x)
    values, indices = _kernel_compress(bits, fmt, n, m, factor)
    dense = np.zeros((rows, k // m, m), bits.dtype)
    np.put_along_axis(dense, indices.astype(np.intp), values, axis=-1)
    np.testing.assert_array_equal(dense.reshape(rows, k), pruned)


@pytest.mark.parametrize("fmt,m", [("float32", 16), ("float16", 4), ("bfloat16", 8)])
@SETTINGS
@given(data=st.data())
def test_factor_equals_pruning_scaled_values(fmt, m, data):
    """prune(x, factor=f) keeps what magnitude pruning of the float32 product x * f keeps."""
    bits, n, factor, _ = data.draw(cases(fmt, m, True, allow_pad=False))
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = (decode_float32(bits, fmt) * factor).astype(np.float32)
    keep_scaled = _kernel_mask(scaled.view(np.uint32), "float32", n, m, None)
    np.testing.assert_array_equal(_kernel_mask(bits, fmt, n, m, factor), keep_scaled)
    np.testing.assert_array_equal(_kernel_prune(bits, fmt, n, m, factor), np.where(keep_scaled, bits, 0))


@pytest.mark.parametrize("fmt,m", [(f, m) for f in FMTS for m in (4, 32)])
@SETTINGS
@given(data=st.data())
def test_streaming_stores_match_reference(fmt, m, data):
    """The non-temporal store path (large out-of-place outputs) writes the same bits."""
    bits, n, _, _ = data.draw(cases(fmt, m, False, allow_pad=False))
    bits = np.resize(bits, (bits.shape[0], 32 * data.draw(st.integers(1, 3))))  # 64-byte rows
    out = empty_rows(*bits.shape, bits.dtype)
    assert out.ctypes.data % 64 == 0 and out.strides[0] % 64 == 0
    kernels_cpu.prune_rows(bits, out, fmt, n, m, None, stream=True)
    np.testing.assert_array_equal(out, reference.prune_bits(bits, fmt, n, m))


@pytest.mark.parametrize("fmt,m,scored", ODD_M_VARIANTS)
@SETTINGS
@given(data=st.data())
def test_prune_any_group_size_matches_reference(fmt, m, scored, data):
    bits, n, factor, pad = data.draw(cases(fmt, m, scored))
    np.testing.assert_array_equal(_kernel_prune(bits, fmt, n, m, factor),
                                  reference.prune_bits(bits, fmt, n, m, factor, pad=pad))


@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_batcher_network_sorts_every_0_1_input(p):
    """0-1 principle: a comparator network that sorts all 2^p 0/1 inputs sorts everything."""
    wires = ((np.arange(2**p)[:, None] >> np.arange(p)) & 1).astype(np.int8)
    for a, b in batcher_pairs(p):
        wires[:, a], wires[:, b] = np.maximum(wires[:, a], wires[:, b]), np.minimum(wires[:, a], wires[:, b])
    assert (np.diff(wires, axis=1) <= 0).all()
    assert len(batcher_pairs(32)) == 191


@pytest.mark.parametrize("lanes", [16, 32])
def test_transpose_plan_makes_wires(lanes):
    """Applying the stages to M registers of consecutive channels leaves channel i of every group,
    group g in lane g, in register wires[i]; every stage is a permutation of the register lanes."""
    for m in range(2, 33):
        stages, wires = simd.transpose_plan(m, lanes)
        regs = [[h * lanes + lane for lane in range(lanes)] for h in range(m)]
        for stage in stages:
            assert sorted(src for sources in stage for src in sources) == [
                (r, lane) for r in range(m) for lane in range(lanes)]
            regs = [[regs[r][lane] for r, lane in sources] for sources in stage]
        assert [regs[wires[i]] for i in range(m)] == [[g * m + i for g in range(lanes)] for i in range(m)]
