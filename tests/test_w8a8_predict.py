"""W8A8 (int8) prefill: the graph's quantization and dequantization ops, the int8 GEMM scales of the H200
profiles reproduced from the per-linear rows they were fitted on (validation/gpu_pruner/quick-h200.json),
and whole Llama-3.1-8B predictions against the held-out graph-replay rows of the second eager-prefill run
(validation/gpu_eager/results-h200-run2.json, section w8a8); bf16 predictions are unchanged."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ampersim.hardware.registry import list_profiles, load_profile
from ampersim.models.registry import load_model_spec
from ampersim.sim.cost import gemm_terms
from ampersim.sim.execution import sparse_execution
from ampersim.sim.graph import build_graph
from ampersim.sim.predict import predict
from ampersim.sim.scenario import Scenario
from ampersim.sparsity.policy import resolve_policy

ROOT = Path(__file__).resolve().parents[1]
QUICK = json.loads((ROOT / "validation" / "gpu_pruner" / "quick-h200.json").read_text())["int8"]["rows"]
RUN2 = json.loads((ROOT / "validation" / "gpu_eager" / "results-h200-run2.json").read_text())["w8a8"]["rows"]
WHOLE_MODEL_BOUND = 0.09  # largest whole-model error 7.7 % (int8 + 2:4 at 1024 tokens), docs/validation.md


def _predict(profile: str, tokens: int, dtype: str):
    return predict(load_profile(profile), Scenario(name="t", model="llama-3.1-8b", prompt_tokens=tokens,
                                                   pattern="2:4", policy="amber", dtype=dtype))


def _fitted_scale(profile: str, sparse: bool) -> float:
    """Geometric mean over the quick rows of: modelled compute time at scale 1 / (median − modelled overhead)."""
    hw = load_profile(profile)
    eff, rates, ex = hw.efficiency, hw.matrix["int8"], sparse_execution(hw, "int8", "2:4")
    logs = []
    for row in QUICK:
        terms = gemm_terms(float(row["M"]), float(row["N"]), float(row["K"]), 1.0,
                           peak_tflops=ex.sparse_tflops if sparse else rates.dense_tflops.value,
                           eff=eff.sparse_gemm if sparse else eff.dense_gemm, compute_units=hw.compute_units.value,
                           bandwidth_gbps=hw.memory.bandwidth_gbps.value, memory_fraction=eff.memory_fraction.value,
                           in_bytes=1.0, out_bytes=2.0, a_fraction=ex.compressed_fraction if sparse else 1.0)
        assert float(terms.compute) > float(terms.memory)  # compute-bound: the scale is what the rows measure
        measured = row["sparse_gemm_int32" if sparse else "dense_int_mm"]["median_s"]
        logs.append(math.log(float(terms.compute) / (measured - float(terms.overhead))))
    return math.exp(sum(logs) / len(logs))


@pytest.mark.parametrize("profile", ["h200", "h200-calibrated"])
def test_int8_gemm_scales_are_the_quick_rows_fit(profile):
    rates = load_profile(profile).matrix["int8"]
    assert rates.dense_gemm_scale.value == pytest.approx(_fitted_scale(profile, False), abs=1e-4)
    assert rates.sparse_gemm_scale.value == pytest.approx(_fitted_scale(profile, True), abs=1e-4)
    assert rates.dense_gemm_scale.is_measured and "quick-h200.json" in rates.sparse_gemm_scale.source


def test_other_profiles_and_dtypes_keep_scale_one():
    for hw in list_profiles(include_calibrated=True):
        for dtype, rates in hw.matrix.items():
            if hw.name in ("h200", "h200-calibrated") and dtype == "int8":
                continue
            assert rates.gemm_scale(False) == rates.gemm_scale(True) == 1.0, (hw.name, dtype)


def test_w8a8_graph_quantizes_each_linear_input_and_dequantizes_each_linear():
    spec = load_model_spec("llama-3.1-8b")
    policy = resolve_policy("amber", spec, pattern="2:4")
    ops = build_graph(spec, policy, 4096, 1, "int8", 1)
    layer0 = {op.name: op for op in ops if op.layer == 0}  # amber layer 0: q, gate, down sparsified
    for linear in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        deq = layer0[f"{linear}.dequant"]
        assert deq.bytes == 4096 * layer0[linear].N * 6  # int32 read, 16-bit written
    # attn_in feeds dense k/v and sparse q: both quantizations run on the sparse path
    assert layer0["quant.attn_in"].path == "both" and layer0["quant.absmax_pruned.attn_in"].path == "sparse"
    assert layer0["quant.attn_in"].bytes == 4096 * 4096 * 3  # read 16-bit x, write int8
    # mlp_mid feeds only the sparse down_proj: its dense quantization is the dense path's only
    assert layer0["quant.absmax.mlp_mid"].path == layer0["quant.mlp_mid"].path == "dense"
    assert layer0["prune.mlp_mid"].bytes == 4096 * 14336 * 2  # the 16-bit activation is what is pruned
    assert "quant.absmax_pruned.attn_out" not in layer0  # o_proj is dense in amber's layer 0
    for dtype in ("bf16", "fp16", "fp8"):
        names = {op.name for op in build_graph(spec, policy, 4096, 1, dtype, 1)}
        assert not any(n.startswith("quant.") or n.endswith(".dequant") for n in names), dtype


@pytest.mark.parametrize("row", QUICK, ids=lambda r: f"{r['kind']}-{r['M']}")
def test_quantization_ops_match_the_measured_kernels(row):
    """Held out (only the GEMM scales were fitted on these rows): the dense path's absmax + quantize pair
    within 7 % of the measured kernels (−5 … +6 %); the sparse path's fused prune + quantize + compress pair
    is over-costed by 6–25 % (its compress pass is costed as fused_cslt's 16-bit one, fitted between GEMMs)."""
    hw = load_profile("h200-calibrated")
    spec = load_model_spec("llama-3.1-8b")
    M, K = int(row["M"]), int(row["K"])
    act = "mlp_mid" if K == spec.intermediate_size else "attn_in"
    p = predict(hw, Scenario(name="t", model="llama-3.1-8b", prompt_tokens=M, pattern="2:4", policy="all",
                             dtype="int8"))
    ops = {op.name: op for op in p.ops if op.layer == 0}
    dense_quant = ops[f"quant.absmax.{act}"].dense_s + ops[f"quant.{act}"].dense_s
    fused = ops[f"quant.absmax_pruned.{act}"].sparse_s + ops[f"prune.{act}"].sparse_s
    assert dense_quant == pytest.approx(row["quant_dense"]["median_s"], rel=0.07)
    assert 1.0 < fused / row["prune_quant_compress"]["median_s"] < 1.26


@pytest.mark.parametrize("tokens", [1024, 4096, 16384])
def test_whole_model_w8a8_predictions_match_the_held_out_graph_rows(tokens):
    measured = {r["variant"]: r["median_s"] for r in RUN2 if r["tokens"] == tokens and r["mode"] == "graph"}
    p = _predict("h200-calibrated", tokens, "int8")
    assert p.dense_total_s == pytest.approx(measured["int8_dense"], rel=WHOLE_MODEL_BOUND)
    assert p.sparse_total_s == pytest.approx(measured["int8_amber_2:4"], rel=WHOLE_MODEL_BOUND)
    speedup = measured["int8_dense"] / measured["int8_amber_2:4"]
    assert p.dense_total_s / p.sparse_total_s == pytest.approx(speedup, abs=0.03)


def test_bf16_predictions_are_unchanged():
    """The 4,096-token amber 2:4 bf16 prediction of h200-calibrated before the W8A8 terms (103.1 ms dense,
    91.6 ms 2:4, as in docs/validation.md)."""
    p = _predict("h200-calibrated", 4096, "bf16")
    assert p.dense_total_s == pytest.approx(0.10311443941496294, rel=1e-12)
    assert p.sparse_total_s == pytest.approx(0.09156291922610231, rel=1e-12)
