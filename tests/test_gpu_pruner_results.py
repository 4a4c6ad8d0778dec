"""Consistency of the committed GPU pruner device results (validation/gpu_pruner/results-h200.json):
environment recorded, every timed row checked for correctness, derived numbers recomputable from the
stored times, and the h200 profile's measured prune_impls bandwidths traceable to the file (its
selection_rate: tests/test_gpu_select_results.py); and the int8 rows of the later quick run
(quick-h200.json) that docs/gpu-pruner.md quotes."""
from __future__ import annotations

import json
import statistics

import pytest

from ampersim.core.resources import data_dir
from ampersim.kernels.gpu import cslt_layout as gpu_layout

RESULTS = json.loads((data_dir("validation") / "gpu_pruner" / "results-h200.json").read_text())
QUICK = json.loads((data_dir("validation") / "gpu_pruner" / "quick-h200.json").read_text())
DATASHEET_GBPS = 4800.0  # H200 HBM3e, the profile's memory.bandwidth_gbps


def test_environment_recorded():
    env = RESULTS["env"]
    for field in ("gpu", "capability", "torch", "cuda", "cusparselt", "driver", "triton", "numba_cuda", "date_utc"):
        assert env.get(field) not in (None, ""), field
    assert env["gpu"] == "NVIDIA H200" and env["cusparselt"] == 800


def test_no_section_failed():
    for name in ("env", "copy", "correct", "layout", "tune", "prune", "linear", "layer", "int8", "repeat"):
        assert "error" not in RESULTS[name], name


def test_kernels_match_reference_and_16bit_layout_is_bit_exact():
    assert RESULTS["correct"]["all_pass"] and RESULTS["correct"]["cases"] >= 40
    layout = RESULTS["layout"]
    assert layout["self_check_16bit"] and layout["self_check_8bit"]
    sixteen = [c for c in layout["cases"] if c["dtype"] != "int8"]
    assert sixteen and all(c["triton"] is True and c["numba"] is True for c in sixteen)
    assert all(c["torch_shape"] == c["expected_shape"] for c in sixteen)
    # int8: same scales everywhere; byte differences only where a kept value quantizes to 0 (see docs)
    eight = [c for c in layout["cases"] if c["dtype"] == "int8"]
    assert all(c["scales_equal"] and c["q_max_abs_diff_vs_torch_round"] <= 1 for c in eight)
    assert all(c["triton"] for c in eight if c["rows"] * c["k"] <= 96 * 256)


def _median(t: dict) -> float:
    assert t["reps"] >= 20 and t["p10_s"] <= t["median_s"] <= t["p90_s"] and t["mode"] == "graph"
    return t["median_s"]


def test_linear_rows_checked_and_speedups_recomputable():
    rows = RESULTS["linear"]["rows"]
    # 4 distinct (K, N) per model (q = o, k = v, gate = up share shapes) x 5 token counts x 2 models
    assert len(rows) == 40 and all("error" not in r for r in rows)
    assert {r["M"] for r in rows} == {1024, 2048, 4096, 8192, 16384}
    for r in rows:
        assert r["check_pass"] and r["rel_err"] < 1e-2
        dense = _median(r["dense"])
        assert r["speedup_gemm"] == pytest.approx(dense / _median(r["sparse_gemm"]))
        assert r["speedup_linear"] == pytest.approx(dense / _median(r["sparse_linear"]))
        _median(r["prune_compress"])


def test_int8_rows_exact_and_recomputable():
    for r in RESULTS["int8"]["rows"]:
        assert r["int32_equal_int_mm"] and r["check_pass"] and r["linear_rel_err"] < 1e-2
        assert r["speedup_gemm"] == pytest.approx(_median(r["dense_int_mm"]) / _median(r["sparse_gemm_int32"]))
        assert r["speedup_pipeline"] == pytest.approx(_median(r["dense_pipeline"]) / _median(r["sparse_pipeline"]))


