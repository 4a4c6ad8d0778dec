"""Decode and mixed steps: the graph, the compiled step costs that equal it, and the physical floors."""

import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import DTYPE_BYTES
from ampersim.hardware.registry import list_profiles, load_profile
from ampersim.models.registry import load_model_spec
from ampersim.sim.cost import OpColumns, attention_peak_tflops, cost_graph
from ampersim.sim.execution import sparse_execution
from ampersim.sim.graph import BatchShape, DecodeShape, StepShape, build_graph, graph_for_step
from ampersim.sim.steps import step_costs
from ampersim.sparsity.policy import resolve_policy


def _setup(profile="h100-sxm", model="llama-3.1-8b", pattern="2:4"):
    hw, spec = load_profile(profile), load_model_spec(model)
    policy = resolve_policy("amber", spec, pattern)
    return hw, spec, policy, sparse_execution(hw, "bf16", policy.pattern)


def _cost(ops, hw, execution, tp=1):
    cols = OpColumns.from_ops(ops)
    dense, sparse = cost_graph(cols, hw, "bf16", execution, tp).totals(cols.count)
    return float(dense[0]), float(sparse[0])


def test_decode_step_graph_is_dense_and_reads_the_kv_cache():
    hw, spec, policy, _ = _setup()
    contexts = [1000, 3000]
    ops = graph_for_step(spec, policy, StepShape(decode=DecodeShape.from_contexts(contexts)), "bf16", 1)
    assert not any(op.sparse or op.kind == "prune" for op in ops)
    assert len({op.layers for op in ops if op.layers}) == 1  # decode layers differ only by window
    att = next(op for op in ops if op.kind == "decode_attention")
    assert att.M == 2 and att.N == 2000 and att.count == 32
    assert att.flops == 4 * 32 * 128 * 4000
    assert att.bytes == 2 * (2 * 4096) * 2 + 4000 * (2 * 1024) * 2  # Q in, O out; K and V of every cached token
    lm = next(op for op in ops if op.name == "lm_head")
    assert lm.M == 2 and next(op for op in ops if op.name == "q_proj").M == 2


def test_prefill_step_unchanged_and_chunks_read_their_prefix():
    hw, spec, policy, _ = _setup()
    whole = graph_for_step(spec, policy, StepShape(prefill=BatchShape.from_lengths([300, 500])), "bf16", 1)
    assert [(op.name, op.bytes, op.flops) for op in whole] == \
        [(op.name, op.bytes, op.flops) for op in build_graph(spec, policy, [300, 500], 2, "bf16", 1)]
    chunk = graph_for_step(spec, policy, StepShape(prefill=BatchShape.from_chunks([(1000, 200)])), "bf16", 1)
    att = next(op for op in chunk if op.kind == "attention")
    pairs = sum(1000 + j for j in range(1, 201))
    assert att.flops == 4 * 32 * 128 * pairs and att.N == pytest.approx(pairs / 200)
    assert att.bytes == 200 * (2 * 4096) * 2 + 1200 * (2 * 1024) * 2
    assert att.attrs["cached_lens"] == [1000]


def test_mixed_step_split_runs_decode_rows_dense_on_the_sparse_path():
    hw, spec, policy, execution = _setup()
    step = StepShape(prefill=BatchShape.from_lengths([2000]), decode=DecodeShape.from_contexts([500] * 16))
    split = graph_for_step(spec, policy, step, "bf16", 1, mixed="split")
    q = [op for op in split if op.layer == 0 and op.name.startswith("q_proj")]
    assert [(op.name, op.kind, op.M, op.path) for op in q] == [
        ("q_proj", "gemm", 2016, "dense"), ("q_proj", "sparse_gemm", 2000, "sparse"),
        ("q_proj.decode_rows", "gemm", 16, "sparse")]
    assert next(op for op in split if op.name == "prune.attn_in").M == 2000
    every = graph_for_step(spec, policy, step, "bf16", 1, mixed="prune_all")
    assert next(op for op in every if op.name == "prune.attn_in").M == 2016
    d_split, s_split = _cost(split, hw, execution)
    d_all, s_all = _cost(every, hw, execution)
    assert d_split == pytest.approx(d_all)  # the dense path is one mixed step either way
    assert s_all < s_split < d_split  # pruning decode rows too is faster, and an accuracy risk
    with pytest.raises(InvalidArgument, match="separate"):
        graph_for_step(spec, policy, step, "bf16", 1, mixed="separate")


@pytest.mark.parametrize("profile,model,pattern,tp", [("h100-sxm", "llama-3.1-8b", "2:4", 1),
                                                      ("h200", "gemma-3-270m", "2:4", 1),
                                                      ("h100-sxm", "qwen3-30b-a3b", "2:4", 2),
                                                      ("a100", "llama-3.1-8b", "8:16", 2),
                                                      ("h200-calibrated", "llama-3.1-8b", "2:4", 1)])
