"""predict() and the vectorized step_seconds(): consistency, agreement, scenarios."""
import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound
from ampersim.hardware.registry import load_profile
from ampersim.models.registry import load_model_spec
from ampersim.sim.predict import compare_patterns, comparison_patterns, compile_step, predict, step_seconds
from ampersim.sim.scenario import DEFAULT_SCENARIO, Scenario, list_scenarios, load_scenario


@pytest.mark.parametrize("profile,model,pattern,policy,tp,dtype", [
    ("a100", "llama-3.1-8b", "8:16", "amber", 1, "bf16"),
    ("h100-sxm", "llama-3.1-8b", "2:4", "all", 2, "fp8"),
    ("h100-sxm", "qwen3-30b-a3b", "2:4", "amber", 1, "bf16"),
    ("mi300x", "gemma-3-270m", "2:4", "all", 1, "bf16"),
    ("h100-sxm-nm816", "llama-3.1-70b", "8:16", "amber", 4, "bf16"),
])
def test_step_seconds_agrees_with_predict_for_equal_lengths(profile, model, pattern, policy, tp, dtype):
    hw = load_profile(profile)
    base = Scenario(name="t", model=model, prompt_tokens=1, pattern=pattern, policy=policy, tp=tp, dtype=dtype)
    lengths, batches = np.array([1, 17, 512, 3000, 8192]), np.array([1, 3, 8, 2, 1])
    dense, sparse = step_seconds(hw, base, lengths * batches, batches * lengths**2)
    for i, (n, b) in enumerate(zip(lengths, batches)):
        p = predict(hw, base.with_overrides(prompt_tokens=int(n), batch=int(b)))
        assert dense[i] == pytest.approx(p.dense_total_s, rel=1e-12)
        assert sparse[i] == pytest.approx(p.sparse_total_s, rel=1e-12)


def test_step_seconds_agrees_for_a_length_mix_given_num_seqs():
    hw = load_profile("h100-sxm")
    chat = load_scenario("chat")
    lengths = np.array(chat.sequence_lengths())
    p = predict(hw, chat)
    dense, sparse = step_seconds(hw, chat, lengths.sum(), (lengths**2).sum(), num_seqs=len(lengths))
    assert float(dense) == pytest.approx(p.dense_total_s, rel=1e-12)
    assert float(sparse) == pytest.approx(p.sparse_total_s, rel=1e-12)


def test_step_seconds_shapes_and_monotonicity():
    hw = load_profile("a100")
    scen = load_scenario(DEFAULT_SCENARIO)
    T = np.array([[512.0, 1024.0], [4096.0, 16384.0]])
    dense, sparse = step_seconds(hw, scen, T, T**2)
    assert dense.shape == sparse.shape == (2, 2)
    assert np.all(np.diff(dense.ravel()) > 0)
    many = np.linspace(256, 32768, 500)
    d, _ = step_seconds(hw, scen, many, many**2)
    assert np.all(np.diff(d) > 0)
    with pytest.raises(InvalidArgument):
        step_seconds(hw, scen, np.array([0.0]), np.array([0.0]))


def test_prediction_totals_are_consistent():
    p = predict(load_profile("h100"), load_scenario("chat").with_overrides(pattern="2:4"))
    assert p.tokens == 4 * 512 + 2 * 1024 + 2 * 2048 and p.batch == 8
    assert p.dense_total_s == pytest.approx(sum(op.dense_s * op.count for op in p.ops), rel=1e-12)
    assert p.sparse_total_s == pytest.approx(sum(op.sparse_s * op.count for op in p.ops), rel=1e-12)
    assert p.speedup == pytest.approx(p.dense_total_s / p.sparse_total_s)
    assert p.ttft_sparse_s == p.sparse_total_s and p.tokens_per_s_dense == pytest.approx(p.tokens / p.dense_total_s)
    assert p.coverage == pytest.approx(0.5613, abs=1e-4)
    assert p.native and p.runs_as == "2:4" and p.prune_impl == "fused_cslt"
    assert p.ops[-1].name == "lm_head" and p.ops[-1].M == 8


