"""`ampersim predict`: dense vs N:M-sparse prefill of a workload on one accelerator, op by op, and the
decode side of a workload with outputs (a decode step op by op, per-token time, the whole request)."""
from __future__ import annotations

from typing import Any

from ampersim.cli import map_fields
from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json
from ampersim.core.formatting import layer_ranges
from ampersim.core.vocab import MEASURED_DTYPES, SCORINGS, SPARSE_GEMM_IMPLS
from ampersim.sim.scenario import DEFAULT_SCENARIO

OP_COLUMNS = ("name", "kind", "M", "N", "K", "dense_us", "sparse_us", "bound", "sparse_bound")
OP_HEADERS = {"dense_us": "dense µs", "sparse_us": "sparse µs", "bound": "bound", "sparse_bound": "sparse bound"}
CSV_COLUMNS = ("name", "kind", "layer", "layers", "count", "M", "N", "K", "groups", "dense_s", "sparse_s",
               "bound", "sparse_bound")
COMPARE_COLUMNS = ("pattern", "runs_as", "coverage_pct", "total_ms", "speedup", "ttft_ms", "tokens_per_s")
COMPARE_HEADERS = {"runs_as": "runs as", "coverage_pct": "coverage %", "total_ms": "prefill ms",
                   "ttft_ms": "TTFT ms", "tokens_per_s": "prompt tok/s"}
DECODE_COLUMNS = ("name", "kind", "M", "N", "K", "dense_us", "bound")
MIXED_COLUMNS = ("mixed", "prefill_tokens", "decode_tokens", "dense_ms", "sparse_ms", "speedup")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict dense vs sparse prefill time on an accelerator",
        description="Predict one prefill step (TTFT of a batch of prompts) dense and with N:M activation "
                    f"sparsity, op by op. Default workload: {DEFAULT_SCENARIO} (workloads/scenarios/).")
    parser.add_argument("--profile", required=True, metavar="NAME|FILE", help="hardware profile name, alias or YAML")
    parser.add_argument("--workload", default=DEFAULT_SCENARIO, metavar="NAME|FILE",
                        help=f"scenario name or YAML (default: {DEFAULT_SCENARIO})")
    parser.add_argument("--model", metavar="NAME|FILE", help="model spec name/alias or YAML (overrides the workload's)")
    parser.add_argument("--tokens", type=int, metavar="N", help="tokens per prompt (replaces the workload's lengths)")
    parser.add_argument("--batch", type=int, metavar="N", help="prompts per prefill step")
    parser.add_argument("--pattern", metavar="N:M", help="N:M pattern (default: the workload's, 8:16)")
    parser.add_argument("--policy", metavar="amber|all|none|FILE", help="which linears are sparsified")
    parser.add_argument("--scoring", choices=SCORINGS, help="pruning score (no effect on time)")
    parser.add_argument("--dtype", choices=MEASURED_DTYPES, help="GEMM data type")
    parser.add_argument("--tp", type=int, metavar="N", help="tensor-parallel degree")
    parser.add_argument("--output-tokens", type=int, metavar="N",
                        help="tokens generated per request (0: prefill only; default: the workload's)")
    parser.add_argument("--prune-impl", metavar="NAME",
                        help="runtime pruning implementation from the profile's prune_impls "
                             "(default: default_prune_impl for native patterns, default_mask_impl otherwise)")
    parser.add_argument("--sparse-gemm-impl", choices=SPARSE_GEMM_IMPLS,
                        help="sparse-GEMM path to cost (default: the profile's efficiency.sparse_gemm_impl; "
                             "others must be among its sparse_gemm_alternatives)")
    add_format_argument(parser)
    map_fields(parser, prompt_tokens="--tokens")
    parser.set_defaults(run=run)


def run(args: Any) -> int:
    from ampersim.hardware.registry import load_profile
    from ampersim.models.registry import load_model_spec
    from ampersim.sim.predict import compare_patterns, predict
    from ampersim.sim.scenario import load_scenario

    profile = load_profile(args.profile)
    scenario = load_scenario(args.workload).with_overrides(
        model=args.model, prompt_tokens=args.tokens, batch=args.batch, pattern=args.pattern,
        policy=args.policy, scoring=args.scoring, dtype=args.dtype, tp=args.tp, output_tokens=args.output_tokens)
    spec = load_model_spec(scenario.model)
    result = predict(profile, scenario, prune_impl=args.prune_impl, spec=spec, sparse_gemm_impl=args.sparse_gemm_impl)
    if args.format == "csv":
        emit(render_csv([_csv_row(op) for op in result.ops], CSV_COLUMNS))
        return 0
    comparison = compare_patterns(profile, scenario, spec=spec)
    if args.format == "json":
        emit(to_json({**result.model_dump(), "comparison": [_compare_json(p) for p in comparison]}))
        return 0
    emit(_render(result, comparison, profile.display_name))
    return 0


