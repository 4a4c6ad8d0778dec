"""The op graph: shapes, FLOPs, layer grouping, MoE routing, attention, tensor parallelism."""
import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.models.registry import load_model_spec
from ampersim.models.spec import ModelSpec
from ampersim.sim.graph import BatchShape, build_graph, experts_touched, graph_for_shape
from ampersim.sparsity.policy import resolve_policy


def _spec(name):
    return load_model_spec(name)


def _total(ops, field, kinds):
    return sum(getattr(op, field) * op.count for op in ops if op.kind in kinds)


def test_llama_gemm_shapes_and_flops():
    spec = _spec("llama-3.1-8b")
    ops = build_graph(spec, resolve_policy("amber", spec), 4096, 1, "bf16", 1)
    by = {(op.name, op.layer): op for op in ops}
    q = by[("q_proj", 0)]
    assert (q.kind, q.M, q.N, q.K, q.count) == ("sparse_gemm", 4096, 4096, 4096, 27)
    assert q.flops == 2 * 4096 * 4096 * 4096
    assert q.bytes == (4096 * 4096 * 3) * 2  # X, W, Y in bf16
    assert by[("q_proj", 19)].kind == "gemm" and by[("q_proj", 19)].layers == (19, 21, 28, 30, 31)
    assert by[("down_proj", 0)].K == 14336 and by[("up_proj", 0)].kind == "gemm"
    lm = by[("lm_head", None)]
    assert (lm.M, lm.N, lm.K) == (1, 128256, 4096)  # last token of the one sequence
    linear_flops = _total(ops, "flops", ("gemm", "sparse_gemm"))
    assert linear_flops == 2 * 4096 * 32 * 218_103_808 + 2 * 1 * 4096 * 128256


def test_prune_ops_once_per_activation():
    spec = _spec("llama-3.1-8b")
    amber = build_graph(spec, resolve_policy("amber", spec), 512, 2, "bf16", 1)
    names = {(op.name, op.layer) for op in amber if op.kind == "prune"}
    assert names == {("prune.attn_in", 0), ("prune.mlp_in", 0), ("prune.mlp_mid", 0), ("prune.mlp_mid", 19)}
    every = build_graph(spec, resolve_policy("all", spec), 512, 2, "bf16", 1)
    prunes = [op for op in every if op.kind == "prune"]
    assert [op.name for op in prunes] == ["prune.attn_in", "prune.attn_out", "prune.mlp_in", "prune.mlp_mid"]
    assert all(op.count == 32 and op.M == 1024 for op in prunes)
    assert prunes[3].K == 14336 and prunes[3].bytes == 1024 * 14336 * 2
    dense = build_graph(spec, resolve_policy("none", spec), 512, 2, "bf16", 1)
    assert not any(op.sparse for op in dense) and len({op.layers for op in dense if op.layers}) == 1


def test_attention_causal_flops_per_sequence():
    spec = _spec("llama-3.1-8b")
    lengths = [100, 300, 1000]
    ops = build_graph(spec, resolve_policy("none", spec), lengths, 3, "bf16", 1)
    att = next(op for op in ops if op.kind == "attention")
    pairs = sum(n * (n + 1) / 2 for n in lengths)
    assert att.flops == 4 * 32 * 128 * pairs
    assert att.M == 1400 and att.N == pytest.approx(pairs / 1400)
    assert att.attrs["seq_lens"] == lengths and att.attrs["kv_heads"] == 8
    lm = next(op for op in ops if op.name == "lm_head")
    assert lm.M == 3


def test_sliding_window_layers():
    spec = _spec("gemma-3-270m")
    ops = build_graph(spec, resolve_policy("none", spec), 2048, 1, "bf16", 1)
    att = [op for op in ops if op.kind == "attention"]
    local = [op for op in att if op.attrs["window"] is not None]
    full = [op for op in att if op.attrs["window"] is None]
    assert sum(op.count for op in att) == spec.num_layers
    assert sum(op.count for op in full) == sum(spec.is_global_attention(i) for i in range(spec.num_layers))
    w = spec.sliding_window
    pairs_local = w * (w + 1) / 2 + (2048 - w) * w
    heads_hd = spec.num_heads * spec.head_dim
    assert local[0].flops == pytest.approx(4 * heads_hd * pairs_local)
    assert full[0].flops == pytest.approx(4 * heads_hd * 2048 * 2049 / 2)
    assert {op.name for op in ops if op.layer == 0} >= {"post_attn_norm", "post_ffn_norm", "q_norm", "k_norm"}


def test_moe_expert_flops_match_top_k():
    spec = _spec("qwen3-30b-a3b")
    T = 8192
    ops = build_graph(spec, resolve_policy("none", spec), T, 1, "bf16", 1)
    experts = [op for op in ops if op.name in ("gate_proj", "up_proj", "down_proj")]
    h, ffn, k, E = 2048, 768, 8, 128
    touched = E * (1 - (1 - k / E) ** T)
    for op in experts:
        assert op.groups == pytest.approx(touched)
        assert op.M * op.groups == pytest.approx(T * k)  # expected tokens per expert × experts hit
        assert op.flops == pytest.approx(2 * T * k * h * ffn)  # each token runs k experts
    router = next(op for op in ops if op.name == "router")
    assert (router.M, router.N, router.K) == (T, 128, 2048)
    # expert FLOPs per token are top_k / num_experts of running every expert on every token
    all_experts = 3 * 2 * T * E * h * ffn
    assert sum(op.flops for op in experts) / all_experts == pytest.approx(k / E)


