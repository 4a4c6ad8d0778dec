"""`ampersim report`: self-contained HTML (and/or Markdown) report for managers: speed, cost, capacity, accuracy."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any

from ampersim.cli import map_fields
from ampersim.cli.econ_args import (
    add_ownership_arguments,
    add_price_arguments,
    add_profiles_argument,
    add_traffic_arguments,
    add_workload_arguments,
    load_workload,
    per_profile,
)
from ampersim.core.errors import InvalidArgument

DEFAULT_RATES = "1,2,5,10,20,50,100"
DEFAULT_SLO_MS = 1000.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="self-contained HTML/Markdown report: speedup, cost, GPUs, accuracy frontier",
        description=__doc__,
    )
    add_profiles_argument(p)
    add_workload_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output file: .html (self-contained) or .md (figures beside it)")
    p.add_argument("--markdown", action="store_true", help="also write Markdown next to the HTML (same name, .md)")
    p.add_argument("--rates", default=DEFAULT_RATES, metavar="R[,R...]",
                   help=f"request rates for GPUs vs rate, req/s (default {DEFAULT_RATES})")
    p.add_argument("--slo-ttft-ms", type=float, default=DEFAULT_SLO_MS, metavar="MS",
                   help=f"TTFT target for the capacity section, ms (default {DEFAULT_SLO_MS:g})")
    add_traffic_arguments(p, duration_help="simulated seconds per rate (default: automatic)")
    p.add_argument("--accuracy", default=None, metavar="FILE",
                   help="accuracy results JSON (default: docs/accuracy.json if present)")
    p.add_argument("--fleet-rate", type=float, default=None, metavar="R",
                   help="request rate of 'What sparsity buys your fleet', req/s (default: the workload's, else the "
                        "highest --rates); its SLOs are the workload's, else --slo-ttft-ms")
    add_price_arguments(p, repeatable=True)
    add_ownership_arguments(p)
    map_fields(p, rate_per_s="--rates")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ampersim.cli.econ_args import load_engine, load_tco
    from ampersim.core.outputs import check_output
    from ampersim.econ.capacity import check_rate, parse_percentile, scenario_outputs, scenario_prompts
    from ampersim.econ.traffic import parse_length_dist
    from ampersim.hardware.registry import load_profile
    from ampersim.report.accuracy import default_accuracy_path
    from ampersim.report.sections import build_document
    from ampersim.report.study import ReportInputs, price_bases

    start = time.perf_counter()
    out = check_output(args.out, "out", suffixes=(".html", ".htm", ".md"))
    if args.markdown:
        check_output(out.with_suffix(".md"), "out")
    percentile = parse_percentile(args.percentile)
    if not args.slo_ttft_ms > 0:
        raise InvalidArgument(f"--slo-ttft-ms {args.slo_ttft_ms:g}: must be > 0")
    rates = _rates(args.rates)
    for rate in rates:
        check_rate(rate)
    profiles = tuple(load_profile(name) for name in args.profile)
    scenario = load_workload(args)
    prompts = parse_length_dist(args.prompt_dist) if args.prompt_dist is not None else scenario_prompts(scenario)
    outputs = (
        parse_length_dist(args.output_dist, what="output", field="output_dist")
        if args.output_dist is not None
        else scenario_outputs(scenario)
    )
    bases, price_notes = price_bases(
        profiles,
        per_profile(args.usd_per_hour, "--usd-per-hour", len(profiles)),
        per_profile(args.purchase_usd, "--purchase-usd", len(profiles)),
        lifetime_years=args.lifetime_years,
        usd_per_kwh=args.usd_per_kwh,
        utilization=args.utilization,
        cloud=args.cloud_price,
        tco=load_tco(args),
    )
    fleet_rate, fleet_slo = _fleet_targets(args, scenario, rates, percentile)
    hit_rate = args.cache_hit_rate if args.cache_hit_rate is not None else scenario.cache_hit_rate
    accuracy = Path(args.accuracy) if args.accuracy is not None else default_accuracy_path()
    if args.accuracy is not None and not accuracy.is_file():  # an empty --accuracy is refused, not ignored
        why = ("give a file name" if not args.accuracy.strip() else "is a directory" if accuracy.is_dir()
               else "not a regular file" if accuracy.exists() else "file not found")
        raise InvalidArgument(f"--accuracy '{args.accuracy}': {why}")
    inputs = ReportInputs(
        profiles=profiles,
        scenario=scenario,
        bases=bases,
        price_notes=price_notes,
        rates=tuple(rates),
        slo_ttft_s=args.slo_ttft_ms / 1e3,
        percentile=percentile,
        prompts=prompts,
        outputs=outputs,
        engines=tuple(load_engine(args, profile) for profile in profiles),
        duration_s=args.duration_s,
        seed=args.seed,
        accuracy_path=accuracy,
        command=_command(args, scenario.name),
        generated=datetime.date.today().isoformat(),
        fleet_rate=fleet_rate,
        fleet_slo=fleet_slo,
        cache_hit_rate=hit_rate,
    )
    doc = build_document(inputs, lambda msg: print(f"report: {msg}", file=sys.stderr, flush=True))
    written = []
    if out.suffix.lower() == ".md":
        written += _write_markdown(doc, out)
    else:
        from ampersim.core.yamlio import write_text_atomic
        from ampersim.report.html import render_html

        write_text_atomic(out, render_html(doc))
        written.append(out)
        if args.markdown:
            written += _write_markdown(doc, out.with_suffix(".md"))
    seconds = time.perf_counter() - start
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    print(f"report rendered in {seconds:.1f} s", file=sys.stderr)
    return 0


def _fleet_targets(args: argparse.Namespace, scenario: Any, rates: list[float], percentile: float) -> tuple[float, Any]:
    """Rate and SLOs of the fleet section: --fleet-rate, else the workload's serving targets, else the highest
    of --rates under the report's TTFT target."""
    from ampersim.econ.capacity import check_rate
    from ampersim.econ.serving import SLO

    serving = scenario.serving
    if args.fleet_rate is not None and not args.fleet_rate > 0:
        raise InvalidArgument(f"--fleet-rate {args.fleet_rate:g}: the request rate must be > 0 requests/s")
    rate = args.fleet_rate or (serving.rate_per_s.value if serving else rates[-1])
    check_rate(rate)
    if serving is not None and (serving.slo_ttft_ms or serving.slo_tpot_ms):
        ttft = serving.slo_ttft_ms.value / 1e3 if serving.slo_ttft_ms else None
        tpot = serving.slo_tpot_ms.value / 1e3 if serving.slo_tpot_ms else None
        return rate, SLO(ttft, tpot, percentile)
    return rate, SLO(args.slo_ttft_ms / 1e3, None, percentile)


