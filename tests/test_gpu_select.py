"""The Triton fused_mask selection (sorting network over wires) against the numpy reference, for
every power-of-two M with N = 1, M/2 and M - 1, each dtype, with and without a factor: on the
Triton interpreter where there is no GPU. Inputs hold ties (zeros, rounded rows, constant rows),
NaN, inf and -0, a partial row tile and a partial column tile."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (models extra) not installed")
if importlib.util.find_spec("triton") is None:
    pytest.skip("triton not installed (test extra: pip install -e '.[test]')", allow_module_level=True)
HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # run the Triton kernels' logic on the CPU

from ampersim.kernels import reference  # noqa: E402
from ampersim.kernels.gpu import pruner as kernels_gpu  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
PATTERNS = [f"{n}:{m}" for m in (2, 4, 8, 16, 32) for n in sorted({1, m // 2, m - 1})]
FORMATS = {torch.float32: ("float32", torch.int32, np.uint32), torch.float16: ("float16", torch.int16, np.uint16),
           torch.bfloat16: ("bfloat16", torch.int16, np.uint16)}


def _input(dtype: torch.dtype, rows: int, k: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(rows, k, generator=gen)
    x[1] = x[1].round()  # few distinct magnitudes: ties everywhere
    x[2] = 0
    x[3, ::3] = 0
    x[4] = 2.0
    x[5, :8] = torch.tensor([float("nan"), 1, float("-inf"), -0.0, float("inf"), float("nan"), 0, -1])
    x[6, 1::4] = -x[6, ::4]  # |x| pairs tie at different indices
    return x.to(dtype)


@pytest.mark.parametrize("dtype", list(FORMATS), ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("use_factor", [False, True])
def test_fused_mask_every_m_matches_reference(dtype, use_factor):
    fmt, int_dtype, np_dtype = FORMATS[dtype]
    rows, k = 21, 160  # a partial tile of rows and (for BK = 128) of columns
    x = _input(dtype, rows, k)
    gen = torch.Generator().manual_seed(5)
    f = torch.rand(k, generator=gen) + 0.25 if use_factor else None
    if f is not None:
        f[::7] = 1.0  # equal factors on equal values: ties in the scores too
    bits = x.view(int_dtype).numpy().view(np_dtype)
    failures = []
    for pattern in PATTERNS:
        n, m = map(int, pattern.split(":"))
        got = kernels_gpu.prune_gpu(x.to(DEVICE), pattern, factor=None if f is None else f.to(DEVICE)).cpu()
        expected = reference.prune_bits(bits, fmt, n, m, None if f is None else f.numpy())
        if not np.array_equal(got.view(int_dtype).numpy().view(np_dtype), expected):
            failures.append(pattern)
    assert not failures, f"{dtype} factor={use_factor}: {failures}"
