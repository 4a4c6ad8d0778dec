"""`ampersim validate`: cost-model predictions vs a measurement file, per op, layer and model."""
from __future__ import annotations

import sys
from typing import Any

from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json
from ampersim.core.vocab import SPARSE_GEMM_IMPLS

SUMMARY_COLUMNS = ("category", "split", "n", "mape_pct", "max_abs_err_pct", "bias_pct")
SUMMARY_HEADERS = {"mape_pct": "MAPE %", "max_abs_err_pct": "max |err| %", "bias_pct": "mean err %"}
SPEEDUP_COLUMNS = ("category", "split", "n", "mean_abs_err", "max_abs_err")
SPEEDUP_HEADERS = {"mean_abs_err": "speedup mean |err|", "max_abs_err": "speedup max |err|"}
ROW_COLUMNS = ("category", "split", "model", "tokens", "dtype", "name", "measured_us", "predicted_us", "err_pct")
ROW_HEADERS = {"measured_us": "measured µs", "predicted_us": "predicted µs", "err_pct": "err %"}


def add_common_arguments(parser: Any) -> None:
    parser.add_argument("--measurements", required=True, action="append", metavar="FILE[,FILE...]",
                        help="measurement file from `ampersim measure` (or benchmarks/allreduce_bench.py); repeat "
                             "the option or separate files by commas to use several together")
    parser.add_argument("--profile", required=True, metavar="NAME|FILE", help="hardware profile name, alias or YAML")
    parser.add_argument("--holdout", metavar="NAME[,NAME...]",
                        help="models whose rows are held out (comma-separated; default: every model but "
                             "llama-3.1-8b, or but the first one measured)")
    parser.add_argument("--force", action="store_true",
                        help="compare even if the measurements come from another GPU than the profile's (warns)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate", help="compare cost-model predictions with GPU measurements",
        description="Predict every measured op, decoder layer and whole model with the cost model (the same op "
                    "graph) and report error per category: MAPE, max error, mean error, and the speedup error "
                    "of dense/sparse pairs, split into fit and held-out models.")
    add_common_arguments(parser)
    parser.add_argument("--sparse-gemm-impl", choices=SPARSE_GEMM_IMPLS,
                        help="the sparse-GEMM implementation the measured 2:4 GEMMs ran, costed with the profile's "
                             "model of it (default: the profile's efficiency.sparse_gemm_impl; others must be among "
                             "its sparse_gemm_alternatives)")
    parser.add_argument("--plot", metavar="FILE", help="write predicted-vs-measured and error-vs-tokens plots")
    parser.add_argument("--rows", action="store_true", help="also print every row (table format)")
    add_format_argument(parser)
    parser.set_defaults(run=run)


def measurement_paths(values: list[str]) -> list[str]:
    """--measurements values (repeated and/or comma-separated) as one list of paths, in order, once each."""
    return list(dict.fromkeys(p.strip() for v in values for p in v.split(",") if p.strip()))


def load_checked(args: Any) -> tuple[list[Any], Any, list[str] | None]:
    """(measurement files, profile, holdout list) with the GPU-mismatch rule applied to every file."""
    from ampersim.hardware.registry import load_profile
    from ampersim.measure.validate import read_for_profile

    profile = load_profile(args.profile)
    files, mismatches = read_for_profile(measurement_paths(args.measurements), profile, force=args.force)
    for mfile in files:
        if mfile.truncated_line is not None:
            print(f"warning: {mfile.path}:{mfile.truncated_line}: incomplete last line ignored (interrupted run)",
                  file=sys.stderr)
    for warning in mismatches:
        print("!" * 100 + f"\n{warning}\n" + "!" * 100, file=sys.stderr)
    holdout = [m.strip() for m in args.holdout.split(",") if m.strip()] if args.holdout else None
    return files, profile, holdout


def run(args: Any) -> int:
    from ampersim.core.outputs import check_output
    from ampersim.measure.plots import PLOT_SUFFIXES
    from ampersim.measure.validate import validate

    if args.plot is not None:
        check_output(args.plot, "plot", suffixes=PLOT_SUFFIXES)
    files, profile, holdout = load_checked(args)
    result = validate(files, profile, holdout, args.sparse_gemm_impl)
    if args.plot:
        from ampersim.measure.plots import plot_validation

        plot_validation(result, args.plot)
    if args.format == "json":
        emit(to_json(result))
        return 0
    rows = [{**r, "measured_us": r["measured_s"] * 1e6, "predicted_us": r["predicted_s"] * 1e6} for r in result["rows"]]
    if args.format == "csv":
        emit(render_csv(rows, ROW_COLUMNS))
        return 0
    emit(render(result, rows if args.rows else None))
    return 0


def render(result: dict[str, Any], rows: list[dict[str, Any]] | None) -> str:
    parts = [f"{result['profile']} vs {', '.join(result['measurements'])} ({result['gpu']}); held out: "
             f"{', '.join(result['holdout']) or 'none'}; sparse GEMMs costed as {result['sparse_gemm_impl']}",
             render_table(result["summary"], SUMMARY_COLUMNS, SUMMARY_HEADERS)]
    if result["speedup_summary"]:
        parts += ["", render_table(result["speedup_summary"], SPEEDUP_COLUMNS, SPEEDUP_HEADERS)]
    if rows:
        parts += ["", render_table(rows, ROW_COLUMNS, ROW_HEADERS)]
    if result["skipped"]:
        parts += ["", f"{len(result['skipped'])} planned measurements were skipped (see the file's 'skip' lines)"]
    return "\n".join(parts)
