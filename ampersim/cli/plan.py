"""`ampersim plan`: fewest GPUs (replicas × tensor-parallel degree) serving a request rate under TTFT
and/or TPOT SLOs, dense vs sparse, simulated with continuous batching, chunked prefill and a KV cache."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ampersim.cli import map_fields
from ampersim.cli.econ_args import add_traffic_arguments, add_workload_arguments, load_engine, load_workload
from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json

DEFAULT_WORKLOAD = "chat"
COLUMNS = ("path", "tp", "replicas", "gpus", "ttft_p50_ms", "ttft_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_ms",
           "tpot_p99_ms", "itl_p99_ms", "goodput", "req_per_s", "output_tok_per_s", "prefill_share", "usd_per_day")
HEADERS = {"req_per_s": "req/s", "output_tok_per_s": "out tok/s", "prefill_share": "prefill share"}
CANDIDATE_COLUMNS = ("path", "tp", "gpus", "kv_tokens", "min_ttft_ms", "min_tpot_ms", "prefill_speedup",
                     "simulations", "note")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="minimum GPUs for a request rate under TTFT/TPOT SLOs, dense vs sparse",
                       description=__doc__)
    p.add_argument("--profile", required=True, help="hardware profile name, alias or YAML")
    add_workload_arguments(p, lengths=False, default_workload=DEFAULT_WORKLOAD,
                           tp_help="tensor-parallel degree (default: search every degree up to 8 the model allows)")
    p.add_argument("--rate", type=float, default=None,
                   help="arrival rate, requests/s (Poisson; with --trace: rescale the trace to this mean rate)")
    p.add_argument("--trace", default=None,
                   help="replay a request trace: CSV with arrival (s or date-time), input and output token columns")
    p.add_argument("--slo-ttft-ms", type=float, default=None, help="time-to-first-token target, ms")
    p.add_argument("--slo-tpot-ms", type=float, default=None,
                   help="time-per-output-token target (mean gap after the first token), ms")
    add_traffic_arguments(p, duration_help="simulated seconds of traffic (default: ~50,000 requests, 600-3600 s)")
    p.add_argument("--usd-per-hour", type=float, default=None,
                   help="cloud price, $ per GPU-hour, for the cost per day (default: the profile's)")
    add_format_argument(p)
    map_fields(p, rate_per_s="--rate", slo_ttft_s="--slo-ttft-ms", slo_tpot_s="--slo-tpot-ms")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ampersim.core.errors import InvalidArgument
    from ampersim.econ.capacity import (
        auto_duration_s, check_rate, parse_percentile, plan_capacity, require_feasible, scenario_outputs,
        scenario_prompts,
    )
    from ampersim.econ.roi import cloud_price, missing_price_message
    from ampersim.econ.serving import SLO
    from ampersim.econ.traffic import Traffic, parse_length_dist, read_request_trace
    from ampersim.hardware.registry import load_profile
    from ampersim.models.registry import load_model_spec

    percentile = parse_percentile(args.percentile)
    if args.slo_ttft_ms is None and args.slo_tpot_ms is None:
        raise InvalidArgument("give --slo-ttft-ms, --slo-tpot-ms or both")
    if args.trace is None and args.rate is None:
        raise InvalidArgument("give --rate (requests/s) or --trace FILE")
    if args.rate is not None:
        check_rate(args.rate)
    profile = load_profile(args.profile)
    cloud = cloud_price(profile, args.usd_per_hour)
    scenario = load_workload(args, DEFAULT_WORKLOAD)
    engine = load_engine(args, profile)
    spec = load_model_spec(scenario.model)
    if args.trace:
        requests = read_request_trace(args.trace)
        if args.rate is not None:
            requests = requests.scaled_to(args.rate)
        prompts, outputs = requests.prompts, requests.outputs
    else:
        prompts = (parse_length_dist(args.prompt_dist) if args.prompt_dist else scenario_prompts(scenario))
        outputs = (parse_length_dist(args.output_dist, what="output", field="output_dist") if args.output_dist
                   else scenario_outputs(scenario))
        duration = args.duration_s if args.duration_s is not None else auto_duration_s(args.rate)
        requests = Traffic(args.rate, prompts, duration, outputs=outputs, seed=args.seed)
    slo = SLO(None if args.slo_ttft_ms is None else args.slo_ttft_ms / 1e3,
              None if args.slo_tpot_ms is None else args.slo_tpot_ms / 1e3, percentile)
    plan = require_feasible(plan_capacity(profile, scenario, requests, slo, engine, prompts=prompts, outputs=outputs,
                                          spec=spec, tp=args.tp, usd_per_gpu_hour=cloud.value if cloud else None))
    key = f"p{percentile:g}"
    rows = [_row(plan, path, key) for path in plan.paths]
    candidates = [_candidate(c, prompts, outputs, engine) for c in plan.candidates]
    price = (f"${cloud.value:g}/GPU-hour ({cloud.date or 'undated'}; {cloud.source})" if cloud
             else missing_price_message(profile, "cloud_usd_per_gpu_hour", "--usd-per-hour"))
    info = {
        "profile": profile.name, "model": spec.name, "workload": scenario.name, "pattern": scenario.pattern,
        "dtype": scenario.dtype, "policy": scenario.policy, "traffic": requests.describe(),
        "rate_per_s": requests.rate_per_s, "prompt_dist": prompts.description, "mean_prompt_tokens": prompts.mean(),
        "output_dist": outputs.description, "mean_output_tokens": outputs.mean(),
        "output_source": scenario.output_source if not (args.output_dist or args.trace) else None,
        "slo_ttft_ms": args.slo_ttft_ms, "slo_tpot_ms": args.slo_tpot_ms, "percentile": key,
        "queue_bound_ms": {p: v * 1e3 for p, v in plan.queue_bound_s.items()} if args.slo_ttft_ms is None else None,
        "engine": engine.model_dump(), "engine_sources": engine.sources(profile),
        "duration_s": getattr(requests, "duration_s", None), "seed": args.seed,
        "warmup_s": requests.warmup_s, "price": price,
    }
    effect = _effect(plan, key)
    if args.format == "json":
        emit(to_json({**info, "usd_per_gpu_hour": cloud.value if cloud else None,
                      "price_date": cloud.date if cloud else None, "results": rows, "candidates": candidates,
                      "effect": effect}))
    elif args.format == "csv":
        emit(render_csv(rows, COLUMNS))
    else:
        emit(_text(info, rows, candidates, effect, key, scenario.pattern, engine))
    return 0


def _ms(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value * 1e3


def _row(plan: Any, path: str, key: str) -> dict[str, Any]:
    result, fleet = plan.paths[path], plan.paths[path].fleet
    row: dict[str, Any] = {"path": path, "tp": result.tp, "min_ttft_ms": _ms(result.min_ttft_s),
                           "min_tpot_ms": _ms(result.min_tpot_s), "simulations": result.evaluations,
                           "note": result.note or ("" if result.feasible else "SLO not reachable")}
    if fleet is None:
        return {**{c: None for c in COLUMNS}, **row}
    return {
        **row, "replicas": fleet.replicas, "gpus": fleet.gpus,
        "ttft_p50_ms": _ms(fleet.ttft_s["p50"]), "ttft_ms": _ms(fleet.ttft_s[key]), "ttft_p99_ms": _ms(fleet.ttft_s["p99"]),
        "tpot_p50_ms": _ms(fleet.tpot_s["p50"]), "tpot_ms": _ms(fleet.tpot_s[key]), "tpot_p99_ms": _ms(fleet.tpot_s["p99"]),
        "itl_p50_ms": _ms(fleet.itl_s["p50"]), "itl_p95_ms": _ms(fleet.itl_s["p95"]), "itl_p99_ms": _ms(fleet.itl_s["p99"]),
        "e2e_p50_ms": _ms(fleet.e2e_s["p50"]), "e2e_p99_ms": _ms(fleet.e2e_s["p99"]),
        "goodput": fleet.goodput, "req_per_s": fleet.requests_per_s, "input_tok_per_s": fleet.input_tokens_per_s,
        "output_tok_per_s": fleet.output_tokens_per_s, "prefill_share": fleet.prefill_share,
        "utilization": fleet.utilization, "gpu_s_per_request": fleet.gpu_s_per_request,
        "preemptions": fleet.preemptions, "usd_per_day": plan.usd_per_day(path), "requests": fleet.requests,
    }


def _candidate(c: Any, prompts: Any, outputs: Any, engine: Any) -> dict[str, Any]:
    context = int(prompts.mean() + max(outputs.mean(), 1) - 1)
    return {"path": c.path, "tp": c.tp, "gpus": c.fleet.gpus if c.fleet else None,
            "replicas": c.fleet.replicas if c.fleet else None,
            "kv_tokens": c.memory.kv_tokens if c.memory else None,
            "max_seqs_at_mean_length": min(c.memory.max_sequences(context), engine.max_seqs) if c.memory else None,
            "min_ttft_ms": _ms(c.min_ttft_s), "min_tpot_ms": _ms(c.min_tpot_s),
            "prefill_speedup": c.isolated_speedup if c.path == "sparse" else None,
            "simulations": c.evaluations, "note": c.note}


def _effect(plan: Any, key: str) -> dict[str, Any] | None:
    e = plan.effect
    if e is None:
        return None
    d, s = e.dense_at_fleet, e.sparse_at_fleet
    return {
        "fleet": f"{d.replicas} x tp {d.tp}", "isolated_prefill_speedup": e.isolated_prefill_speedup,
        "in_fleet_prefill_speedup": e.in_fleet_prefill_speedup, "prefill_share": e.prefill_share,
        "expected_saving": e.expected_saving, "gpus": e.gpus, "gpu_saving": e.gpu_saving,
        "same_fleet": {path: {"ttft_ms": _ms(f.ttft_s[key]), "tpot_ms": _ms(f.tpot_s[key]),
                              "e2e_p50_ms": _ms(f.e2e_s["p50"]), "goodput": f.goodput}
                       for path, f in (("dense", d), ("sparse", s))},
    }


def _with_mean(description: str, mean: float) -> str:
    plain = "mean" in description or description.startswith("fixed")
    return description if plain else f"{description} (mean {mean:,.0f} tokens)"


def _text(info: dict[str, Any], rows: list[dict[str, Any]], candidates: list[dict[str, Any]],
          effect: dict[str, Any] | None, key: str, pattern: str, engine: Any) -> str:
    slos = " and ".join(f"{key} {name} <= {v:g} ms" for name, v in (("TTFT", info["slo_ttft_ms"]),
                                                                    ("TPOT", info["slo_tpot_ms"])) if v is not None)
    out = [
        f"profile {info['profile']}  model {info['model']}  {info['dtype']}  pattern {pattern} "
        f"(policy {info['policy']})",
        f"workload {info['workload']}: {info['traffic']}",
        f"  prompts: {_with_mean(info['prompt_dist'], info['mean_prompt_tokens'])}",
        f"  outputs: {_with_mean(info['output_dist'], info['mean_output_tokens'])}"
        + (f"; {info['output_source']}" if info["output_source"] else ""),
        f"SLO: {slos}" + (f"; no TTFT SLO: fleets whose {key} TTFT exceeds 10x an idle replica's "
                          f"({', '.join(f'{p} {v:.4g} ms' for p, v in info['queue_bound_ms'].items())}) count as "
                          "overloaded" if info["queue_bound_ms"] else ""),
        f"engine: steps of <= {engine.max_batched_tokens} tokens and <= {engine.max_seqs} sequences, KV blocks of "
        f"{engine.block_size} tokens, {engine.gpu_memory_utilization:g} of GPU memory, mixed steps '{engine.mixed}'; "
        f"{info['duration_s']:g} s simulated (first {info['warmup_s']:g} s warm-up), seed {info['seed']}",
        f"price: {info['price']}",
        "",
        render_table(rows, COLUMNS, {**HEADERS, "ttft_ms": f"ttft_{key}_ms", "tpot_ms": f"tpot_{key}_ms"}),
        "",
        "tensor-parallel degrees tried (the fewest GPUs each reaches; kv_tokens per replica; min_*: each request alone "
        "on an idle replica)",
        render_table(candidates, CANDIDATE_COLUMNS),
    ]
    if effect:
        same = effect["same_fleet"]
        saving = effect["gpu_saving"]
        out += [
            "",
            f"end-to-end effect of {pattern} sparsity (both paths simulated on the dense plan's fleet, {effect['fleet']}):",
            f"  prefill step speedup, the workload's prompt batch alone (as `ampersim predict`): "
            f"{effect['isolated_prefill_speedup']:.3f}x",
            f"  prefill GPU time in the fleet, dense / sparse: {effect['in_fleet_prefill_speedup']:.3f}x "
            "(chunks share steps with decode tokens)",
            f"  prefill share of the dense fleet's busy GPU time: {100 * effect['prefill_share']:.1f} %",
            f"  GPU time sparsity can save: {100 * effect['prefill_share']:.1f} % x (1 - 1/"
            f"{effect['in_fleet_prefill_speedup']:.3f}) = {100 * effect['expected_saving']:.2f} %",
            f"  same fleet, dense -> sparse: {key} TTFT {same['dense']['ttft_ms']:.4g} -> {same['sparse']['ttft_ms']:.4g} ms"
            + (f", {key} TPOT {same['dense']['tpot_ms']:.4g} -> {same['sparse']['tpot_ms']:.4g} ms"
               if same["dense"]["tpot_ms"] is not None else ""),
            f"  GPUs needed: dense {effect['gpus']['dense']}, sparse {effect['gpus']['sparse']}"
            + (f" ({100 * saving:.1f} % fewer)" if saving is not None else ""),
        ]
    out += ["", "TTFT = queueing + prefill (chunked, sharing steps with decode tokens); TPOT = mean gap after the first "
            "token; ITL = every gap; goodput = share of requests meeting every SLO; decode always runs dense."]
    return "\n".join(out)
