"""The numpy cuSPARSELt 2:4 layout encoder reproduces every probe array bit-for-bit."""
from __future__ import annotations

import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.core.resources import data_dir
from ampersim.kernels.gpu import cslt_layout as L

PROBE = data_dir("validation") / "probe" / "cslt_layouts.npz"


def _cases():
    data = np.load(PROBE)
    return [(name[:-3], data[name], data[name[:-3] + "_out"]) for name in data.files if name.endswith("_in")]


@pytest.mark.parametrize("name,bits,out", _cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_encoder_matches_cslt_compress(name, bits, out):
    keep = L.keep_from_nonzero(bits, floating=not name.startswith("int8"))
    encoded = L.encode(bits, keep)
    raw = out.reshape(-1).view(np.uint8)
    assert out.shape == L.compressed_shape(*bits.shape, bits.dtype.itemsize)
    assert encoded.size == L.compressed_nbytes(*bits.shape, bits.dtype.itemsize) == raw.size
    np.testing.assert_array_equal(encoded, raw)


def test_probe_covers_both_widths_and_row_padding():
    names = [c[0] for c in _cases()]
    assert {n.split("_")[0] for n in names} >= {"bfloat16", "float16", "int8"}
    assert any(b.shape[0] % 64 for _, b, _ in _cases())  # a row count the metadata pads


@pytest.mark.parametrize("itemsize", [1, 2])
def test_nibble_offsets_are_a_permutation(itemsize):
    off = L.nibble_offsets(96, 256, itemsize)
    assert off.shape == (128, 64)
    assert np.array_equal(np.sort(off.ravel()), np.arange(off.size))


def test_group_nibbles_encoding():
    keep = np.array([[1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1]], dtype=bool)
    assert L.group_nibbles(keep).tolist() == [[0 | 1 << 2, 2 | 3 << 2, 0 | 3 << 2]]


def test_bad_inputs():
    with pytest.raises(InvalidArgument, match="multiple of 64"):
        L.compressed_nbytes(16, 48, 2)
    with pytest.raises(InvalidArgument, match="itemsize"):
        L.compressed_nbytes(16, 64, 4)
    with pytest.raises(InvalidArgument, match="exactly 2"):
        L.group_nibbles(np.ones((1, 4), dtype=bool))
