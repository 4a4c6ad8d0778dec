"""Decode-step times of two peer simulators next to ampersim's, on the same shapes (comparisons, not truth).

Step 1, in a separate virtual environment with the peers (they are not project dependencies):

    python3 -m venv /work/scratch/peers-venv
    /work/scratch/peers-venv/bin/pip install genz-llm==0.0.16 llm-analysis==0.2.2
    /work/scratch/peers-venv/bin/python benchmarks/peers_decode.py --peers > peers.json

Step 2, in the project's environment (prints a Markdown table):

    python benchmarks/peers_decode.py --peers-json peers.json

Shapes: Llama-3.1-8B, bf16, tensor parallel 1, on an H100 SXM (989 dense bf16 TFLOPS, 3,350 GB/s, 80 GB),
decode steps of ``batch`` sequences each holding ``context`` tokens (SHAPES). The floor is what no step can beat: every
weight but the embedding table read once, plus the KV cache, at the peak bandwidth.
"""

from __future__ import annotations

import argparse
import json
import sys

SHAPES = ((1, 1024), (1, 4096), (8, 1024), (8, 4096), (64, 1024), (64, 4096), (256, 1024))  # (batch, context)
H100 = {"flops_tflops": 989, "bandwidth_gbps": 3350, "memory_gb": 80}
LLAMA_8B = {"name": "llama-3.1-8b", "num_layers": 32, "n_head": 32, "hidden_dim": 4096, "vocab_size": 128256,
            "max_seq_len": 131072, "num_key_value_heads": 8, "expansion_ratio": 3.5, "model_type": "llama"}


def peers() -> dict[str, dict[str, float]]:
    """Per shape 'BxC': decode-step ms of GenZ and llm-analysis (each at its defaults: 100 % of peak)."""
    import json as _json
    import logging
    import tempfile
    import warnings

    warnings.filterwarnings("ignore")
    from GenZ.LLM_inference import decode_moddeling
    from llm_analysis.analysis import infer

    logging.disable(logging.CRITICAL)
    system = {"real_values": True, "Flops": H100["flops_tflops"], "Memory_BW": H100["bandwidth_gbps"],
              "Memory_size": H100["memory_gb"], "ICN": 450, "ICN_LL": 1}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        _json.dump(LLAMA_8B, fh)
        model_path = fh.name
    out: dict[str, dict[str, float]] = {}
    for b, c in SHAPES:
        genz = decode_moddeling(model="meta-llama/Llama-3.1-8B", batch_size=b, input_tokens=c, output_tokens=0,
                                Bb=1, system_name=system, bits="bf16", tensor_parallel=1)
        la = infer(model_name=model_path, gpu_name="h100-sxm-80gb", dtype_name="w16a16e16",
                   batch_size_per_gpu=b, seq_len=c, num_tokens_to_generate=1, log_level="CRITICAL")
        out[f"{b}x{c}"] = {"genz_ms": float(genz["Latency"]), "llm_analysis_ms": 1e3 * float(la["decode_latency"])}
    return out


def ampersim_rows(peer: dict[str, dict[str, float]]) -> list[dict[str, float | str]]:
    from ampersim.hardware.registry import load_profile
    from ampersim.models.registry import load_model_spec
    from ampersim.sim.cost import OpColumns, cost_graph
    from ampersim.sim.graph import DecodeShape, StepShape, graph_for_step
    from ampersim.sparsity.policy import resolve_policy

    spec = load_model_spec("llama-3.1-8b")
    policy = resolve_policy("none", spec)
    rows = []
    for b, c in SHAPES:
        ops = graph_for_step(spec, policy, StepShape(decode=DecodeShape.from_contexts([c] * b)), "bf16", 1)
        cols = OpColumns.from_ops(ops)
        times = {name: float(cost_graph(cols, load_profile(name), "bf16", None, 1).totals(cols.count)[0][0])
                 for name in ("h100-sxm", "h100-sxm-calibrated")}
        weights = (spec.num_parameters - spec.vocab_size * spec.hidden_size) * 2
        kv = b * c * 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * 2
        floor = (weights + kv) / (H100["bandwidth_gbps"] * 1e9)
        rows.append({"batch": b, "context": c, "floor_ms": 1e3 * floor,
                     "ampersim_ms": 1e3 * times["h100-sxm"], "calibrated_ms": 1e3 * times["h100-sxm-calibrated"],
                     **peer.get(f"{b}x{c}", {})})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", action="store_true", help="run the peers (in their virtual environment)")
    parser.add_argument("--peers-json", help="the peers' numbers from --peers")
    args = parser.parse_args()
    if args.peers:
        json.dump(peers(), sys.stdout, indent=2)
        return
    peer = json.load(open(args.peers_json)) if args.peers_json else {}
    cols = ("batch", "context", "floor_ms", "ampersim_ms", "calibrated_ms", "genz_ms", "llm_analysis_ms")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in ampersim_rows(peer):
        print("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "-"))
                                 for c in cols) + " |")


if __name__ == "__main__":
    main()