def test_weights_memory_check():
    scen = load_scenario("rag-long-prompt")  # llama-3.1-70b, tp 4
    fits = predict(load_profile("h100"), scen)
    assert fits.fits_memory and fits.weights_gb_per_gpu == pytest.approx(70.55e9 * 2 / 4 / 1e9, rel=1e-3)
    small = predict(load_profile("l4"), scen)
    assert not small.fits_memory and "35.3 GB per GPU, more than the 24 GB of l4" in small.note


def test_policy_none_has_no_sparse_cost():
    p = predict(load_profile("h100"), load_scenario(DEFAULT_SCENARIO).with_overrides(policy="none"))
    assert p.coverage == 0 and p.speedup == 1.0 and "sparsifies no linear layer" in p.note


def test_comparison_patterns():
    a100, scen = load_profile("a100"), load_scenario(DEFAULT_SCENARIO)
    assert comparison_patterns(a100, scen) == ["2:4", "8:16"]
    hypo = load_profile("h100-sxm-nm816")
    native = [str(p) for p in hypo.native_patterns("bf16")]
    assert "8:16" in native
    assert comparison_patterns(hypo, scen.with_overrides(pattern="1:4")) == [*native, "1:4"]
    rows = compare_patterns(a100, scen)
    assert [r.pattern for r in rows] == ["2:4", "8:16"]
    assert rows[0].speedup > 1 > rows[1].speedup


def test_compile_step_resolves_once():
    step = compile_step(load_profile("l4"), load_scenario("chat"))
    assert step.policy.name == "amber" and step.execution.native is None
    d, s = step.seconds(np.array([8192.0]), np.array([8192.0**2 / 4]))
    assert d.shape == (1,) and s[0] > d[0]


def test_shipped_scenarios():
    names = [s.name for s in list_scenarios()]
    assert {"chat", "rag-long-prompt", "batch-summarization", DEFAULT_SCENARIO} <= set(names)
    for scen in list_scenarios():
        load_model_spec(scen.model)
        assert len(scen.sequence_lengths()) == scen.batch
    assert load_scenario("chat").sequence_lengths() == [512] * 4 + [1024] * 2 + [2048] * 2
    assert load_scenario("rag-long-prompt").sequence_lengths() == [8192, 8192, 16384, 32768]
    default = load_scenario(DEFAULT_SCENARIO)
    assert (default.model, default.dtype, default.batch, default.prompt_tokens) == ("llama-3.1-8b", "bf16", 1, 4096)


def test_largest_remainder_apportionment():
    mix = [{"tokens": 100, "share": 0.5}, {"tokens": 200, "share": 0.3}, {"tokens": 300, "share": 0.2}]
    assert Scenario(name="m", model="x", batch=3, prompt_tokens=mix).sequence_lengths() == [100, 200, 300]
    assert Scenario(name="m", model="x", batch=1, prompt_tokens=mix).sequence_lengths() == [100]
    assert Scenario(name="m", model="x", batch=10, prompt_tokens=mix).sequence_lengths() == [100] * 5 + [200] * 3 + [300] * 2


def test_scenario_errors(tmp_path):
    with pytest.raises(NotFound, match="unknown workload 'chatt' \\(did you mean: chat"):
        load_scenario("chatt")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nmodel: llama-3.1-8b\nprompt_tokens:\n  - {tokens: 10, share: 0.5}\n  - {tokens: 20, share: 0.2}\n")
    with pytest.raises(InvalidData, match=r"bad.yaml:\d+: field 'prompt_tokens': shares must sum to 1; got 0.7"):
        load_scenario(bad)
    bad.write_text("name: b\nmodel: llama-3.1-8b\nprompt_tokens: 100\npattern: '3:2'\n")
    with pytest.raises(InvalidData, match=r"bad.yaml:4: field 'pattern'.*N:M"):
        load_scenario(bad)
    scen = load_scenario("chat")
    for value in (0, -1):
        with pytest.raises(InvalidArgument, match="^prompt_tokens: .*> 0") as info:
            scen.with_overrides(prompt_tokens=value)
        assert info.value.field == "prompt_tokens"
    with pytest.raises(InvalidArgument, match="^batch: ") as info:
        scen.with_overrides(batch=0)
    assert info.value.field == "batch"
    with pytest.raises(InvalidArgument, match="^pattern: invalid N:M pattern 'a:b'") as info:
        scen.with_overrides(pattern="a:b")
    assert info.value.field == "pattern"