def test_compiled_step_costs_equal_the_graph(profile, model, pattern, tp):
    hw, spec, policy, execution = _setup(profile, model, pattern)
    costs = step_costs(hw, spec, policy, execution, "bf16", tp, 2048)
    rng = np.random.default_rng(0)
    for _ in range(25):
        chunks = [(int(rng.integers(0, 5000)), int(rng.integers(1, 400))) for _ in range(rng.integers(0, 3))]
        contexts = [int(rng.integers(1, 6000)) for _ in range(rng.integers(0 if chunks else 1, 60))]
        step = StepShape(prefill=BatchShape.from_chunks(chunks) if chunks else None,
                         decode=DecodeShape.from_contexts(contexts) if contexts else None)
        for mixed in ("split", "prune_all"):
            dense, sparse = _cost(graph_for_step(spec, policy, step, "bf16", tp, mixed=mixed), hw, execution, tp)
            assert costs.seconds(chunks, contexts, "dense", mixed)[0] == pytest.approx(dense, rel=1e-12)
            assert costs.seconds(chunks, contexts, "sparse", mixed)[0] == pytest.approx(sparse, rel=1e-12)


def test_decode_part_alone_is_the_decode_only_step():
    hw, spec, policy, execution = _setup()
    costs = step_costs(hw, spec, policy, execution, "bf16", 1, 2048)
    contexts = [700, 1800, 2500]
    total, alone = costs.seconds([(0, 1500)], contexts)
    assert alone == pytest.approx(costs.seconds([], contexts)[0]) and total > alone


def _floor_s(ops, hw, path):
    """Bytes at peak bandwidth, FLOPs at peak compute, summed over the ops that run on ``path``."""
    nbytes = flops = 0.0
    dense_peak = hw.matrix["bf16"].dense_tflops.value * 1e12
    sparse_peak = max((v.value for v in hw.matrix["bf16"].sparse_tflops.values()), default=dense_peak / 1e12) * 1e12
    att_peak = attention_peak_tflops(hw, "bf16") * 1e12
    for op in ops:
        if op.path not in ("both", path) or (op.kind == "prune" and path == "dense"):
            continue
        weights = op.groups * op.N * op.K * DTYPE_BYTES[op.dtype] if op.kind in ("gemm", "sparse_gemm") else 0
        nbytes += op.count * (weights if (op.kind == "sparse_gemm" and path == "sparse") else op.bytes)
        peak = att_peak if "attention" in op.kind else (
            sparse_peak if (op.kind == "sparse_gemm" and path == "sparse") else dense_peak)
        flops += op.count * op.flops / peak
    return max(nbytes / (hw.memory.bandwidth_gbps.value * 1e9), flops)


@pytest.mark.parametrize("profile", [p.name for p in list_profiles(include_calibrated=True)])
def test_no_step_beats_its_physical_floor(profile):
    """Every step (decode, mixed, prefill; both paths) takes at least its bytes at peak bandwidth and its
    FLOPs at peak compute."""
    hw = load_profile(profile)
    for model, pattern in (("llama-3.1-8b", "2:4"), ("qwen3-30b-a3b", "2:4"), ("gemma-3-270m", "8:16")):
        spec = load_model_spec(model)
        policy = resolve_policy("amber", spec, pattern)
        execution = sparse_execution(hw, "bf16", policy.pattern)
        for step in (StepShape(decode=DecodeShape.from_contexts([4096])),
                     StepShape(decode=DecodeShape.from_contexts([2000] * 256)),
                     StepShape(prefill=BatchShape.from_chunks([(3000, 1024)]), decode=DecodeShape.from_contexts([900] * 64)),
                     StepShape(prefill=BatchShape.from_lengths([8192]))):
            ops = graph_for_step(spec, policy, step, "bf16", 1)
            dense, sparse = _cost(ops, hw, execution)
            assert dense >= _floor_s(ops, hw, "dense") and sparse >= _floor_s(ops, hw, "sparse")


def test_decode_bandwidth_floor_llama_8b_h100():
    """A batch-1 decode step at 4,096 tokens of context reads every weight but the embedding table (~15.0 GB)
    and the KV cache (0.54 GB): at 3.35 TB/s no step can take less than 4.64 ms."""
    hw, spec, policy, execution = _setup()
    ops = graph_for_step(spec, policy, StepShape(decode=DecodeShape.from_contexts([4096])), "bf16", 1)
    weights = (spec.num_parameters - spec.vocab_size * spec.hidden_size) * 2  # embedding gathers 1 row
    kv = 4096 * 2 * 32 * 8 * 128 * 2
    floor = (weights + kv) / 3.35e12
    assert floor == pytest.approx(4.64e-3, rel=0.01)
    assert _cost(ops, hw, execution)[0] > floor
