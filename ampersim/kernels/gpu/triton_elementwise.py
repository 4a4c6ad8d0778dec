"""One-pass Triton kernels for the elementwise ops serving engines fuse: rotary embedding, SiLU·up
and the W8A8 dequantization epilogue of an int32 GEMM result.

The op graph costs these as single kernels that read their inputs once and write their output once
(rotary: 2 passes over q and k; gated activation: 3). Eager torch needs several kernels and passes
for each (HF rotate_half: ~10x the bytes), so the harness times these kernels as the ops, and the
eager versions as diagnostics. Needs Triton and a CUDA device; imported lazily.
"""
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

_BLOCK = 2048


@triton.jit
def _silu_mul_kernel(g_ptr, u_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    u = tl.load(u_ptr + offs, mask=mask).to(tl.float32)
    out = g / (1.0 + tl.exp(-g)) * u
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rope_kernel(x_ptr, out_ptr, cos_ptr, sin_ptr, H, stride_t, stride_h, out_t, out_h, table_t,
                 HALF: tl.constexpr, BH: tl.constexpr):
    t = tl.program_id(0)
    h = tl.program_id(1) * BH + tl.arange(0, BH)[:, None]
    d = tl.arange(0, HALF)[None, :]
    mask = h < H
    src = x_ptr + t * stride_t + h * stride_h + d
    x1 = tl.load(src, mask=mask).to(tl.float32)
    x2 = tl.load(src + HALF, mask=mask).to(tl.float32)
    c = tl.load(cos_ptr + t * table_t + d).to(tl.float32)
    s = tl.load(sin_ptr + t * table_t + d).to(tl.float32)
    dst = out_ptr + t * out_t + h * out_h + d
    tl.store(dst, (x1 * c - x2 * s).to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(dst + HALF, (x2 * c + x1 * s).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dequant_kernel(acc_ptr, rs_ptr, cs_ptr, out_ptr, R, N, BR: tl.constexpr, BN: tl.constexpr):
    rows = tl.program_id(0) * BR + tl.arange(0, BR)[:, None]
    cols = tl.program_id(1) * BN + tl.arange(0, BN)[None, :]
    mask = (rows < R) & (cols < N)
    acc = tl.load(acc_ptr + rows.to(tl.int64) * N + cols, mask=mask, other=0).to(tl.float32)
    rs = tl.load(rs_ptr + rows, mask=rows < R, other=0.0)
    cs = tl.load(cs_ptr + cols, mask=cols < N, other=0.0)
    tl.store(out_ptr + rows.to(tl.int64) * N + cols, (acc * rs * cs).to(out_ptr.dtype.element_ty), mask=mask)


def dequant(acc: Any, row_scale: Any, col_scale: Any, dtype: Any) -> Any:
    """``(acc * row_scale[:, None] * col_scale[None, :]).to(dtype)`` of an int32 [R, N] GEMM result in
    one pass (fp32 arithmetic): the epilogue of a W8A8 linear with per-token and per-channel scales."""
    import torch

    acc = acc.contiguous()
    R, N = acc.shape
    out = torch.empty((R, N), device=acc.device, dtype=dtype)
    _dequant_kernel[(triton.cdiv(R, 32), triton.cdiv(N, 128))](acc, row_scale, col_scale, out, R, N, BR=32, BN=128,
                                                             num_warps=4)
    return out


def silu_mul(gate: Any, up: Any) -> Any:
    """silu(gate) * up in one kernel (fp32 arithmetic), same shape and dtype as ``gate``."""
    import torch

    gate, up = gate.contiguous(), up.contiguous()
    out = torch.empty_like(gate)
    n = gate.numel()
    _silu_mul_kernel[(triton.cdiv(n, _BLOCK),)](gate, up, out, n, BLOCK=_BLOCK, num_warps=8)
    return out


def rope(x: Any, cos: Any, sin: Any) -> Any:
    """Rotary embedding (HF rotate_half layout) of x [T, heads, D] with cos/sin [T, 1, D] (halves equal)."""
    import torch

    T, H, D = x.shape
    out = torch.empty((T, H, D), device=x.device, dtype=x.dtype)
    bh = min(16, triton.next_power_of_2(H))
    _rope_kernel[(T, triton.cdiv(H, bh))](x, out, cos, sin, H, x.stride(0), x.stride(1), out.stride(0),
                                          out.stride(1), cos.stride(0), HALF=D // 2, BH=bh, num_warps=4)
    return out