def test_timing_note_says_what_the_times_mean():
    moe = predict(load_profile("h200-calibrated"), Scenario(name="t", model="qwen3-30b-a3b", prompt_tokens=4096,
                                                            pattern="2:4", policy="amber"))
    assert moe.timing_note.startswith("GPU time: kernels back to back as in CUDA-graph replay")
    assert "rebuilds its cuSPARSELt plan on the CPU" in moe.timing_note
    assert "one sparse GEMM launch per group" in moe.timing_note
    dense_only = predict(load_profile("h100-sxm"), Scenario(name="t", model="llama-3.1-8b", prompt_tokens=4096,
                                                            pattern="8:16", policy="amber"))
    assert "cuSPARSELt" not in dense_only.timing_note  # 8:16 runs as masking + dense GEMMs on H100


def test_decode_side_of_a_workload_with_outputs():
    p = predict(load_profile("h100"), load_scenario("chat").with_overrides(pattern="2:4"))
    assert p.output_tokens == [211] * 8 and p.decode.batch == 8
    assert all(op.dense_s == op.sparse_s for op in p.decode.ops)  # decode stays dense
    assert not any(op.kind in ("sparse_gemm", "prune") for op in p.decode.ops)
    assert p.decode.context_tokens == [x + 105 for x in p.tokens_per_seq]
    assert p.decode.tokens_per_s == pytest.approx(8 / p.decode.step_s)
    r = p.request
    assert r.e2e_dense_s == pytest.approx(p.ttft_dense_s + r.decode_s)
    assert r.e2e_sparse_s == pytest.approx(p.ttft_sparse_s + r.decode_s)
    assert r.tpot_s == pytest.approx(r.decode_s / 210) and 1 < r.e2e_speedup < p.speedup
    assert r.prefill_share == pytest.approx(p.ttft_dense_s / r.e2e_dense_s)
    assert {m.mixed for m in p.mixed_steps} == {"split", "prune_all", "separate"}
    by = {m.mixed: m for m in p.mixed_steps}
    assert by["prune_all"].sparse_s < by["split"].sparse_s < by["split"].dense_s


def test_prefill_only_workload_has_no_decode_side():
    p = predict(load_profile("h100"), load_scenario(DEFAULT_SCENARIO))
    assert p.output_tokens == [0] and p.decode is None and p.request is None and p.mixed_steps is None


def test_scenario_output_lengths_are_validated(tmp_path):
    from ampersim.core.errors import InvalidData

    base = "name: w\nmodel: llama-3.1-8b\nprompt_tokens: 512\n"
    good = tmp_path / "good.yaml"
    good.write_text(base + "output_tokens: {lognormal: {mean: 120, sigma: 0.5, max: 900}}\n"
                    "output_source: 'assumed: a test'\n")
    assert load_scenario(good).mean_output_tokens() == 120
    for bad, match in (("output_tokens: -5\n", r"bad.yaml:4: field 'output_tokens'.*must be >= 0"),
                       ("output_tokens: [{tokens: 10, share: 0.4}]\n", "shares must sum to 1"),
                       ("output_tokens: 10\noutput_source: somewhere\n", "field 'output_source'")):
        path = tmp_path / "bad.yaml"
        path.write_text(base + bad)
        with pytest.raises(InvalidData, match=match):
            load_scenario(path)
