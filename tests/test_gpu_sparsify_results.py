"""The committed CUDA check of ampersim.sparsify (benchmarks/gpu_sparsify_check.py on a lent GPU)."""
import json

from ampersim.core.resources import data_dir

RESULT = data_dir("validation") / "gpu_sparsify" / "h200.json"


def test_gpu_sparsify_check_passed_on_the_device():
    data = json.loads(RESULT.read_text())
    env = data["environment"]
    assert env["gpu"] == "NVIDIA H200" and env["driver"] and env["torch"].startswith("2.")
    rows = data["kernel_vs_cpu"]
    assert {(r["dtype"], r["pattern"], r["factor"]) for r in rows} == {
        (d, p, f) for d in ("torch.float16", "torch.bfloat16", "torch.float32")
        for p in ("2:4", "8:16", "16:32", "2:8") for f in (False, True)}
    assert all(r["bit_identical"] for r in rows)
    for r in rows:  # random data: exactly N of every M survive
        n, m = map(int, r["pattern"].split(":"))
        assert abs(r["nonzero_fraction"] - n / m) < 1e-3
    model = data["model"]
    assert model["sparse_layers"] == 28 and model["coverage"] == 1.0
    for key in ("prefill_inputs_nm_sparse", "decode_inputs_dense", "sparse_logits_finite",
                "sparse_changed_logits", "remove_bit_identical"):
        assert model[key] is True, key
