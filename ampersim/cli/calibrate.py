"""`ampersim calibrate`: fit a profile's efficiency parameters to measurements, write a new profile."""
from __future__ import annotations

from typing import Any

from ampersim.cli.output import add_format_argument, emit, render_table, to_json
from ampersim.cli.validate import SUMMARY_COLUMNS, SUMMARY_HEADERS, add_common_arguments
from ampersim.core.vocab import SPARSE_GEMM_IMPLS

STAGE_COLUMNS = ("stage", "n", "fit_mape_before_pct", "fit_mape_after_pct", "values")
STAGE_HEADERS = {"fit_mape_before_pct": "fit MAPE before %", "fit_mape_after_pct": "fit MAPE after %"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="fit a profile's efficiency parameters to GPU measurements",
        description="Fit the efficiency parameters of a hardware profile (GEMM peak fractions, small-M ramps, "
                    "overheads, tile sizes, memory/attention fractions, prune implementation bandwidths) on the "
                    "fit models' rows of a measurement file and write a calibrated profile whose fitted fields say "
                    "'measured: <file>'. Reports the error on the fit rows and on the held-out models' rows. "
                    "Several measurement files can be combined (e.g. a single-GPU op run and a multi-GPU all-reduce "
                    "run of the same GPU, which calibrates the interconnect).")
    add_common_arguments(parser)
    parser.add_argument("--sparse-gemm-impl", choices=SPARSE_GEMM_IMPLS,
                        help="the sparse-GEMM implementation the measured 2:4 GEMMs ran; if it is not the profile's "
                             "own (efficiency.sparse_gemm_impl), only the 2:4 GEMM stage is fitted, into the profile's "
                             "sparse_gemm_alternatives under that name, and every other number is kept")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="calibrated profile YAML to write; the profile is named after the file (h100-mine.yaml: "
                             "h100-mine), which must not be another profile's name")
    add_format_argument(parser)
    parser.set_defaults(run=run)


def run(args: Any) -> int:
    from ampersim.cli.validate import load_checked
    from ampersim.core.outputs import check_output
    from ampersim.core.yamlio import write_text_atomic
    from ampersim.measure.calibrate import calibrate, calibrated_name, profile_yaml
    from ampersim.measure.validate import validate

    name = calibrated_name(check_output(args.out, "out", suffixes=(".yaml", ".yml")))
    files, profile, holdout = load_checked(args)
    impl = args.sparse_gemm_impl
    before = validate(files, profile, holdout, impl if impl in profile.efficiency.sparse_gemm_impls else None)
    calibrated, stages, holdout = calibrate(files, profile, holdout, impl, name=name)
    after = validate(files, calibrated, holdout, impl)
    write_text_atomic(args.out, profile_yaml(calibrated))
    labels = [f.label for f in files]
    result = {"measurements": labels, "profile": profile.name, "out": args.out, "holdout": holdout,
              "stages": stages, "before": before["summary"], "after": after["summary"],
              "speedup_after": after["speedup_summary"]}
    if args.format == "json":
        emit(to_json(result))
        return 0
    stage_rows = [{**s, "values": ", ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in s.get("values", {}).items())}
                  for s in stages]
    emit("\n".join([
        f"calibrated {profile.name} on {', '.join(labels)} ({before['gpu']}); held out: {', '.join(holdout) or 'none'}"
        f"; sparse GEMMs as {after['sparse_gemm_impl']}",
        render_table(stage_rows, STAGE_COLUMNS, STAGE_HEADERS), "",
        "error after calibration (fit rows were used by the fit; judge it on held-out rows):",
        render_table(after["summary"], SUMMARY_COLUMNS, SUMMARY_HEADERS), "",
        f"wrote {args.out}"]))
    return 0


def _fmt(value: Any) -> str:
    return str(value) if isinstance(value, bool) else f"{value:.4g}"
