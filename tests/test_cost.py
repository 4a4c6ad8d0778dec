"""Cost model behaviour, with numbers: compute bounds, small M, 1/N compression overhead, waves, TP."""
import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument, NotFound
from ampersim.core.patterns import NMPattern
from ampersim.core.resources import data_dir
from ampersim.hardware.profile import HardwareProfile
from ampersim.hardware.registry import load_profile
from ampersim.models.registry import load_model_spec
from ampersim.sim.cost import gemm_terms, prune_terms, wave_efficiency
from ampersim.sim.execution import compressed_fraction, fits_native, sparse_execution
from ampersim.sim.predict import predict
from ampersim.sim.scenario import Scenario


def _scenario(**kw):
    base = dict(name="t", model="llama-3.1-8b", prompt_tokens=4096, pattern="2:4", policy="amber")
    return Scenario(**{**base, **kw})


def _changed(profile: HardwareProfile, **paths) -> HardwareProfile:
    """Copy of ``profile`` with dotted-path fields replaced (test fixtures only)."""
    data = profile.model_dump()
    for path, value in paths.items():
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return HardwareProfile.model_validate(data)


def _gemm(profile, M, N, K, sparse=False, groups=1.0, dtype="bf16"):
    eff = profile.efficiency
    ex = sparse_execution(profile, dtype, "2:4")
    return gemm_terms(np.asarray(M, float), np.asarray(N, float), np.asarray(K, float), groups,
                      peak_tflops=ex.sparse_tflops if sparse else profile.matrix[dtype].dense_tflops.value,
                      eff=eff.sparse_gemm if sparse else eff.dense_gemm,
                      compute_units=profile.compute_units.value, bandwidth_gbps=profile.memory.bandwidth_gbps.value,
                      memory_fraction=eff.memory_fraction.value, in_bytes=2, out_bytes=2,
                      a_fraction=ex.compressed_fraction if sparse else 1.0)


@pytest.mark.parametrize("name", ["a100", "h100-sxm", "h200", "b200", "mi300x", "l4", "rtx4090"])
def test_sparse_never_beats_its_compute_bound(name):
    profile = load_profile(name)
    M, N, K = np.meshgrid([16, 128, 1000, 4096, 16384], [1024, 4096, 14336], [1024, 4096, 14336])
    sparse = _gemm(profile, M, N, K, sparse=True).seconds()
    peak = profile.matrix["bf16"].sparse_tflops["2:4"].value * 1e12  # dense-equivalent
    flops = 2.0 * M * N * K
    assert np.all(sparse >= flops / peak)
    assert np.all(sparse >= flops * 0.5 / peak)  # the weaker form: only the kept half of the MACs
    dense = _gemm(profile, M, N, K).seconds()
    assert np.all(dense >= flops / (profile.matrix["bf16"].dense_tflops.value * 1e12))


def test_small_m_gets_no_speedup():
    profile = load_profile("h100-sxm")
    for N, K in ((4096, 4096), (14336, 4096), (4096, 14336)):
        dense = _gemm(profile, 16, N, K).seconds()
        sparse = _gemm(profile, 16, N, K, sparse=True).seconds()
        assert sparse >= dense  # weight-read bound: sparsifying 16 activation rows saves nothing
    result = predict(profile, _scenario(prompt_tokens=16))
    assert result.speedup < 1.0
    big = predict(profile, _scenario(prompt_tokens=8192))
    assert big.speedup > 1.05


def test_compression_overhead_scales_as_one_over_n_exactly():
    # Idealised fixture: one compute unit, no overheads, no small-M ramp: the GEMM is pure compute.
    base = load_profile("a100")
    profile = _changed(base, **{"compute_units.value": 1, "efficiency.dense_gemm.m_half.value": 1e-9,
                                "efficiency.dense_gemm.overhead_us.value": 0.0})
    impl = profile.prune_impls["fused_cslt"]
    bw = profile.memory.bandwidth_gbps.value
    ratios = {}
    for M in (2048, 8192):
        for N in (1024, 4096, 16384):
            for K in (2048, 8192):
                gemm = _gemm(profile, M, N, K).seconds()
                prune = prune_terms(M * K * 2.0, impl, bandwidth_gbps=bw, kernel_overhead_us=0.0).seconds()
                ratios[(M, N, K)] = float(prune / gemm)
    # prune/gemm = bytes_per_input_byte · 2 B · peak · peak_fraction / (2 N · bandwidth · bandwidth_fraction)
    expected = (impl.bytes_per_input_byte.value * 2 * 312e12 * 0.8
                / (2 * bw * 1e9 * impl.bandwidth_fraction.value))
    for (_M, N, _K), ratio in ratios.items():
        assert ratio * N == pytest.approx(expected, rel=1e-9)  # independent of M and K, ∝ 1/N
    assert ratios[(2048, 1024, 2048)] / ratios[(2048, 4096, 2048)] == pytest.approx(4.0)


