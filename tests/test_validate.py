"""`ampersim validate` on the committed H200 measurements: documented error bounds, mismatch, bad files.

The bounds are the ones docs/validation.md reports (measured values rounded up a little); they
fail if a change to the cost model, the graph or the calibrated profile makes the fit worse.
"""
import json

import pytest

from ampersim.cli import main
from ampersim.core.errors import InvalidArgument
from ampersim.core.resources import data_dir
from ampersim.hardware.registry import load_profile
from ampersim.measure.records import read_measurements
from ampersim.measure.validate import read_for_profile, validate

H200 = data_dir("validation") / "h200.jsonl"
CALIBRATED = data_dir("hardware_profiles") / "calibrated" / "h200-calibrated.yaml"


@pytest.fixture(scope="module")
def result():
    return validate(read_measurements(H200), load_profile(CALIBRATED))


def _summary(result, category, split):
    return next(s for s in result["summary"] if s["category"] == category and s["split"] == split)


# (category, split, MAPE bound %, max |error| bound %) documented in docs/validation.md
BOUNDS = [
    ("dense_gemm", "held-out", 5.0, 27.0),  # max: Qwen3's router at 4096 tokens, +27 % (the GEMV latency; docs)
    ("sparse_gemm", "held-out", 8.0, 40.0),
    ("dense_gemm", "fit", 4.0, 8.5),
    ("sparse_gemm", "fit", 4.5, 17.0),
    ("layer_dense", "held-out", 2.5, 5.0),
    ("layer_dense", "fit", 3.0, 5.0),
    ("layer_sparse:fused_cslt", "held-out", 4.0, 13.5),
    ("layer_sparse:fused_cslt", "fit", 3.0, 5.5),
    ("layer_sparse:torch_eager_cslt", "held-out", 5.0, 7.5),
    ("model_dense", "fit", 3.0, 4.5),
    ("model_sparse:fused_cslt", "fit", 4.0, 6.0),
    ("attention", "held-out", 13.0, 41.0),
    ("prune:fused_cslt", "fit", 3.0, 8.5),
    ("prune:fused_mask", "fit", 11.0, 28.0),
    ("sparse_gemm_grouped", "held-out", 18.5, 35.0),  # 2:4 MoE experts, one call per expert (grouped: false)
]


@pytest.mark.parametrize("category,split,mape,worst", BOUNDS)
def test_documented_error_bounds(result, category, split, mape, worst):
    s = _summary(result, category, split)
    assert s["n"] > 0
    assert s["mape_pct"] <= mape and s["max_abs_err_pct"] <= worst


def test_long_prompt_sparse_gemms_and_speedups(result):
    """At 16384 tokens the held-out 2:4 GEMMs meet the 5 % / 0.05 goals; small token counts do not."""
    rows = [r for r in result["rows"] if r["category"] == "sparse_gemm" and r["split"] == "held-out"
            and r["tokens"] == 16384]
    assert len(rows) == 11 and sum(abs(r["err_pct"]) for r in rows) / len(rows) <= 5.0
    pairs = [p for p in result["speedups"] if p["category"] == "sparse_gemm" and p["split"] == "held-out"
             and p["tokens"] == 16384]
    assert sum(p["abs_err"] for p in pairs) / len(pairs) <= 0.05
    layer = [p for p in result["speedups"] if p["category"] == "layer_sparse:fused_cslt"]
    assert max(p["abs_err"] for p in layer) <= 0.075


def test_the_two_model_terms_calibration_chose_matter_on_held_out_rows(result):
    """Without the attention ramp, or with split-K back on, the same profile predicts held-out rows worse."""
    calibrated = load_profile(CALIBRATED)
    eff = calibrated.efficiency
    no_ramp = calibrated.model_copy(update={"efficiency": eff.model_copy(update={"attention_keys_half": None})})
    split = calibrated.model_copy(update={"efficiency": eff.model_copy(update={
        "dense_gemm": eff.dense_gemm.model_copy(update={"split_k": True}),
        "sparse_gemm": eff.sparse_gemm.model_copy(update={"split_k": True})})})
    mfile = read_measurements(H200)
    assert (_summary(validate(mfile, no_ramp), "attention", "held-out")["mape_pct"]
            > _summary(result, "attention", "held-out")["mape_pct"] + 10)
    for category in ("dense_gemm", "sparse_gemm"):
        assert (_summary(validate(mfile, split), category, "held-out")["mape_pct"]
                > _summary(result, category, "held-out")["mape_pct"])