def _rates(text: str) -> list[float]:
    try:
        rates = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise InvalidArgument(f"--rates '{text}': expected comma-separated requests/s, e.g. 1,5,20") from None
    if not rates:
        raise InvalidArgument(f"--rates '{text}': give at least one rate")
    return rates


def _write_markdown(doc, md_path: Path) -> list[Path]:
    from ampersim.core.yamlio import write_bytes_atomic, write_text_atomic
    from ampersim.report.markdown import render_markdown

    text, files = render_markdown(doc, md_path)
    for rel, data in files.items():
        write_bytes_atomic(md_path.parent / rel, data, parents=True)  # the report's own figure folder
    write_text_atomic(md_path, text)
    return [md_path]


def _command(args: argparse.Namespace, workload: str) -> str:
    parts = ["ampersim report", f"--workload {workload}", *(f"--profile {p}" for p in args.profile)]
    for flag in ("pattern", "policy", "dtype", "tp", "tokens", "batch", "prompt_dist", "output_dist", "accuracy"):
        value = getattr(args, flag)
        if value is not None:
            parts.append(f"--{flag.replace('_', '-')} {value}")
    parts += [
        f"--rates {args.rates}",
        f"--slo-ttft-ms {args.slo_ttft_ms:g}",
        f"--percentile {args.percentile}",
        f"--out {args.out}",
    ]
    return " ".join(parts)
