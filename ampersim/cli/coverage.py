"""`ampersim coverage`: which linear layers a sparsity policy prunes and what share of MACs that is."""
from __future__ import annotations

from typing import Any

from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json
from ampersim.core.vocab import SCORINGS

COLUMNS = ("kind", "macs_per_token", "share_pct", "sparsified_pct", "sparse_layers", "dense_layers")
HEADERS = {"macs_per_token": "MACs/token", "share_pct": "% of MACs", "sparsified_pct": "% sparsified",
           "sparse_layers": "sparse in", "dense_layers": "dense in"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "coverage", help="share of linear-layer MACs a sparsity policy sparsifies",
        description="Coverage of a sparsity policy: the share of decoder-layer linear MACs per token whose "
                    "input is N:M-pruned (router included; lm_head and embeddings excluded; MoE experts "
                    "weighted by experts per token), per projection kind, with the layers each kind skips.")
    parser.add_argument("--model", required=True, metavar="NAME|FILE", help="model spec name/alias or YAML")
    parser.add_argument("--policy", default="amber", metavar="amber|all|none|FILE",
                        help="preset or custom policy YAML (default: amber)")
    parser.add_argument("--pattern", default="8:16", metavar="N:M", help="N:M pattern (default: 8:16)")
    parser.add_argument("--scoring", choices=SCORINGS, default="amber", help="pruning score")
    add_format_argument(parser)
    parser.set_defaults(run=run)


def run(args: Any) -> int:
    from ampersim.cli.predict import layer_ranges
    from ampersim.models.registry import load_model_spec
    from ampersim.sparsity.policy import coverage, resolve_policy

    spec = load_model_spec(args.model)
    policy = resolve_policy(args.policy, spec, args.pattern, args.scoring)
    result = coverage(spec, policy)
    kind_macs: dict[str, float] = {}
    for layer in range(spec.num_layers):
        for linear in spec.layer_linears(layer):
            kind_macs[linear.kind] = kind_macs.get(linear.kind, 0.0) + linear.macs_per_token
    rows = []
    for kind, fraction in result.by_kind.items():
        sparse = [i for i in range(spec.num_layers) if policy.is_sparse(i, kind)]
        dense = [i for i in range(spec.num_layers) if not policy.is_sparse(i, kind)]
        rows.append({
            "kind": kind, "macs_per_token": kind_macs[kind],
            "share_pct": 100 * kind_macs[kind] / result.total_macs_per_token,
            "sparsified_pct": 100 * fraction,
            "sparse_layers": layer_ranges(sparse) or "-", "dense_layers": layer_ranges(dense) or "-",
        })
    if args.format == "json":
        emit(to_json({"model": spec.name, "policy": policy.name, "pattern": str(policy.pattern),
                      "scoring": policy.scoring, "note": policy.note, **result.model_dump(), "kinds": rows}))
    elif args.format == "csv":
        emit(render_csv(rows, COLUMNS))
    else:
        emit("\n".join([
            f"{spec.name}, policy {policy.name} ({policy.pattern}, {policy.scoring} scoring): "
            f"{100 * result.fraction:.2f} % of decoder-layer linear MACs per token sparsified",
            f"({result.sparse_macs_per_token / 1e9:.3f} of {result.total_macs_per_token / 1e9:.3f} GMAC per token; "
            "router included, lm_head and embeddings excluded, MoE experts × experts per token)",
            *([f"note: {policy.note}"] if policy.note else []),
            "",
            render_table(rows, COLUMNS, HEADERS),
        ]))
    return 0