def test_quick_run_int8_rows_exact_recomputable_and_as_quoted():
    """quick-h200.json: every W8A8 row exact (int32 == _int_mm) and within tolerance before timing; its
    speedups are ratios of its medians, in the ranges docs/gpu-pruner.md quotes (GEMM 1.92-2.43x,
    pipeline 1.22-1.90x over dense int8)."""
    assert QUICK["env"]["gpu"] == "NVIDIA H200" and "error" not in QUICK["int8"]
    rows = QUICK["int8"]["rows"]
    assert {(r["kind"], r["M"]) for r in rows} == {(k, m) for k in ("q_proj", "v_proj", "gate_proj", "down_proj")
                                                    for m in (4096, 16384)}
    def median(t: dict) -> float:  # that script version's typed Timing: method and runs
        assert t["runs"] >= 20 and t["p10_s"] <= t["median_s"] <= t["p90_s"] and t["method"] == "cuda_graph"
        return t["median_s"]

    for r in rows:
        assert r["int32_equal_int_mm"] and r["check_pass"] and r["linear_rel_err"] < 1e-2
        assert r["speedup_gemm"] == pytest.approx(median(r["dense_int_mm"]) / median(r["sparse_gemm_int32"]))
        assert r["speedup_pipeline"] == pytest.approx(median(r["dense_pipeline"]) / median(r["sparse_pipeline"]))
    gemm, pipeline = [r["speedup_gemm"] for r in rows], [r["speedup_pipeline"] for r in rows]
    assert (f"{min(gemm):.2f}", f"{max(gemm):.2f}") == ("1.92", "2.43")
    assert (f"{min(pipeline):.2f}", f"{max(pipeline):.2f}") == ("1.22", "1.90")


def test_layer_rows_checked():
    for r in RESULTS["layer"]["rows"]:
        assert r["check_pass"] and r["rel_err_vs_pruned_dense"] < 2e-2
        assert r["speedup"] == pytest.approx(_median(r["dense"]) / _median(r["sparse_amber_2:4"]))


def test_prune_bandwidths_recomputable():
    copy = RESULTS["copy"]["gbps_rw"]
    assert copy == pytest.approx(max(r["gbps_rw"] for r in RESULTS["copy"]["runs"].values()))
    for r in RESULTS["prune"]["rows"]:
        if "bytes_moved" in r:
            assert r["gbps_rw"] == pytest.approx(r["bytes_moved"] / r["median_s"] / 1e9)
            assert r["fraction_of_copy"] == pytest.approx(r["gbps_rw"] / copy)
        if r["impl"] == "fused_cslt_triton":
            assert r["bytes_moved"] == r["rows"] * r["k"] * 2 + gpu_layout.compressed_nbytes(r["rows"], r["k"], 2)


def test_h200_profile_values_trace_to_results():
    from ampersim.hardware.registry import load_profile

    impls = load_profile("h200").prune_impls
    rows = [r for r in RESULTS["linear"]["rows"] if r["M"] >= 4096]
    gbps = [(r["M"] * r["K"] * 2 + gpu_layout.compressed_nbytes(r["M"], r["K"], 2)) / r["prune_compress"]["median_s"] / 1e9
            for r in rows]
    assert impls["fused_cslt"].bandwidth_fraction.value == pytest.approx(statistics.median(gbps) / DATASHEET_GBPS, abs=0.005)
    big = {r["impl"]: r for r in RESULTS["prune"]["rows"] if r["rows"] == 16384}
    assert impls["fused_mask"].bandwidth_fraction.value == pytest.approx(big["fused_mask_2:4_triton"]["gbps_rw"] / DATASHEET_GBPS, abs=0.005)
    x_bytes = 16384 * 14336 * 2
    eager = impls["torch_eager_mask"]
    assert eager.bandwidth_fraction.value == pytest.approx(
        eager.bytes_per_input_byte.value * x_bytes / big["torch_eager_mask_topk"]["median_s"] / 1e9 / DATASHEET_GBPS, abs=5e-4)
    eager_c = impls["torch_eager_cslt"]
    assert eager_c.bandwidth_fraction.value == pytest.approx(
        eager_c.bytes_per_input_byte.value * x_bytes / big["torch_eager_cslt_topk"]["median_s"] / 1e9 / DATASHEET_GBPS, abs=5e-4)
    for impl in impls.values():
        assert "results-h200.json" in impl.bandwidth_fraction.source
