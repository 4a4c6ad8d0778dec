"""`ampersim predict`: dense vs N:M-sparse prefill of a workload on one accelerator, op by op."""
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
    parser.add_argument("--batch", type=int, metavar="B", help="prompts per prefill step")
    parser.add_argument("--pattern", metavar="N:M", help="N:M pattern (default: the workload's, 8:16)")
    parser.add_argument("--policy", metavar="amber|all|none|FILE", help="which linears are sparsified")
    parser.add_argument("--scoring", choices=SCORINGS, help="pruning score (no effect on time)")
    parser.add_argument("--dtype", choices=MEASURED_DTYPES, help="GEMM data type")
    parser.add_argument("--tp", type=int, metavar="N", help="tensor-parallel degree")
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
        policy=args.policy, scoring=args.scoring, dtype=args.dtype, tp=args.tp)
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
        + ("" if result.fits_memory else " (MORE THAN THE GPU'S MEMORY: see note)"),
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
    return "\n".join(out)


def _num_layers(groups: dict[tuple[int, ...], list[Any]]) -> int:
    return sum(len(layers) for layers in groups)
