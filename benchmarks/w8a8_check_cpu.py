"""Why the W8A8 + 2:4 whole-layer check of benchmarks/gpu_eager_prefill.py failed on the H200 in its first
run (max layer relative error 0.024 against its 2e-2 tolerance), reproduced on the CPU. The diagnosis led
to the fix: ``sparse_linear_int8`` now takes int32 from cuSPARSELt and dequantizes in one pass like the
dense path ("one rounding" below), and the float model's integer product is exact (float64).

The check (``DecoderModel.layer_errors``) runs one Llama-3.1-8B decoder layer twice on the same input:
the W8A8 kernels (per-token int8 quantization, int8 GEMMs, 2:4 prune + quantize + compress and
cuSPARSELt's int8 2:4 GEMM, then the scales) and their float model (``reference=True``: eager masking, the same quantization,
float products). Here the GPU kernels are replaced by torch code with their arithmetic (no GPU, no
Triton interpreter: it truncates bf16 stores where a GPU rounds to nearest); everything else is the
harness's own code (``ampersim.measure.model``: the layer, its weights' quantization, the float model).

    PYTHONPATH=. python benchmarks/w8a8_check_cpu.py [--tokens 1024] [--layers 1] [--seed 0]

Printed per layer: the check's number (kernel layer vs float model) for the dense W8A8 layer and the
amber 2:4 one, the same 2:4 layer with a one-rounding epilogue (weight scale applied in fp32 before the
single bf16 rounding, as the dense path's dequantization does), the worst single linear on its own
float model's input (per-linear, teacher-forced), and for down_proj's input the share of bf16 values,
int8 codes and 2:4 selections that differ between the two computations of the layer.
"""
from __future__ import annotations

import argparse

import torch

from ampersim.kernels import torch_eager
from ampersim.kernels.gpu import pruner as kernels_gpu
from ampersim.kernels.gpu import triton_elementwise
from ampersim.measure.model import DecoderLayer, SparsePath, layer_kinds, rotary_tables
from ampersim.measure.ops import rel_err
from ampersim.models.registry import load_model_spec
from ampersim.sparsity.policy import resolve_policy