def test_compression_overhead_one_over_n_on_real_profile():
    profile = load_profile("h100-sxm")
    impl = profile.prune_impls["fused_cslt"]
    bw = profile.memory.bandwidth_gbps.value
    scaled = []
    for M in (8192, 16384, 32768):
        for N in (4096, 8192, 14336):
            for K in (4096, 14336):
                gemm = _gemm(profile, M, N, K).seconds()
                prune = prune_terms(M * K * 2.0, impl, bandwidth_gbps=bw,
                                    kernel_overhead_us=profile.efficiency.kernel_overhead_us.value).seconds()
                scaled.append(float(prune / gemm) * N)
    # wave quantization and fixed overheads perturb the ideal law by a few percent only
    assert max(scaled) / min(scaled) < 1.1


def test_wave_quantization_is_a_step_function():
    # a100: 108 SMs, 128×128 tiles; small-M ramp switched off to isolate the quantization
    profile = _changed(load_profile("a100"), **{"efficiency.dense_gemm.m_half.value": 1e-9})
    N = np.arange(55 * 128 + 1, 4 * 108 * 128 + 1, 37, dtype=float)  # ≥ 55 tiles: no split-K
    compute = _gemm(profile, 128, N, 4096).compute
    waves = np.ceil(np.ceil(N / 128) / 108)
    for w in (1, 2, 3, 4):
        step = compute[waves == w]
        assert step.size > 10 and np.ptp(step) <= 1e-9 * step[0]  # constant within a wave
    assert compute[waves == 2][0] == pytest.approx(2 * compute[waves == 1][0])
    assert compute[waves == 4][0] == pytest.approx(4 * compute[waves == 1][0])
    assert wave_efficiency(128.0, 108 * 128.0, 1.0, 128, 128, 108) == 1.0
    assert wave_efficiency(128.0, 108 * 128.0 + 1, 1.0, 128, 128, 108) == pytest.approx(
        (108 * 128 + 1) / (2 * 108 * 128))
    # fewer tiles than SMs: split-K fills the GPU (16 tiles × 6 parts = 96 of 108 units busy)
    assert wave_efficiency(128.0, 16 * 128.0, 1.0, 128, 128, 108) == pytest.approx(96 / 108)


def test_non_native_pattern_is_slower_than_dense_and_says_why():
    result = predict(load_profile("a100"), _scenario(pattern="8:16"))
    assert result.sparse_total_s > result.dense_total_s and not result.native
    assert "not accelerated by a100-sxm" in result.note and "slowdown" in result.note
    assert result.prune_impl == "fused_mask"
    for op in result.ops:
        if op.kind == "sparse_gemm":
            assert op.sparse_s == op.dense_s
        if op.kind == "prune":
            assert op.dense_s == 0 and op.sparse_s > 0


def test_native_and_fitting_patterns():
    two_four = NMPattern.parse("2:4")
    assert fits_native(NMPattern.parse("1:4"), two_four) and fits_native(NMPattern.parse("2:8"), two_four)
    assert fits_native(NMPattern.parse("1:2"), two_four)
    assert not fits_native(NMPattern.parse("4:8"), two_four) and not fits_native(NMPattern.parse("8:16"), two_four)
    assert not fits_native(NMPattern.parse("2:6"), two_four)
    assert compressed_fraction(two_four, "bf16") == 0.5625 and compressed_fraction(two_four, "int8") == 0.625
    ex = sparse_execution(load_profile("h100"), "bf16", "2:8")
    assert ex.native == two_four and ex.compressed and "as 2:4" in ex.note
    hypo = predict(load_profile("h100-sxm-nm816"), _scenario(pattern="8:16"))
    # native 8:16 GEMMs, but the top-8-of-16 selection of the compress kernel is compute-bound (selection_rate)
    assert hypo.native and hypo.runs_as == "8:16" and hypo.speedup > 1.03


def test_tensor_parallel_reduces_gemm_time_and_adds_allreduce():
    profile = load_profile("h100-sxm")
    one = predict(profile, _scenario(model="llama-3.1-70b", tp=1))
    four = predict(profile, _scenario(model="llama-3.1-70b", tp=4))
    q1 = next(op for op in one.ops if op.name == "q_proj")
    q4 = next(op for op in four.ops if op.name == "q_proj")
    assert q4.dense_s < q1.dense_s / 3
    reduces = [op for op in four.ops if op.kind == "allreduce"]
    assert reduces and not any(op.kind == "allreduce" for op in one.ops)
    msg = 4096 * 8192 * 2  # tokens × hidden × bf16
    link = profile.interconnect
    ring = 2 * 3 / 4 * msg / (link.bandwidth_gbps.value * 1e9 * profile.efficiency.allreduce_fraction.value)
    assert reduces[0].dense_s == pytest.approx(ring + 6 * link.latency_us.value * 1e-6)
    assert reduces[0].bound == "interconnect"
    assert four.dense_total_s < one.dense_total_s


