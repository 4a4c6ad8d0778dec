"""benchmarks/gpu_eager_prefill_report.py: speedups recomputed from the stored medians, goals judged,
what bounds eager runs, gaps and problems reported; and the committed H200 runs (validation/gpu_eager/,
validation/h200-gemm-*.jsonl): no problem, run 1's GEMM files agree with its results, run 2's W8A8 rows
are there, and the tables in the docs are the ones the report prints from each run."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from ampersim.measure.records import OpMeasurement, read_measurements

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_eager_prefill_report", ROOT / "benchmarks" / "gpu_eager_prefill_report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)
RESULTS = ROOT / "validation" / "gpu_eager" / "results-h200.json"
RESULTS_RUN2 = ROOT / "validation" / "gpu_eager" / "results-h200-run2.json"


def _results():
    env = {f: "x" for f in report.ENV_FIELDS}
    rows = lambda variant, mode, times, **extra: [  # noqa: E731
        {"tokens": t, "variant": variant, "mode": mode, "median_s": s, **extra} for t, s in times.items()]
    return {
        "probe": {"returncode": 0}, "env": env, "correct": {"all_ok": True, "rows": []},
        "host": {"q_proj": {"prune_compress_us": 10.0, "plan_matmul_us": 8.0, "sparse_linear_us": 24.0,
                            "module_forward_us": 24.5, "torch_cslt_sparse_mm_us": 800.0}},
        "model": {"check_plans": {"ok": True, "max_layer_rel_err": 0.007},
                  "rows": rows("dense", "eager", {1024: 0.0257, 4096: 0.1046}, host_enqueue_s=0.02)
                  + rows("amber_2:4_plans", "eager", {1024: 0.0250, 4096: 0.0950}, host_enqueue_s=0.024)
                  + rows("dense", "graph", {1024: 0.0255, 4096: 0.104})
                  + rows("amber_2:4_plans", "graph", {1024: 0.0223, 4096: 0.094})},
        "w8a8": {"check_sparse": {"ok": True, "max_layer_rel_err": 0.004}, "check_dense_int8_layer0": 0.004,
                 "rows": rows("int8_dense", "eager", {4096: 0.080}) + rows("int8_amber_2:4", "eager", {4096: 0.070}),
                 "layers": rows("bf16_dense", "graph", {4096: 0.0032}) + rows("int8_dense", "graph", {4096: 0.0029})
                 + rows("int8_amber_2:4", "graph", {4096: 0.0025})},
        "gemm": {"rows": [{"model": "llama-3.1-70b", "name": "down_proj", "M": 4096, "N": 8192, "K": 28672,
                           "dense_s": 2.8e-3, "searched_s": 1.8e-3, "searched_alg": [20, -1, 1],
                           "default_s": 2.2e-3, "default_alg": [0, 1, 0], "cutlass_compress_s": 4e-3,
                           "cutlass_error": "sm8x only"}]},
        "compile": {"check_rel_err": 0.01, "graph_breaks": {}, "unique_graphs": 2,
                    "rows": rows("dense", "compile", {1024: 0.0240}) + rows("amber_2:4_plans", "compile", {1024: 0.0215})},
    }


def test_tables_recompute_speedups_judge_goals_and_say_what_bounds_eager_runs():
    results = _results()
    model = report.model_table(results)
    assert "| 1024 | eager | 25.700 | 25.000 | 1.028× | 20.0 / 24.0 | host (GPU 22.3) | ≥ 1×: met |" in model
    assert "| 4096 | eager | 104.600 | 95.000 | 1.101× | - / - | - | ≥ 1.12×: missed |" not in model
    assert "| 4096 | eager | 104.600 | 95.000 | 1.101× | 20.0 / 24.0 | GPU (GPU 94.0) | ≥ 1.12×: missed |" in model
    assert "| 1024 | graph | 25.500 | 22.300 | 1.143× | - | - | - |" in model
    assert "| 1024 | compile | 24.000 | 21.500 | 1.116× | - / - | - | - |" in model
    w8 = report.w8a8_table(results)
    assert "| model | 4096 | eager | 104.600 | 80.000 | 70.000 | 1.494× | 1.143× | 1.307× | met |" in w8
    assert "| layer 0 | 4096 | graph | 3.200 | 2.900 | 2.500 | 1.280× | 1.160× | 1.103× | - |" in w8
    gemm = report.gemm_table(results)
    assert "| 1.556× / 1.273× | +22.2 % | GEMM n/a; compress 4.00 ms |" in gemm
    assert "| q_proj | 10.0 | 8.0 | 24.0 | 24.5 | - | - | 800.0 | 6.0 | met |" in report.host_table(results)
    results["host"]["q_proj"]["triton_launch_only_us"] = 7.5  # parts timed alone: a column each, where timed
    host = report.host_table(results)
    assert "| torch._cslt_sparse_mm | Triton launcher alone | rest of sparse_linear() |" in host
    assert "| q_proj | 10.0 | 8.0 | 24.0 | 24.5 | - | - | 800.0 | 7.5 | 6.0 | met |" in host
    assert report.problems(results) == [] and report.gaps(results) == ["gemm: CUTLASS 2:4 GEMM not timed: sm8x only"]


def test_a_failed_check_is_a_gap_when_nothing_was_timed_and_a_problem_when_something_was():
    results = _results()
    results["w8a8"]["check_sparse"] = {"ok": False, "max_layer_rel_err": 0.024}
    found = report.problems(results)
    assert "w8a8: 4096 tokens int8_amber_2:4 eager timed, but its check (w8a8.check_sparse and " \
           "check_dense_int8_layer0) failed" in found
    assert "w8a8 layer 0: 4096 tokens int8_amber_2:4 graph timed, but its check (w8a8.check_sparse and " \
           "check_dense_int8_layer0) failed" in found
    results["w8a8"]["rows"] = results["w8a8"]["layers"] = []
    assert report.problems(results) == []
    assert "w8a8: check_sparse failed (max layer rel err 0.024 > 0.02): its sparse variants were not timed" \
        in report.gaps(results)
    assert report.w8a8_table(results).startswith("W8A8: not measured. check_sparse: max layer rel err 0.0240")


def test_problems_name_missing_environment_failed_plans_and_unchecked_rows():
    results = _results()
    results["model"]["check_plans"] = {"ok": False, "max_layer_rel_err": 0.3}
    results["correct"]["all_ok"] = False
    results["env"]["driver"] = ""
    del results["compile"]
    results["model"]["rows"].append({"tokens": 1024, "variant": "amber_2:4_torch_cslt", "mode": "eager",
                                     "median_s": 0.13})
    found = report.problems(results)
    assert "env: driver not recorded" in found and "correct: a sparse result disagreed with its dense reference" in found
    assert "model: 1024 tokens amber_2:4_plans eager timed, but its check (model.check_plans (whole model, layer by " \
           "layer, vs eager masking + F.linear)) failed" in found
    assert any(p.startswith("model: 1024 tokens amber_2:4_torch_cslt eager timed, but its check") and
               p.endswith("is not recorded") for p in found)  # no check_torch_cslt, no correct rows
    assert "compile: missing" in report.gaps(results)


def test_committed_h200_run_has_no_problem_and_its_known_gaps():
    results = json.loads(RESULTS.read_text())
    assert report.problems(results) == []
    gaps = report.gaps(results)
    assert any(g.startswith("w8a8: check_sparse failed (max layer rel err 0.02406") for g in gaps)
    assert not results["w8a8"]["rows"]  # W8A8 was not measured
    assert all(results["env"][f] for f in report.ENV_FIELDS)
    assert results["env"]["plan_layout_ok_bf16"] and results["env"]["plan_layout_ok_int8"]


def test_committed_gemm_files_are_the_results_rows_and_every_record_passed_its_check():
    results = json.loads(RESULTS.read_text())
    env = results["env"]
    for algorithm in ("searched", "default"):
        measured = read_measurements(ROOT / "validation" / f"h200-gemm-{algorithm}.jsonl")
        assert (measured.environment.gpu, measured.environment.driver) == (env["gpu"], env["driver"])
        ops = [r for r in measured.records if isinstance(r, OpMeasurement)]
        assert ops and all(r.check.ok and r.check.rel_err <= r.check.tol for r in ops)
        by_key = {(r.model, r.op.name, r.measured.M, r.variant): r for r in ops}
        for row in results["gemm"]["rows"]:
            dense, sparse = by_key[(row["model"], row["name"], row["M"], "dense")], \
                by_key[(row["model"], row["name"], row["M"], "sparse")]
            assert dense.timing.median_s == row["dense_s"] and sparse.timing.median_s == row[f"{algorithm}_s"]
            assert list(sparse.extra.alg) == row[f"{algorithm}_alg"] and sparse.note == f"sparse GEMM: {algorithm}"
        assert len(ops) == 2 * len(results["gemm"]["rows"])


def test_committed_h200_run2_has_no_problem_and_its_w8a8_rows_are_ratios_of_medians():
    """Run 2 (env, correct, host, model, w8a8): every timed sparse row, the W8A8 ones included (whole model
    and layer 0), gated by a passing check; its W8A8 table's gains are ratios of the stored medians."""
    results = json.loads(RESULTS_RUN2.read_text())
    assert report.problems(results) == []
    assert report.gaps(results) == ["gemm: missing", "compile: missing"]  # not among the run's sections
    w8 = results["w8a8"]
    assert w8["check_sparse"]["ok"] and w8["check_sparse"]["max_layer_rel_err"] <= report.TOL
    assert w8["check_dense_int8_layer0"] <= report.TOL
    bf16, table = report._rows(results, "model"), report.w8a8_table(results)
    for key, rows in (("model", w8["rows"]), ("layer 0", w8["layers"])):
        by = {(r["tokens"], r["variant"], r["mode"]): r["median_s"] for r in rows}
        points = {(t, m) for t, _, m in by}
        expected_modes = ("eager", "graph") if key == "model" else ("graph",)
        assert points == {(t, m) for t in (1024, 4096, 16384) for m in expected_modes}
        for tokens, mode in points:
            base = bf16[(tokens, "dense", mode)]["median_s"] if key == "model" else by[(tokens, "bf16_dense", mode)]
            dense, sparse = by[(tokens, "int8_dense", mode)], by[(tokens, "int8_amber_2:4", mode)]
            assert all(math.isfinite(v) and v > 0 for v in (base, dense, sparse))
            assert f"| {key} | {tokens} | {mode} | {base * 1e3:.3f} | {dense * 1e3:.3f} | {sparse * 1e3:.3f} | " \
                   f"{base / sparse:.3f}× | {dense / sparse:.3f}× | {base / dense:.3f}× |" in table


