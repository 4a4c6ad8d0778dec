"""How each op of the graph (ampersim.sim.graph.Op) is run in torch, with a correctness check.

``PREPARATIONS`` maps an op kind (and, for the memory-bound "stream" ops, the op family: what the
op computes wherever it sits, see ``op_family``) to its ``Preparation``: the function that turns
one op into ``Prepared``, the variants timed, which ops share a measurement, and where in the plan
it runs. A new op kind registers one entry; ``prepare(op, request)`` looks it up.

``Prepared`` is a list of calls (one per rotated input set, so that repeated runs stream from
device memory as prefill does rather than from L2), the check that ran before any timing
(relative error against a float64 reference on fresh non-zero random inputs; NaN fails), the
torch implementation used, and the exact shape measured (GEMM rows are rounded up to whole tokens
and to the sparse kernel's row multiple; the record keeps both).

A GEMM op runs ``dense`` (F.linear / torch.bmm for 16-bit, torch._int_mm for int8,
torch._scaled_mm for fp8) or ``sparse`` (2:4-pruned input compressed with torch._cslt_compress,
then torch._cslt_sparse_mm with the algorithm torch._C._cusparselt.mm_search picks); a prune op
runs one of the implementations of ``ampersim.measure.prune_impls``; attention runs through SDPA (causal,
after a cached prefix for a chunk of chunked prefill), decode attention through SDPA over a real KV
cache; other ops run as in torch (rotary and the gated activation as the one-pass Triton kernels the
graph costs, with their eager-torch versions as the ``eager`` variant).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern
from ampersim.core.vocab import DIAGNOSTIC_PRUNE_IMPLS, MEASURED_DTYPES, TORCH_DTYPE_NAMES
from ampersim.measure.harness import rotation_sets
from ampersim.measure.records import Check, MeasuredShape
from ampersim.models.spec import ModelSpec
from ampersim.sim.graph import Op

# Sparse operand rows/cols must be multiples of this (cuSPARSELt): 16 for 16-bit, 32 for 8-bit.
SPARSE_MULTIPLE = {"bf16": 16, "fp16": 16, "int8": 32, "fp8": 32}
# Relative-error bounds vs a float64 reference (bf16 operands with fp32 accumulation land near 1e-3..1e-2).
TOLERANCE = {"bf16": 2e-2, "fp16": 1e-2, "int8": 0.0, "fp8": 2e-2}
CHECK_ROWS = 256  # rows of a GEMM output checked against the float64 reference
# How a GEMM of several groups (MoE experts) runs here: dense as one torch.bmm kernel, 2:4 as one
# _cslt_sparse_mm call per group (torch has no grouped or batched 2:4 GEMM). A profile calibrated on
# these measurements describes that execution (efficiency.<dense|sparse>_gemm.grouped).
GROUPED_KERNEL = {"dense": True, "sparse": False}


class CheckFailed(RuntimeError):
    """A result disagreed with its reference: the op is not timed."""


@dataclass
class Prepared:
    """A ready-to-time op: calls (one per input set), check result, implementation, measured shape,
    and for a 2:4 GEMM the cuSPARSELt (alg_id, split_k, split_k_mode) it runs with."""

    calls: list[Callable[[], Any]]
    impl: str
    shape: MeasuredShape
    check: Check
    use_graph: bool = True
    note: str = ""
    alg: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Request:
    """What an op is prepared for: the device, its L2 size (to size the rotated input sets), the
    model, the variant (``dense``/``sparse`` GEMM, ``dense``/``eager`` fused op, ``prune``), and for a
    prune op its implementation (ampersim.measure.prune_impls) and pattern."""

    device: str
    l2_bytes: float
    spec: ModelSpec
    variant: str = "dense"
    prune_impl: str | None = None
    pattern: str = "2:4"


def torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in MEASURED_DTYPES:
        raise InvalidArgument(f"dtype {dtype}: measurable dtypes are {', '.join(MEASURED_DTYPES)}")
    return getattr(torch, TORCH_DTYPE_NAMES[dtype])


def round_up(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def rel_err(out: Any, ref: Any) -> float:
    """‖out − ref‖ / ‖ref‖ in float64; NaN or inf anywhere gives inf."""
    import torch

    out64, ref64 = out.double(), ref.double()
    if not bool(torch.isfinite(out64).all()):
        return math.inf
    return float((out64 - ref64).norm() / ref64.norm().clamp_min(1e-30))


def require_within(err: float, tol: float, what: str, *, compared: str | None = None) -> Check:
    """The passed check of a relative error within ``tol``; CheckFailed (so nothing is timed) otherwise.
    ``compared`` says what was compared when it is not the op against its float64 reference."""
    if not err <= tol:
        raise CheckFailed(f"{what}: relative error {err:.3g} > {tol:g}")
    return Check(rel_err=err, tol=tol, ok=True, what=compared)


# -- inputs ------------------------------------------------------------------------------------
def random_tensor(shape: tuple[int, ...], dtype: str, device: str, *, scale: float = 1.0) -> Any:
    """Fresh non-zero random values: normal for float types, ±[1, 63] for int8."""
    import torch

    if dtype == "int8":
        mag = torch.randint(1, 64, shape, device=device, dtype=torch.int16)
        sign = torch.randint(0, 2, shape, device=device, dtype=torch.int16) * 2 - 1
        return (mag * sign).to(torch.int8)
    x = torch.randn(shape, device=device, dtype=torch.float32) * scale
    x = torch.where(x == 0, torch.full_like(x, scale), x)
    return x.to(torch_dtype(dtype))


def pruned_input(shape: tuple[int, ...], dtype: str, device: str, pattern: str = "2:4") -> Any:
    """A random activation pruned to ``pattern`` (8-bit types are pruned through float32, exactly)."""
    from ampersim.kernels import torch_eager

    x = random_tensor(shape, dtype, device)
    if dtype in ("int8", "fp8"):
        return torch_eager.prune(x.float(), pattern).to(x.dtype)
    return torch_eager.prune(x, pattern)


def reference_rows(x: Any, pattern: str, factor: Any = None, rows: int = CHECK_ROWS) -> Any:
    """The reference pruning (ampersim.kernels.reference, numpy on the host) of x's first ``rows``
    rows, as a tensor on x's device: what every prune implementation is checked against."""
    from ampersim.kernels import reference
    from ampersim.kernels.cpu.tensors import as_factor, as_rows, wrap_like

    nm = NMPattern.parse(pattern)
    head = as_rows(x[:rows].cpu(), "x")
    f = None if factor is None else as_factor(factor.cpu(), x.shape[-1])
    return wrap_like(reference.prune_bits(head.bits, head.fmt, nm.n, nm.m, f), head).to(x.device)


