"""numba.cuda kernels for N:M activation pruning (the design card's choice; Triton's are faster, see
docs/gpu-pruner.md). Same semantics as ``gpu_triton``; they work on the raw 16-bit storage
(bf16/fp16 as uint16), so no numba float16/bfloat16 support is needed.

Scores are exact fp32: |x| is rebuilt from its bits as ``significand * 2**exp`` with a power-of-two
table (``pow2_table``), then multiplied by the fp32 factor.
"""
from __future__ import annotations

import numpy as np

if not hasattr(np, "row_stack"):  # numba-cuda 0.30 still calls np.row_stack, removed in numpy 2.5
    np.row_stack = np.vstack

from numba import cuda, float32, int32, int64  # noqa: E402

from ampersim.core.errors import InvalidArgument  # noqa: E402
from ampersim.kernels.gpu import cslt_layout as gpu_layout  # noqa: E402

MAX_M = 32
_FORMATS = {"bf16": (8, 7), "fp16": (5, 10)}  # exponent bits, mantissa bits


def pow2_table(fmt: str) -> np.ndarray:
    """float32 [2**ebits]: the weight of one unit of the significand for each biased exponent."""
    ebits, mbits = _FORMATS[fmt]
    bias = (1 << (ebits - 1)) - 1
    e = np.arange(1 << ebits)
    return np.ldexp(np.float32(1.0), np.maximum(e, 1) - bias - mbits).astype(np.float32)


@cuda.jit(device=True, inline=True)
def _magnitude(bits, table, mbits):
    """fp32 |x| of a 16-bit float from its bits (exact); NaN and inf preserved."""
    a = bits & 0x7FFF
    e = a >> mbits
    m = a & ((1 << mbits) - 1)
    if e == (0x7FFF >> mbits):
        return float32(np.inf) if m == 0 else float32(np.nan)
    sig = m if e == 0 else m + (1 << mbits)
    return float32(sig) * table[e]


@cuda.jit(device=True, inline=True)
def _beats(a, b, j, i):
    """Score a at index j ranks above score b at index i (NaN highest; ties to the lower index)."""
    an = a != a
    bn = b != b
    if an or bn:
        return an and (not bn or j < i)
    return a > b or (a == b and j < i)


@cuda.jit
def mask_kernel(x, f, out, table, n, m, mbits, has_factor):
    """One thread per group: x, out uint16 [R, K]; f float32 [K] (ignored unless has_factor)."""
    t = cuda.grid(1)
    groups = x.shape[1] // m
    if t >= x.shape[0] * groups:
        return
    row = t // groups
    c0 = (t % groups) * m
    s = cuda.local.array(MAX_M, float32)
    for i in range(m):
        s[i] = _magnitude(x[row, c0 + i], table, mbits) * (f[c0 + i] if has_factor else float32(1.0))
    for i in range(m):
        rank = 0
        for j in range(m):
            if j != i and _beats(s[j], s[i], j, i):
                rank += 1
        out[row, c0 + i] = x[row, c0 + i] if rank < n else 0


