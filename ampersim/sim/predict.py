"""Predict a workload: scenario + profile -> op graph -> per-op dense and sparse times.

``predict`` gives the full per-op picture of the prefill step, and, for a workload with outputs,
the decode side: a decode step at the workload's batch and mid-generation context, op by op, and
the whole request (prefill, then one decode step per further output token, the batch decoding
together); plus the memory fit. ``step_seconds`` is the vectorized prefill path for sweeps (millions
of batch shapes per call). Both build the same graph with the same cost functions, so they agree
(exactly for equal-length batches; see BatchShape for mixes).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ampersim.core.patterns import NMPattern
from ampersim.core.schema import Frozen
from ampersim.core.vocab import MIXED_STEP_MODES, SPARSE_GEMM_IMPL_DESCRIPTIONS
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.spec import ModelSpec
from ampersim.sim.cost import BOUNDS, GraphCost, OpColumns, cost_graph
from ampersim.sim.engine import EngineConfig, engine_for
from ampersim.sim.execution import SparseExecution, sparse_execution
from ampersim.sim.graph import BatchShape, DecodeShape, Op, StepShape, build_graph, graph_for_shape, graph_for_step
from ampersim.sim.memory import MemoryFit, memory_fit, weights_gb_per_gpu
from ampersim.sim.scenario import Scenario
from ampersim.sparsity.coverage import coverage
from ampersim.sparsity.policy import SparsityPolicy, resolve_policy

PAPER_PATTERN = "8:16"
_CHUNK = 8192  # batch shapes costed per pass of the vectorized step model


class OpRow(Frozen):
    """One op of the prediction; times are per instance (one layer), ``count`` instances per step."""

    name: str
    kind: str
    layer: int | None
    layers: list[int]
    count: int
    M: float
    N: float
    K: float
    groups: float
    dense_s: float
    sparse_s: float
    bound: str
    sparse_bound: str


class DecodeStep(Frozen):
    """One decode step of the workload's batch (dense: decode is never sparsified)."""

    batch: int
    context_tokens: list[int]  # KV tokens each sequence attends to: prompt + half of its outputs
    step_s: float
    tokens_per_s: float        # batch / step_s
    ops: list[OpRow]


class RequestTimes(Frozen):
    """The whole request: the batch prefilled together, then decoded together (means over sequences)."""

    output_tokens: list[int]
    decode_s: float            # decode steps after the first token
    tpot_s: float              # decode_s / (outputs − 1)
    e2e_dense_s: float
    e2e_sparse_s: float
    e2e_speedup: float
    prefill_share: float       # of the dense request's time


class MixedStep(Frozen):
    """A step of the token budget holding the batch's decode tokens and a prefill chunk: dense (one mixed
    step, the baseline) vs the sparse path under each mode ('separate': a prefill step plus a decode step)."""

    mixed: str
    prefill_tokens: int
    decode_tokens: int
    dense_s: float
    sparse_s: float
    speedup: float


class Prediction(Frozen):
    """Dense vs sparse prefill of one step (per GPU of a tensor-parallel group), and the decode side."""

    profile: str
    model: str
    scenario: str
    tokens: int
    tokens_per_seq: list[int]
    batch: int
    pattern: str
    dtype: str
    tp: int
    policy: str
    scoring: str
    prune_impl: str
    sparse_gemm_impl: str
    native: bool
    runs_as: str | None
    coverage: float
    coverage_definition: str
    dense_total_s: float
    sparse_total_s: float
    speedup: float
    ttft_dense_s: float
    ttft_sparse_s: float
    tokens_per_s_dense: float
    tokens_per_s_sparse: float
    weights_gb_per_gpu: float
    fits_memory: bool
    note: str
    policy_note: str
    timing_note: str
    ops: list[OpRow]
    output_tokens: list[int]
    memory: MemoryFit
    max_concurrent_sequences: int  # of the workload's length (prompt + outputs) in one replica's KV cache
    max_concurrent_tokens: int
    decode: DecodeStep | None
    request: RequestTimes | None
    mixed_steps: list[MixedStep] | None