# -- GEMMs ---------------------------------------------------------------------------------------
def gemm_shape(op: Op, variant: str) -> dict[str, int]:
    """Integer shape measured for a GEMM op: M rounded up (to the sparse row multiple when sparse)."""
    groups = max(1, int(round(float(op.groups))))
    multiple = SPARSE_MULTIPLE[op.dtype] if variant == "sparse" else (16 if op.dtype == "fp8" else 1)
    M = round_up(float(op.M), multiple)
    if op.dtype == "int8" and variant == "dense":
        M = max(M, 17)  # torch._int_mm needs more than 16 rows
    K, N = int(op.K), int(op.N)
    if variant == "sparse" and (K % SPARSE_MULTIPLE[op.dtype] or N % 8):
        raise InvalidArgument(f"{op.name}: K={K}, N={N} cannot take the {op.dtype} 2:4 sparse path "
                              f"(K must be a multiple of {SPARSE_MULTIPLE[op.dtype]}, N of 8)")
    return {"M": M, "N": N, "K": K, "groups": groups}


def _weights(groups: int, N: int, K: int, dtype: str, device: str) -> Any:
    """Random weights [groups, N, K]; 16-bit ones scaled by 1/sqrt(K) (8-bit ones kept representable)."""
    scale = 1.0 / math.sqrt(K) if dtype in ("bf16", "fp16") else 1.0
    return random_tensor((groups, N, K), dtype, device, scale=scale)


