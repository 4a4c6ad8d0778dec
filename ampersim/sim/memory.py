"""Memory of one model replica, per GPU: weights, activation workspace, KV cache and runtime reserve.

A serving engine may use ``gpu_memory_utilization`` of each GPU's memory; the rest is the runtime
reserve (CUDA context, NCCL buffers, CUDA graphs, fragmentation). Of the usable part the weights
(÷ tp) and the activation workspace of the largest step come first; what is left holds the KV cache,
allocated in blocks of ``block_size`` tokens (PagedAttention), shared by the running sequences.
Equations and assumptions: docs/cost-model.md (Memory).
"""
from __future__ import annotations

import math

from ampersim.core.schema import Frozen
from ampersim.core.vocab import DTYPE_BYTES
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.spec import ModelSpec
from ampersim.sim.engine import EngineConfig

_GB = 1e9
LOGIT_BYTES = 4.0  # logits are computed in fp32 for sampling


def weights_bytes_per_gpu(spec: ModelSpec, dtype: str, tp: int) -> float:
    """All parameters in ``dtype``, split over ``tp`` GPUs (embeddings and norms included)."""
    return spec.num_parameters * DTYPE_BYTES[dtype] / tp


def weights_gb_per_gpu(spec: ModelSpec, dtype: str, tp: int) -> float:
    """Weight memory per GPU in GB (1e9 B)."""
    return weights_bytes_per_gpu(spec, dtype, tp) / _GB


def kv_dtype_bytes(dtype: str, kv_dtype: str | None) -> float:
    """Bytes per KV-cache element: ``kv_dtype``'s, else the activations' (16-bit, also for 8-bit GEMMs)."""
    return DTYPE_BYTES[kv_dtype] if kv_dtype else max(DTYPE_BYTES[dtype], 2.0)


def kv_bytes_per_token(spec: ModelSpec, tp: int, element_bytes: float) -> float:
    """KV-cache bytes one token occupies on one GPU: K and V of every layer, kv_heads/tp heads each.

    Sliding-window layers are charged the whole context too (an engine without a hybrid allocator)."""
    return 2.0 * spec.num_layers * (spec.num_kv_heads // tp) * spec.head_dim * element_bytes


def workspace_bytes(spec: ModelSpec, dtype: str, tp: int, max_tokens: int, max_seqs: int) -> float:
    """Peak activation memory of the largest step (an estimate; vLLM measures it with a profiling run).

    The live set at the FFN of one layer: the residual stream and its normalized copy [T, h], and the
    gate, up and activated outputs [T, ffn/tp] (routed experts: top_k rows per token plus the shared
    expert), in the 16-bit activation type; plus fp32 logits of one row per sequence [n, vocab/tp]."""
    act = max(DTYPE_BYTES[dtype], 2.0)
    if spec.moe is None:
        ffn = spec.intermediate_size // tp
    else:
        ffn = (spec.moe.experts_per_token * spec.moe.expert_intermediate_size
               + spec.moe.shared_expert_intermediate_size) // tp
    logits = min(max_seqs, max_tokens) * math.ceil(spec.vocab_size / tp) * LOGIT_BYTES
    return max_tokens * (2 * spec.hidden_size + 3 * ffn) * act + logits


class MemoryFit(Frozen):
    """Per-GPU memory of a replica; ``kv_blocks`` = 0 means the model does not fit."""

    capacity_gb: float
    gpu_memory_utilization: float
    reserve_gb: float
    weights_gb: float
    workspace_gb: float
    kv_gb: float
    kv_bytes_per_token: float
    block_size: int
    kv_blocks: int
    kv_tokens: int

    @property
    def fits(self) -> bool:
        """Weights and workspace fit with room for at least one KV block."""
        return self.kv_blocks > 0

    def blocks_for(self, tokens: int) -> int:
        return -(-int(tokens) // self.block_size)

    def max_sequences(self, tokens_per_seq: int) -> int:
        """Sequences of ``tokens_per_seq`` cached tokens each that fit in the KV cache at once."""
        return self.kv_blocks // max(1, self.blocks_for(tokens_per_seq))

    def needed_gb(self, tokens: int) -> float:
        """Weights + workspace + the KV cache of ``tokens`` tokens, per GPU (before the reserve)."""
        return self.weights_gb + self.workspace_gb + self.blocks_for(tokens) * self.block_size * \
            self.kv_bytes_per_token / _GB


def memory_fit(profile: HardwareProfile, spec: ModelSpec, dtype: str, tp: int, engine: EngineConfig) -> MemoryFit:
    """How a ``tp``-GPU replica of ``spec`` fills each GPU under ``engine``'s limits."""
    capacity = profile.memory.capacity_gb.value * _GB
    usable = engine.gpu_memory_utilization * capacity
    weights = weights_bytes_per_gpu(spec, dtype, tp)
    workspace = workspace_bytes(spec, dtype, tp, engine.max_batched_tokens, engine.max_seqs)
    per_token = kv_bytes_per_token(spec, tp, kv_dtype_bytes(dtype, engine.kv_dtype))
    kv = max(0.0, usable - weights - workspace)
    blocks = int(kv // (per_token * engine.block_size))
    return MemoryFit(capacity_gb=capacity / _GB, gpu_memory_utilization=engine.gpu_memory_utilization,
                     reserve_gb=(capacity - usable) / _GB, weights_gb=weights / _GB, workspace_gb=workspace / _GB,
                     kv_gb=blocks * engine.block_size * per_token / _GB, kv_bytes_per_token=per_token,
                     block_size=engine.block_size, kv_blocks=blocks, kv_tokens=blocks * engine.block_size)