@dataclass(frozen=True)
class StepModel:
    """A scenario bound to a profile: everything but the batch shape is decided."""

    profile: HardwareProfile
    scenario: Scenario
    spec: ModelSpec
    policy: SparsityPolicy
    execution: SparseExecution

    def seconds(self, total_tokens, sum_sq_tokens, num_seqs=None) -> tuple[np.ndarray, np.ndarray]:
        """(dense_s, sparse_s) of steps with these token totals and squared-length sums (arrays)."""
        total, sum_sq = np.broadcast_arrays(np.asarray(total_tokens, float), np.asarray(sum_sq_tokens, float))
        flat_t, flat_s = total.ravel(), sum_sq.ravel()
        flat_n = None if num_seqs is None else np.broadcast_to(np.asarray(num_seqs, float), total.shape).ravel()
        dense, sparse = np.empty(flat_t.size), np.empty(flat_t.size)
        for start in range(0, flat_t.size, _CHUNK):  # chunks keep the (ops × points) arrays in cache
            part = slice(start, start + _CHUNK)
            shape = BatchShape.from_moments(flat_t[part], flat_s[part], None if flat_n is None else flat_n[part])
            ops = graph_for_shape(self.spec, self.policy, shape, self.scenario.dtype, self.scenario.tp)
            cols = OpColumns.from_ops(ops)
            dense[part], sparse[part] = cost_graph(cols, self.profile, self.scenario.dtype, self.execution,
                                                   self.scenario.tp).totals(cols.count)
        return dense.reshape(total.shape), sparse.reshape(total.shape)


def _load_spec(scenario: Scenario) -> ModelSpec:
    from ampersim.models.registry import load_model_spec  # owned by the data layer

    return load_model_spec(scenario.model)


def compile_step(profile: HardwareProfile, scenario: Scenario, *, prune_impl: str | None = None,
                 spec: ModelSpec | None = None, sparse_gemm_impl: str | None = None) -> StepModel:
    """Resolve model, policy and sparse path once (spec: an already-loaded ModelSpec;
    ``sparse_gemm_impl``: one of the profile's sparse-GEMM paths instead of its own)."""
    if sparse_gemm_impl is not None:
        profile = profile.with_sparse_gemm(sparse_gemm_impl)
    spec = spec or _load_spec(scenario)
    scenario.check_bounds(spec)
    policy = resolve_policy(scenario.policy, spec, scenario.pattern, scenario.scoring)
    execution = sparse_execution(profile, scenario.dtype, policy.pattern, prune_impl)
    return StepModel(profile, scenario, spec, policy, execution)


_CACHE: OrderedDict[tuple, StepModel] = OrderedDict()
_CACHE_SIZE = 64


def _cached_step(profile: HardwareProfile, scenario: Scenario, prune_impl: str | None,
                 spec: ModelSpec | None) -> StepModel:
    """compile_step memoized on object identity (the cache holds the objects, so ids stay unique)."""
    key = (id(profile), id(scenario), prune_impl, id(spec))
    step = _CACHE.get(key)
    if step is None or step.profile is not profile or step.scenario is not scenario:
        step = compile_step(profile, scenario, prune_impl=prune_impl, spec=spec)
        _CACHE[key] = step
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return step