def _dense_call(x: Any, w: Any, dtype: str) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    if dtype == "int8":
        wt = w[0].t()
        return lambda: torch._int_mm(x[0], wt)
    if dtype == "fp8":
        one = torch.ones((), device=x.device, dtype=torch.float32)
        wt = w[0].t()
        return lambda: torch._scaled_mm(x[0], wt, one, one, out_dtype=torch.bfloat16)
    if x.shape[0] == 1:
        x0, w0 = x[0], w[0]
        return lambda: F.linear(x0, w0)
    wt = w.transpose(1, 2)
    return lambda: torch.bmm(x, wt)


def _reference(x: Any, w: Any) -> Any:
    """float64 product of the first CHECK_ROWS rows of every group: [groups, rows, N] (exact for int8)."""
    return x[:, :CHECK_ROWS].double() @ w.double().transpose(1, 2)


def _head_rows(y: Any, groups: int) -> Any:
    y = y if y.dim() == 3 else y.unsqueeze(0)
    return y[:groups, :CHECK_ROWS].float()


def prepare_gemm(op: Op, request: Request) -> Prepared:
    """Dense or 2:4-sparse GEMM (``request.variant``) of ``op``'s shape, checked against float64 before timing."""
    import torch

    variant, device, l2_bytes = request.variant, request.device, request.l2_bytes
    s = gemm_shape(op, variant)
    groups, M, N, K, dtype = s["groups"], s["M"], s["N"], s["K"], op.dtype
    if groups > 1 and dtype in ("int8", "fp8"):
        raise InvalidArgument(f"{op.name}: grouped {dtype} GEMMs are not measured (no batched torch path)")
    itemsize = torch.empty((), dtype=torch_dtype(dtype)).element_size()
    working = groups * (M * K + N * K) * itemsize + groups * M * N * 2
    sets = rotation_sets(working, l2_bytes)
    xs = [pruned_input((groups, M, K), dtype, device) if variant == "sparse"
          else random_tensor((groups, M, K), dtype, device) for _ in range(sets)]
    ws = [_weights(groups, N, K, dtype, device) for _ in range(sets)]
    tol = TOLERANCE[dtype]
    if variant == "dense":
        calls = [_dense_call(x, w, dtype) for x, w in zip(xs, ws)]
        check = require_within(rel_err(_head_rows(calls[0](), groups), _reference(xs[0], ws[0])), tol,
                               f"{op.name} dense")
        impl = {"int8": "torch._int_mm", "fp8": "torch._scaled_mm"}.get(dtype, "F.linear" if groups == 1 else "torch.bmm")
        return Prepared(calls, impl, _gemm_measured(s, sets, "dense"), check)
    if variant != "sparse":
        raise InvalidArgument(f"GEMM variant must be dense or sparse; got {variant!r}")
    sparse = [_SparseGemm(x, w, dtype) for x, w in zip(xs, ws)]
    sparse[0].search()
    for other in sparse[1:]:
        other.alg = sparse[0].alg
    err = rel_err(_head_rows(sparse[0].run(), groups), _reference(xs[0], ws[0]))
    if not err <= tol and sparse[0].alg[0] != 0:  # some algorithm ids were reported wrong: fall back
        bad = sparse[0].alg
        for item in sparse:
            item.alg = (0, 1, -1)
        err = rel_err(_head_rows(sparse[0].run(), groups), _reference(xs[0], ws[0]))
        note = f"mm_search alg {bad} failed the check; alg 0 used"
    else:
        note = ""
    check = require_within(err, tol, f"{op.name} 2:4 sparse (vs dense product of the pruned input)")
    a = sparse[0].alg
    impl = f"torch._cslt_sparse_mm(alg_id={a[0]}, split_k={a[1]}, split_k_mode={a[2]})"
    if groups > 1:
        note = (note + "; " if note else "") + f"{groups} groups run as {groups} _cslt_sparse_mm calls (no grouped cuSPARSELt path in torch)"
    return Prepared([item.run for item in sparse], impl, _gemm_measured(s, sets, "sparse"), check, note=note, alg=a)


def _gemm_measured(shape: dict[str, int], sets: int, variant: str) -> MeasuredShape:
    launches = 1 if GROUPED_KERNEL[variant] else shape["groups"]
    return MeasuredShape(**shape, sets=sets, launches=launches)


