"""A random-weight decoder with a real architecture (Llama / Qwen2 / Qwen3 dense), run in torch.

It executes, layer by layer, what the op graph (ampersim.sim.graph) describes: RMSNorm, q/k/v
projections, [q/k norm], rotary, causal GQA attention (SDPA), o projection, residual, RMSNorm,
gate/up, SiLU·up, down, residual (rotary and SiLU·up as one-pass Triton kernels on a GPU, as the
graph costs them; eager torch elsewhere); the whole model adds the embedding, the final norm and lm_head
on the last token. Every linear whose input the policy sparsifies gets its activation pruned once
per activation (q/k/v share one, gate/up share one) by a prune implementation, then either the
2:4 sparse GEMM (compressed operand) or a dense GEMM on the masked activation (mask-only impls).
The sparse GEMM is ``torch._cslt_sparse_mm`` (a plan built per call) unless the path brings its own
``matmul`` (persistent cuSPARSELt plans: ``ampersim.kernels.gpu.cusparselt``).
``int8=True`` builds a W8A8 model: per-channel int8 weights, every linear input quantized per token
(once per activation) and multiplied with ``torch._int_mm`` + a one-pass dequantization, the sparse
ones 2:4-pruned, quantized and compressed in one kernel pair and multiplied by the int8 2:4 GEMM.
``reference=True`` runs the same layer with eager masking and F.linear (W8A8: eager masking, eager
quantization, float products of the int8 values) instead of the sparse path: the sparse output must
match it before anything is timed.

``DecoderLayer.step`` runs a serving step of the layer (``ServingStep``): a prefill chunk after a
cached prefix and/or decode tokens of sequences with real KV caches (SDPA over [B, kv_heads, L,
head_dim] tensors; each step writes its new K/V into the caches), with the mixed-step mode's
sparse path: prefill rows sparse and decode rows dense (split), or every row pruned (prune_all).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import DECODER_LINEAR_KINDS
from ampersim.kernels import torch_eager
from ampersim.measure.ops import rel_err, rope_eager, torch_dtype
from ampersim.models.spec import ModelSpec
from ampersim.sparsity.policy import SparsityPolicy

Pruner = Callable[[Any], Any]  # activation [T, K] -> compressed operand or masked dense activation
SparseMatmul = Callable[[Any, "_Linear", int], Any]  # (operand, linear, tokens T) -> [T, N]


@dataclass(frozen=True)
class SparsePath:
    """How sparsified linears run: ``prune`` returns the compressed operand when ``compressed``,
    else a masked dense activation fed to F.linear; ``matmul`` multiplies a compressed operand
    (None: ``torch._cslt_sparse_mm`` with the searched algorithm, operand rows == tokens)."""

    name: str
    prune: Pruner
    compressed: bool
    pattern: tuple[int, int]
    matmul: SparseMatmul | None = None


def check_architecture(spec: ModelSpec) -> None:
    if spec.moe is not None:
        raise InvalidArgument(f"{spec.name}: whole-layer measurement covers dense FFN models only (MoE not run)")
    if spec.sliding_window is not None or spec.family == "gemma3":
        raise InvalidArgument(f"{spec.name}: sliding-window / sandwich-norm layers are not run as a whole")


def silu_mul_eager(gate: Any, up: Any) -> Any:
    import torch

    return torch.nn.functional.silu(gate) * up


class _Linear:
    """One projection: weight [N, K] (W8A8: also int8 ``w_q`` and per-channel fp32 ``w_scale``); the
    sparse GEMM algorithm is searched once for its token count."""

    def __init__(self, torch: Any, N: int, K: int, dtype: Any, device: str, int8: bool = False) -> None:
        self.torch = torch
        self.w = torch.randn(N, K, device=device, dtype=torch.float32).mul_(1 / math.sqrt(K)).to(dtype)
        self.wt = self.w.t()
        self.algs: dict[int, tuple[int, int, int]] = {}  # tokens -> searched (alg_id, split_k, split_k_mode)
        self.w_q = self.w_scale = None
        if int8:
            from ampersim.runtime.sparse_linear import quantize_weight_int8

            self.w_q, self.w_scale = quantize_weight_int8(self.w)

    def dense(self, x: Any) -> Any:
        return self.torch.nn.functional.linear(x, self.w)

    def dense_int8(self, q: Any, scale: Any) -> Any:
        """W8A8 product of per-token quantized q [T, K] (scales [T]): torch._int_mm + dequantization."""
        from ampersim.kernels.gpu import triton_elementwise

        return triton_elementwise.dequant(self.torch._int_mm(q, self.w_q.t()), scale, self.w_scale, self.w.dtype)

    def reference_int8(self, x: Any) -> Any:
        """Float model of the W8A8 product with the kernels' arithmetic: eager per-token quantization
        (round half to even of x · (1/s) in fp32, s = absmax / 127), the integer product exactly (float64:
        an fp32 GEMM rounds sums above 2^24, which the int32 GEMM does not), then the dequantization
        epilogue's fp32 ``acc · s · w_scale`` and one rounding to the model's dtype."""
        xf = x.float()
        amax = xf.abs().amax(dim=1)
        s = self.torch.where(amax > 0, amax / 127.0, self.torch.ones_like(amax))
        q = self.torch.round(xf * (1.0 / s)[:, None]).clamp(-127, 127)
        acc = (q.double() @ self.w_q.double().t()).float()
        return (acc * s[:, None] * self.w_scale[None, :]).to(self.w.dtype)

    def sparse(self, compressed: Any) -> Any:
        rows = compressed.shape[0]
        if rows not in self.algs:
            found = self.torch._C._cusparselt.mm_search(compressed, self.wt, None, None, None, False)
            self.algs[rows] = (int(found[0]), int(found[1]), int(found[2]))
        a, s, mode = self.algs[rows]
        return self.torch._cslt_sparse_mm(compressed, self.wt, alg_id=a, split_k=s, split_k_mode=mode)


class DecoderLayer:
    """One decoder layer with random weights; ``sparse_kinds`` are the linears whose input is pruned."""

    def __init__(self, spec: ModelSpec, sparse_kinds: frozenset[str], dtype: str, device: str,
                 int8: bool = False) -> None:
        import torch

        from ampersim.measure.ops import fused_kernels

        check_architecture(spec)
        self.torch, self.spec, self.sparse_kinds, self.int8 = torch, spec, sparse_kinds, int8
        fused = fused_kernels(device)
        self.rope = fused.rope if fused else rope_eager
        self.silu_mul = fused.silu_mul if fused else silu_mul_eager
        dt = torch_dtype(dtype)
        h, hd = spec.hidden_size, spec.head_dim
        q_dim, kv_dim, ffn = spec.num_heads * hd, spec.num_kv_heads * hd, spec.intermediate_size
        shapes = {"q_proj": (q_dim, h), "k_proj": (kv_dim, h), "v_proj": (kv_dim, h), "o_proj": (h, q_dim),
                  "gate_proj": (ffn, h), "up_proj": (ffn, h), "down_proj": (h, ffn)}
        self.linears = {k: _Linear(torch, n, kk, dt, device, int8) for k, (n, kk) in shapes.items()}
        ones = lambda n: torch.ones(n, device=device, dtype=dt)  # noqa: E731
        self.attn_norm, self.ffn_norm = ones(h), ones(h)
        self.q_norm, self.k_norm = ones(hd), ones(hd)

    def _project(self, x: Any, kinds: tuple[str, ...], path: SparsePath | None, reference: bool,
                 sparse_rows: int | None = None) -> list[Any]:
        """The linears ``kinds`` of x; with a sparse path, the sparsified ones prune their input's first
        ``sparse_rows`` rows (all by default) and run the rest dense (a split mixed step)."""
        sparse = [k for k in kinds if k in self.sparse_kinds] if path is not None and sparse_rows != 0 else []
        rows = x.shape[0] if sparse_rows is None else sparse_rows
        pruned = None
        if sparse:
            n, m = path.pattern
            head = x[:rows]
            pruned = torch_eager.prune(head, f"{n}:{m}") if reference else path.prune(head)
        if self.int8:
            if rows != x.shape[0]:
                raise InvalidArgument("W8A8 layers run whole prefill steps only, not split mixed steps")
            return self._project_int8(x, kinds, sparse, path, pruned, reference)
        out = []
        for kind in kinds:
            lin = self.linears[kind]
            if kind not in sparse:
                out.append(lin.dense(x))
                continue
            if reference or not path.compressed:
                y = lin.dense(pruned)
            elif path.matmul is not None:
                y = path.matmul(pruned, lin, rows)
            else:
                y = lin.sparse(pruned)
            out.append(y if rows == x.shape[0] else self.torch.cat((y, lin.dense(x[rows:]))))
        return out

    def _project_int8(self, x: Any, kinds: tuple[str, ...], sparse: list[str], path: SparsePath | None,
                      pruned: Any, reference: bool) -> list[Any]:
        """W8A8: the dense linears share one per-token quantization of x; the sparse ones take the
        path's pruned + quantized + compressed operand (reference: the float model of both)."""
        if reference:
            return [self.linears[k].reference_int8(pruned if k in sparse else x) for k in kinds]
        from ampersim.kernels.gpu import pruner as kernels_gpu

        quantized = kernels_gpu.quantize_int8(x) if len(sparse) < len(kinds) else None
        return [path.matmul(pruned, self.linears[k], x.shape[0]) if k in sparse
                else self.linears[k].dense_int8(*quantized) for k in kinds]

    def __call__(self, x: Any, cos: Any, sin: Any, path: SparsePath | None = None, reference: bool = False) -> Any:
        F = self.torch.nn.functional
        spec, T = self.spec, x.shape[0]
        H, Hkv, D = spec.num_heads, spec.num_kv_heads, spec.head_dim
        h = F.rms_norm(x, (x.shape[1],), self.attn_norm, 1e-6)
        q, k, v = self._project(h, ("q_proj", "k_proj", "v_proj"), path, reference)
        q, k, v = q.view(T, H, D), k.view(T, Hkv, D), v.view(T, Hkv, D)
        if spec.qk_norm:
            q, k = F.rms_norm(q, (D,), self.q_norm, 1e-6), F.rms_norm(k, (D,), self.k_norm, 1e-6)
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        attn = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                              v.transpose(0, 1)[None], is_causal=True, enable_gqa=True)
        attn = attn[0].transpose(0, 1).reshape(T, H * D)
        (o,) = self._project(attn, ("o_proj",), path, reference)
        x = x + o
        h = F.rms_norm(x, (x.shape[1],), self.ffn_norm, 1e-6)
        gate, up = self._project(h, ("gate_proj", "up_proj"), path, reference)
        act = self.silu_mul(gate, up)
        (down,) = self._project(act, ("down_proj",), path, reference)
        return x + down


    def step(self, x: Any, step: ServingStep, path: SparsePath | None = None, reference: bool = False) -> Any:
        """One serving step of this layer on x [P + B, h]: the prefill chunk's rows, then the decode rows."""
        F = self.torch.nn.functional
        spec, P, B = self.spec, step.prefill_tokens, step.decode_batch
        H, Hkv, D, T = spec.num_heads, spec.num_kv_heads, spec.head_dim, x.shape[0]
        rows = 0 if P == 0 else (None if step.mixed == "prune_all" or B == 0 else P)  # decode stays dense
        h = F.rms_norm(x, (x.shape[1],), self.attn_norm, 1e-6)
        q, k, v = self._project(h, ("q_proj", "k_proj", "v_proj"), path, reference, rows)
        q, k, v = q.view(T, H, D), k.view(T, Hkv, D), v.view(T, Hkv, D)
        if spec.qk_norm:
            q, k = F.rms_norm(q, (D,), self.q_norm, 1e-6), F.rms_norm(k, (D,), self.k_norm, 1e-6)
        q, k = self.rope(q, step.cos, step.sin), self.rope(k, step.cos, step.sin)
        parts = []
        if P:
            o = step.prefill_offset
            step.prefill_k[0, :, o:o + P] = k[:P].transpose(0, 1)
            step.prefill_v[0, :, o:o + P] = v[:P].transpose(0, 1)
            qp = q[:P].transpose(0, 1)[None]
            kp, vp = step.prefill_k[:, :, :o + P], step.prefill_v[:, :, :o + P]
            att = (F.scaled_dot_product_attention(qp, kp, vp, attn_mask=step.prefill_mask, enable_gqa=True) if o else
                   F.scaled_dot_product_attention(qp, kp, vp, is_causal=True, enable_gqa=True))
            parts.append(att[0].transpose(0, 1).reshape(P, H * D))
        if B:
            step.decode_k[:, :, -1] = k[P:]
            step.decode_v[:, :, -1] = v[P:]
            att = F.scaled_dot_product_attention(q[P:][:, :, None], step.decode_k, step.decode_v, enable_gqa=True)
            parts.append(att.reshape(B, H * D))
        attn = parts[0] if len(parts) == 1 else self.torch.cat(parts)
        (o_out,) = self._project(attn, ("o_proj",), path, reference, rows)
        x = x + o_out
        h = F.rms_norm(x, (x.shape[1],), self.ffn_norm, 1e-6)
        gate, up = self._project(h, ("gate_proj", "up_proj"), path, reference, rows)
        act = self.silu_mul(gate, up)
        (down,) = self._project(act, ("down_proj",), path, reference, rows)
        return x + down