def test_bounds_label_the_largest_term():
    result = predict(load_profile("a100"), _scenario(prompt_tokens=1))
    lm = next(op for op in result.ops if op.name == "lm_head")
    assert lm.bound == "memory"  # a GEMV through the 1 GB vocabulary matrix
    norm = next(op for op in result.ops if op.name == "attn_norm")
    assert norm.bound == "overhead"  # 8 KB of traffic: launch overhead dominates
    big = predict(load_profile("a100"), _scenario(prompt_tokens=8192))
    assert next(op for op in big.ops if op.name == "up_proj").bound == "compute"


def test_dtype_and_impl_errors():
    a100 = load_profile("a100")
    with pytest.raises(InvalidArgument, match=r"^dtype fp8 is not supported by profile a100-sxm; it has: fp16, bf16, int8") as info:
        predict(a100, _scenario(dtype="fp8"))
    assert info.value.field == "dtype"
    with pytest.raises(InvalidArgument, match="^prune_impl fused_cslt produces a compressed operand.*fused_mask") as info:
        sparse_execution(a100, "bf16", "8:16", "fused_cslt")
    assert info.value.field == "prune_impl"
    with pytest.raises(NotFound, match="did you mean: fused_cslt") as info:
        sparse_execution(a100, "bf16", "2:4", "fused_cslf")
    assert info.value.field == "prune_impl"
    masked = predict(a100, _scenario(), prune_impl="fused_mask")
    assert masked.native and masked.speedup < 1.0 and "only masks" in masked.note
    eager = predict(a100, _scenario(), prune_impl="torch_eager_cslt")
    fused = predict(a100, _scenario())
    assert eager.speedup < 1.0 < fused.speedup  # unfused eager pruning erases the gain


def test_no_interconnect_means_no_tp():
    profile = _changed(load_profile("h100-sxm"), interconnect=None)
    with pytest.raises(InvalidArgument, match="has no interconnect: tp must be 1") as info:
        predict(profile, _scenario(tp=2))
    assert info.value.field == "tp"


def test_eight_bit_uses_compressed_8bit_operand_and_16bit_attention():
    h100 = load_profile("h100-sxm")
    ex = sparse_execution(h100, "fp8", "2:4")
    assert ex.compressed_fraction == 0.625 and ex.sparse_tflops == 3958
    fp8 = predict(h100, _scenario(dtype="fp8"))
    bf16 = predict(h100, _scenario(dtype="bf16"))
    att8 = next(op for op in fp8.ops if op.kind == "attention")
    att16 = next(op for op in bf16.ops if op.kind == "attention")
    assert att8.dense_s == att16.dense_s
    assert fp8.dense_total_s < bf16.dense_total_s


def test_moe_prediction_runs():
    spec = load_model_spec("qwen3-30b-a3b")
    result = predict(load_profile("h100"), _scenario(model="qwen3-30b-a3b", batch=4), spec=spec)
    gate = next(op for op in result.ops if op.name == "gate_proj")
    assert gate.groups == pytest.approx(128.0) and gate.M == pytest.approx(4 * 4096 * 8 / 128)
    assert result.speedup > 1.0


def test_selection_rate_predicts_2_4_and_8_16_masking_from_one_measurement_each():
    """h200's fused_mask: bandwidth from 2:4 at 16384x14336 (results-h200.json), selection rate from 8:16 with an
    Amber factor at the same shape (selection-h200.json: the selection network on prune_gpu's tiles). The issue 17
    rows with a factor, 2:4 and 8:16 at 8192x4096 held out, are predicted within 5 %: 2:4 memory-bound, 8:16
    selection-bound."""
    import json

    results = json.loads((data_dir("validation") / "gpu_pruner" / "selection-h200.json").read_text())
    profile = load_profile("h200")
    impl = profile.prune_impls["fused_mask"]
    launches = {"2:4": "prune_gpu", "8:16": "BR=32 BK=128 warps=4"}  # the tiles prune_gpu launches now
    rows = [r for r in results["patterns"]["rows"] if r["factor"] and launches.get(r["pattern"]) == r["launch"]]
    assert len(rows) == 4
    for r in rows:
        m = int(r["pattern"].split(":")[1])
        terms = prune_terms(r["rows"] * r["k"] * 2.0, impl, bandwidth_gbps=profile.memory.bandwidth_gbps.value,
                            kernel_overhead_us=3.0, elements=r["rows"] * r["k"] * 1.0, group_size=m)
        assert float(terms.seconds()) == pytest.approx(r["median_s"], rel=0.05), (r["pattern"], r["rows"])
        assert int(terms.bound()) == (0 if m == 16 else 1)  # compute (selection) for 8:16, memory for 2:4
    big = next(r for r in rows if r["pattern"] == "8:16" and r["rows"] == 16384)
    memory_only = prune_terms(16384 * 14336 * 2.0, impl, bandwidth_gbps=4800.0, kernel_overhead_us=3.0)
    assert float(memory_only.seconds()) < 0.8 * big["median_s"]  # 2:4's bandwidth alone under-costs 8:16