@pytest.mark.parametrize("doc, run, tables", [
    ("gpu-pruner.md", RESULTS, ("model_table", "host_table", "gemm_table")),
    ("validation.md", RESULTS, ("model_table", "gemm_table")),
    ("gpu-pruner.md", RESULTS_RUN2, ("model_table", "host_table", "w8a8_table")),
], ids=["gpu-pruner-run1", "validation-run1", "gpu-pruner-run2"])
def test_docs_tables_are_the_reports_tables_of_the_committed_runs(doc, run, tables):
    """Every number in the documented tables is recomputed here from the raw medians."""
    text = (ROOT / "docs" / doc).read_text()
    results = json.loads(run.read_text())
    for name in tables:
        for line in getattr(report, name)(results).splitlines():
            assert line in text, f"{doc}: {name} of {run.name}: line missing or stale: {line}"


@pytest.mark.parametrize("run", [RESULTS, RESULTS_RUN2], ids=["run1", "run2"])
def test_speedups_in_the_tables_are_ratios_of_medians(run):
    results = json.loads(run.read_text())
    rows = report._rows(results, "model", "compile")
    for (tokens, variant, mode), row in rows.items():
        if variant == "dense":
            continue
        speedup = rows[(tokens, "dense", mode)]["median_s"] / row["median_s"]
        assert f"| {speedup:.3f}× |" in report.model_table(results) and math.isfinite(speedup)


def test_eager_pruner_comparison_file_is_consistent():
    """validation/gpu_eager/eager-pruner-compare-h200.json: every shape checked equal before timing, the
    ratio is the medians' ratio, and the single eager pruner costs ~1.9x the masking it replaced."""
    data = json.loads((ROOT / "validation" / "gpu_eager" / "eager-pruner-compare-h200.json").read_text())
    assert data["environment"]["gpu"] == "NVIDIA H200" and len(data["rows"]) == 3
    for row in data["rows"]:
        assert row["same_result"] and row["now_over_before"] == row["now_s"] / row["before_s"]
        assert 1.8 < row["now_over_before"] < 2.0