@dataclass
class ServingStep:
    """The inputs of one serving step of a layer: a prefill chunk of ``prefill_tokens`` after
    ``prefill_offset`` cached tokens, ``decode_batch`` sequences with ``decode_context`` tokens in their
    KV caches (the new one included), random caches, rotary tables at each row's position."""

    prefill_tokens: int
    prefill_offset: int
    decode_batch: int
    decode_context: int
    mixed: str
    cos: Any
    sin: Any
    prefill_k: Any = None
    prefill_v: Any = None
    prefill_mask: Any = None
    decode_k: Any = None
    decode_v: Any = None

    @classmethod
    def build(cls, spec: ModelSpec, prefill_tokens: int, prefill_offset: int, decode_batch: int, decode_context: int,
              mixed: str, dtype: str, device: str) -> ServingStep:
        import torch

        P, o, B, L = prefill_tokens, prefill_offset, decode_batch, decode_context
        positions = torch.cat((torch.arange(o, o + P), torch.full((B,), max(L - 1, 0)))).to(device)
        cos, sin = rotary_tables(max(o + P, L), spec.head_dim, device, dtype, spec.rope_theta)
        dt, Hkv, D = torch_dtype(dtype), spec.num_kv_heads, spec.head_dim
        cache = lambda n, length: torch.randn(n, Hkv, length, D, device=device, dtype=dt)  # noqa: E731
        step = cls(P, o, B, L, mixed, cos[positions], sin[positions])
        if P:
            step.prefill_k, step.prefill_v = cache(1, o + P), cache(1, o + P)
            if o:
                from torch.nn.attention.bias import causal_lower_right

                step.prefill_mask = causal_lower_right(P, o + P)
        if B:
            step.decode_k, step.decode_v = cache(B, L), cache(B, L)
        return step


