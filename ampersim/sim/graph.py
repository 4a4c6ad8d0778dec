"""The op graph of one step: what the model does, independent of the hardware that runs it.

A step processes prefill work (prompt chunks, optionally after a prefix already in the KV cache),
decode work (one new token for each running sequence, reading its KV cache), or both (a mixed
step of continuous batching with chunked prefill). A prefill-only step is the graph ``predict``
has always costed; decode steps are dense (activation sparsity is prefill-only), and how a mixed
step's sparsified linears run is the ``mixed`` mode (core.vocab.MIXED_STEP_MODES).

The same graph is costed by the analytical model (ampersim.sim.cost) and measured on a GPU (issue 5),
so every op carries the shapes needed to rebuild it (M, N, K, dtype, ``attrs``). Identical decoder
layers (same sparsified linears, same attention window) are emitted once with ``layers``/``count``.

Per decoder layer, in execution order (HF-style unfused projections, one kernel per op)::

    attn_norm, [prune.attn_in], q_proj, k_proj, v_proj, [q_norm, k_norm], rotary, attention,
    [prune.attn_out], o_proj, [post_attn_norm], [allreduce.attn], residual.attn,
    ffn_norm, [router, moe.dispatch], [prune.mlp_in], gate_proj, up_proj, activation,
    [prune.mlp_mid], down_proj, [shared expert: gate/up/activation/prune/down], [moe.combine],
    [post_ffn_norm], [allreduce.mlp], residual.mlp

W8A8 (dtype int8, as ``ampersim.measure.model`` runs it): each linear input is quantized per token
(``quant.absmax.<activation>``, ``quant.<activation>``: one absmax + quantize kernel pair shared by its
dense consumers; on the sparse path the sparsified consumers' input goes through the fused prune +
quantize + compress pair instead: ``quant.absmax_pruned.<activation>`` and the ``prune`` op), and each
decoder linear's int32 product is dequantized to 16 bits (``<linear>.dequant``). fp8 graphs have
neither (no W8A8 fp8 path is run or measured).

plus ``embedding`` (+ ``allreduce.embedding`` under TP), ``final_norm`` and ``lm_head`` (last token
of each sequence only). A step with decode tokens has ``decode_attention`` after (or instead of)
``attention``; in a mixed step under ``split`` each sparsified linear is two GEMMs on the sparse
path (prefill rows sparse, ``<name>.decode_rows`` dense) and one on the dense path (``Op.path``). A ``prune.*`` op appears where at least one consumer of that activation is
sparsified; it runs once per activation (q/k/v share one, gate/up share one).

Shapes: a GEMM is Y[M, N] = X[M, K] · W[N, K]ᵀ, ``groups`` independent GEMMs of that shape in one
kernel (MoE: the experts a step touches). Tensor parallelism (Megatron style): q/k/v/gate/up and
lm_head are column-parallel (N / tp), o/down row-parallel (K / tp) followed by an all-reduce of the
[tokens, hidden] output; norms and residuals run replicated. All counts are per GPU.

Quantities may be numpy arrays (one entry per batch shape): the vectorized step model builds the
graph once for a whole sweep of (tokens, sum of squared lengths) points.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from pydantic import Field

from ampersim.core.errors import InvalidArgument
from ampersim.core.schema import Frozen
from ampersim.core.vocab import DECODER_LINEAR_KINDS, DTYPE_BYTES, MIXED_STEP_MODES, DType, OpKind, OpPath
from ampersim.models.spec import ModelSpec
from ampersim.sparsity.policy import SparsityPolicy, check_pattern_fits

Num = float | np.ndarray



@dataclass(frozen=True)
class BatchShape:
    """The prefill work of one step: total new tokens T, sequences n, causal-pair moment S.

    Each sequence contributes a chunk of c new tokens after o tokens already in its KV cache (o = 0
    for a whole prompt); S = Σ ((o + c)² − o²), which is Σ c² for whole prompts, so the causal
    (query, key) pairs are (S + T) / 2 either way; ``cached`` = Σ o. ``lengths`` (chunk sizes) and
    ``offsets`` are exact per-sequence values when known; otherwise the step is treated as n equal
    sequences (n defaults to T²/S, the number of sequences when they are equal whole prompts and a
    lower bound otherwise).
    """

    tokens: Num
    seqs: Num
    sum_sq: Num
    lengths: tuple[int, ...] | None = None
    cached: Num = 0.0
    offsets: tuple[int, ...] | None = None

    @classmethod
    def from_lengths(cls, lengths: Sequence[int]) -> BatchShape:
        lengths = tuple(int(x) for x in lengths)
        if not lengths or min(lengths) <= 0:
            raise InvalidArgument(f"tokens per sequence must be > 0; got {list(lengths)[:8]}")
        return cls(tokens=float(sum(lengths)), seqs=float(len(lengths)),
                   sum_sq=float(sum(x * x for x in lengths)), lengths=lengths)

    @classmethod
    def from_chunks(cls, chunks: Sequence[tuple[int, int]]) -> BatchShape:
        """Prefill chunks as (offset, tokens): ``tokens`` new tokens after ``offset`` cached ones."""
        offsets = tuple(int(o) for o, _ in chunks)
        lengths = tuple(int(c) for _, c in chunks)
        if not lengths or min(lengths) <= 0 or min(offsets) < 0:
            raise InvalidArgument(f"prefill chunks need tokens > 0 and offsets >= 0; got {list(chunks)[:8]}")
        return cls(tokens=float(sum(lengths)), seqs=float(len(lengths)),
                   sum_sq=float(sum((o + c) ** 2 - o * o for o, c in zip(offsets, lengths))),
                   lengths=lengths, cached=float(sum(offsets)), offsets=offsets)

    @classmethod
    def from_moments(cls, tokens: Num, sum_sq: Num, seqs: Num | None = None) -> BatchShape:
        tokens = np.asarray(tokens, dtype=float)
        sum_sq = np.asarray(sum_sq, dtype=float)
        if np.any(tokens <= 0):
            raise InvalidArgument("total_tokens must be > 0")
        if np.any(sum_sq < tokens) or np.any(sum_sq > tokens * tokens * (1 + 1e-12)):
            raise InvalidArgument("sum_sq_tokens must lie between total_tokens and total_tokens**2")
        seqs = tokens * tokens / sum_sq if seqs is None else np.asarray(seqs, dtype=float)
        if np.any(seqs < 1) or np.any(seqs > tokens):
            raise InvalidArgument("num_seqs must lie between 1 and total_tokens")
        return cls(tokens=tokens, seqs=seqs, sum_sq=sum_sq)

    def attended_pairs(self, window: int | None) -> Num:
        """Causal (query, key) pairs, diagonal included; keys limited to ``window`` if given."""
        if window is None:
            return (self.sum_sq + self.tokens) / 2
        if self.lengths is not None:
            offsets = self.offsets or (0,) * len(self.lengths)
            return float(sum(_window_pairs(np.float64(o + c), window) - _window_pairs(np.float64(o), window)
                             for o, c in zip(offsets, self.lengths)))
        if not np.any(self.cached):
            return self.seqs * _window_pairs(self.sum_sq / self.tokens, window)
        chunk, offset = self.tokens / self.seqs, self.cached / self.seqs
        return self.seqs * (_window_pairs(offset + chunk, window) - _window_pairs(offset, window))

    def keys_read(self, window: int | None) -> Num:
        """K/V rows the attention kernel reads: every new token plus the cached prefix it attends to
        (with a window, at most the last window − 1 cached tokens)."""
        if window is None:
            return self.tokens + self.cached
        if self.lengths is not None:
            offsets = self.offsets or (0,) * len(self.lengths)
            return float(sum(c + min(o, window - 1) for o, c in zip(offsets, self.lengths)))
        return self.tokens + self.seqs * np.minimum(self.cached / self.seqs, window - 1)


@dataclass(frozen=True)
class DecodeShape:
    """The decode work of one step: one new token for each of ``seqs`` running sequences, whose
    attention reads ``context`` = Σ L_i keys (L_i: the sequence's KV cache with the new token).
    ``contexts`` are the exact L_i when known; otherwise the sequences count as equally long."""

    seqs: Num
    context: Num
    contexts: tuple[int, ...] | None = None

    @classmethod
    def from_contexts(cls, contexts: Sequence[int]) -> DecodeShape:
        contexts = tuple(int(x) for x in contexts)
        if not contexts or min(contexts) <= 0:
            raise InvalidArgument(f"decode context lengths must be > 0; got {list(contexts)[:8]}")
        return cls(seqs=float(len(contexts)), context=float(sum(contexts)), contexts=contexts)

    def keys(self, window: int | None) -> Num:
        """Keys the decode queries attend to (each sequence at most ``window``)."""
        if window is None:
            return self.context
        if self.contexts is not None:
            return float(sum(min(x, window) for x in self.contexts))
        return self.seqs * np.minimum(self.context / self.seqs, window)


@dataclass(frozen=True)
class StepShape:
    """What one forward pass processes: prefill chunks, decode tokens, or both (a mixed step)."""

    prefill: BatchShape | None = None
    decode: DecodeShape | None = None

    def __post_init__(self) -> None:
        if self.prefill is None and self.decode is None:
            raise InvalidArgument("a step needs prefill chunks or decode tokens")

    @property
    def tokens(self) -> Num:
        """Rows of every linear layer: prefill tokens plus one per decoding sequence."""
        return (self.prefill.tokens if self.prefill else 0.0) + (self.decode.seqs if self.decode else 0.0)

    @property
    def seqs(self) -> Num:
        """Sequences in the step (lm_head rows: each computes the logits of its last token)."""
        return (self.prefill.seqs if self.prefill else 0.0) + (self.decode.seqs if self.decode else 0.0)


def _window_pairs(length: Num, window: int) -> Num:
    full = length * (length + 1) / 2
    capped = window * (window + 1) / 2 + (length - window) * window
    return np.where(length <= window, full, capped)


@dataclass(frozen=True)
class Op:
    """One kernel of the step (per GPU). ``count`` = how many decoder layers run it (1 for model ops).

    GEMM: Y[M, N] = X[M, K] · W[N, K]ᵀ, ``groups`` of them. prune: an [M, K] activation. norm /
    elementwise / embedding: M rows of K features. attention: M query tokens, N = mean keys per
    query, K = head_dim (decode_attention: M = decoding sequences). allreduce: bytes = message size.
    ``flops`` / ``bytes`` are the dense path's (bytes = compulsory device-memory traffic). ``path``:
    the op runs on both paths, or only on the dense or the sparse one (a split mixed step).
    """

    name: str
    kind: str
    layer: int | None
    layers: tuple[int, ...]
    M: Num
    N: Num
    K: Num
    flops: Num
    bytes: Num
    dtype: str
    groups: Num = 1.0
    sparse: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    path: str = "both"

    @property
    def count(self) -> int:
        return max(1, len(self.layers))

    def to_record(self) -> OpRecord:
        """This op as JSON-ready data (measurement files); its quantities must be scalars (one batch shape)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _QUANTITIES:
            if np.ndim(values[name]) != 0:
                raise InvalidArgument(f"op {self.name}: {name} is an array (a vectorized sweep); only the ops "
                                      "of one batch shape are serialised")
            values[name] = float(values[name])
        values["attrs"] = {key: _plain(value) for key, value in self.attrs.items()}
        return OpRecord(**values)


_QUANTITIES = ("M", "N", "K", "flops", "bytes", "groups")


def _plain(value: Any) -> Any:
    """numpy scalars (and sequences of them) as the Python numbers JSON holds."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class OpRecord(Frozen):
    """An Op as stored in measurement files: the same fields, with scalar quantities."""

    name: str
    kind: OpKind
    layer: int | None
    layers: tuple[int, ...]
    M: float = Field(ge=0)
    N: float = Field(ge=0)
    K: float = Field(ge=0)
    flops: float = Field(ge=0)
    bytes: float = Field(ge=0)
    dtype: DType
    groups: float = Field(1.0, gt=0)
    sparse: bool = False
    attrs: dict[str, Any] = {}
    path: OpPath = "both"  # absent in files written before decode and mixed steps: both paths

    def to_op(self) -> Op:
        """The Op this record was made from (``Op.to_record`` inverted)."""
        return Op(**{f.name: getattr(self, f.name) for f in fields(Op)})


def experts_touched(tokens: Num, num_experts: int, top_k: int) -> Num:
    """Expected distinct experts hit when each of ``tokens`` picks top_k of num_experts uniformly."""
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** np.asarray(tokens, dtype=float))


def check_tp(spec: ModelSpec, tp: int) -> None:
    """Raise InvalidArgument unless ``tp`` splits heads, KV heads and FFN widths evenly."""
    if tp < 1:
        raise InvalidArgument(f"tp must be >= 1; got {tp}", field="tp")
    ffn = spec.moe.expert_intermediate_size if spec.moe else spec.intermediate_size
    shared = spec.moe.shared_expert_intermediate_size if spec.moe else 0
    for what, value in (("attention heads", spec.num_heads), ("KV heads", spec.num_kv_heads),
                        ("FFN width", ffn), ("shared-expert FFN width", shared)):
        if value % tp:
            raise InvalidArgument(
                f"tp {tp} does not divide the {what} of {spec.name} ({value}); "
                f"allowed tp: {', '.join(str(d) for d in allowed_tp(spec))}",
                field="tp",
            )


def allowed_tp(spec: ModelSpec) -> list[int]:
    """Tensor-parallel degrees that split heads, KV heads and FFN widths evenly."""
    ffn = spec.moe.expert_intermediate_size if spec.moe else spec.intermediate_size
    shared = spec.moe.shared_expert_intermediate_size if spec.moe else 0
    return [d for d in range(1, spec.num_kv_heads + 1)
            if not (spec.num_heads % d or spec.num_kv_heads % d or ffn % d or shared % d)]


def build_graph(spec: ModelSpec, policy: SparsityPolicy, tokens_per_seq: int | Sequence[int],
                batch: int, dtype: str, tp: int) -> list[Op]:
    """The op graph of prefilling ``batch`` prompts (``tokens_per_seq`` each, or one length per prompt)."""
    if isinstance(tokens_per_seq, (int, np.integer)):
        if tokens_per_seq <= 0:
            raise InvalidArgument(f"tokens_per_seq must be > 0; got {tokens_per_seq}", field="tokens_per_seq")
        if batch <= 0:
            raise InvalidArgument(f"batch must be > 0; got {batch}", field="batch")
        lengths = [int(tokens_per_seq)] * batch
    else:
        lengths = list(tokens_per_seq)
        if len(lengths) != batch:
            raise InvalidArgument(f"got {len(lengths)} sequence lengths for batch {batch}", field="tokens_per_seq")
    return graph_for_shape(spec, policy, BatchShape.from_lengths(lengths), dtype, tp)


def graph_for_shape(spec: ModelSpec, policy: SparsityPolicy, shape: BatchShape, dtype: str, tp: int) -> list[Op]:
    """The op graph of a prefill step whose quantities may be numpy arrays (vectorized sweeps)."""
    return graph_for_step(spec, policy, StepShape(prefill=shape), dtype, tp)


def graph_for_step(spec: ModelSpec, policy: SparsityPolicy, step: StepShape, dtype: str, tp: int, *,
                   kv_dtype: str | None = None, mixed: str = "split") -> list[Op]:
    """The op graph of any step: prefill chunks, decode tokens or both (quantities may be arrays).

    ``kv_dtype``: the KV cache's element type (default: the 16-bit activations). ``mixed``: how the
    sparse path runs a step with both prefill and decode rows (core.vocab.MIXED_STEP_MODES; under
    ``separate`` such a step does not exist)."""
    if dtype not in DTYPE_BYTES:
        raise InvalidArgument(f"unknown dtype '{dtype}'; allowed: {', '.join(DTYPE_BYTES)}", field="dtype")
    if kv_dtype is not None and kv_dtype not in DTYPE_BYTES:
        raise InvalidArgument(f"kv_dtype '{kv_dtype}' is unknown; allowed: {', '.join(DTYPE_BYTES)}",
                              field="kv_dtype")
    if mixed not in MIXED_STEP_MODES:
        raise InvalidArgument(f"mixed '{mixed}' is not a mixed-step mode; allowed: {', '.join(MIXED_STEP_MODES)}",
                              field="mixed")
    if mixed == "separate" and step.prefill is not None and step.decode is not None:
        raise InvalidArgument("mixed 'separate' never puts prefill and decode in one step", field="mixed")
    check_tp(spec, tp)
    if step.prefill is not None and tp > 1:  # resolve_policy checked tp 1
        check_pattern_fits(spec, policy, tp)
    builder = _Builder(spec, policy, step, dtype, tp, kv_dtype, mixed)
    builder.model_start()
    groups = layer_groups(spec, policy)
    if step.prefill is None:  # decode stays dense: layers differ only by their attention window
        groups = _merge_by_window(groups)
    for layers, sparse, window in groups:
        builder.decoder_layer(layers, sparse if step.prefill is not None else frozenset(), window)
    builder.model_end()
    return builder.ops


def layer_groups(spec: ModelSpec, policy: SparsityPolicy) -> list[tuple[tuple[int, ...], frozenset[str], int | None]]:
    """Decoder layers grouped by (sparsified kinds, attention window), in order of first appearance."""
    groups: dict[tuple[frozenset[str], int | None], list[int]] = {}
    for i in range(spec.num_layers):
        sparse = frozenset(k for k in DECODER_LINEAR_KINDS if policy.is_sparse(i, k))
        window = None if spec.is_global_attention(i) else spec.sliding_window
        groups.setdefault((sparse, window), []).append(i)
    return [(tuple(layers), sparse, window) for (sparse, window), layers in groups.items()]


def _merge_by_window(groups: list[tuple[tuple[int, ...], frozenset[str], int | None]]
                     ) -> list[tuple[tuple[int, ...], frozenset[str], int | None]]:
    merged: dict[int | None, list[int]] = {}
    for layers, _, window in groups:
        merged.setdefault(window, []).extend(layers)
    return [(tuple(sorted(layers)), frozenset(), window) for window, layers in merged.items()]


class _Builder:
    """Appends the ops of a step; all sizes per GPU."""

    def __init__(self, spec: ModelSpec, policy: SparsityPolicy, step: StepShape, dtype: str, tp: int,
                 kv_dtype: str | None, mixed: str) -> None:
        self.spec, self.policy, self.step, self.dtype, self.tp = spec, policy, step, dtype, tp
        self.in_b = DTYPE_BYTES[dtype]
        self.act_b = max(self.in_b, 2.0)  # 8-bit GEMMs keep 16-bit activations between kernels
        self.w8a8 = dtype == "int8"  # per-token quantization before, dequantization after each int8 linear
        self.kv_b = DTYPE_BYTES[kv_dtype] if kv_dtype else self.act_b
        self.T = step.tokens
        self.split = step.prefill is not None and step.decode is not None and mixed == "split"
        # rows a sparsified linear prunes: the prefill rows (split), else every row of the step
        self.sparse_rows = step.prefill.tokens if self.split else self.T
        self.ops: list[Op] = []
        self.layers: tuple[int, ...] = ()

    # -- op helpers -----------------------------------------------------------------------------
    def _add(self, name: str, kind: str, M: Num, N: Num, K: Num, flops: Num, nbytes: Num, *,
             groups: Num = 1.0, sparse: bool = False, path: str = "both", **attrs: Any) -> None:
        layer = self.layers[0] if self.layers else None
        self.ops.append(Op(name=name, kind=kind, layer=layer, layers=self.layers, M=M, N=N, K=K,
                           flops=flops, bytes=nbytes, dtype=self.dtype, groups=groups, sparse=sparse,
                           attrs=attrs, path=path))

    def gemm(self, name: str, kind: str, M: Num, N: int, K: int, *, sparse: bool = False,
             groups: Num = 1.0, parallel: str = "replicated", path: str = "both", **attrs: Any) -> None:
        flops = 2.0 * M * N * K * groups
        nbytes = groups * ((M * K + N * K) * self.in_b + M * N * self.act_b)
        self._add(name, "sparse_gemm" if sparse else "gemm", M, N, K, flops, nbytes, groups=groups,
                  sparse=sparse, path=path, linear=kind, parallel=parallel, **attrs)

    def linear(self, name: str, kind: str, N: int, K: int, *, sparse: bool, parallel: str,
               routed: bool = False, **attrs: Any) -> None:
        """One linear layer over the step's rows (MoE experts: a grouped GEMM over the experts hit).

        A sparsified linear in a split mixed step is a dense GEMM over all rows on the dense path,
        and a sparse GEMM over the prefill rows plus a dense ``.decode_rows`` GEMM on the sparse path."""
        parts = [("", self.T, "both", sparse)]
        if sparse and self.split:
            parts = [("", self.T, "dense", False), ("", self.step.prefill.tokens, "sparse", True),
                     (".decode_rows", self.step.decode.seqs, "sparse", False)]
        for suffix, rows, path, part_sparse in parts:
            M, groups = rows, 1.0
            if routed:
                moe = self.spec.moe
                groups = experts_touched(rows, moe.num_experts, moe.experts_per_token)
                M = rows * moe.experts_per_token / groups
            self.gemm(name + suffix, kind, M, N, K, sparse=part_sparse, groups=groups, parallel=parallel,
                      path=path, **attrs)
            if self.w8a8:  # int32 [M, N] read (4 bytes), 16-bit written (2): 3 passes of the 16-bit output
                self.stream(name + suffix + ".dequant", "elementwise", M * groups, N, 3.0, path=path)

    def stream(self, name: str, kind: str, rows: Num, features: int, passes: float, **attrs: Any) -> None:
        """A memory-bound op over a [rows, features] activation moving ``passes`` × its bytes."""
        self._add(name, kind, rows, 0, features, 0.0, passes * rows * features * self.act_b, **attrs)

    def prune(self, activation: str, rows: Num, features: int) -> None:
        self._add(f"prune.{activation}", "prune", rows, 0, features, 0.0, rows * features * self.act_b,
                  sparse=True, pattern=str(self.policy.pattern), scoring=self.policy.scoring)

    def quantize(self, activation: str, rows: Num, features: int, consumers: Sequence[str],
                 sparse: frozenset[str], sparse_rows: Num) -> None:
        """W8A8: the per-token int8 quantization of a linear input [rows, features] (16-bit) for its
        ``consumers``. Their dense GEMMs share one absmax pass (reads x: 1 pass) and one quantize pass
        (reads x, writes int8: 1.5 passes), which the sparse path skips when every consumer is
        sparsified; the fused prune + quantize + compress pair of the sparsified ones is an absmax pass
        over the pruned x on the sparse path (1 pass) plus the ``prune`` op (its compress pass)."""
        if not self.w8a8:
            return
        n_sparse = sum(kind in sparse for kind in consumers)
        path = "dense" if n_sparse == len(consumers) else "both"
        self.stream(f"quant.absmax.{activation}", "elementwise", rows, features, 1.0, path=path)
        self.stream(f"quant.{activation}", "elementwise", rows, features, 1.5, path=path)
        if n_sparse:
            self.stream(f"quant.absmax_pruned.{activation}", "elementwise", sparse_rows, features, 1.0,
                        path="sparse")

    def allreduce(self, name: str, rows: Num) -> None:
        if self.tp > 1:
            h = self.spec.hidden_size
            self._add(name, "allreduce", rows, 0, h, 0.0, rows * h * self.act_b, tp=self.tp)

    # -- model structure ------------------------------------------------------------------------
    def model_start(self) -> None:
        T = self.T
        self.stream("embedding", "embedding", T, self.spec.hidden_size, 2.0, vocab=self.spec.vocab_size)
        self.allreduce("allreduce.embedding", T)

    def model_end(self) -> None:
        self.layers = ()
        spec, T = self.spec, self.T
        self.stream("final_norm", "norm", T, spec.hidden_size, 2.0)
        vocab = -(-spec.vocab_size // self.tp)
        self.gemm("lm_head", "lm_head", self.step.seqs, vocab, spec.hidden_size, parallel="column")

    def attention(self, window: int | None, heads: int, kv_heads: int) -> None:
        """Causal attention of the prefill chunks, then decode attention over the KV caches."""
        hd = self.spec.head_dim
        q_dim, kv_dim = heads * hd, kv_heads * hd
        common = dict(heads=heads, kv_heads=kv_heads, head_dim=hd, window=window)
        prefill, decode = self.step.prefill, self.step.decode
        if prefill is not None:
            T, pairs, keys = prefill.tokens, prefill.attended_pairs(window), prefill.keys_read(window)
            cached = list(prefill.offsets) if prefill.offsets and any(prefill.offsets) else None
            self._add("attention", "attention", T, pairs / T, hd, 4.0 * heads * hd * pairs,
                      T * (2 * q_dim) * self.act_b + keys * (2 * kv_dim) * self.kv_b, causal=True,
                      seq_lens=list(prefill.lengths) if prefill.lengths else None, cached_lens=cached, **common)
        if decode is not None:
            B, keys = decode.seqs, decode.keys(window)
            self._add("decode_attention", "decode_attention", B, keys / B, hd, 4.0 * heads * hd * keys,
                      B * (2 * q_dim) * self.act_b + keys * (2 * kv_dim) * self.kv_b,
                      context_lens=list(decode.contexts) if decode.contexts else None, kv_bytes=self.kv_b,
                      **common)

    def decoder_layer(self, layers: tuple[int, ...], sparse: frozenset[str], window: int | None) -> None:
        self.layers = layers
        spec, T, tp = self.spec, self.T, self.tp
        h, hd = spec.hidden_size, spec.head_dim
        heads, kv_heads = spec.num_heads // tp, spec.num_kv_heads // tp
        q_dim, kv_dim = heads * hd, kv_heads * hd
        sandwich = spec.family == "gemma3"  # Gemma 3 also normalizes each sub-block's output

        self.stream("attn_norm", "norm", T, h, 2.0)
        if sparse & {"q_proj", "k_proj", "v_proj"}:
            self.prune("attn_in", self.sparse_rows, h)
        self.quantize("attn_in", T, h, ("q_proj", "k_proj", "v_proj"), sparse, self.sparse_rows)
        for kind, n in (("q_proj", q_dim), ("k_proj", kv_dim), ("v_proj", kv_dim)):
            self.linear(kind, kind, n, h, sparse=kind in sparse, parallel="column")
        if spec.qk_norm:
            self.stream("q_norm", "norm", T, q_dim, 2.0)
            self.stream("k_norm", "norm", T, kv_dim, 2.0)
        self.stream("rotary", "elementwise", T, q_dim + kv_dim, 2.0)
        self.attention(window, heads, kv_heads)
        if "o_proj" in sparse:
            self.prune("attn_out", self.sparse_rows, q_dim)
        self.quantize("attn_out", T, q_dim, ("o_proj",), sparse, self.sparse_rows)
        self.linear("o_proj", "o_proj", h, q_dim, sparse="o_proj" in sparse, parallel="row")
        if sandwich:
            self.stream("post_attn_norm", "norm", T, h, 2.0)
        self.allreduce("allreduce.attn", T)
        self.stream("residual.attn", "elementwise", T, h, 3.0)
        self.stream("ffn_norm", "norm", T, h, 2.0)
        self.mlp(T, sparse)
        if sandwich:
            self.stream("post_ffn_norm", "norm", T, h, 2.0)
        self.allreduce("allreduce.mlp", T)
        self.stream("residual.mlp", "elementwise", T, h, 3.0)

    def mlp(self, T: Num, sparse: frozenset[str]) -> None:
        spec, tp, h = self.spec, self.tp, self.spec.hidden_size
        gated = "gate_proj" in sparse or "up_proj" in sparse
        moe = spec.moe
        if moe is None:
            if gated:
                self.prune("mlp_in", self.sparse_rows, h)
            self.quantize("mlp_in", T, h, ("gate_proj", "up_proj"), sparse, self.sparse_rows)
            self._ffn("", T, spec.intermediate_size // tp, sparse)
            return
        self.gemm("router", "router", T, moe.num_experts, h)
        self.stream("moe.dispatch", "elementwise", T, h, 1.0 + moe.experts_per_token,
                    top_k=moe.experts_per_token, num_experts=moe.num_experts)
        if gated:
            self.prune("mlp_in", self.sparse_rows, h)
        self.quantize("mlp_in", T, h, ("router", "gate_proj", "up_proj"), sparse, self.sparse_rows)
        self._ffn("", T, moe.expert_intermediate_size // tp, sparse, routed=True,
                  attrs=dict(experts=moe.num_experts, top_k=moe.experts_per_token))
        if moe.shared_expert_intermediate_size:
            self._ffn("shared_expert.", T, moe.shared_expert_intermediate_size // tp, sparse)
        self.stream("moe.combine", "elementwise", T, h, 1.0 + moe.experts_per_token,
                    top_k=moe.experts_per_token, num_experts=moe.num_experts)

    def _ffn(self, prefix: str, T: Num, ffn: int, sparse: frozenset[str], *, routed: bool = False,
             attrs: dict[str, Any] | None = None) -> None:
        """Gated FFN (gate, up, activation, down) over the step's T tokens (routed experts: top_k rows each)."""
        h, attrs = self.spec.hidden_size, attrs or {}
        per_token = self.spec.moe.experts_per_token if routed else 1
        for kind in ("gate_proj", "up_proj"):
            self.linear(prefix + kind, kind, ffn, h, sparse=kind in sparse, parallel="column", routed=routed,
                        **attrs)
        self.stream(prefix + "activation", "elementwise", T * per_token, ffn, 3.0,
                    function=self.spec.mlp_activation, gated=True)
        if "down_proj" in sparse:
            self.prune(prefix + "mlp_mid", self.sparse_rows * per_token, ffn)
        self.quantize(prefix + "mlp_mid", T * per_token, ffn, ("down_proj",), sparse, self.sparse_rows * per_token)
        self.linear(prefix + "down_proj", "down_proj", h, ffn, sparse="down_proj" in sparse, parallel="row",
                    routed=routed, **attrs)