class _SparseGemm:
    """Compressed 2:4 activation times dense weight through cuSPARSELt, per group."""

    def __init__(self, x: Any, w: Any, dtype: str) -> None:
        import torch

        self.torch = torch
        self.compressed = [torch._cslt_compress(x[g]) for g in range(x.shape[0])]
        self.wt = [w[g].t() for g in range(w.shape[0])]
        self.out_dtype = {"int8": torch.int32, "fp8": torch.bfloat16}.get(dtype)
        self.alg: tuple[int, int, int] = (0, 1, -1)

    def search(self) -> None:
        found = self.torch._C._cusparselt.mm_search(self.compressed[0], self.wt[0], None, None,
                                                    self.out_dtype, False)
        self.alg = (int(found[0]), int(found[1]), int(found[2]))

    def run(self) -> Any:
        a, s, mode = self.alg
        outs = [self.torch._cslt_sparse_mm(c, wt, out_dtype=self.out_dtype, alg_id=a, split_k=s,
                                           split_k_mode=mode) for c, wt in zip(self.compressed, self.wt)]
        return outs[0] if len(outs) == 1 else self.torch.stack(outs)


# -- prune / compress ------------------------------------------------------------------------------
def prepare_prune(op: Op, impl: str, device: str, l2_bytes: float, pattern: str) -> Prepared:
    """Runtime pruning of an [M, K] activation with implementation ``impl`` (ampersim.measure.prune_impls),
    checked against the reference pruning of its first rows before timing."""
    import torch

    from ampersim.kernels import torch_eager
    from ampersim.measure.prune_impls import runnable_impl

    chosen = runnable_impl(impl, device)
    dtype = op.dtype if op.dtype in ("bf16", "fp16") else "bf16"
    multiple = SPARSE_MULTIPLE[dtype]
    M, K = round_up(float(op.M), multiple), int(op.K)
    sets = rotation_sets(M * K * 2 * 3, l2_bytes)
    shape = MeasuredShape(M=M, K=K, N=0, groups=1, sets=sets)
    factor = None
    if op.attrs.get("scoring") == "amber":
        factor = torch.rand(K, device=device, dtype=torch.float32).add_(0.5).to(torch_dtype(dtype))
    prune = chosen.pruner(pattern, factor)
    xs = [random_tensor((M, K), dtype, device) for _ in range(sets)]
    inputs = [torch_eager.prune(x, pattern, factor=factor) for x in xs] if chosen.prepruned else xs
    calls = [lambda x=x: prune(x) for x in inputs]
    expected = reference_rows(xs[0], pattern, factor)
    out = calls[0]()
    check = (_check_compressed(out, expected, dtype) if chosen.compressed else
             require_within(rel_err(out[:CHECK_ROWS], expected), 0.0, f"{op.name} {impl}",
                            compared="the first rows vs the reference pruning (ampersim.kernels.reference)"))
    note = "diagnostic: not a profile prune_impl" if impl in DIAGNOSTIC_PRUNE_IMPLS else ""
    return Prepared(calls, chosen.describe(device), shape, check, note=note)


def _check_compressed(compressed: Any, pruned_reference: Any, dtype: str) -> Check:
    """A compressed operand must multiply like the pruned dense input (its first rows, 64 random
    output columns)."""
    import torch

    K = pruned_reference.shape[1]
    w = random_tensor((64, K), dtype, str(pruned_reference.device), scale=1.0 / math.sqrt(K))
    got = torch._cslt_sparse_mm(compressed, w.t())[:CHECK_ROWS].float()
    ref = pruned_reference[:CHECK_ROWS].float() @ w.float().t()
    return require_within(rel_err(got, ref), TOLERANCE[dtype], "compressed operand (vs pruned input)",
                          compared="the operand times random weights vs the reference-pruned input times them")