def rotary_tables(T: int, D: int, device: str, dtype: str, theta: float) -> tuple[Any, Any]:
    """cos and sin [T, 1, D] of rotary embedding with base ``theta`` (the model's rope_theta), HF layout."""
    import torch

    inv = 1.0 / theta ** (torch.arange(0, D, 2, device=device, dtype=torch.float32) / D)
    angles = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv)
    emb = torch.cat((angles, angles), dim=-1)[:, None, :]
    return emb.cos().to(torch_dtype(dtype)), emb.sin().to(torch_dtype(dtype))


def layer_kinds(policy: SparsityPolicy, layer: int) -> frozenset[str]:
    return frozenset(k for k in DECODER_LINEAR_KINDS if policy.is_sparse(layer, k))


class DecoderModel:
    """Embedding, every decoder layer of ``spec`` (random weights), final norm, lm_head on the last token
    (``int8``: W8A8 decoder layers; embedding and lm_head stay 16-bit)."""

    def __init__(self, spec: ModelSpec, policy: SparsityPolicy, dtype: str, device: str, int8: bool = False) -> None:
        import torch

        check_architecture(spec)
        self.torch, self.spec = torch, spec
        dt = torch_dtype(dtype)
        self.embed = torch.randn(spec.vocab_size, spec.hidden_size, device=device, dtype=dt)
        self.layers = [DecoderLayer(spec, layer_kinds(policy, i), dtype, device, int8)
                       for i in range(spec.num_layers)]
        self.final_norm = torch.ones(spec.hidden_size, device=device, dtype=dt)
        self.lm_head = self.embed if spec.tie_embeddings else torch.randn_like(self.embed).mul_(spec.hidden_size ** -0.5)

    def __call__(self, ids: Any, cos: Any, sin: Any, path: SparsePath | None = None, reference: bool = False,
                 run_layer: Callable[..., Any] | None = None) -> Any:
        """Logits of the last token; ``run_layer(layer, x, cos, sin, path)`` replaces the layer call
        (e.g. a torch.compile'd function: one compiled graph serves every layer of the same kind)."""
        F = self.torch.nn.functional
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            x = layer(x, cos, sin, path, reference) if run_layer is None else run_layer(layer, x, cos, sin, path)
        x = F.rms_norm(x, (x.shape[1],), self.final_norm, 1e-6)
        return F.linear(x[-1:], self.lm_head)

    def layer_errors(self, ids: Any, cos: Any, sin: Any, path: SparsePath) -> list[float]:
        """Per layer, on the input the sparse model gives it: relative error of the sparse path vs
        eager masking + F.linear (teacher-forced, so rounding differences do not compound)."""
        x = self.torch.nn.functional.embedding(ids, self.embed)
        errors = []
        for layer in self.layers:
            out = layer(x, cos, sin, path)
            errors.append(rel_err(out, layer(x, cos, sin, path, reference=True)))
            x = out
        return errors