def test_experts_touched():
    assert experts_touched(1, 128, 8) == pytest.approx(8)
    assert experts_touched(10**6, 128, 8) == pytest.approx(128)
    assert experts_touched(16, 128, 8) == pytest.approx(128 * (1 - (120 / 128) ** 16))


def test_tensor_parallel_splits_and_allreduces():
    spec = _spec("llama-3.1-70b")
    pol = resolve_policy("amber", spec)
    one = {op.name: op for op in build_graph(spec, pol, 1024, 1, "bf16", 1) if op.layer in (0, None)}
    four_ops = build_graph(spec, pol, 1024, 1, "bf16", 4)
    four = {op.name: op for op in four_ops if op.layer in (0, None)}
    assert four["q_proj"].N == one["q_proj"].N / 4 and four["q_proj"].K == one["q_proj"].K
    assert four["o_proj"].K == one["o_proj"].K / 4 and four["o_proj"].N == one["o_proj"].N
    assert four["down_proj"].K == one["down_proj"].K / 4
    assert four["attention"].flops == one["attention"].flops / 4
    assert four["lm_head"].N == one["lm_head"].N / 4
    assert four["prune.mlp_mid"].K == one["prune.mlp_mid"].K / 4
    assert four["prune.attn_in"].K == one["prune.attn_in"].K  # column-parallel input is replicated
    reduces = [op for op in four_ops if op.kind == "allreduce"]
    assert sum(op.count for op in reduces) == 2 * spec.num_layers + 1
    assert all(op.bytes == 1024 * spec.hidden_size * 2 for op in reduces)
    assert not any(op.kind == "allreduce" for op in one.values())


def test_tp_must_divide_heads():
    spec = _spec("llama-3.1-8b")
    with pytest.raises(InvalidArgument, match=r"^tp 3 does not divide the attention heads of llama-3.1-8b \(32\); allowed tp: 1, 2, 4, 8") as info:
        build_graph(spec, resolve_policy("none", spec), 128, 1, "bf16", 3)
    assert info.value.field == "tp"
    with pytest.raises(InvalidArgument, match="KV heads"):
        build_graph(spec, resolve_policy("none", spec), 128, 1, "bf16", 16)


def test_bad_lengths_and_pattern_alignment():
    spec = _spec("llama-3.1-8b")
    pol = resolve_policy("amber", spec)
    for tokens in (0, -3):
        with pytest.raises(InvalidArgument, match="tokens_per_seq must be > 0") as info:
            build_graph(spec, pol, tokens, 1, "bf16", 1)
        assert info.value.field == "tokens_per_seq"
    with pytest.raises(InvalidArgument, match="batch must be > 0") as info:
        build_graph(spec, pol, 128, 0, "bf16", 1)
    assert info.value.field == "batch"
    odd = ModelSpec.model_validate({**spec.model_dump(), "name": "odd", "intermediate_size": 1000})
    with pytest.raises(InvalidArgument, match=r"multiple of 16; layers.0.down_proj of odd has 1000") as info:
        resolve_policy("amber", odd)  # the one pattern check: every command resolves its policy first
    assert info.value.field == "pattern"
    build_graph(odd, resolve_policy("amber", odd, "2:4"), 64, 1, "bf16", 1)  # 1000 % 4 == 0: fine
    with pytest.raises(InvalidArgument, match=r"layers.0.down_proj of odd has 500 per GPU \(tp 2\)"):
        build_graph(odd, resolve_policy("amber", odd, "1:8"), 64, 1, "bf16", 2)  # 1000 % 8 == 0, 500 % 8 != 0


def test_vectorized_graph_matches_scalar_graph():
    spec = _spec("gemma-3-270m")
    pol = resolve_policy("all", spec)
    lengths = np.array([64, 700, 4096])
    vec = graph_for_shape(spec, pol, BatchShape.from_moments(2 * lengths, 2 * lengths**2), "bf16", 1)
    for i, n in enumerate(lengths):
        scalar = build_graph(spec, pol, int(n), 2, "bf16", 1)
        assert [op.name for op in vec] == [op.name for op in scalar]
        for v, s in zip(vec, scalar):
            for field in ("M", "N", "K", "flops", "bytes", "groups"):
                assert np.broadcast_to(getattr(v, field), lengths.shape)[i] == pytest.approx(getattr(s, field), rel=1e-12)


def test_batch_shape_checks():
    with pytest.raises(InvalidArgument, match="total_tokens must be > 0"):
        BatchShape.from_moments(np.array([0.0]), np.array([0.0]))
    with pytest.raises(InvalidArgument, match="sum_sq_tokens"):
        BatchShape.from_moments(np.array([100.0]), np.array([50.0]))
    shape = BatchShape.from_moments(np.array([300.0]), np.array([100.0**2 * 3]))
    assert shape.seqs[0] == pytest.approx(3.0)