# -- attention, norms, elementwise -----------------------------------------------------------------
def prepare_attention(op: Op, request: Request) -> Prepared:
    """Causal GQA attention through F.scaled_dot_product_attention: sequences of op.M tokens, or chunks
    after a cached prefix (``cached_lens``: queries attend the prefix and their chunk, lower-right causal)."""
    import torch
    import torch.nn.functional as F

    a = op.attrs
    lens = a.get("seq_lens") or [int(op.M)]
    cached = a.get("cached_lens") or [0] * len(lens)
    if len(set(lens)) != 1 or len(set(cached)) != 1:
        raise InvalidArgument(f"{op.name}: sequences of different lengths {sorted(set(lens))[:4]} or cached "
                              f"prefixes {sorted(set(cached))[:4]} are not measured")
    if a.get("window") is not None and a["window"] < lens[0] + cached[0]:
        raise InvalidArgument(f"{op.name}: sliding-window attention (window {a['window']}) is not measured")
    B, T, o, H, Hkv, D = len(lens), lens[0], cached[0], a["heads"], a["kv_heads"], a["head_dim"]
    dtype, device = torch_dtype("bf16" if op.dtype in ("int8", "fp8") else op.dtype), request.device
    working = B * (T * 2 * H + (o + T) * 2 * Hkv) * D * 2
    sets = rotation_sets(working, request.l2_bytes)
    qkv = [(torch.randn(B, H, T, D, device=device, dtype=dtype), torch.randn(B, Hkv, o + T, D, device=device, dtype=dtype),
            torch.randn(B, Hkv, o + T, D, device=device, dtype=dtype)) for _ in range(sets)]
    if o:
        from torch.nn.attention.bias import causal_lower_right

        mask = causal_lower_right(T, o + T)
        calls = [lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
                 for q, k, v in qkv]
        impl = "F.scaled_dot_product_attention(attn_mask=causal_lower_right, enable_gqa=True) after a cached prefix"
    else:
        calls = [lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                 for q, k, v in qkv]
        impl = "F.scaled_dot_product_attention(is_causal=True, enable_gqa=True)"
    q, k, v = qkv[0]
    rows = min(T, CHECK_ROWS)  # causal: the first rows depend only on the prefix and the first keys
    rep = H // Hkv
    keys = torch.arange(o + rows, device=device)
    allowed = keys[None, :] <= (o + torch.arange(rows, device=device))[:, None]
    ref = F.scaled_dot_product_attention(q[:, :, :rows].float(), k[:, :, :o + rows].float().repeat_interleave(rep, 1),
                                         v[:, :, :o + rows].float().repeat_interleave(rep, 1), attn_mask=allowed)
    check = require_within(rel_err(calls[0]()[:, :, :rows], ref), TOLERANCE["bf16"], f"{op.name} SDPA")
    return Prepared(calls, impl, MeasuredShape(M=B * T, N=float(op.N), K=D, groups=1, sets=sets), check)


def prepare_decode_attention(op: Op, request: Request) -> Prepared:
    """One query per sequence attending its whole KV cache (``context_lens`` tokens, the new one included),
    through F.scaled_dot_product_attention on a [B, kv_heads, L, head_dim] cache (flash / split-KV kernels)."""
    import torch
    import torch.nn.functional as F

    a = op.attrs
    contexts = a.get("context_lens") or [int(round(float(op.N)))] * int(round(float(op.M)))
    if len(set(contexts)) != 1:
        raise InvalidArgument(f"{op.name}: KV caches of different lengths {sorted(set(contexts))[:4]} are not measured")
    if a.get("window") is not None and a["window"] < contexts[0]:
        raise InvalidArgument(f"{op.name}: sliding-window attention (window {a['window']}) is not measured")
    B, L, H, Hkv, D = len(contexts), contexts[0], a["heads"], a["kv_heads"], a["head_dim"]
    dtype, device = torch_dtype("bf16" if op.dtype in ("int8", "fp8") else op.dtype), request.device
    if a.get("kv_bytes", 2) < 2:
        raise InvalidArgument(f"{op.name}: an 8-bit KV cache is not measured (SDPA reads 16-bit caches)")
    sets = rotation_sets(B * (2 * H + 2 * Hkv * L) * D * 2, request.l2_bytes)
    caches = [(torch.randn(B, H, 1, D, device=device, dtype=dtype), torch.randn(B, Hkv, L, D, device=device, dtype=dtype),
               torch.randn(B, Hkv, L, D, device=device, dtype=dtype)) for _ in range(sets)]
    calls = [lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True) for q, k, v in caches]
    q, k, v = caches[0]
    seqs, rep = min(B, 4), H // Hkv
    ref = F.scaled_dot_product_attention(q[:seqs].float(), k[:seqs].float().repeat_interleave(rep, 1),
                                         v[:seqs].float().repeat_interleave(rep, 1))
    check = require_within(rel_err(calls[0]()[:seqs], ref), TOLERANCE["bf16"], f"{op.name} SDPA decode")
    return Prepared(calls, "F.scaled_dot_product_attention(enable_gqa=True), one query per sequence over its KV cache",
                    MeasuredShape(M=B, N=float(L), K=D, groups=1, sets=sets), check)


