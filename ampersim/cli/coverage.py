"""`ampersim coverage`: which linear layers a sparsity policy prunes and what share of MACs that is."""
from __future__ import annotations

from typing import Any

from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json
from ampersim.core.formatting import layer_ranges
from ampersim.core.vocab import SCORINGS

COLUMNS = ("kind", "macs_per_token", "share_pct", "sparsified_pct", "sparse_layers", "dense_layers")
HEADERS = {"macs_per_token": "MACs/token", "share_pct": "% of MACs", "sparsified_pct": "% sparsified",
           "sparse_layers": "sparse in", "dense_layers": "dense in"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "coverage", help="share of linear-layer MACs a sparsity policy sparsifies",
        description="Coverage of a sparsity policy: the share of decoder-layer linear MACs per token whose "
                    "input is N:M-pruned (MoE router left out of the total as in the Amber paper unless "
                    "--include-router; lm_head and embeddings excluded; MoE experts weighted by experts per "
                    "token), per projection kind, with the layers each kind skips.")
    parser.add_argument("--model", required=True, metavar="NAME|FILE", help="model spec name/alias or YAML")
    parser.add_argument("--policy", default="amber", metavar="amber|all|none|FILE",
                        help="preset or custom policy YAML (default: amber)")
    parser.add_argument("--pattern", default="8:16", metavar="N:M", help="N:M pattern (default: 8:16)")
    parser.add_argument("--scoring", choices=SCORINGS, default="amber", help="pruning score")
    parser.add_argument("--include-router", action="store_true",
                        help="count the MoE router's MACs in the total (default: left out, as in the Amber paper)")
    add_format_argument(parser)
    parser.set_defaults(run=run)


def run(args: Any) -> int:
    from ampersim.models.registry import load_model_spec
    from ampersim.sparsity.coverage import coverage
    from ampersim.sparsity.policy import resolve_policy

    spec = load_model_spec(args.model)
    policy = resolve_policy(args.policy, spec, args.pattern, args.scoring)
    result = coverage(spec, policy, include_router=args.include_router)
    if args.format == "json":
        emit(to_json({"model": spec.name, "policy": policy.name, "pattern": str(policy.pattern),
                      "scoring": policy.scoring, "note": policy.note, **result.model_dump()}))
        return 0
    rows = [{"kind": k.kind, "macs_per_token": k.macs_per_token,
             "share_pct": 100 * k.macs_per_token / result.total_macs_per_token, "sparsified_pct": 100 * k.fraction,
             "sparse_layers": layer_ranges(k.sparse_layers) or "-", "dense_layers": layer_ranges(k.dense_layers) or "-"}
            for k in result.kinds]
    if args.format == "csv":
        emit(render_csv(rows, COLUMNS))
        return 0
    emit("\n".join([
        f"{spec.name}, policy {policy.name} ({policy.pattern}, {policy.scoring} scoring): "
        f"{100 * result.fraction:.2f} % of decoder-layer linear MACs per token sparsified",
        f"({result.sparse_macs_per_token / 1e9:.3f} of {result.total_macs_per_token / 1e9:.3f} GMAC per token; "
        f"{result.definition}; lm_head and embeddings excluded; MoE experts × experts per token)",
        *([f"note: {policy.note}"] if policy.note else []),
        "",
        render_table(rows, COLUMNS, HEADERS),
    ]))
    return 0