def step_seconds(profile: HardwareProfile, scenario: Scenario, total_tokens, sum_sq_tokens, *,
                 num_seqs=None, prune_impl: str | None = None,
                 spec: ModelSpec | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized (dense_s, sparse_s) of prefill steps of ``scenario``'s model/dtype/tp/policy.

    total_tokens, sum_sq_tokens: arrays (broadcast together) of Σ lengths and Σ lengths² of the
    sequences in each step. num_seqs: sequences per step (lm_head rows); default Σ²/Σsq, exact for
    equal lengths. Sliding-window attention treats the step as equal sequences of length Σsq/Σ.
    Scenario batch/prompt_tokens are ignored.
    """
    return _cached_step(profile, scenario, prune_impl, spec).seconds(total_tokens, sum_sq_tokens, num_seqs)


def predict(profile: HardwareProfile, scenario: Scenario, *, prune_impl: str | None = None,
            spec: ModelSpec | None = None, sparse_gemm_impl: str | None = None,
            engine: EngineConfig | None = None) -> Prediction:
    """Per-op dense and sparse prediction of ``scenario`` on ``profile`` (``engine``: the serving
    engine whose limits size the memory fit; default: vLLM's for this GPU)."""
    step = compile_step(profile, scenario, prune_impl=prune_impl, spec=spec, sparse_gemm_impl=sparse_gemm_impl)
    profile = step.profile
    engine = engine or engine_for(profile)
    lengths = scenario.sequence_lengths()
    ops = build_graph(step.spec, step.policy, lengths, len(lengths), scenario.dtype, scenario.tp)
    rows, cost = _rows(ops, profile, scenario.dtype, step.execution, scenario.tp)
    dense_total, sparse_total = (float(t[0]) for t in cost.totals(np.array([op.count for op in ops], float)))
    tokens = sum(lengths)
    cover = coverage(step.spec, step.policy)
    note = step.execution.note if cover.fraction > 0 else f"policy '{step.policy.name}' sparsifies no linear layer"
    outputs = scenario.output_lengths() if scenario.has_outputs else [0] * len(lengths)
    fit = memory_fit(profile, step.spec, scenario.dtype, scenario.tp, engine)
    context = max(p + max(o, 1) - 1 for p, o in zip(lengths, outputs))
    needed = fit.needed_gb(sum(p + max(o, 1) - 1 for p, o in zip(lengths, outputs)))
    usable = fit.capacity_gb * fit.gpu_memory_utilization
    fits = needed <= usable
    weights_gb = weights_gb_per_gpu(step.spec, scenario.dtype, scenario.tp)
    if weights_gb > profile.memory.capacity_gb.value:
        note += (f"; the weights alone need {weights_gb:.1f} GB per GPU, more than the "
                 f"{profile.memory.capacity_gb.value:g} GB of {profile.name}: raise the tensor-parallel degree tp")
    elif not fits:
        note += (f"; weights, activations and the batch's KV cache need {needed:.1f} GB per GPU, more than the "
                 f"{usable:.1f} GB usable on {profile.name}: raise the tensor-parallel degree tp or shorten the batch")
    decode = request = mixed = None
    if scenario.has_outputs:
        decode = _decode_step(step, profile, lengths, outputs, engine)
        request = _request(step, profile, lengths, outputs, dense_total, sparse_total, engine)
        mixed = _mixed_steps(step, profile, lengths, outputs, engine)
    return Prediction(
        profile=profile.name, model=step.spec.name, scenario=scenario.name, tokens=tokens,
        tokens_per_seq=lengths, batch=len(lengths), pattern=str(step.policy.pattern), dtype=scenario.dtype,
        tp=scenario.tp, policy=step.policy.name, scoring=step.policy.scoring,
        prune_impl=step.execution.prune_impl_name, sparse_gemm_impl=profile.efficiency.sparse_gemm_impl,
        native=step.execution.native is not None,
        runs_as=str(step.execution.native) if step.execution.native else None, coverage=cover.fraction,
        coverage_definition=cover.definition,
        dense_total_s=dense_total, sparse_total_s=sparse_total, speedup=dense_total / sparse_total,
        ttft_dense_s=dense_total, ttft_sparse_s=sparse_total,
        tokens_per_s_dense=tokens / dense_total, tokens_per_s_sparse=tokens / sparse_total,
        weights_gb_per_gpu=weights_gb, fits_memory=fits,
        note=note, policy_note=step.policy.note, timing_note=timing_note(profile, step.execution, ops), ops=rows,
        output_tokens=outputs, memory=fit, max_concurrent_sequences=min(fit.max_sequences(context), engine.max_seqs),
        max_concurrent_tokens=fit.kv_tokens, decode=decode, request=request, mixed_steps=mixed,
    )


def _rows(ops: list[Op], profile: HardwareProfile, dtype: str, execution: SparseExecution,
          tp: int) -> tuple[list[OpRow], GraphCost]:
    cols = OpColumns.from_ops(ops)
    cost = cost_graph(cols, profile, dtype, execution, tp)
    rows = [
        OpRow(name=op.name, kind=op.kind, layer=op.layer, layers=list(op.layers), count=op.count,
              M=float(op.M), N=float(op.N), K=float(op.K), groups=float(op.groups),
              dense_s=float(cost.dense_s[i, 0]), sparse_s=float(cost.sparse_s[i, 0]),
              bound=_bound(cost.dense_bound[i, 0]), sparse_bound=_bound(cost.sparse_bound[i, 0]))
        for i, op in enumerate(ops)
    ]
    return rows, cost


def _decode_step(step: StepModel, profile: HardwareProfile, lengths: list[int], outputs: list[int],
                 engine: EngineConfig) -> DecodeStep:
    """The batch decoding at mid-generation: each sequence's prompt plus half its outputs in the cache."""
    contexts = [p + max(1, o // 2) for p, o in zip(lengths, outputs)]
    sc = step.scenario
    ops = graph_for_step(step.spec, step.policy, StepShape(decode=DecodeShape.from_contexts(contexts)), sc.dtype,
                         sc.tp, kv_dtype=engine.kv_dtype)
    rows, cost = _rows(ops, profile, sc.dtype, step.execution, sc.tp)
    total = float(cost.totals(np.array([op.count for op in ops], float))[0][0])
    return DecodeStep(batch=len(contexts), context_tokens=contexts, step_s=total, tokens_per_s=len(contexts) / total,
                      ops=rows)


def decode_step_seconds(step: StepModel, seqs: np.ndarray, context: np.ndarray,
                        kv_dtype: str | None = None) -> np.ndarray:
    """Vectorized time of decode steps of ``seqs`` sequences reading ``context`` keys in total."""
    sc = step.scenario
    ops = graph_for_step(step.spec, step.policy, StepShape(decode=DecodeShape(seqs, context)), sc.dtype, sc.tp,
                         kv_dtype=kv_dtype)
    cols = OpColumns.from_ops(ops)
    return cost_graph(cols, step.profile, sc.dtype, step.execution, sc.tp).totals(cols.count)[0]


def _request(step: StepModel, profile: HardwareProfile, lengths: list[int], outputs: list[int],
             dense_prefill: float, sparse_prefill: float, engine: EngineConfig) -> RequestTimes:
    """Prefill of the batch, then decode step g = 1 .. max(outputs) − 1 for the sequences still generating."""
    prompt, out = np.array(lengths, float), np.array(outputs)
    g = np.arange(1, max(out.max(), 2), dtype=float)
    live = out[None, :] > g[:, None]  # (steps, seqs)
    seqs = live.sum(axis=1).astype(float)
    context = (live * (prompt[None, :] + g[:, None])).sum(axis=1)
    steps = decode_step_seconds(step, seqs[seqs > 0], context[seqs > 0], engine.kv_dtype) if seqs.any() else []
    per_step = np.zeros(len(g))
    per_step[seqs > 0] = steps
    decode = np.array([per_step[: max(o - 1, 0)].sum() for o in out])  # each sequence's decode time
    tpot = np.array([d / (o - 1) for d, o in zip(decode, out) if o >= 2])
    e2e_dense, e2e_sparse = float((dense_prefill + decode).mean()), float((sparse_prefill + decode).mean())
    return RequestTimes(output_tokens=list(map(int, out)), decode_s=float(decode.mean()),
                        tpot_s=float(tpot.mean()) if len(tpot) else 0.0, e2e_dense_s=e2e_dense,
                        e2e_sparse_s=e2e_sparse, e2e_speedup=e2e_dense / e2e_sparse,
                        prefill_share=dense_prefill / e2e_dense)


def _mixed_steps(step: StepModel, profile: HardwareProfile, lengths: list[int], outputs: list[int],
                 engine: EngineConfig) -> list[MixedStep]:
    """One full step of the token budget: the batch's decode tokens at mid-generation plus a prefill chunk of
    the rest of the budget, under each mixed-step mode ('separate': a prefill step plus a decode step)."""
    sc = step.scenario
    contexts = [p + max(1, o // 2) for p, o in zip(lengths, outputs)]
    chunk = engine.max_batched_tokens - len(contexts)
    if chunk < 1:
        return []
    prefill, decode = BatchShape.from_lengths([chunk]), DecodeShape.from_contexts(contexts)

    def totals(shape: StepShape, mixed: str) -> tuple[float, float]:
        ops = graph_for_step(step.spec, step.policy, shape, sc.dtype, sc.tp, kv_dtype=engine.kv_dtype, mixed=mixed)
        cols = OpColumns.from_ops(ops)
        dense, sparse = cost_graph(cols, profile, sc.dtype, step.execution, sc.tp).totals(cols.count)
        return float(dense[0]), float(sparse[0])

    dense = totals(StepShape(prefill=prefill, decode=decode), "split")[0]  # the baseline always mixes
    out = []
    for mode in MIXED_STEP_MODES:
        if mode == "separate":
            sparse = totals(StepShape(prefill=prefill), mode)[1] + totals(StepShape(decode=decode), mode)[1]
        else:
            sparse = totals(StepShape(prefill=prefill, decode=decode), mode)[1]
        out.append(MixedStep(mixed=mode, prefill_tokens=chunk, decode_tokens=len(contexts), dense_s=dense,
                             sparse_s=sparse, speedup=dense / sparse))
    return out


def timing_note(profile: HardwareProfile, execution: SparseExecution, ops: list) -> str:
    """What the times mean: GPU time with kernels back to back (CUDA-graph replay), and how the
    sparse path's kernels run where that differs from what eager torch or a grouped kernel would do."""
    parts = ["GPU time: kernels back to back as in CUDA-graph replay (no host gaps between kernels)"]
    if execution.compressed and any(op.kind == "sparse_gemm" for op in ops):
        impl = profile.efficiency.sparse_gemm_impl
        parts.append(f"sparse GEMMs costed as {impl}: {SPARSE_GEMM_IMPL_DESCRIPTIONS[impl]}")
        parts.append("eager torch adds host time where _cslt_sparse_mm rebuilds its cuSPARSELt plan on the CPU "
                     "at every call: about 1 ms per sparse linear, measured with torch 2.11 on H200 and H100 "
                     "hosts (docs/validation.md), which makes eager 2:4 prefill CPU-bound until the GEMMs are long; "
                     "ampersim.runtime.sparse_linear keeps its plans and still spends ~180 µs of host time per "
                     "call (H200 host): eager Llama-3.1-8B was host-bound at 1024 tokens, GPU-bound from 4096 "
                     "(docs/gpu-pruner.md)")
    grouped = [op for op in ops if op.kind == "sparse_gemm" and np.any(np.asarray(op.groups) > 1)]
    if execution.compressed and grouped and not profile.efficiency.sparse_gemm.grouped:
        parts.append(f"grouped 2:4 GEMMs (MoE experts) run as one sparse GEMM launch per group: {profile.name} "
                     "has no grouped sparse kernel (torch has none)")
    return "; ".join(parts)


def _bound(code: int) -> str:
    return BOUNDS[code] if code >= 0 else "-"


def comparison_patterns(profile: HardwareProfile, scenario: Scenario) -> list[str]:
    """Patterns worth comparing: each native pattern of the dtype, the paper's 8:16, the scenario's."""
    out = [str(p) for p in profile.native_patterns(scenario.dtype)]
    for extra in (PAPER_PATTERN, str(NMPattern.parse(scenario.pattern))):
        if extra not in out:
            out.append(extra)
    return out


def compare_patterns(profile: HardwareProfile, scenario: Scenario, *, spec: ModelSpec | None = None) -> list[Prediction]:
    """One prediction per comparison pattern (scenario otherwise unchanged; default prune impls)."""
    spec = spec or _load_spec(scenario)
    return [predict(profile, scenario.with_overrides(pattern=p), spec=spec)
            for p in comparison_patterns(profile, scenario)]
