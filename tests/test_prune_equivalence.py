"""Every pruner implementation present on this machine against the one reference, bit for bit.

``ampersim.kernels.reference`` (numpy) defines the semantics. On the same inputs (random values,
ties, NaN of both signs and several payloads, +-inf, +-0, subnormals) this runs the numba CPU
pruner (``prune``, ``prune_mask``, ``compress``), the eager torch pruner, and the Triton kernels
(on a CUDA GPU, else under Triton's interpreter: ``prune_gpu``'s masking kernel, the fused 2:4
compress kernel through the cuSPARSELt layout encoder), for fp32/fp16/bf16, with and without a
per-channel factor, at several patterns (odd ones where the implementation takes them), and
demands identical bits, masks and compressed arrays. Seeds are fixed.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (models extra) not installed")
HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON and not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # the Triton kernels' logic, run on the CPU

from ampersim.core.patterns import NMPattern  # noqa: E402
from ampersim.kernels import reference, torch_eager  # noqa: E402
from ampersim.kernels.cpu import compress, prune, prune_mask  # noqa: E402
from ampersim.kernels.gpu import cslt_layout  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered:RuntimeWarning")  # inf*0, x*f

TRITON_DEVICE = "cuda" if HAS_CUDA else "cpu"
INTERPRETED = not HAS_CUDA
ROWS = 12
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SIGNED = {"float32": torch.int32, "float16": torch.int16, "bfloat16": torch.int16}
UNSIGNED = {"float32": np.uint32, "float16": np.uint16, "bfloat16": np.uint16}
# zeros of both signs, subnormals, one, largest finite, +-inf, NaNs (quiet, negative, signalling payload)
SPECIAL_BITS = {
    "float32": [0, 0x80000000, 1, 0x80000002, 0x007FFFFF, 0x3F800000, 0xBF800000, 0x7F7FFFFF,
                0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001],
    "float16": [0, 0x8000, 1, 0x8002, 0x03FF, 0x3C00, 0xBC00, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x7C01],
    "bfloat16": [0, 0x8000, 1, 0x8002, 0x007F, 0x3F80, 0xBF80, 0x7F7F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81],
}
PATTERNS = ["2:4", "1:4", "4:8", "3:8", "8:16", "16:32", "3:7", "5:6"]
SEED = {name: i for i, name in enumerate(DTYPES)}


def width(m: int) -> int:
    """K of a test input: 64 channels (a whole fused-compress block) where M divides 64."""
    return 64 if 64 % m == 0 else 9 * m


def make_input(fmt: str, k: int, seed: int) -> torch.Tensor:
    """[ROWS, k] in ``fmt``: rows 0-3 random normal over a wide magnitude range, 4-7 drawn from three
    values with random signs (ties everywhere), 8-11 special bit patterns mixed with ties."""
    rng = np.random.default_rng(seed)
    wide = rng.standard_normal((4, k)) * np.exp2(rng.integers(-20, 20, (4, k)))
    pool = rng.choice([0.5, 1.0, 3.0], (8, k)) * rng.choice([-1.0, 1.0], (8, k))
    x = torch.from_numpy(np.concatenate([wide, pool]).astype(np.float32)).to(DTYPES[fmt])
    special = np.array(SPECIAL_BITS[fmt], dtype=np.int64)[rng.integers(0, len(SPECIAL_BITS[fmt]), (4, k))]
    bits = torch.from_numpy(special).to(torch.int64)
    bits = torch.where(bits >= 2 ** (8 * x.element_size() - 1), bits - 2 ** (8 * x.element_size()), bits)
    specials = bits.to(SIGNED[fmt]).view(DTYPES[fmt])
    mixed = torch.where(torch.from_numpy(rng.random((4, k)) < 0.5), specials, x[4:8])
    return torch.cat([x[:8], mixed])


def make_factor(k: int, seed: int) -> np.ndarray:
    """float32 [k] in [0.25, 4) with exact zeros (inf * 0 = NaN scores) and runs of equal values."""
    rng = np.random.default_rng(seed + 100)
    f = rng.uniform(0.25, 4.0, k).astype(np.float32)
    f[rng.random(k) < 0.15] = 0.0
    f[rng.random(k) < 0.25] = 1.0
    return f


def bits_of(t: torch.Tensor, fmt: str) -> np.ndarray:
    return t.detach().cpu().contiguous().view(SIGNED[fmt]).numpy().view(UNSIGNED[fmt])


def is_subnormal(x: torch.Tensor) -> torch.Tensor:
    v = x.float().abs()
    return (v > 0) & (v < torch.finfo(x.dtype).tiny)


def cases():
    for fmt in DTYPES:
        for pattern in PATTERNS:
            for scored in (False, True):
                yield pytest.param(fmt, pattern, scored, id=f"{fmt}-{pattern}-{'factor' if scored else 'abs'}")


@pytest.mark.parametrize("fmt,pattern,scored", list(cases()))
def test_every_implementation_equals_the_reference(fmt, pattern, scored):
    nm = NMPattern.parse(pattern)
    k = width(nm.m)
    x = make_input(fmt, k, 10 * SEED[fmt] + nm.m)
    factor = make_factor(k, nm.m) if scored else None
    bits = bits_of(x, fmt)
    want = reference.prune_bits(bits, fmt, nm.n, nm.m, factor)
    want_keep = reference.keep_mask(bits, fmt, nm.n, nm.m, factor)
    want_values, want_indices = reference.compress_bits(bits, fmt, nm.n, nm.m, factor)
    assert (want_keep.reshape(ROWS, -1, nm.m).sum(-1) == nm.n).all()

    # numba CPU pruner
    np.testing.assert_array_equal(bits_of(prune(x, pattern, factor=factor), fmt), want)
    np.testing.assert_array_equal(prune_mask(x, pattern, factor=factor), want_keep)
    packed = compress(x, pattern, factor=factor)
    np.testing.assert_array_equal(packed.values.view(UNSIGNED[fmt]), want_values)
    np.testing.assert_array_equal(packed.indices, want_indices)

    # eager torch (factor as a tensor, the form the runtime passes)
    f_t = None if factor is None else torch.from_numpy(factor)
    np.testing.assert_array_equal(bits_of(torch_eager.prune(x, pattern, factor=f_t), fmt), want)
    np.testing.assert_array_equal(torch_eager.keep_mask(x, pattern, factor=f_t).numpy(), want_keep)

    if not HAS_TRITON:
        return
    from ampersim.kernels.gpu.pruner import fused_compress_24, prune_gpu

    xt, f_d = x, None if f_t is None else f_t.to(TRITON_DEVICE)
    if INTERPRETED and scored and fmt == "bfloat16":
        # the interpreter converts bf16 subnormals to float32 as zero (the device does not): none here
        xt = torch.where(is_subnormal(x), torch.zeros((), dtype=x.dtype), x)
    t_bits = bits_of(xt, fmt)
    got = prune_gpu(xt.to(TRITON_DEVICE), pattern, factor=f_d)
    np.testing.assert_array_equal(bits_of(got, fmt), reference.prune_bits(t_bits, fmt, nm.n, nm.m, factor))
    if (nm.n, nm.m) == (2, 4) and fmt != "float32":
        rows_out = 16  # cuSPARSELt's row multiple: 4 zero rows of padding
        padded = np.zeros((rows_out, k), t_bits.dtype)
        padded[:ROWS] = t_bits
        keep = reference.keep_mask(padded, fmt, 2, 4, factor)
        expected = cslt_layout.encode(padded, keep)
        operand = fused_compress_24(xt.to(TRITON_DEVICE), factor=f_d, rows_out=rows_out)
        np.testing.assert_array_equal(operand.cpu().view(-1).view(torch.uint8).numpy()[: expected.size], expected)


@pytest.mark.parametrize("fmt", list(DTYPES))
@pytest.mark.parametrize("pattern", ["2:4", "3:8", "3:7"])
@pytest.mark.parametrize("scored", [False, True])
def test_partial_last_group_with_pad(fmt, pattern, scored):
    """pad=True (K not a multiple of M): the CPU pruner and eager torch against the reference."""
    nm = NMPattern.parse(pattern)
    k = 3 * nm.m + nm.m // 2 + 1
    x = make_input(fmt, k, 7 + nm.m)
    factor = make_factor(k, 3) if scored else None
    f_t = None if factor is None else torch.from_numpy(factor)
    bits = bits_of(x, fmt)
    want = reference.prune_bits(bits, fmt, nm.n, nm.m, factor, pad=True)
    want_keep = reference.keep_mask(bits, fmt, nm.n, nm.m, factor, pad=True)
    np.testing.assert_array_equal(bits_of(prune(x, pattern, factor=factor, pad=True), fmt), want)
    np.testing.assert_array_equal(prune_mask(x, pattern, factor=factor, pad=True), want_keep)
    np.testing.assert_array_equal(bits_of(torch_eager.prune(x, pattern, factor=f_t, pad=True), fmt), want)
    np.testing.assert_array_equal(torch_eager.keep_mask(x, pattern, factor=f_t, pad=True).numpy(), want_keep)
    values, indices = reference.compress_bits(bits, fmt, nm.n, nm.m, factor, pad=True)
    packed = compress(x, pattern, factor=factor, pad=True)
    np.testing.assert_array_equal(packed.values.view(UNSIGNED[fmt]), values)
    np.testing.assert_array_equal(packed.indices, indices)


def test_inputs_hold_what_the_test_claims():
    """The special rows really contain NaN of both signs, +-inf, -0, subnormals and ties."""
    for fmt in DTYPES:
        x = make_input(fmt, 64, 1)
        b = bits_of(x, fmt).astype(np.int64)
        sign = 1 << (8 * x.element_size() - 1)
        assert x[8:].isnan().any() and (x[8:].isnan() & (torch.from_numpy(b[8:] & sign) != 0)).any()
        assert x[8:].isinf().any() and (x[8:] == float("-inf")).any()
        assert (b[8:] == sign).any() and is_subnormal(x[8:]).any()
        assert len(np.unique(x[4:8].float().abs().numpy())) <= 3
