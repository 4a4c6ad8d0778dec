"""`ampersim predict` and `ampersim coverage`: outputs and one-line errors with exit status 2."""
import json

import pytest

from ampersim.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_predict_profile_only_is_useful(capsys):
    code, out, err = _run(capsys, "predict", "--profile", "a100")
    assert code == 0 and err == ""
    assert "llama-3.1-8b prefill on a100-sxm" in out and "4096 tokens" in out
    assert "layers 0-18,20,22-27,29 (27 of 32), per layer" in out
    assert "layers 19,21,28,30-31 (5 of 32)" in out
    assert "prefill total (= TTFT of this batch)" in out and "prompt tokens/s" in out
    assert "native 2:4" in out and "dense + masking" in out and "not accelerated by a100-sxm" in out
    assert "lm_head" in out and "q_proj" in out and "compute" in out


def test_predict_json_contract(capsys):
    code, out, err = _run(capsys, "predict", "--profile", "h100-sxm", "--format", "json")
    assert code == 0 and err == ""
    data = json.loads(out)  # exactly one JSON object
    for key in ("profile", "model", "tokens", "pattern", "dense_total_s", "sparse_total_s", "speedup", "ops"):
        assert key in data
    assert data["profile"] == "h100-sxm" and data["tokens"] == 4096 and data["pattern"] == "8:16"
    for op in data["ops"]:
        assert {"name", "kind", "M", "N", "K", "dense_s", "sparse_s", "bound"} <= set(op)
    assert data["dense_total_s"] == pytest.approx(sum(op["dense_s"] * op["count"] for op in data["ops"]))
    assert [c["pattern"] for c in data["comparison"]] == ["2:4", "8:16"]
    assert data["comparison"][0]["speedup"] > 1 > data["comparison"][1]["speedup"]


def test_predict_json_adds_the_decode_side(capsys):
    code, out, _ = _run(capsys, "predict", "--profile", "h100-sxm", "--workload", "chat", "--pattern", "2:4",
                        "--format", "json")
    data = json.loads(out)
    for key in ("profile", "model", "tokens", "pattern", "dense_total_s", "sparse_total_s", "speedup", "ops",
                "weights_gb_per_gpu", "fits_memory", "comparison"):
        assert key in data  # the keys predict always had
    assert data["output_tokens"] == [211] * 8 and data["memory"]["kv_bytes_per_token"] == 131072
    assert data["decode"]["batch"] == 8 and data["decode"]["ops"][0]["name"] == "embedding"
    assert set(data["request"]) >= {"decode_s", "tpot_s", "e2e_dense_s", "e2e_sparse_s", "e2e_speedup"}
    code, out, _ = _run(capsys, "predict", "--profile", "h100-sxm", "--workload", "chat", "--output-tokens", "0",
                        "--format", "json")
    assert json.loads(out)["decode"] is None


def test_predict_table_shows_decode_and_memory(capsys):
    code, out, _ = _run(capsys, "predict", "--profile", "h100-sxm", "--workload", "chat", "--output-tokens", "64")
    assert code == 0 and "decode step (dense: decode is never sparsified): batch 8" in out
    assert "decode_attention" in out and "whole request (64 output tokens each" in out
    assert "KV cache: 128 KiB per token per GPU" in out and "prune_all" in out