def _csv_row(op: Any) -> dict[str, Any]:
    return {**op.model_dump(), "layers": layer_ranges(op.layers)}


def _shape(value: float) -> int | float | None:
    """Shapes print as integers; expected MoE rows per expert keep one decimal; 0 (n/a) as '-'."""
    if not value:
        return None
    return int(value) if float(value).is_integer() else round(value, 1)


def _op_row(op: Any) -> dict[str, Any]:
    return {"name": op.name, "kind": op.kind, "M": _shape(op.M), "N": _shape(op.N), "K": _shape(op.K),
            "dense_us": round(op.dense_s * 1e6, 1), "sparse_us": round(op.sparse_s * 1e6, 1),
            "bound": op.bound, "sparse_bound": op.sparse_bound}


def _compare_json(p: Any) -> dict[str, Any]:
    return {"pattern": p.pattern, "native": p.native, "runs_as": p.runs_as, "prune_impl": p.prune_impl,
            "coverage": p.coverage, "dense_total_s": p.dense_total_s, "sparse_total_s": p.sparse_total_s,
            "speedup": p.speedup, "note": p.note}


def _render(result: Any, comparison: list[Any], display_name: str) -> str:
    lengths = result.tokens_per_seq
    shape = (f"{len(lengths)} × {lengths[0]} tokens" if len(set(lengths)) == 1
             else f"{len(lengths)} prompts of {'/'.join(str(x) for x in lengths)} tokens")
    out = [
        f"{result.model} prefill on {result.profile} ({display_name}), per GPU",
        f"workload {result.scenario}: {shape} = {result.tokens} tokens, {result.dtype}, tp {result.tp}",
        f"policy {result.policy}, pattern {result.pattern} ({result.scoring} scoring): "
        f"{100 * result.coverage:.1f} % of decoder linear MACs sparsified ({result.coverage_definition}); "
        f"pruning: {result.prune_impl}; sparse GEMM: {result.sparse_gemm_impl}",
        f"weights: {result.weights_gb_per_gpu:.1f} GB per GPU"
        + ("" if result.fits_memory else "; weights, activations and the batch's KV cache DO NOT FIT in the GPU's "
           "memory: see note"),
        f"note: {result.note}",
        *([f"policy: {result.policy_note}"] if result.policy_note else []),
        f"timing: {result.timing_note}",
        "",
    ]
    groups: dict[tuple[int, ...], list[Any]] = {}
    model_ops = []
    for op in result.ops:
        if op.layers:
            groups.setdefault(tuple(op.layers), []).append(op)
        else:
            model_ops.append(op)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[0]))
    main_layers, main_ops = ordered[0]
    main_keys = {(op.name, op.kind) for op in main_ops}
    for layers, ops in ordered:
        dense = sum(op.dense_s for op in ops)
        sparse = sum(op.sparse_s for op in ops)
        title = f"layers {layer_ranges(list(layers))} ({len(layers)} of {_num_layers(groups)}), per layer"
        shown = ops
        if layers != main_layers:
            shown = [op for op in ops if (op.name, op.kind) not in main_keys]
            title += ": ops that differ from the first block" if shown else ""
        out.append(title)
        if shown:
            out.append(render_table([_op_row(op) for op in shown], OP_COLUMNS, OP_HEADERS))
        out.append(f"  layer total: dense {dense * 1e3:.3f} ms, sparse {sparse * 1e3:.3f} ms "
                   f"(× {len(layers)} layers = {dense * len(layers) * 1e3:.2f} / {sparse * len(layers) * 1e3:.2f} ms)")
        out.append("")
    out.append("model ops (once per step)")
    out.append(render_table([_op_row(op) for op in model_ops], OP_COLUMNS, OP_HEADERS))
    out.append("")
    out.append(f"prefill total (= TTFT of this batch): dense {result.dense_total_s * 1e3:.2f} ms, "
               f"sparse {result.sparse_total_s * 1e3:.2f} ms, speedup {result.speedup:.3f}×")
    out.append(f"prompt tokens/s: dense {result.tokens_per_s_dense:,.0f}, sparse {result.tokens_per_s_sparse:,.0f}")
    out.append("")
    out.append("dense vs patterns (same workload and policy, default pruning implementations)")
    rows = [{"pattern": "dense", "runs_as": "-", "coverage_pct": None, "total_ms": round(result.dense_total_s * 1e3, 2),
             "speedup": 1.0, "ttft_ms": round(result.ttft_dense_s * 1e3, 2),
             "tokens_per_s": round(result.tokens_per_s_dense)}]
    for p in comparison:
        runs = f"native {p.runs_as}" if p.native and p.runs_as == p.pattern else (
            f"as {p.runs_as}" if p.native else "dense + masking")
        rows.append({"pattern": p.pattern, "runs_as": runs, "coverage_pct": round(100 * p.coverage, 1),
                     "total_ms": round(p.sparse_total_s * 1e3, 2), "speedup": round(p.speedup, 3),
                     "ttft_ms": round(p.ttft_sparse_s * 1e3, 2), "tokens_per_s": round(p.tokens_per_s_sparse)})
    out.append(render_table(rows, COMPARE_COLUMNS, COMPARE_HEADERS))
    for p in comparison:
        if not p.native and p.pattern != result.pattern:
            out.append(f"{p.pattern}: {p.note}.")
    out += _memory(result)
    if result.decode is not None:
        out += _decode(result)
    return "\n".join(out)


