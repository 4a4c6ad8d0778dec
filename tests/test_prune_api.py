"""CPU pruner public API: types, shapes, zero-copy torch/numpy views, in-place, bad input, imports."""
import os
import subprocess
import sys

import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.kernels import reference
from ampersim.kernels.cpu import CompressedNM, compress, compressed_matmul, decompress, prune, prune_mask
from ampersim.kernels.cpu.tensors import as_rows

torch = pytest.importorskip("torch")


def _x(shape=(3, 5, 16), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_numpy_outputs_and_roundtrip():
    x = _x()
    y = prune(x, "2:4")
    assert y.shape == x.shape and y.dtype == x.dtype and not np.shares_memory(x, y)
    mask = prune_mask(x, "2:4")
    assert mask.dtype == np.bool_ and mask.shape == x.shape
    assert (mask.reshape(-1, 4).sum(-1) == 2).all()
    np.testing.assert_array_equal(y, np.where(mask, x, 0))
    c = compress(x, "2:4")
    assert isinstance(c, CompressedNM)
    assert c.values.shape == (15, 4, 2) and c.indices.dtype == np.uint8 and c.shape == x.shape
    np.testing.assert_array_equal(decompress(c), y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_out_of_place_matches_reference(dtype):
    x = torch.randn(2, 7, 32, dtype=dtype)
    before = x.clone()
    factor = torch.rand(32) + 0.5
    y = prune(x, "8:16", factor=factor)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.shape == x.shape
    assert torch.equal(x, before)
    rows = as_rows(x, "x")
    expected = reference.prune_bits(rows.bits, rows.fmt, 8, 16, factor.numpy())
    np.testing.assert_array_equal(as_rows(y, "y").bits, expected)


def test_torch_views_are_zero_copy_and_inplace_writes_through():
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    assert as_rows(x, "x").bits.__array_interface__["data"][0] == x.data_ptr()
    expected = prune(x, "2:4")
    ptr = x.data_ptr()
    assert prune(x, "2:4", inplace=True) is x
    assert x.data_ptr() == ptr and torch.equal(x, expected)


def test_out_argument_and_row_strided_inplace():
    x = _x((6, 32))
    out = np.empty_like(x)
    assert prune(x, "4:8", out=out) is out
    np.testing.assert_array_equal(out, prune(x, "4:8"))
    wide = _x((6, 48), seed=3)
    view = wide[:, :32]  # rows strided, channels contiguous: handled without a copy
    untouched = wide[:, 32:].copy()
    expected = prune(np.ascontiguousarray(view), "4:8")
    prune(view, "4:8", inplace=True)
    np.testing.assert_array_equal(wide[:, :32], expected)
    np.testing.assert_array_equal(wide[:, 32:], untouched)


def test_non_contiguous_out_of_place_is_copied_and_correct():
    x = _x((16, 8))
    xt = x.T  # channels strided
    np.testing.assert_array_equal(prune(xt, "2:4"), prune(np.ascontiguousarray(xt), "2:4"))
    t = torch.from_numpy(x).t()
    assert torch.equal(prune(t, "2:4"), prune(t.contiguous(), "2:4"))


def test_pad_option():
    x = _x((3, 10))
    with pytest.raises(InvalidArgument, match=r"K=10 is not a multiple of M=4.*pad=True"):
        prune(x, "2:4")
    y = prune(x, "2:4", pad=True)
    keep = reference.keep_mask(x.view(np.uint32), "float32", 2, 4, pad=True)
    np.testing.assert_array_equal(y, np.where(keep, x, 0))
    c = compress(x, "2:4", pad=True)
    assert c.values.shape == (3, 3, 2)
    np.testing.assert_array_equal(decompress(c), y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pad", [False, True])
def test_compressed_matmul_matches_dense(dtype, pad):
    k = 30 if pad else 32
    x = torch.randn(2, 3, k, dtype=dtype)
    w = torch.randn(5, k, dtype=dtype)
    c = compress(x, "8:16", pad=pad)
    y = compressed_matmul(c, w)
    dense = prune(x, "8:16", pad=pad).double().numpy()
    assert y.shape == (2, 3, 5) and y.dtype == np.float64
    np.testing.assert_allclose(y, dense @ w.double().numpy().T, rtol=1e-12, atol=1e-12)


def test_bfloat16_decompress_is_bits():
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    c = compress(x, "2:4")
    dense = decompress(c)
    assert dense.dtype == np.uint16
    assert torch.equal(torch.from_numpy(dense.view(np.int16)).view(torch.bfloat16), prune(x, "2:4"))


def test_empty_inputs():
    assert prune(np.zeros((0, 16), np.float32), "2:4").shape == (0, 16)
    assert prune_mask(np.zeros((3, 0), np.float32), "2:4").shape == (3, 0)
    assert compress(np.zeros((0, 8), np.float16), "2:4").values.shape == (0, 2, 2)


# ---------------------------------------------------------------- bad input: one clear error each
@pytest.mark.parametrize("dtype", [np.int32, np.float64, np.uint16, np.bool_])
def test_bad_dtype(dtype):
    with pytest.raises(InvalidArgument, match=r"x has dtype .*; allowed: float32, float16, bfloat16"):
        prune(np.zeros((2, 8), dtype), "2:4")


def test_bad_torch_dtype_and_container():
    with pytest.raises(InvalidArgument, match=r"x has dtype torch.float64; allowed"):
        prune(torch.zeros(2, 8, dtype=torch.float64), "2:4")
    with pytest.raises(InvalidArgument, match="numpy array or a torch CPU tensor, got list"):
        prune([[1.0] * 8], "2:4")
    with pytest.raises(InvalidArgument, match="at least one dimension"):
        prune(np.array(1.0, np.float32), "2:4")
    with pytest.raises(InvalidArgument, match="device meta"):
        prune(torch.zeros(2, 8, device="meta"), "2:4")


@pytest.mark.parametrize("pattern", ["4:4", "5:4", "0:4", "-1:4", "2/4", "a:b"])
def test_bad_pattern(pattern):
    with pytest.raises(InvalidArgument, match="N:M pattern"):
        prune(_x(), pattern)


def test_pattern_m_limit():
    with pytest.raises(InvalidArgument, match="M <= 32"):
        prune(_x((2, 64)), "8:64")


def test_inplace_non_contiguous_errors():
    with pytest.raises(InvalidArgument, match=r"^x \(shape \(16, 8\).*cannot be written in place"):
        prune(_x((8, 16)).T, "2:4", inplace=True)
    with pytest.raises(InvalidArgument, match="cannot be written in place"):
        prune(torch.randn(8, 16).t(), "2:4", inplace=True)
    readonly = _x((2, 8))
    readonly.flags.writeable = False
    with pytest.raises(InvalidArgument, match="x is read-only"):
        prune(readonly, "2:4", inplace=True)


def test_factor_errors():
    x = _x((2, 16))
    with pytest.raises(InvalidArgument, match=r"factor must be a 1-D array of length K=16.*\(15,\)"):
        prune(x, "2:4", factor=np.ones(15, np.float32))
    with pytest.raises(InvalidArgument, match=r"factor must be a 1-D array of length K=16.*\(2, 16\)"):
        prune(x, "2:4", factor=np.ones((2, 16), np.float32))
    with pytest.raises(InvalidArgument, match="factor must be finite and >= 0; channel 3 is -1.0"):
        prune(x, "2:4", factor=np.r_[np.ones(3), -1.0, np.ones(12)])
    with pytest.raises(InvalidArgument, match="channel 0 is nan"):
        prune_mask(x, "2:4", factor=np.r_[np.nan, np.ones(15)])
    with pytest.raises(InvalidArgument, match="factor must be a 1-D float array"):
        prune(x, "2:4", factor="big")


def test_out_errors():
    x = _x((2, 16))
    with pytest.raises(InvalidArgument, match="either inplace=True or out"):
        prune(x, "2:4", inplace=True, out=np.empty_like(x))
    with pytest.raises(InvalidArgument, match=r"out must match x: float32 \(2, 16\); got float16"):
        prune(x, "2:4", out=np.empty((2, 16), np.float16))


def test_compressed_errors():
    c = compress(_x((2, 16)), "2:4")
    with pytest.raises(InvalidArgument, match=r"w must have shape \[out, K=16\]"):
        compressed_matmul(c, _x((3, 8)))
    with pytest.raises(InvalidArgument, match="w must be a 2-D weight"):
        compressed_matmul(c, _x((16,)))
    with pytest.raises(InvalidArgument, match="values/indices must have shape"):
        CompressedNM(c.values[:1], c.indices, c.shape, c.pattern, c.dtype)


def test_import_compiles_nothing_and_loads_no_torch():
    code = (
        "import sys, ampersim.kernels.cpu\n"
        "assert 'numba' not in sys.modules, 'import ampersim.kernels.cpu must stay light'\n"
        "from ampersim.kernels.cpu import prune, compressed_matmul\n"
        "from ampersim.kernels.cpu import rows as kernels_cpu, compressed\n"
        "kernels = [kernels_cpu._prune_kernel, kernels_cpu._mask_kernel, kernels_cpu._compress_kernel,\n"
        "           compressed._compressed_matmul_kernel]\n"
        "assert all(not k.signatures for k in kernels), 'compiled at import'\n"
        "assert all(type(k._cache).__name__ != 'NullCache' for k in kernels), 'cache=True missing'\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kernels_are_cached_on_disk(tmp_path):
    code = (
        "import numpy as np\n"
        "from ampersim.kernels.cpu import prune, rows as kernels_cpu\n"
        "prune(np.ones((2, 8), np.float16), '2:4')\n"
        "s = kernels_cpu._prune_kernel.stats\n"
        "print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                           text=True).stdout.split() for _ in range(2)]
    assert runs == [["0", "1"], ["1", "0"]]  # compiled once, then loaded from the cache
