"""`ampersim plan`: fewest GPUs meeting a TTFT SLO at a percentile, dense vs sparse (simulated)."""

from __future__ import annotations

import argparse
from typing import Any

from ampersim.cli import map_fields
from ampersim.cli.econ_args import add_traffic_arguments, add_workload_arguments, load_workload
from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json

COLUMNS = (
    "path",
    "replicas",
    "tp",
    "gpus",
    "ttft_ms",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "utilization",
    "tokens_per_step",
    "usd_per_day",
    "note",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan", help="minimum GPUs for a request rate under a TTFT SLO, dense vs sparse", description=__doc__
    )
    p.add_argument("--profile", required=True, help="hardware profile name, alias or YAML")
    add_workload_arguments(p, lengths=False)
    p.add_argument("--rate", type=float, required=True, help="arrival rate, requests/s (Poisson)")
    p.add_argument("--slo-ttft-ms", type=float, required=True, help="time-to-first-token target, ms")
    add_traffic_arguments(p, duration_help="simulated seconds of traffic (default: ~50,000 requests, 600-3600 s)")
    p.add_argument(
        "--usd-per-hour",
        type=float,
        default=None,
        help="cloud price, $ per GPU-hour, for the cost per day (default: the profile's)",
    )
    add_format_argument(p)
    map_fields(p, rate_per_s="--rate", slo_ttft_s="--slo-ttft-ms")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ampersim.econ.capacity import (
        Traffic,
        auto_duration_s,
        check_rate,
        parse_percentile,
        plan_capacity,
        require_feasible,
        scenario_prompts,
        step_tables,
    )
    from ampersim.econ.roi import cloud_price, missing_price_message
    from ampersim.econ.traffic import parse_prompt_dist
    from ampersim.hardware.registry import load_profile

    percentile = parse_percentile(args.percentile)
    check_rate(args.rate)
    profile = load_profile(args.profile)
    cloud = cloud_price(profile, args.usd_per_hour)
    scenario = load_workload(args)
    prompts = parse_prompt_dist(args.prompt_dist) if args.prompt_dist else scenario_prompts(scenario)
    duration = args.duration_s if args.duration_s is not None else auto_duration_s(args.rate)
    traffic = Traffic(args.rate, prompts, duration, seed=args.seed)
    tables = step_tables(profile, scenario, args.max_batched_tokens, prompts)
    plan = require_feasible(
        plan_capacity(
            tables,
            traffic,
            slo_ttft_s=args.slo_ttft_ms / 1e3,
            percentile=percentile,
            max_seqs=args.max_seqs,
            tp=scenario.tp,
            usd_per_gpu_hour=cloud.value if cloud else None,
        )
    )
    rows = [_row(plan, path) for path in plan.paths]
    price_note = (
        f"${cloud.value:g}/GPU-hour ({cloud.date or 'undated'}; {cloud.source})"
        if cloud
        else missing_price_message(profile, "cloud_usd_per_gpu_hour", "--usd-per-hour")
    )
    info = {
        "profile": profile.name,
        "model": scenario.model,
        "pattern": scenario.pattern,
        "dtype": scenario.dtype,
        "policy": scenario.policy,
        "tp": scenario.tp,
        "rate_per_s": args.rate,
        "prompt_dist": prompts.description,
        "mean_prompt_tokens": prompts.mean(),
        "slo_ttft_ms": args.slo_ttft_ms,
        "percentile": f"p{percentile:g}",
        "max_batched_tokens": args.max_batched_tokens,
        "max_seqs": args.max_seqs,
        "duration_s": duration,
        "seed": args.seed,
        "warmup_s": traffic.warmup_fraction * duration,
        "price": price_note,
    }
    if args.format == "json":
        emit(
            to_json(
                {
                    **info,
                    "usd_per_gpu_hour": cloud.value if cloud else None,
                    "price_date": cloud.date if cloud else None,
                    "results": rows,
                }
            )
        )
    elif args.format == "csv":
        emit(render_csv(rows, COLUMNS))
    else:
        emit(_text(info, rows, percentile))
    return 0


def _row(plan: Any, path: str) -> dict[str, Any]:
    result = plan.paths[path]
    fleet = result.fleet
    note = result.note or ("" if result.feasible else "SLO not reachable")
    if fleet is None:
        return {
            "path": path,
            "replicas": None,
            "tp": plan.tp,
            "gpus": None,
            "ttft_ms": None,
            "ttft_p50_ms": None,
            "ttft_p99_ms": None,
            "utilization": None,
            "tokens_per_step": None,
            "usd_per_day": None,
            "min_ttft_ms": result.min_ttft_s * 1e3,
            "note": note,
            "simulations": result.evaluations,
            "requests": None,
        }
    return {
        "path": path,
        "replicas": fleet.replicas,
        "tp": plan.tp,
        "gpus": plan.gpus(path),
        "ttft_ms": fleet.ttft_s * 1e3,
        "ttft_p50_ms": fleet.ttft_p50_s * 1e3,
        "ttft_p99_ms": fleet.ttft_p99_s * 1e3,
        "utilization": fleet.utilization,
        "tokens_per_step": fleet.tokens_per_step,
        "usd_per_day": plan.usd_per_day(path),
        "min_ttft_ms": result.min_ttft_s * 1e3,
        "note": note,
        "simulations": result.evaluations,
        "requests": fleet.requests,
    }


def _text(info: dict[str, Any], rows: list[dict[str, Any]], percentile: float) -> str:
    head = [
        f"profile {info['profile']}  model {info['model']}  {info['dtype']}  tp={info['tp']}  "
        f"pattern {info['pattern']} (policy {info['policy']})",
        f"traffic {info['rate_per_s']:g} req/s Poisson, prompts: {info['prompt_dist']} "
        f"(mean {info['mean_prompt_tokens']:,.0f} tokens)",
        f"SLO p{percentile:g} TTFT <= {info['slo_ttft_ms']:g} ms; steps of <= {info['max_batched_tokens']} tokens "
        f"and <= {info['max_seqs']} prompts; {info['duration_s']:g} s simulated (first {info['warmup_s']:g} s "
        f"warm-up), seed {info['seed']}",
        f"price: {info['price']}",
        "",
    ]
    headers = {"ttft_ms": f"ttft_p{percentile:g}_ms"}
    return (
        "\n".join(head)
        + render_table(rows, COLUMNS, headers)
        + "\nTTFT = queueing + prefill of the whole prompt (decode not modelled); one FCFS queue feeds all replicas."
    )
