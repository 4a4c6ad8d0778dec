"""The project's vocabulary: every name that more than one package uses, defined once.

Types are ``Literal`` aliases (pydantic validates them; type checkers see them) and each has a
tuple of its values for CLI ``choices`` and error messages. Nothing here imports anything else.
"""
from __future__ import annotations

from typing import Literal, get_args

# -- linear layers ------------------------------------------------------------------------------
DecoderLinearKind = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DECODER_LINEAR_KINDS: tuple[str, ...] = get_args(DecoderLinearKind)
"""The projections of a decoder layer a sparsity policy can select (MoE experts share these names)."""

LinearKind = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                     "router", "lm_head"]
LINEAR_KINDS: tuple[str, ...] = get_args(LinearKind)
NEVER_SPARSE_KINDS: tuple[str, ...] = ("router", "lm_head")
"""Linears whose input is never pruned (the MoE router decides routing; lm_head is not a decoder layer)."""

ROW_PARALLEL_KINDS: tuple[str, ...] = ("o_proj", "down_proj")
"""Linears whose input features tensor parallelism splits across GPUs (Megatron row-parallel); the
other decoder linears are column-parallel (their outputs are split, their inputs are whole)."""

Activation = Literal["attn_in", "attn_out", "mlp_in", "mlp_mid"]
ACTIVATION_OF: dict[str, str] = {
    "q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in", "o_proj": "attn_out",
    "gate_proj": "mlp_in", "up_proj": "mlp_in", "down_proj": "mlp_mid",
}
"""The activation each decoder linear reads: linears sharing an input share one prune op."""

# -- sparsity -----------------------------------------------------------------------------------
Scoring = Literal["magnitude", "amber"]
SCORINGS: tuple[str, ...] = get_args(Scoring)
"""magnitude: score |x|; amber: |x| times the weight's robust-norm channel factor (arXiv 2508.02128)."""

AmberOutliers = Literal["clamp", "drop"]
AMBER_OUTLIERS: tuple[str, ...] = get_args(AmberOutliers)
"""Weights outside the amber factor's 0.5/99.5 % quantiles: clamped to the bounds (default) or dropped."""

PolicyPreset = Literal["amber", "all", "none"]
POLICY_PRESETS: tuple[str, ...] = get_args(PolicyPreset)

MAX_M = 32
"""Largest group size M of an N:M pattern (every pruner implementation supports 0 < N < M <= 32)."""

# -- numbers --------------------------------------------------------------------------------------
DType = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8", "fp4"]
DTYPES: tuple[str, ...] = get_args(DType)
DTYPE_BYTES: dict[str, float] = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "fp4": 0.5}
TORCH_DTYPE_NAMES: dict[str, str] = {
    "fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8", "fp8": "float8_e4m3fn",
}
"""torch.<name> of each dtype torch can hold (tf32 is a matmul mode, fp4 has no torch dtype)."""
MODEL_DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16")
"""Dtypes a real model is loaded and evaluated in (``ampersim prune --dtype``)."""
MEASURED_DTYPES: tuple[str, ...] = ("bf16", "fp16", "int8", "fp8")
"""GEMM dtypes the GPU harness measures and ``predict`` offers on the command line."""

# -- the op graph ---------------------------------------------------------------------------------
OpKind = Literal["gemm", "sparse_gemm", "prune", "attention", "decode_attention", "norm", "elementwise",
                 "embedding", "allreduce"]
OP_KINDS: tuple[str, ...] = get_args(OpKind)
"""attention: the causal attention of prefill tokens (chunks, optionally after a cached prefix);
decode_attention: one query per running sequence reading its whole KV cache (flash-decoding)."""

OpPath = Literal["both", "dense", "sparse"]
OP_PATHS: tuple[str, ...] = get_args(OpPath)
"""Which path of a step an op runs on: both (most ops), or only one when a mixed step splits a
sparsified linear into a sparse prefill-row GEMM and a dense decode-row GEMM."""

# -- serving: how the sparse path treats a step that mixes prefill chunks and decode tokens -------
MixedStepMode = Literal["split", "prune_all", "separate"]
MIXED_STEP_MODES: tuple[str, ...] = get_args(MixedStepMode)
"""split: prefill rows of a sparsified linear run sparse, decode rows dense (two GEMMs);
prune_all: every row of a step that holds a prefill chunk is pruned (decode rows too: an accuracy
risk); separate: the scheduler never mixes, prefill and decode run in separate steps."""

# -- economics ---------------------------------------------------------------------------------------
CloudPrice = Literal["market", "list"]
CLOUD_PRICES: tuple[str, ...] = get_args(CloudPrice)
"""Which cloud rent a profile's prices give: market (a median or midpoint over providers, the default)
or list (one provider's on-demand list price)."""
CostBasis = Literal["cloud", "owned"]
COST_BASES: tuple[str, ...] = get_args(CostBasis)
"""How a fleet is paid for: cloud (rent for every GPU-hour) or owned (total cost of ownership)."""

# -- runtime pruning implementations the harness measures (profile ``prune_impls`` keys) -----------
PruneImplName = Literal["torch_eager_mask", "torch_eager_cslt", "fused_mask", "fused_cslt"]
MEASURED_PRUNE_IMPLS: tuple[str, ...] = get_args(PruneImplName)
DiagnosticPruneImpl = Literal["cslt_compress_only"]
DIAGNOSTIC_PRUNE_IMPLS: tuple[str, ...] = get_args(DiagnosticPruneImpl)
"""Prune paths the harness times for the record but no profile prices (``cslt_compress_only``:
torch._cslt_compress of an already pruned input)."""

# -- sparse-GEMM library paths a profile can describe (``efficiency.sparse_gemm_impl`` and its alternatives) --
SparseGemmImpl = Literal["cusparselt_searched", "cusparselt_default"]
SPARSE_GEMM_IMPLS: tuple[str, ...] = get_args(SparseGemmImpl)
SPARSE_GEMM_IMPL_DESCRIPTIONS: dict[str, str] = {
    "cusparselt_searched": "cuSPARSELt, algorithm searched once per shape (cusparseLtMatmulSearch: ampersim's plans, "
                           "`ampersim measure`)",
    "cusparselt_default": "cuSPARSELt, default algorithm (torch._cslt_sparse_mm without alg_id, "
                          "to_sparse_semi_structured)",
}

# How ``sparsify`` runs a pruned linear: "mask" prunes the input and keeps the dense GEMM (any
# device, any N:M); "cuda" runs 2:4 on sparse tensor cores (fused prune + compress, cuSPARSELt).
SparsifyBackend = Literal["mask", "cuda"]
SPARSIFY_BACKENDS: tuple[str, ...] = get_args(SparsifyBackend)
