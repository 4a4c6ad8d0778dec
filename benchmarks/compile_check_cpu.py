"""What the compile section's check of benchmarks/gpu_eager_prefill.py measured on the H200 (compiled vs
eager amber 2:4 layer, relative error 0.0237), reproduced on the CPU with the same code.

The device script compiles the decoder-layer function with Inductor (eager rotary and SiLU·up
formulations, the sparse linears as the custom op ``ampersim::sparse_linear_24``) and compares one
Llama-3.1-8B layer with the same layer run eagerly. On the CPU the custom op computes the same function
densely (prune, then F.linear), so everything around it is the device run's code. Printed: the layer's
relative error compiled vs eager, dense and amber 2:4, and for the input of down_proj (SiLU·up, which
Inductor fuses in fp32 where eager torch rounds silu(gate) to bf16 first) the share of bf16 values and
of 2:4 selections that differ.

    PYTHONPATH=. python benchmarks/compile_check_cpu.py [--tokens 1024] [--seed 0]
"""
from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F

from ampersim.kernels import torch_eager
from ampersim.measure.model import DecoderLayer, SparsePath, layer_kinds, rotary_tables, silu_mul_eager
from ampersim.measure.ops import rel_err
from ampersim.models.registry import load_model_spec
from ampersim.runtime import sparse_linear as SL
from ampersim.sparsity.policy import resolve_policy


def run_layer(layer, x, cos, sin, path):
    return layer(x, cos, sin, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="activation-sparse linear runs dense")
    torch.manual_seed(args.seed)
    spec = load_model_spec("llama-3.1-8b")
    policy = resolve_policy("amber", spec, pattern="2:4")
    T = args.tokens
    layer = DecoderLayer(spec, layer_kinds(policy, 0), "bf16", "cpu")
    cos, sin = rotary_tables(T, spec.head_dim, "cpu", "bf16", spec.rope_theta)
    x = torch.randn(T, spec.hidden_size).to(torch.bfloat16)
    plans = SparsePath("fused_cslt_plans", lambda t: t, True, (2, 4),  # as benchmarks/gpu_eager_prefill.py
                       matmul=lambda t, lin, _T: SL.sparse_linears_24(t, [lin.w])[0])
    compiled = torch.compile(run_layer)
    print(f"llama-3.1-8b layer 0, {T} tokens, seed {args.seed}: Inductor (CPU) vs eager, relative error")
    for name, path in (("dense", None), ("amber 2:4", plans)):
        print(f"  {name:10s} {rel_err(compiled(layer, x, cos, sin, path), layer(x, cos, sin, path)):.4f}")
    h = F.rms_norm(x, (x.shape[1],), layer.ffn_norm, 1e-6)
    gate, up = layer.linears["gate_proj"].dense(h), layer.linears["up_proj"].dense(h)
    eager_act, compiled_act = silu_mul_eager(gate, up), torch.compile(silu_mul_eager)(gate, up)
    groups = (torch_eager.keep_mask(eager_act, "2:4") != torch_eager.keep_mask(compiled_act, "2:4")).view(-1, 4).any(1)
    print(f"down_proj input silu(gate)·up on the same gate, up: bf16 values differ "
          f"{float((eager_act != compiled_act).float().mean()):.4f}, 2:4 groups selected differently "
          f"{float(groups.float().mean()):.4f}")


if __name__ == "__main__":
    main()
