"""Validation beyond one machine's held-out shapes: another H200, an H100, and NCCL all-reduce on 2x H200.

Bounds are the ones docs/validation.md reports (measured values rounded up a little).
"""

import pytest

from ampersim.cli import main
from ampersim.core.resources import data_dir
from ampersim.hardware.registry import load_profile
from ampersim.measure.records import read_measurements
from ampersim.measure.validate import compare_runs, validate
from ampersim.sim.cost import allreduce_terms

VALIDATION = data_dir("validation")


def _summary(result, category, split):
    return next(s for s in result["summary"] if s["category"] == category and s["split"] == split)


def _speedup(result, category, split):
    return next(s for s in result["speedup_summary"] if s["category"] == category and s["split"] == split)


@pytest.fixture(scope="module")
def run3():
    """h200-calibrated (fitted on validation/h200.jsonl) against a second H200 machine's run."""
    return validate(read_measurements(VALIDATION / "h200-run3.jsonl"), load_profile("h200-calibrated"))


@pytest.fixture(scope="module")
def h100():
    return validate(read_measurements(VALIDATION / "h100.jsonl"), load_profile("h100-sxm-calibrated"))


@pytest.fixture(scope="module")
def allreduce():
    return validate(read_measurements(VALIDATION / "h200x2-allreduce.jsonl"), load_profile("h200-calibrated"))


# (category, split, MAPE bound %, max |error| bound %)
RUN3 = [("dense_gemm", "fit", 4.0, 10.0), ("dense_gemm", "held-out", 4.0, 15.0),
        ("sparse_gemm", "fit", 4.5, 12.0), ("sparse_gemm", "held-out", 7.5, 31.0),
        ("layer_dense", "held-out", 2.5, 5.0), ("layer_sparse:fused_cslt", "held-out", 4.0, 10.0),
        ("model_dense", "fit", 3.5, 3.5), ("model_sparse:fused_cslt", "fit", 2.5, 4.0)]
H100 = [("dense_gemm", "fit", 5.0, 12.5), ("dense_gemm", "held-out", 5.0, 21.5),
        ("sparse_gemm", "fit", 4.0, 10.5), ("sparse_gemm", "held-out", 5.5, 15.5),
        ("layer_dense", "held-out", 1.5, 2.0), ("layer_sparse:fused_cslt", "held-out", 1.0, 1.5),
        ("layer_sparse:torch_eager_cslt", "held-out", 4.5, 5.0), ("prune:fused_cslt", "fit", 2.0, 3.5)]
ALLREDUCE = [("allreduce", "fit", 2.5, 4.5), ("allreduce", "held-out", 5.5, 20.5)]


@pytest.mark.parametrize("category,split,mape,worst", RUN3)
def test_other_h200_machine_within_documented_bounds(run3, category, split, mape, worst):
    s = _summary(run3, category, split)
    assert s["n"] > 0 and s["mape_pct"] <= mape and s["max_abs_err_pct"] <= worst


@pytest.mark.parametrize("category,split,mape,worst", H100)
def test_h100_within_documented_bounds(h100, category, split, mape, worst):
    s = _summary(h100, category, split)
    assert s["n"] > 0 and s["mape_pct"] <= mape and s["max_abs_err_pct"] <= worst


@pytest.mark.parametrize("category,split,mape,worst", ALLREDUCE)
def test_allreduce_within_documented_bounds(allreduce, category, split, mape, worst):
    s = _summary(allreduce, category, split)
    assert s["n"] > 0 and s["mape_pct"] <= mape and s["max_abs_err_pct"] <= worst


def test_speedup_errors(run3, h100):
    assert _speedup(run3, "layer_sparse:fused_cslt", "held-out")["mean_abs_err"] <= 0.035
    assert _speedup(run3, "model_sparse:fused_cslt", "fit")["max_abs_err"] <= 0.03
    assert _speedup(h100, "sparse_gemm", "held-out")["mean_abs_err"] <= 0.085
    assert _speedup(h100, "layer_sparse:fused_cslt", "held-out")["max_abs_err"] <= 0.035


def test_two_h200_machines_differ_by_a_uniform_two_percent():
    """The same measurements on two H200s: ~2 % apart, the second machine slower on every kind of op."""
    stats = {s["category"]: s for s in compare_runs(read_measurements(VALIDATION / "h200.jsonl"),
                                                      read_measurements(VALIDATION / "h200-run3.jsonl"))}
    for category in ("dense_gemm", "sparse_gemm"):
        assert stats[category]["n"] >= 48 and stats[category]["mape_pct"] <= 2.6
        assert 1.5 <= stats[category]["bias_pct"] <= 2.5 and stats[category]["max_abs_err_pct"] <= 7.5
    assert 0 < stats["layer_dense"]["bias_pct"] <= 2.0 and stats["layer_sparse:fused_cslt"]["mape_pct"] <= 1.6


def test_allreduce_is_the_ring_formula_with_the_measured_constants(allreduce):
    """Ring all-reduce: each GPU sends 2(tp-1)/tp of the message, 2(tp-1) latency steps. At tp = 2 that is
    the message once, so the large-message rate link x fraction is NCCL's bus bandwidth (= algbw at tp 2)."""
    profile = load_profile("h200-calibrated")
    link, frac = profile.interconnect.bandwidth_gbps.value, profile.efficiency.allreduce_fraction.value
    lat = profile.interconnect.latency_us.value
    msg = 268435456.0  # Llama-3.1-70B, 16384 tokens x 8192 x bf16
    two = allreduce_terms(msg, tp=2, link_gbps=link, allreduce_fraction=frac, latency_us=lat)
    assert float(two.seconds()) == pytest.approx(msg / (link * 1e9 * frac) + 2 * lat * 1e-6)
    eight = allreduce_terms(msg, tp=8, link_gbps=link, allreduce_fraction=frac, latency_us=lat)
    assert float(eight.interconnect) == pytest.approx(1.75 * float(two.interconnect))
    assert float(eight.overhead) == pytest.approx(7 * float(two.overhead))
    row = next(r for r in allreduce["rows"] if r["model"] == "llama-3.1-70b" and r["tokens"] == 16384)
    busbw = msg / row["measured_s"] / 1e9  # the log's 291 GB/s
    assert busbw == pytest.approx(290.8, abs=0.5) and link * frac == pytest.approx(301, abs=1)


def test_cli_validates_ops_and_allreduce_together(capsys):
    files = f"{VALIDATION / 'h200.jsonl'},{VALIDATION / 'h200x2-allreduce.jsonl'}"
    assert main(["validate", "--measurements", files, "--profile", "h200-calibrated"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("h200-calibrated vs validation/h200.jsonl, validation/h200x2-allreduce.jsonl (NVIDIA H200)")
    assert "allreduce" in out and "sparse_gemm_grouped" in out