def test_predict_csv_and_overrides(capsys):
    code, out, _ = _run(capsys, "predict", "--profile", "h100", "--workload", "chat", "--model", "qwen2-7b",
                        "--tokens", "1024", "--batch", "2", "--pattern", "2:4", "--policy", "all",
                        "--dtype", "fp8", "--tp", "2", "--prune-impl", "torch_eager_cslt", "--format", "csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "name,kind,layer,layers,count,M,N,K,groups,dense_s,sparse_s,bound,sparse_bound"
    q = next(line.split(",") for line in lines if line.startswith("q_proj,"))
    assert q[1] == "sparse_gemm" and q[3] == "0-27" and float(q[5]) == 2048 and float(q[6]) == 3584 / 2
    assert any(line.startswith("allreduce.attn,allreduce") for line in lines)


def test_predict_workload_file_and_moe(capsys, tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("name: mine\nmodel: qwen3-30b-a3b\nbatch: 2\nprompt_tokens: 2048\npattern: '2:4'\n")
    code, out, _ = _run(capsys, "predict", "--profile", "mi300x", "--workload", str(path))
    assert code == 0 and "workload mine: 2 × 2048 tokens" in out and "router" in out


@pytest.mark.parametrize("argv,match", [
    (["--profile", "h100", "--output-tokens", "-1"], "--output-tokens: must be >= 0"),
    (["--profile", "a10"], "unknown hardware profile 'a10' (did you mean:"),
    (["--profile", "a100", "--model", "lama-3.1-8b"], "unknown model"),
    (["--profile", "a100", "--workload", "chatt"], "unknown workload 'chatt' (did you mean: chat"),
    (["--profile", "a100", "--pattern", "3:2"], "invalid N:M pattern '3:2'"),
    (["--profile", "a100", "--pattern", "0:4"], "invalid N:M pattern '0:4'"),
    (["--profile", "a100", "--pattern", "a:b"], "invalid N:M pattern 'a:b'"),
    (["--profile", "a100", "--tokens", "0"], "error: --tokens: must be > 0; got 0"),
    (["--profile", "a100", "--tokens", "-5"], "error: --tokens: must be > 0; got -5"),
    (["--profile", "a100", "--batch", "0"], "error: --batch: "),
    (["--profile", "a100", "--tp", "3"], "--tp 3 does not divide the attention heads of llama-3.1-8b"),
    (["--profile", "a100", "--dtype", "fp8"], "--dtype fp8 is not supported by profile a100-sxm; it has: fp16, bf16, int8"),
    (["--profile", "a100", "--prune-impl", "fused"], "error: --prune-impl: unknown prune implementation 'fused'"),
    (["--profile", "a100", "--pattern", "8:16", "--prune-impl", "fused_cslt"],
     "error: --prune-impl fused_cslt produces a compressed operand"),
    (["--profile", "a100", "--policy", "amberish"], "policy 'amberish' is neither a preset"),
    (["--profile", "a100", "--tokens", "many"], "invalid int value"),
    (["--profile", "a100", "--dtype", "fp64"], "invalid choice"),
])
def test_predict_bad_input_is_one_line_exit_2(capsys, argv, match):
    code, out, err = _run_catching(capsys, ["predict", *argv])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert match in err


def test_predict_malformed_profile_and_model_files(capsys, tmp_path):
    prof = tmp_path / "gpu.yaml"
    prof.write_text("name: gpu\nvendor: nvidia\ncompute_units: {value: 10, source: nowhere}\n")
    code, _, err = _run_catching(capsys, ["predict", "--profile", str(prof)])
    assert code == 2 and err.startswith(f"error: {prof}:") and "field" in err
    prof.write_text("name: [gpu\n")
    code, _, err = _run_catching(capsys, ["predict", "--profile", str(prof)])
    assert code == 2 and f"{prof}:" in err and "malformed YAML" in err
    model = tmp_path / "m.yaml"
    model.write_text("name: m\nnum_layers: zero\n")
    code, _, err = _run_catching(capsys, ["predict", "--profile", "a100", "--model", str(model)])
    assert code == 2 and err.startswith(f"error: {model}:")


def _run_catching(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_coverage_cli(capsys, tmp_path):
    code, out, _ = _run(capsys, "coverage", "--model", "llama-3.1-8b")
    assert code == 0 and "56.13 % of decoder-layer linear MACs per token sparsified" in out
    assert "19,21,28,30-31" in out
    code, out, _ = _run(capsys, "coverage", "--model", "qwen3-30b-a3b", "--policy", "all", "--format", "json")
    data = json.loads(out)
    assert data["policy"] == "all" and data["fraction"] == 1 and "router" not in data["by_kind"]
    assert data["definition"] == "MoE router excluded from the total, as in the Amber paper"
    code, out, _ = _run(capsys, "coverage", "--model", "qwen3-30b-a3b", "--policy", "all", "--include-router",
                        "--format", "json")
    data = json.loads(out)
    assert data["by_kind"]["router"] == 0 and 0.99 < data["fraction"] < 1 and data["router_included"]
    assert data["kinds"][0] == {"kind": "q_proj", "macs_per_token": 48 * 2048 * 4096, "sparse_macs_per_token":
                                48 * 2048 * 4096, "sparse_layers": list(range(48)), "dense_layers": [], "fraction": 1.0}
    code, out, _ = _run(capsys, "coverage", "--model", "smollm2-135m", "--format", "csv")
    assert out.splitlines()[0].startswith("kind,macs_per_token")
    bad = tmp_path / "p.yaml"
    bad.write_text("rules:\n  - kinds: [lm_head]\n")
    code, _, err = _run_catching(capsys, ["coverage", "--model", "llama-3.1-8b", "--policy", str(bad)])
    assert code == 2 and "p.yaml:2: field 'rules.0.kinds.0'" in err and "'q_proj'" in err
    code, _, err = _run_catching(capsys, ["coverage", "--model", "llama-3.1-8b", "--pattern", "4:4"])
    assert code == 2 and "invalid N:M pattern '4:4'" in err

