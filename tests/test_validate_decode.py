"""Decode and mixed steps measured on an H200 (validation/h200-decode*.jsonl): the files' consistency, and the
calibrated profile's error on them within the bounds docs/validation.md reports (measured values rounded up a
little). Llama-3.1-8B's rows fitted the decode terms; Qwen2-7B's are held out."""

import pytest

from ampersim.core.resources import data_dir
from ampersim.hardware.registry import load_profile
from ampersim.measure.records import LayerMeasurement, OpMeasurement, read_measurements
from ampersim.measure.validate import validate

VALIDATION = data_dir("validation")
FILES = {"llama-3.1-8b": VALIDATION / "h200-decode.jsonl", "qwen2-7b": VALIDATION / "h200-decode-qwen2.jsonl"}
BATCHES, CONTEXTS = (1, 16, 64, 256), (512, 4096, 32768)
H200_GBPS = 4800.0


@pytest.fixture(scope="module")
def files():
    return {model: read_measurements(path) for model, path in FILES.items()}


@pytest.fixture(scope="module")
def result(files):
    return validate(list(files.values()), load_profile("h200-calibrated"))


def _summary(result, category, split):
    return next(s for s in result["summary"] if s["category"] == category and s["split"] == split)


def test_files_hold_the_documented_runs(files):
    """One H200, the commands docs/validation.md gives, every planned item measured and checked."""
    argv = {"llama-3.1-8b": ["--workload", "llama-3.1-8b", "--what", "decode,mixed", "--decode-batch", "16,1,64,256",
                             "--decode-context", "4096,512,32768", "--mixed-tokens", "2048"],
            "qwen2-7b": ["--workload", "qwen2-7b", "--what", "decode", "--decode-batch", "1,16,64,256",
                         "--decode-context", "512,4096,32768"]}
    for model, mfile in files.items():
        assert mfile.environment.gpu == "NVIDIA H200" and not mfile.skips and mfile.truncated_line is None
        assert len(mfile.headers) == 1 and " ".join(argv[model]) in " ".join(mfile.headers[0].argv)
        assert all(r.check.ok for r in mfile.records) and {r.model for r in mfile.records} == {model}
        assert all(r.step is not None and r.dtype == "bf16" and r.tp == 1 for r in mfile.records)


@pytest.mark.parametrize("model", list(FILES))
def test_every_decode_point_is_a_whole_layer_and_its_attention(files, model):
    """Decode steps: the whole layer (dense) and decode attention at each batch x context of the grid."""
    records = files[model].records
    for kind in ("layer", "attention"):
        got = sorted((r.step.decode_batch, r.step.decode_context) for r in records if r.tokens == 0 and (
            isinstance(r, LayerMeasurement) if kind == "layer" else
            isinstance(r, OpMeasurement) and r.op.kind == "decode_attention"))
        assert got == sorted((b, c) for b in BATCHES for c in CONTEXTS), kind


@pytest.mark.parametrize("model", list(FILES))
def test_decode_attention_grows_with_the_cache_and_never_beats_peak_bandwidth(files, model):
    times = {(r.step.decode_batch, r.step.decode_context): r for r in files[model].records
             if isinstance(r, OpMeasurement) and r.op.kind == "decode_attention"}
    for b in BATCHES:
        assert [times[(b, c)].timing.median_s for c in CONTEXTS] == sorted(times[(b, c)].timing.median_s
                                                                            for c in CONTEXTS)
    for c in CONTEXTS:
        assert [times[(b, c)].timing.median_s for b in BATCHES] == sorted(times[(b, c)].timing.median_s
                                                                           for b in BATCHES)
    for r in times.values():  # the KV cache (and the queries) read at most at the datasheet bandwidth
        assert r.timing.median_s > r.op.bytes / (H200_GBPS * 1e9)
    big = times[(256, 32768)]  # streams 34 GB (Llama) / 17 GB (Qwen2) of cache at over 0.9 of the 4.8 TB/s
    assert big.op.bytes / big.timing.median_s / (H200_GBPS * 1e9) > 0.9


def test_mixed_steps_one_point_each_mode(files):
    """Llama-3.1-8B, a 2048-token step: 16 decode rows at 4096 tokens of context + a 2032-token chunk, amber 2:4.
    prune_all is faster than split (split reads the sparsified weights twice); both beat dense."""
    layers = {(r.variant, r.prune_impl, r.step.mixed): r for r in files["llama-3.1-8b"].records
              if isinstance(r, LayerMeasurement) and r.tokens > 0}
    assert set(layers) == {("dense", None, "split"), ("sparse", "fused_cslt", "split"),
                           ("sparse", "fused_cslt", "prune_all"), ("sparse", "torch_eager_cslt", "split"),
                           ("sparse", "torch_eager_cslt", "prune_all")}
    assert all(r.tokens == 2032 and (r.step.decode_batch, r.step.decode_context) == (16, 4096) for r in layers.values())
    dense = layers[("dense", None, "split")].timing.median_s
    split = layers[("sparse", "fused_cslt", "split")].timing.median_s
    prune_all = layers[("sparse", "fused_cslt", "prune_all")].timing.median_s
    assert dense / split == pytest.approx(1.088, abs=0.005) and dense / prune_all == pytest.approx(1.164, abs=0.005)


