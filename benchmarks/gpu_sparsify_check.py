"""Check `ampersim.sparsify` on CUDA: the GPU kernel path equals the CPU pruner, bit for bit.

Run on a CUDA machine from the repository root: `python3 benchmarks/gpu_sparsify_check.py OUT_DIR`.
(1) prune_activation on CUDA (fused Triton kernel) and the eager torch pruner on CUDA vs
ampersim.kernels.cpu.prune on the same data copied to the CPU, for fp16/bf16/fp32, with and without a
static factor, at 2:4, 8:16, 16:32, 2:8 and 3:7;
(2) a random-weight Llama-architecture model on CUDA, sparsified (policy all, amber scoring, 8:16):
every hooked linear input seen in prefill is N:M sparse, decode steps stay dense, and remove()
gives logits bit-identical to the unsparsified model. Writes gpu_sparsify_check.json.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import ampersim
from ampersim.core.patterns import NMPattern
from ampersim.kernels import torch_eager
from ampersim.kernels.cpu import prune
from ampersim.measure.env import capture_environment
from ampersim.runtime.sparsify import prune_activation


def kernel_vs_cpu() -> list[dict]:
    rows = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        bits = torch.int16 if dtype != torch.float32 else torch.int32
        for pattern in ("2:4", "8:16", "16:32", "2:8", "3:7"):
            k = 2044 if pattern == "3:7" else 2048
            for with_factor in (False, True):
                x = torch.randn(513, k, generator=gen, device="cuda").to(dtype)
                factor = torch.rand(k, generator=gen, device="cuda") + 1.0 if with_factor else None
                gpu = prune_activation(x, NMPattern.parse(pattern), factor).cpu()
                eager = torch_eager.prune(x, pattern, factor=factor).cpu()
                cpu = prune(x.cpu(), pattern, factor=None if factor is None else factor.cpu().numpy())
                rows.append({"dtype": str(dtype), "pattern": pattern, "factor": with_factor,
                             "bit_identical": bool(torch.equal(gpu.view(bits), cpu.view(bits))),
                             "eager_bit_identical": bool(torch.equal(eager.view(bits), cpu.view(bits))),
                             "nonzero_fraction": float((gpu != 0).float().mean())})
    return rows


def model_check() -> dict:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                         num_key_value_heads=2, vocab_size=4096, max_position_embeddings=1024)
    model = LlamaForCausalLM(config).to("cuda", torch.bfloat16).eval()
    ids = torch.randint(0, 4096, (2, 256), device="cuda")
    with torch.no_grad():
        before = model(ids).logits.clone()
    handle = ampersim.sparsify(model, "all", pattern="8:16", scoring="amber")
    seen: list[tuple[str, bool]] = []

    def record(name):
        def hook(module, args, output):
            x = args[0].reshape(-1, args[0].shape[-1])
            groups = (x != 0).reshape(x.shape[0], -1, 16).sum(-1)
            seen.append((name, bool((groups <= 8).all())))
        return hook

    probes = [m.register_forward_hook(record(n)) for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and n.endswith("down_proj")]
    with torch.no_grad():
        sparse_logits = model(ids).logits
    prefill_sparse = [ok for _, ok in seen]
    seen.clear()
    with torch.no_grad():
        out = model(ids, use_cache=True)
        model(ids[:, -1:], past_key_values=out.past_key_values)
    decode_dense = [not ok for _, ok in seen[len(prefill_sparse):]]
    for p in probes:
        p.remove()
    handle.remove()
    with torch.no_grad():
        after = model(ids).logits
    return {"sparse_layers": len(handle.layers), "coverage": handle.coverage.fraction if handle.coverage else None,
            "prefill_inputs_nm_sparse": all(prefill_sparse) and len(prefill_sparse) == 4,
            "decode_inputs_dense": all(decode_dense) and len(decode_dense) == 4,
            "sparse_logits_finite": bool(torch.isfinite(sparse_logits).all()),
            "sparse_changed_logits": bool((sparse_logits != before).any()),
            "remove_bit_identical": bool(torch.equal(before, after))}


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    result = {"environment": capture_environment("cuda"), "kernel_vs_cpu": kernel_vs_cpu(), "model": model_check()}
    (out / "gpu_sparsify_check.json").write_text(json.dumps(result, indent=2))
    bad = [r for r in result["kernel_vs_cpu"] if not (r["bit_identical"] and r["eager_bit_identical"])]
    print(json.dumps(result["model"], indent=1))
    print(f"kernel vs CPU: {len(result['kernel_vs_cpu']) - len(bad)}/{len(result['kernel_vs_cpu'])} bit-identical")
    ok = not bad and all(v for k, v in result["model"].items() if isinstance(v, bool))
    print("ALL OK" if ok else "FAILURES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