def fused_kernels(device: str) -> Any:
    """ampersim.kernels.gpu.triton_elementwise on a CUDA device with Triton, else None (eager torch is used)."""
    if device == "cpu":
        return None
    try:
        from ampersim.kernels.gpu import triton_elementwise as triton_ops
    except ImportError:
        return None
    return triton_ops


class _Stream:
    """What every memory-bound op over [T, K] shares: dtype (16-bit activations), sizes, rotated
    input sets, and the check of its first call against a float32 reference."""

    def __init__(self, op: Op, request: Request) -> None:
        import torch

        self.torch, self.op, self.request = torch, op, request
        self.dtype = torch_dtype("bf16" if op.dtype in ("int8", "fp8") else op.dtype)
        self.T, self.K = int(round(float(op.M))), int(op.K)
        self.sets = rotation_sets(self.T * self.K * 2 * 3, request.l2_bytes)
        self.fused = None if request.variant == "eager" else fused_kernels(request.device)

    def randn(self, *shape: int) -> Any:
        return self.torch.randn(*shape, device=self.request.device, dtype=self.dtype)

    def prepared(self, calls: list[Callable[[], Any]], ref: Any, impl: str, note: str = "") -> Prepared:
        out = calls[0]()
        out = out[0] if isinstance(out, tuple) else out
        check = require_within(rel_err(out, ref), TOLERANCE["bf16"], self.op.name)
        return Prepared(calls, impl, MeasuredShape(M=self.T, N=0, K=self.K, groups=1, sets=self.sets), check,
                        note=note)


