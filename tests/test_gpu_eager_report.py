"""benchmarks/gpu_eager_prefill_report.py: speedups recomputed from the stored medians, goals judged,
and every failed check, error or skipped section reported; committed device results (validation/
gpu_eager/*.json, when present) must pass the same checks."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_eager_prefill_report", ROOT / "benchmarks" / "gpu_eager_prefill_report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def _results():
    env = {f: "x" for f in report.ENV_FIELDS}
    rows = lambda variant, mode, times: [  # noqa: E731
        {"tokens": t, "variant": variant, "mode": mode, "median_s": s} for t, s in times.items()]
    return {
        "probe": {"returncode": 0}, "env": env, "correct": {"all_ok": True, "rows": []},
        "host": {"q_proj": {"module_forward_us": 24.5, "torch_cslt_sparse_mm_us": 800.0}},
        "model": {"check_plans": {"ok": True, "max_layer_rel_err": 0.007},
                  "rows": rows("dense", "eager", {1024: 0.0257, 4096: 0.1046})
                  + rows("amber_2:4_plans", "eager", {1024: 0.0250, 4096: 0.0950})
                  + rows("dense", "graph", {1024: 0.0255}) + rows("amber_2:4_plans", "graph", {1024: 0.0223})},
        "w8a8": {"check_sparse": {"ok": True}, "rows": rows("int8_dense", "eager", {4096: 0.080})
                 + rows("int8_amber_2:4", "eager", {4096: 0.070})},
        "gemm": {"rows": [{"model": "llama-3.1-70b", "name": "down_proj", "M": 4096, "N": 8192, "K": 28672,
                           "dense_s": 2.8e-3, "searched_s": 1.8e-3, "searched_alg": [20, -1, 1],
                           "default_s": 2.2e-3, "default_alg": [0, 1, 0], "cutlass_error": "sm8x only"}]},
        "compile": {"rows": rows("dense", "compile", {1024: 0.0240}) + rows("amber_2:4_plans", "compile", {1024: 0.0215})},
    }


def test_tables_recompute_speedups_and_judge_goals():
    results = _results()
    model = report.model_table(results)
    assert "| 1024 | eager (plans) | 25.700 | 25.000 | 1.028× | ≥ 1×: met |" in model
    assert "| 4096 | eager (plans) | 104.600 | 95.000 | 1.101× | ≥ 1.12×: missed |" in model
    assert "| 1024 | graph (plans) | 25.500 | 22.300 | 1.143× |  |" in model
    assert "| 1024 | compile (plans) | 24.000 | 21.500 | 1.116× |  |" in model
    w8 = report.w8a8_table(results)
    assert "| 4096 | eager | 104.600 | 80.000 | 70.000 | 1.494× | 1.143× | met |" in w8
    gemm = report.gemm_table(results)
    assert "| 1.222 | n/a: sm8x only |" in gemm  # default / searched time
    assert "| q_proj | module_forward | 24.5 |" in report.host_table(results)
    assert report.problems(results) == []


def test_problems_name_failed_checks_errors_and_missing_sections():
    results = _results()
    results["model"]["check_plans"] = {"ok": False, "max_layer_rel_err": 0.3}
    results["w8a8"]["rows"][0] = {**results["w8a8"]["rows"][0], "median_s": float("nan"), "error": "capture failed"}
    results["gemm"]["rows"][0]["default_error"] = "check failed: rel_err 0.5"
    results["env"]["driver"] = ""
    del results["compile"]
    found = report.problems(results)
    assert "model: check_plans failed (max layer error 0.3)" in found
    assert "w8a8: 4096 tokens int8_dense eager: capture failed" in found
    assert "gemm llama-3.1-70b down_proj M=4096: check failed: rel_err 0.5" in found
    assert "env: driver not recorded" in found and "compile: missing" in found


@pytest.mark.parametrize("path", sorted((ROOT / "validation" / "gpu_eager").glob("*.json")), ids=lambda p: p.name)
def test_committed_device_results_are_consistent(path):
    assert report.problems(json.loads(path.read_text())) == []
