"""Documented pruning semantics on hand-made cases, for the numpy reference and the numba kernels."""
import numpy as np
import pytest

from ampersim.kernels import reference
from ampersim.kernels.cpu import rows as kernels_cpu

NAN, INF = float("nan"), float("inf")


def _bits(values, fmt):
    if fmt == "float32":
        return np.asarray(values, np.float32).reshape(1, -1).view(np.uint32)
    if fmt == "float16":
        return np.asarray(values, np.float16).reshape(1, -1).view(np.uint16)
    # bfloat16: the top half of float32 (exact for the values used here)
    return (np.asarray(values, np.float32).reshape(1, -1).view(np.uint32) >> 16).astype(np.uint16)


def _keep(impl, values, fmt, pattern, factor=None, pad=False):
    n, m = map(int, pattern.split(":"))
    bits = _bits(values, fmt)
    f = None if factor is None else np.asarray(factor, np.float32)
    if impl == "reference":
        return reference.keep_mask(bits, fmt, n, m, f, pad)[0]
    mask = np.empty(bits.shape, np.bool_)
    kernels_cpu.mask_rows(bits, mask, fmt, n, m, f)
    return mask[0]


IMPLS = ["reference", "kernel"]
FMTS = ["float32", "float16", "bfloat16"]

CASES = [
    # (values, pattern, kept indices, why)
    ([1, 1, 1, 1], "2:4", [0, 1], "equal scores: lower index wins"),
    ([-1, 1, 0.5, -0.5], "2:4", [0, 1], "|-1| == |1| ties by index"),
    ([1, NAN, 2, 3], "2:4", [1, 3], "NaN ranks highest"),
    ([NAN, 5, -NAN, NAN], "2:4", [0, 2], "all NaNs tie (any sign/payload), lower index wins"),
    ([-INF, NAN, 1e4, 2], "2:4", [0, 1], "-inf is the largest non-NaN score"),
    ([-INF, 3, INF, 2], "1:4", [0], "+inf and -inf tie"),
    ([-0.0, 0.0, 0.0, 0.0], "1:4", [0], "-0.0 scores 0"),
    ([0.0, -0.0, 0.0, 1e-7], "1:4", [3], "a tiny positive beats zeros"),
    ([1, 2, 3, 4, 8, 7, 6, 5], "3:8", [4, 5, 6], "general N:M"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("values,pattern,kept,why", CASES)
def test_hand_cases(impl, fmt, values, pattern, kept, why):
    keep = _keep(impl, values, fmt, pattern)
    assert np.flatnonzero(keep).tolist() == kept, why


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", FMTS)
def test_denormals_order(impl, fmt):
    sign = 0x80000000 if fmt == "float32" else 0x8000
    dtype = np.uint32 if fmt == "float32" else np.uint16
    bits = np.array([[1, 2, 0, sign | 3]], dtype)  # denormal units [1, 2, 0, -3]
    n, m = 2, 4
    if impl == "reference":
        keep = reference.keep_mask(bits, fmt, n, m)
    else:
        keep = np.empty(bits.shape, np.bool_)
        kernels_cpu.mask_rows(bits, keep, fmt, n, m, None)
    assert np.flatnonzero(keep[0]).tolist() == [1, 3]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", FMTS)
def test_factor_scores(impl, fmt):
    # scores |x| * f = [4, 2, 3, 4]: tie between channel 0 and 3 -> channel 0
    assert np.flatnonzero(_keep(impl, [1, 2, 3, 4], fmt, "1:4", factor=[4, 1, 1, 1])).tolist() == [0]
    # inf * 0 is a NaN score: ranks highest
    assert np.flatnonzero(_keep(impl, [INF, 2, 3, 4], fmt, "1:4", factor=[0, 1, 1, 1])).tolist() == [0]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", FMTS)
def test_pad_partial_group(impl, fmt):
    # K=6 with 2:4 -> groups [0..3] and the partial [4, 5] (+2 zero pads): both real entries kept
    keep = _keep(impl, [4, 3, 2, 1, 0.0, -0.0], fmt, "2:4", pad=True)
    assert np.flatnonzero(keep).tolist() == [0, 1, 4, 5]
    # K=7 with 2:4 -> partial group of 3 keeps its best 2
    keep = _keep(impl, [4, 3, 2, 1, 1, 5, 1], fmt, "2:4", pad=True)
    assert np.flatnonzero(keep).tolist() == [0, 1, 4, 5]
    # K < M: the only group is partial
    assert np.flatnonzero(_keep(impl, [1, -3, 2], fmt, "2:16", pad=True)).tolist() == [1, 2]
    assert np.flatnonzero(_keep(impl, [0.0], fmt, "3:4", pad=True)).tolist() == [0]


@pytest.mark.parametrize("fmt", FMTS)
def test_kept_bits_preserved_dropped_are_positive_zero(fmt):
    n, m = 2, 4
    bits = _bits([-0.0, NAN, 1, 2], fmt)
    out = np.empty_like(bits)
    kernels_cpu.prune_rows(bits, out, fmt, n, m, None)
    np.testing.assert_array_equal(out, reference.prune_bits(bits, fmt, n, m))
    assert out[0, 0] == 0 and out[0, 1] == bits[0, 1] and out[0, 3] == bits[0, 3]


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
def test_every_16bit_pattern_with_factor(fmt):
    """All 65,536 bit patterns through the scored path (16-bit decode inside the kernel)."""
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16).reshape(-1, 64)
    factor = np.random.default_rng(0).uniform(0, 3, 64).astype(np.float32)
    out = np.empty_like(bits)
    kernels_cpu.prune_rows(bits, out, fmt, 3, 8, factor)
    np.testing.assert_array_equal(out, reference.prune_bits(bits, fmt, 3, 8, factor))