@cuda.jit
def compress24_kernel(x4, f, vals2, meta, table, mbits, rows, rows_out, has_factor):
    """One thread per 32-bit metadata word of a 16-bit operand (layout: ``gpu_layout``).

    x4: int64 [R, K/4] (a group of 4 per element); vals2: int32 [rows_out, K/4] (2 kept values);
    meta: int32 words; rows past ``rows`` read as zeros, past ``rows_out`` get the nibble 0xE.
    """
    w = cuda.grid(1)
    kts = x4.shape[1] // 8
    if w >= meta.shape[0]:
        return
    gb = w % 2
    m0 = (w // 2) % 8
    m2 = (w // 16) % 4
    kt = (w // 64) % kts
    rt = w // (64 * kts)
    word = int64(0)
    for j in range(8):
        m1 = j % 2
        k1 = (j // 2) % 2
        ga = j // 4
        row = 64 * rt + 16 * m2 + 8 * m1 + m0
        g = 8 * kt + 4 * k1 + 2 * gb + ga
        if row >= rows_out:
            word |= int64(0xE) << (4 * j)
            continue
        q = x4[row, g] if row < rows else int64(0)
        s0 = _magnitude(int32(q & 0xFFFF), table, mbits) * (f[4 * g] if has_factor else float32(1.0))
        s1 = _magnitude(int32((q >> 16) & 0xFFFF), table, mbits) * (f[4 * g + 1] if has_factor else float32(1.0))
        s2 = _magnitude(int32((q >> 32) & 0xFFFF), table, mbits) * (f[4 * g + 2] if has_factor else float32(1.0))
        s3 = _magnitude(int32((q >> 48) & 0xFFFF), table, mbits) * (f[4 * g + 3] if has_factor else float32(1.0))
        r0 = int(_beats(s1, s0, 1, 0)) + int(_beats(s2, s0, 2, 0)) + int(_beats(s3, s0, 3, 0))
        r1 = int(_beats(s0, s1, 0, 1)) + int(_beats(s2, s1, 2, 1)) + int(_beats(s3, s1, 3, 1))
        r2 = int(_beats(s0, s2, 0, 2)) + int(_beats(s1, s2, 1, 2)) + int(_beats(s3, s2, 3, 2))
        i0 = 0 if r0 < 2 else (1 if r1 < 2 else 2)
        i1 = 1 if i0 == 0 and r1 < 2 else (2 if r2 < 2 and i0 < 2 else 3)
        v0 = (q >> (16 * i0)) & 0xFFFF
        v1 = (q >> (16 * i1)) & 0xFFFF
        vals2[row, g] = int32(v0 | (v1 << 16))
        word |= int64(i0 | (i1 << 2)) << (4 * j)
    meta[w] = int32(word)


_TABLES: dict = {}
_THREADS = 256


def _launch_args(x2):
    import torch

    fmt = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(x2.dtype)
    if fmt is None:
        raise InvalidArgument(f"numba backend: dtype {x2.dtype} not supported; allowed: bfloat16, float16")
    key = (str(x2.device), fmt)
    if key not in _TABLES:
        _TABLES[key] = torch.from_numpy(pow2_table(fmt)).to(x2.device)
    stream = cuda.external_stream(torch.cuda.current_stream(x2.device).cuda_stream)
    return _FORMATS[fmt][1], cuda.as_cuda_array(_TABLES[key], sync=False), stream


def _factor_arg(f, device):
    import torch

    return cuda.as_cuda_array(f if f is not None else torch.ones(1, device=device), sync=False)


def mask(x2, f, out, n: int, m: int) -> None:
    """Launch ``mask_kernel`` on torch tensors x2, out [R, K] (16-bit) on the current stream."""
    if m > MAX_M:
        raise InvalidArgument(f"numba backend: M={m} too large; allowed up to {MAX_M}")
    import torch

    mbits, table, stream = _launch_args(x2)
    groups = x2.shape[0] * (x2.shape[1] // m)
    mask_kernel[-(-groups // _THREADS), _THREADS, stream](
        cuda.as_cuda_array(x2.view(torch.int16), sync=False), _factor_arg(f, x2.device),
        cuda.as_cuda_array(out.view(torch.int16), sync=False), table, n, m, mbits, f is not None)


def compress24(x2, f, flat, meta, rows_out: int) -> None:
    """Launch ``compress24_kernel``: x2 [R, K] 16-bit contiguous; flat/meta views of the operand."""
    import torch

    mbits, table, stream = _launch_args(x2)
    k = x2.shape[1]
    vals2 = flat[: rows_out * k // 2].view(torch.int32).view(rows_out, k // 4)
    words = meta[: gpu_layout.metadata_nbytes(rows_out, k) // 4]
    compress24_kernel[-(-words.numel() // _THREADS), _THREADS, stream](
        cuda.as_cuda_array(x2.view(torch.int64), sync=False), _factor_arg(f, x2.device),
        cuda.as_cuda_array(vals2, sync=False), cuda.as_cuda_array(words, sync=False), table, mbits,
        x2.shape[0], rows_out, f is not None)