def _rms_norm(op: Op, request: Request, width: int) -> Prepared:
    import torch.nn.functional as F

    s = _Stream(op, request)
    weight = s.randn(width)
    xs = [s.randn(s.T, s.K // width, width) for _ in range(s.sets)]
    calls = [lambda x=x: F.rms_norm(x, (width,), weight, 1e-6) for x in xs]
    return s.prepared(calls, F.rms_norm(xs[0].float(), (width,), weight.float(), 1e-6), "F.rms_norm")


def prepare_norm(op: Op, request: Request) -> Prepared:
    """RMSNorm over the op's feature width (attention/FFN/final norms)."""
    return _rms_norm(op, request, int(op.K))


def prepare_head_norm(op: Op, request: Request) -> Prepared:
    """RMSNorm of each attention head (Qwen3 / Gemma 3 q_norm and k_norm)."""
    return _rms_norm(op, request, request.spec.head_dim)


def prepare_rotary(op: Op, request: Request) -> Prepared:
    """Rotary embedding of q and k: the one-pass Triton kernel, or (``eager``, or without Triton) eager torch."""
    import torch

    s, spec = _Stream(op, request), request.spec
    q_dim = spec.num_heads * spec.head_dim
    q_dim = q_dim * s.K // (q_dim + spec.num_kv_heads * spec.head_dim)  # per GPU under TP
    D = spec.head_dim
    half = s.randn(s.T, 1, D // 2)
    cos, sin = torch.cat((half, half), -1), torch.cat((half.flip(-1), half.flip(-1)), -1)
    xs = [(s.randn(s.T, q_dim // D, D), s.randn(s.T, (s.K - q_dim) // D, D)) for _ in range(s.sets)]
    rope = s.fused.rope if s.fused else rope_eager
    calls = [lambda q=q, k=k: (rope(q, cos, sin), rope(k, cos, sin)) for q, k in xs]
    impl = ("Triton one-pass rotary on q and k (2 kernels)" if s.fused else
            "eager torch rotary (x*cos + rotate_half(x)*sin) on q and k")
    return s.prepared(calls, rope_eager(xs[0][0].float(), cos.float(), sin.float()), impl)


def prepare_activation(op: Op, request: Request) -> Prepared:
    """Gated activation act(gate) * up: one-pass Triton SiLU·up, or (``eager``, GELU, no Triton) eager torch."""
    import torch.nn.functional as F

    s = _Stream(op, request)
    silu = op.attrs.get("function", "silu") == "silu"
    act = F.silu if silu else (lambda t: F.gelu(t, approximate="tanh"))
    xs = [(s.randn(s.T, s.K), s.randn(s.T, s.K)) for _ in range(s.sets)]
    if s.fused and silu:
        calls = [lambda g=g, u=u: s.fused.silu_mul(g, u) for g, u in xs]
        impl = "Triton one-pass silu(gate) * up"
    else:
        calls = [lambda g=g, u=u: act(g) * u for g, u in xs]
        impl = "eager torch act(gate) * up (2 kernels)"
    return s.prepared(calls, act(xs[0][0].float()) * xs[0][1].float(), impl)


def prepare_residual(op: Op, request: Request) -> Prepared:
    """Residual add of two [T, K] activations."""
    s = _Stream(op, request)
    xs = [(s.randn(s.T, s.K), s.randn(s.T, s.K)) for _ in range(s.sets)]
    calls = [lambda a=a, b=b: a + b for a, b in xs]
    return s.prepared(calls, xs[0][0].float() + xs[0][1].float(), "residual add")


def prepare_embedding(op: Op, request: Request) -> Prepared:
    """Embedding gather of T token ids from a [vocab, K] table."""
    import torch
    import torch.nn.functional as F

    s = _Stream(op, request)
    vocab = int(op.attrs.get("vocab", request.spec.vocab_size))
    table = s.randn(vocab, s.K)
    xs = [torch.randint(0, vocab, (s.T,), device=request.device) for _ in range(s.sets)]
    calls = [lambda ids=ids: F.embedding(ids, table) for ids in xs]
    return s.prepared(calls, table[xs[0]].float(), "F.embedding")


def _routed(s: _Stream, op: Op) -> list[Any]:
    """Per input set, the source row of each of the T x top_k routed token copies."""
    k = int(op.attrs["top_k"])
    return [s.torch.randint(0, s.T, (s.T * k,), device=s.request.device) for _ in range(s.sets)]


def prepare_moe_dispatch(op: Op, request: Request) -> Prepared:
    """MoE dispatch: gather each token's copies to its experts (index_select)."""
    s = _Stream(op, request)
    idx = _routed(s, op)
    xs = [s.randn(s.T, s.K) for _ in range(s.sets)]
    calls = [lambda x=x, i=i: x.index_select(0, i) for x, i in zip(xs, idx)]
    return s.prepared(calls, xs[0].float()[idx[0]], "index_select (gather tokens to experts)")


def prepare_moe_combine(op: Op, request: Request) -> Prepared:
    """MoE combine: add the expert outputs back into their tokens (index_add_)."""
    s = _Stream(op, request)
    idx = _routed(s, op)
    ys = [(s.randn(len(i), s.K), s.torch.zeros(s.T, s.K, device=request.device, dtype=s.dtype))
          for i in idx]
    calls = [lambda y=y, out=out, i=i: out.index_add_(0, i, y) for (y, out), i in zip(ys, idx)]
    ref = s.torch.zeros(s.T, s.K, device=request.device).index_add_(0, idx[0], ys[0][0].float())
    return s.prepared(calls, ref, "index_add_ (combine expert outputs)",
                      note="accumulates into its output on every run (timing only)")


def rope_eager(x: Any, cos: Any, sin: Any) -> Any:
    """Rotary embedding, HF layout (x*cos + rotate_half(x)*sin), on [T, heads, D] with cos/sin [T, 1, D]."""
    import torch

    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _prepare_prune_request(op: Op, request: Request) -> Prepared:
    if request.prune_impl is None:
        raise InvalidArgument(f"{op.name}: a prune op is prepared for one prune implementation; none given",
                              field="prune_impl")
    return prepare_prune(op, request.prune_impl, request.device, request.l2_bytes, request.pattern)


# -- the registry ----------------------------------------------------------------------------------
def op_family(op: Op) -> str:
    """What an op computes, wherever it sits in the graph: its name without the shared-expert prefix
    and the sub-block suffix ('residual.attn' -> 'residual'); 'norm' for every RMSNorm over the
    features, 'head_norm' for the per-head q/k norms."""
    name = op.name.removeprefix("shared_expert.")
    if op.kind == "norm":
        return "head_norm" if name in ("q_norm", "k_norm") else "norm"
    return "residual" if name.startswith("residual.") else name


def gemm_key(op: Op) -> Hashable:
    """GEMMs and attention of equal (M, N, K, groups) are timed once."""
    return (round(float(op.M), 6), float(op.N), float(op.K), round(float(op.groups), 6))


def attention_key(op: Op) -> Hashable:
    """Attention of equal shape and equal cached prefix is timed once."""
    return (*gemm_key(op), tuple(op.attrs.get("cached_lens") or ()))


def rows_key(op: Op) -> Hashable:
    """Memory-bound and prune ops over equal [M, K] are timed once."""
    return (round(float(op.M), 6), float(op.K))


Rank = Literal["first", "after_models", "last"]


@dataclass(frozen=True)
class Preparation:
    """How the ops of one kind (or stream-op family) are measured.

    ``variants``: what is timed per distinct op (``prune``: once per prune implementation of the
    run). ``same``: ops with equal keys are timed once (the record lists the others in ``also``).
    ``rank``: where the plan puts them so that a deadline cuts the least important: ``first``
    (before whole layers and models), ``after_models``, ``last``. ``extra_dtypes``: also timed in
    the run's extra dtypes."""

    prepare: Callable[[Op, Request], Prepared]
    variants: tuple[str, ...]
    same: Callable[[Op], Hashable]
    rank: Rank
    extra_dtypes: bool = False


def _stream(prepare: Callable[[Op, Request], Prepared], *variants: str) -> Preparation:
    return Preparation(prepare, variants or ("dense",), rows_key, "after_models")


PREPARATIONS: Mapping[tuple[str, str | None], Preparation] = MappingProxyType({
    ("gemm", None): Preparation(prepare_gemm, ("dense",), gemm_key, "first", extra_dtypes=True),
    ("sparse_gemm", None): Preparation(prepare_gemm, ("dense", "sparse"), gemm_key, "first", extra_dtypes=True),
    ("attention", None): Preparation(prepare_attention, ("dense",), attention_key, "after_models"),
    ("decode_attention", None): Preparation(prepare_decode_attention, ("dense",), gemm_key, "after_models"),
    ("prune", None): Preparation(_prepare_prune_request, ("prune",), rows_key, "last"),
    ("norm", "norm"): _stream(prepare_norm),
    ("norm", "head_norm"): _stream(prepare_head_norm),
    ("embedding", None): _stream(prepare_embedding),
    ("elementwise", "rotary"): _stream(prepare_rotary, "dense", "eager"),
    ("elementwise", "activation"): _stream(prepare_activation, "dense", "eager"),
    ("elementwise", "residual"): _stream(prepare_residual),
    ("elementwise", "moe.dispatch"): _stream(prepare_moe_dispatch),
    ("elementwise", "moe.combine"): _stream(prepare_moe_combine),
})
"""(op kind, op family or None for every op of the kind) -> its Preparation."""


def preparation(op: Op) -> Preparation | None:
    """The registered Preparation of ``op`` (its family's, else its kind's), or None if it is not measured here."""
    return PREPARATIONS.get((op.kind, op_family(op))) or PREPARATIONS.get((op.kind, None))


def prepare(op: Op, request: Request) -> Prepared:
    """``op`` ready to time for ``request``; InvalidArgument if no torch implementation is registered."""
    how = preparation(op)
    if how is None:
        raise InvalidArgument(f"op {op.name} (kind {op.kind}, family {op_family(op)}) has no torch implementation "
                              f"here; registered: {', '.join(f'{k}/{f}' if f else k for k, f in PREPARATIONS)}")
    if request.variant not in how.variants:
        raise InvalidArgument(f"op {op.name}: variant {request.variant!r} is not measured; "
                              f"allowed: {', '.join(how.variants)}", field="variant")
    return how.prepare(op, request)