# (category, split, MAPE bound %, max |error| bound %) documented in docs/validation.md
BOUNDS = [
    ("decode_layer_dense", "held-out", 5.5, 9.5),  # issue 15's goal: <= 7 %
    ("decode_layer_dense", "fit", 3.0, 6.5),
    ("decode_attention", "held-out", 6.0, 20.0),
    ("decode_attention", "fit", 4.5, 24.5),
    ("dense_gemm", "held-out", 7.0, 21.0),
    ("mixed_layer_dense", "fit", 1.0, 1.0),
    ("mixed_layer_sparse:fused_cslt[split]", "fit", 2.0, 2.0),
    ("mixed_layer_sparse:fused_cslt[prune_all]", "fit", 3.5, 3.5),
]


@pytest.mark.parametrize("category,split,mape,worst", BOUNDS)
def test_calibrated_profile_within_documented_bounds(result, category, split, mape, worst):
    s = _summary(result, category, split)
    assert s["n"] > 0 and s["mape_pct"] <= mape and s["max_abs_err_pct"] <= worst


def test_mixed_step_speedups_predicted(result):
    pairs = {p["category"]: p for p in result["speedups"] if p["category"].startswith("mixed_layer_sparse:fused_cslt")}
    assert len(pairs) == 2 and all(p["abs_err"] <= 0.03 for p in pairs.values())
    split, prune_all = pairs["mixed_layer_sparse:fused_cslt[split]"], pairs["mixed_layer_sparse:fused_cslt[prune_all]"]
    assert split["predicted_speedup"] < prune_all["predicted_speedup"]


def test_each_decode_term_lowers_the_held_out_error(files, result):
    """Without the decode attention terms, or without the memory-bound GEMM terms, the same profile predicts the
    held-out decode layers worse (and misses the 7 % goal); the shipped profile misses it too."""
    calibrated = load_profile("h200-calibrated")
    eff = calibrated.efficiency
    no_decode_attention = eff.model_copy(update={"decode_attention_fraction": None, "decode_attention_latency_us": None})
    no_gemv = eff.model_copy(update={"dense_gemm": eff.dense_gemm.model_copy(
        update={"memory_fraction": None, "memory_latency_us": None})})
    held = _summary(result, "decode_layer_dense", "held-out")["mape_pct"]
    for changed in (no_decode_attention, no_gemv):
        other = validate(list(files.values()), calibrated.model_copy(update={"efficiency": changed}))
        assert _summary(other, "decode_layer_dense", "held-out")["mape_pct"] > max(held + 1.5, 7.0)
    shipped = validate(list(files.values()), load_profile("h200"))
    assert _summary(shipped, "decode_layer_dense", "held-out")["mape_pct"] > 10.0


MIXED = VALIDATION / "h200-mixed.jsonl"
BUDGETS = {512: 496, 2048: 2032, 8192: 8176}  # token budget -> prompt chunk beside 16 decode rows


def test_mixed_budgets_run_is_the_documented_one_and_held_out_within_its_bounds():
    """validation/h200-mixed.jsonl: three budgets, every mode, every check passed; the calibrated profile
    (which never saw the file) predicts the fused layers within 4 % and their speedups within 0.05."""
    mfile = read_measurements(MIXED)
    assert mfile.environment.gpu == "NVIDIA H200" and not mfile.skips and mfile.truncated_line is None
    assert "--mixed-tokens 512,2048,8192" in " ".join(mfile.headers[0].argv)
    assert all(r.check.ok for r in mfile.records)
    layers = {(r.tokens, r.variant, r.prune_impl, r.step.mixed): r.timing.median_s for r in mfile.records
              if isinstance(r, LayerMeasurement)}
    for chunk in BUDGETS.values():
        dense = layers[(chunk, "dense", None, "split")]
        split = layers[(chunk, "sparse", "fused_cslt", "split")]
        prune_all = layers[(chunk, "sparse", "fused_cslt", "prune_all")]
        assert prune_all < split  # split re-reads the sparsified weights for the decode rows
        assert prune_all < dense
    assert layers[(496, "sparse", "fused_cslt", "split")] > layers[(496, "dense", None, "split")]  # 0.88x at 512
    result = validate([mfile], load_profile("h200-calibrated"))
    for category in ("mixed_layer_dense", "mixed_layer_sparse:fused_cslt[split]",
                     "mixed_layer_sparse:fused_cslt[prune_all]"):
        s = _summary(result, category, "fit")
        assert s["n"] == 3 and s["max_abs_err_pct"] < 4.0, (category, s)
    fused = [s for s in result["speedups"] if s["category"].startswith("mixed_layer_sparse:fused_cslt")]
    assert len(fused) == 6 and max(s["abs_err"] for s in fused) < 0.05
