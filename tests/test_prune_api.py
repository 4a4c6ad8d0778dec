"""CPU pruner public API: types, shapes, torch zero-copy views, in-place, bad input."""
import numpy as np
import pytest

from ampersim.errors import InvalidArgument
from ampersim.prune import CompressedNM, compress, compressed_matmul, decompress, prune, prune_mask


def _x(shape=(3, 5, 16), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_prune_numpy_roundtrip():
    x = _x()
    y = prune(x, "2:4")
    assert y.shape == x.shape and y.dtype == x.dtype
    mask = prune_mask(x, "2:4")
    assert mask.dtype == np.bool_ and mask.shape == x.shape
    assert (mask.reshape(-1, 4).sum(-1) == 2).all()
    np.testing.assert_array_equal(y, np.where(mask, x, 0))
    c = compress(x, "2:4")
    assert isinstance(c, CompressedNM)
    np.testing.assert_array_equal(decompress(c), y)
    w = _x((7, 16), seed=1)
    np.testing.assert_allclose(compressed_matmul(c, w), y.astype(np.float64) @ w.T.astype(np.float64),
                               rtol=1e-12, atol=1e-12)