def test_a_library_without_grouped_kernel_pays_one_launch_per_group():
    """grouped: false (torch's 2:4 path): groups × the single GEMM, waves and overhead included."""
    eff = load_profile("h200-calibrated").efficiency.sparse_gemm
    common = dict(peak_tflops=1979.0, compute_units=132.0, bandwidth_gbps=4800.0, memory_fraction=0.86,
                  in_bytes=2.0, out_bytes=2.0, a_fraction=0.5625)
    one = gemm_terms(64.0, 768.0, 2048.0, 1.0, eff=eff, **common).seconds()
    per_group = gemm_terms(64.0, 768.0, 2048.0, 128.0, eff=eff, **common).seconds()
    assert not eff.grouped and per_group == pytest.approx(128 * one)
    fused = gemm_terms(64.0, 768.0, 2048.0, 128.0, eff=eff.model_copy(update={"grouped": True}), **common).seconds()
    assert fused < per_group / 5  # one grouped kernel fills the GPU once and pays one overhead


def test_memory_bound_gemm_is_latency_plus_bytes_at_its_own_bandwidth():
    """A GEMV (decode at batch 1) costs memory_latency_us + its bytes at the GEMM path's memory_fraction + one
    overhead; without the two optional fields it is costed as before (streaming memory_fraction, no latency)."""
    h200 = load_profile("h200")
    src = {"source": "assumed: test"}
    gemv = _changed(h200, **{"efficiency.dense_gemm.memory_fraction": {"value": 0.9, **src},
                             "efficiency.dense_gemm.memory_latency_us": {"value": 2.5, **src}})
    nbytes = (4096 * 4096 + 4096 + 4096) * 2.0
    t = _gemm(gemv, 1, 4096, 4096)
    assert t.bound() == 1  # memory
    assert t.seconds() == pytest.approx(2.5e-6 + nbytes / (4800e9 * 0.9) + 4e-6)
    before = _gemm(h200, 1, 4096, 4096)
    assert before.seconds() == pytest.approx(nbytes / (4800e9 * h200.efficiency.memory_fraction.value) + 4e-6)
    # a compute-bound GEMM hides the latency: its time does not change
    assert _gemm(gemv, 4096, 4096, 4096).seconds() == pytest.approx(_gemm(h200, 4096, 4096, 4096).seconds())


def test_decode_attention_reads_the_kv_cache_at_its_own_fraction_and_latency():
    """decode_attention uses decode_attention_fraction and _latency_us; prefill attention keeps memory_fraction."""
    from ampersim.sim.cost import OpColumns, cost_graph
    from ampersim.sim.graph import BatchShape, DecodeShape, StepShape, graph_for_step
    from ampersim.sparsity.policy import resolve_policy

    spec = load_model_spec("llama-3.1-8b")
    policy = resolve_policy("none", spec, "2:4")
    step = StepShape(prefill=BatchShape.from_lengths([2048]), decode=DecodeShape.from_contexts([32768] * 16))
    ops = graph_for_step(spec, policy, step, "bf16", 1)
    h200 = load_profile("h200")
    src = {"source": "assumed: test"}
    tuned = _changed(h200, **{"efficiency.decode_attention_fraction": {"value": 0.96, **src},
                              "efficiency.decode_attention_latency_us": {"value": 5.0, **src}})

    def attention_s(profile):
        cost = cost_graph(OpColumns.from_ops(ops), profile, "bf16", None, 1)
        return {op.kind: cost.dense_s[i, 0] for i, op in enumerate(ops) if "attention" in op.kind}

    op = next(o for o in ops if o.kind == "decode_attention")
    eff = h200.efficiency
    assert attention_s(h200)["decode_attention"] == pytest.approx(
        op.bytes / (4800e9 * eff.memory_fraction.value) + eff.kernel_overhead_us.value * 1e-6)
    assert attention_s(tuned)["decode_attention"] == pytest.approx(
        5e-6 + op.bytes / (4800e9 * 0.96) + eff.kernel_overhead_us.value * 1e-6)
    assert attention_s(tuned)["attention"] == attention_s(h200)["attention"]