def quantize_int8(x: torch.Tensor, *, prune_24: bool = False, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
    """The quantization kernels' arithmetic: scale = absmax / 127 (1 for a zero row), round half to even of
    x · (1 / scale) in fp32, clamp to ±127 (2:4-pruned first when ``prune_24``)."""
    xf = (torch_eager.prune(x, "2:4") if prune_24 else x).float()
    amax = xf.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    return torch.round(xf * (1.0 / scale)[:, None]).clamp(-127, 127).to(torch.int8), scale


def dequant(acc: torch.Tensor, row_scale: torch.Tensor, col_scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The dense W8A8 epilogue kernel: fp32 acc · row scale · column scale, one rounding to ``dtype``."""
    return (acc.float() * row_scale[:, None] * col_scale[None, :]).to(dtype)


def sparse_int8(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, one_rounding: bool) -> torch.Tensor:
    """``sparse_linear_int8`` on the GPU: exact int32 product of the 2:4-pruned int8 codes, then
    ``one_rounding``: the dense path's epilogue (what it does now); otherwise the first run's cuSPARSELt
    alpha-vector epilogue to bf16 followed by ``y.mul_(w_scale.to(bf16))`` (two roundings)."""
    q, s = quantize_int8(x, prune_24=True)
    acc = torch._int_mm(q, w_q.t())
    if one_rounding:
        return dequant(acc, s, w_scale, x.dtype)
    return (acc.float() * s[:, None]).to(x.dtype).mul_(w_scale.to(x.dtype))


def run_layer(layer: DecoderLayer, x: torch.Tensor, cos, sin, path: SparsePath | None) -> dict:
    """The check's number for one layer and path, and what differs inside it."""
    acts: dict[str, torch.Tensor] = {}
    inputs: list[tuple[torch.Tensor, tuple[str, ...], list[str]]] = []
    silu_mul, project = layer.silu_mul, layer._project_int8

    def record_act(which):
        def fn(gate, up):
            acts[which] = silu_mul(gate, up)
            return acts[which]
        return fn

    def record_inputs(x_, kinds, sparse, path_, pruned, reference):
        if reference:
            inputs.append((x_, kinds, sparse))
        return project(x_, kinds, sparse, path_, pruned, reference)

    layer._project_int8 = record_inputs
    layer.silu_mul = record_act("kernels")
    out = layer(x, cos, sin, path)
    layer.silu_mul = record_act("reference")
    ref = layer(x, cos, sin, path, reference=True)
    layer.silu_mul, layer._project_int8 = silu_mul, project
    per_linear = 0.0
    for x_in, kinds, sparse in inputs:  # every linear on the float model's own input
        q, s = quantize_int8(x_in)
        for kind in kinds:
            lin = layer.linears[kind]
            got = path.matmul(x_in, lin, x_in.shape[0]) if kind in sparse else lin.dense_int8(q, s)
            want = lin.reference_int8(torch_eager.prune(x_in, "2:4") if kind in sparse else x_in)
            per_linear = max(per_linear, rel_err(got, want))
    a, b = acts["kernels"], acts["reference"]
    stats = {"layer_rel_err": rel_err(out, ref), "worst_linear_rel_err": per_linear,
             "act_bf16_differ": float((a != b).float().mean())}
    if path is not None and "down_proj" in layer.sparse_kinds:
        qa, _ = quantize_int8(a, prune_24=True)
        qb, _ = quantize_int8(b, prune_24=True)
        stats["int8_codes_differ"] = float((qa != qb).float().mean())
        stats["selections_differ"] = float((torch_eager.keep_mask(a, "2:4") != torch_eager.keep_mask(b, "2:4"))
                                           .view(-1, 4).any(dim=1).float().mean())
    return out, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=1, help="first N layers, teacher-forced as the check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kernels_gpu.quantize_int8 = quantize_int8  # the layer's dense W8A8 path calls these two kernels
    triton_elementwise.dequant = dequant
    torch.manual_seed(args.seed)
    spec = load_model_spec("llama-3.1-8b")
    policy = resolve_policy("amber", spec, pattern="2:4")
    T = args.tokens
    cos, sin = rotary_tables(T, spec.head_dim, "cpu", "bf16", spec.rope_theta)
    x = torch.randn(T, spec.hidden_size).to(torch.bfloat16)  # what the model's random embedding gives
    paths = {"2:4, two roundings (run 1)": False, "2:4, one rounding (now)": True}
    print(f"llama-3.1-8b, {T} tokens, seed {args.seed}; check tolerance 2e-2 (benchmarks/gpu_eager_prefill.py)")
    print(f"{'layer':>5}  {'variant':28s} {'layer err':>10} {'worst linear':>12} {'act bf16 ≠':>10} "
          f"{'int8 codes ≠':>12} {'2:4 groups ≠':>12}")
    for i in range(args.layers):
        layer = DecoderLayer(spec, layer_kinds(policy, i), "bf16", "cpu", int8=True)
        _, dense = run_layer(layer, x, cos, sin, None)
        print(f"{i:5d}  {'dense W8A8':28s} {dense['layer_rel_err']:10.4f} {dense['worst_linear_rel_err']:12.4f} "
              f"{dense['act_bf16_differ']:10.4f}")
        nxt = None
        for name, one_rounding in paths.items():
            path = SparsePath("w8a8_cpu", lambda t: t, True, (2, 4),
                              matmul=lambda t, lin, _T, r=one_rounding: sparse_int8(t, lin.w_q, lin.w_scale, r))
            out, s = run_layer(layer, x, cos, sin, path)
            nxt = out if nxt is None else nxt
            print(f"{i:5d}  {name:28s} {s['layer_rel_err']:10.4f} {s['worst_linear_rel_err']:12.4f} "
                  f"{s['act_bf16_differ']:10.4f} {s.get('int8_codes_differ', float('nan')):12.4f} "
                  f"{s.get('selections_differ', float('nan')):12.4f}")
        x = nxt  # the next layer sees what the W8A8 2:4 model gives it (teacher forcing, as the check)


if __name__ == "__main__":
    main()