def _memory(result: Any) -> list[str]:
    m = result.memory
    return [
        "",
        f"memory per GPU ({m.capacity_gb:g} GB, gpu_memory_utilization {m.gpu_memory_utilization:g}): weights "
        f"{m.weights_gb:.2f} GB + activation workspace {m.workspace_gb:.2f} GB + KV cache {m.kv_gb:.2f} GB + runtime "
        f"reserve {m.reserve_gb:.2f} GB",
        f"KV cache: {m.kv_bytes_per_token / 1024:g} KiB per token per GPU, {m.kv_blocks:,} blocks of {m.block_size} = "
        f"{result.max_concurrent_tokens:,} tokens; at most {result.max_concurrent_sequences:,} sequences of this "
        f"workload's length at once; fits: {'yes' if result.fits_memory else 'NO (see note)'}",
    ]


def _decode(result: Any) -> list[str]:
    d, r = result.decode, result.request
    ctx = d.context_tokens
    shape = f"{d.batch} × {ctx[0]}" if len(set(ctx)) == 1 else f"{d.batch} sequences of {'/'.join(map(str, ctx))}"
    outs = r.output_tokens
    out_text = f"{outs[0]}" if len(set(outs)) == 1 else "/".join(map(str, outs))
    rows = [{"name": op.name, "kind": op.kind, "M": _shape(op.M), "N": _shape(op.N), "K": _shape(op.K),
             "dense_us": round(op.dense_s * 1e6, 1), "bound": op.bound} for op in d.ops]
    first = next(tuple(op.layers) for op in d.ops if op.layers)
    lines = [
        "",
        f"decode step (dense: decode is never sparsified): batch {d.batch}, context {shape} tokens "
        "(each prompt + half its outputs in the KV cache), per layer and model ops",
        render_table([row for row, op in zip(rows, d.ops) if tuple(op.layers) == first]
                     + [row for row, op in zip(rows, d.ops) if not op.layers], DECODE_COLUMNS, OP_HEADERS),
        f"decode step: {d.step_s * 1e3:.3f} ms = time per output token of each sequence; "
        f"{d.tokens_per_s:,.0f} output tokens/s for the batch",
        "",
        f"whole request ({out_text} output tokens each, the batch decoding together): TTFT dense "
        f"{result.ttft_dense_s * 1e3:.2f} / sparse {result.ttft_sparse_s * 1e3:.2f} ms, then decode "
        f"{r.decode_s * 1e3:.1f} ms (TPOT {r.tpot_s * 1e3:.3f} ms)",
        f"end to end: dense {r.e2e_dense_s * 1e3:.1f} ms, sparse {r.e2e_sparse_s * 1e3:.1f} ms, speedup "
        f"{r.e2e_speedup:.3f}× (prefill is {100 * r.prefill_share:.1f} % of the dense request; prefill speedup "
        f"{result.speedup:.3f}×)",
    ]
    if result.mixed_steps:
        mixed = [{"mixed": m.mixed, "prefill_tokens": m.prefill_tokens, "decode_tokens": m.decode_tokens,
                  "dense_ms": round(m.dense_s * 1e3, 3), "sparse_ms": round(m.sparse_s * 1e3, 3),
                  "speedup": round(m.speedup, 3)} for m in result.mixed_steps]
        lines += ["", "a full step mixing a prefill chunk with the batch's decode tokens, by mixed-step mode "
                  "(split: decode rows dense; prune_all: decode rows pruned too; separate: two steps)",
                  render_table(mixed, MIXED_COLUMNS)]
    return lines



def _num_layers(groups: dict[tuple[int, ...], list[Any]]) -> int:
    return sum(len(layers) for layers in groups)