def test_per_expert_launches_predict_the_grouped_sparse_gemms(result):
    """MoE 2:4 experts (held out) are predicted from the per-call model; costed as one grouped kernel
    (what a batched cuSPARSELt call would be), the same profile is off by ~87 %."""
    pairs = [p for p in result["speedups"] if p["category"] == "sparse_gemm_grouped"]
    assert len(pairs) == 8 and sum(p["abs_err"] for p in pairs) / len(pairs) <= 0.04
    assert all(p["measured_speedup"] < 0.5 for p in pairs)  # torch: 7-16x slower than the dense bmm
    calibrated = load_profile(CALIBRATED)
    eff = calibrated.efficiency
    one_kernel = calibrated.model_copy(update={"efficiency": eff.model_copy(update={
        "sparse_gemm": eff.sparse_gemm.model_copy(update={"grouped": True})})})
    assert _summary(validate(read_measurements(H200), one_kernel), "sparse_gemm_grouped", "held-out")["mape_pct"] > 80


def test_measured_speedups_are_real_numbers(result):
    """The fused prune + 2:4 layer beats dense at >= 1024 tokens on Llama-3.1-8B (measured, not predicted)."""
    layer = {p["tokens"]: p["measured_speedup"] for p in result["speedups"]
             if p["category"] == "layer_sparse:fused_cslt" and p["model"] == "llama-3.1-8b" and p["name"] == "layer 0"}
    assert all(layer[t] > 1.1 for t in (1024, 4096, 16384)) and layer[256] < 1.0


def test_cli_table_json_and_plot(tmp_path, capsys):
    plot = tmp_path / "v.png"
    assert main(["validate", "--measurements", str(H200), "--profile", str(CALIBRATED), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "dense_gemm" in out and "held-out" in out and "speedup mean |err|" in out
    assert plot.stat().st_size > 10_000
    assert main(["validate", "--measurements", str(H200), "--profile", str(CALIBRATED), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpu"] == "NVIDIA H200" and data["holdout"] == ["llama-3.1-70b", "qwen2-7b", "qwen3-30b-a3b"]


def test_gpu_mismatch_refused_then_forced_with_a_loud_warning(capsys):
    assert main(["validate", "--measurements", str(H200), "--profile", "h100-sxm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --force: {H200}: measurements from 'NVIDIA H200'") and "GPU mismatch" in err
    assert main(["validate", "--measurements", str(H200), "--profile", "h100-sxm", "--force"]) == 0
    assert "GPU MISMATCH" in capsys.readouterr().err


def test_read_for_profile_checks_every_file():
    h100 = load_profile("h100-sxm")
    with pytest.raises(InvalidArgument, match=f"^{H200}: measurements from 'NVIDIA H200'.*GPU mismatch") as info:
        read_for_profile([H200], h100)
    assert info.value.field == "force"
    files, warnings = read_for_profile([H200], h100, force=True)
    assert [f.gpu for f in files] == ["NVIDIA H200"] and len(warnings) == 1 and "GPU MISMATCH" in warnings[0]
    assert read_for_profile([H200], load_profile("h200"))[1] == []
    with pytest.raises(InvalidArgument, match="no measurement file given"):
        read_for_profile([], h100)


def test_truncated_file_is_read_with_a_warning_naming_the_line(tmp_path, capsys):
    lines = H200.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:40]) + lines[40][:50])
    assert main(["validate", "--measurements", str(cut), "--profile", str(CALIBRATED)]) == 0
    assert "cut.jsonl:41: incomplete last line ignored" in capsys.readouterr().err


def test_foreign_file_is_one_line_error(tmp_path, capsys):
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"profile": "h200", "rows": []}) + "\n")
    assert main(["validate", "--measurements", str(foreign), "--profile", "h200"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {foreign}:1: not an ampersim measurement file (expected a header line with format 'ampersim-measurements')\n"
