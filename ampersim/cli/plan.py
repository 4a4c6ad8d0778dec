"""`ampersim plan`: fewest GPUs (replicas × tensor-parallel degree) serving a request rate under TTFT
and/or TPOT SLOs, dense vs sparse, simulated with continuous batching, chunked prefill and a KV cache."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ampersim.cli.econ_args import (
    add_ownership_arguments,
    add_target_arguments,
    add_traffic_arguments,
    add_workload_arguments,
    load_engine,
    load_tco,
    load_workload,
)
from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json

DEFAULT_WORKLOAD = "chat"
COLUMNS = ("path", "tp", "replicas", "gpus", "ttft_p50_ms", "ttft_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_ms",
           "tpot_p99_ms", "itl_p99_ms", "goodput", "req_per_s", "output_tok_per_s", "prefill_share", "usd_per_day")
HEADERS = {"req_per_s": "req/s", "output_tok_per_s": "out tok/s", "prefill_share": "prefill share"}
CANDIDATE_COLUMNS = ("path", "tp", "gpus", "kv_tokens", "min_ttft_ms", "min_tpot_ms", "prefill_speedup",
                     "simulations", "note")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="minimum GPUs for a request rate under TTFT/TPOT SLOs, dense vs sparse, and "
                                    "what they cost", description=__doc__)
    p.add_argument("--profile", required=True, metavar="NAME|FILE", help="hardware profile name, alias or YAML")
    add_workload_arguments(p, lengths=False, default_workload=DEFAULT_WORKLOAD,
                           tp_help="tensor-parallel degree (default: search every degree up to 8 the model allows)")
    add_target_arguments(p, rate_help="arrival rate, requests/s (Poisson; default: the workload's; with --trace: "
                                      "rescale the trace to this mean rate)")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="replay a request trace: CSV or JSON lines with arrival, input, output (and optionally "
                        "cached) tokens per request")
    add_traffic_arguments(p, duration_help="simulated seconds of traffic (default: ~50,000 requests, 600-3600 s)")
    p.add_argument("--usd-per-hour", type=float, default=None, metavar="USD",
                   help="cloud price, $ per GPU-hour (default: the profile's market price, see --cloud-price)")
    p.add_argument("--purchase-usd", type=float, default=None, metavar="USD",
                   help="purchase price per GPU, $ (default: the profile's)")
    add_ownership_arguments(p, utilization=False)
    p.add_argument("--disaggregate", action="store_true",
                   help="also size separate prefill and decode pools (Splitwise/DistServe) with the KV cache moved "
                        "between them; needs a TTFT and a TPOT SLO")
    p.add_argument("--kv-link-gbps", type=float, default=None, metavar="GBPS",
                   help="per-GPU bandwidth from the prefill to the decode pool, GB/s (default 50: one 400 Gb/s "
                        "InfiniBand NDR port per GPU)")
    add_format_argument(p)
    p.set_defaults(run=run)


def plan_request(args: argparse.Namespace, profile: Any, scenario: Any,
                 progress: Any = None) -> tuple[Any, Any, Any, Any, Any]:
    """(plan, requests, prompts, outputs, engine) for ``profile`` from the command's arguments."""
    from ampersim.cli.econ_args import load_requests, serving_targets
    from ampersim.econ.capacity import plan_capacity, require_feasible
    from ampersim.models.registry import load_model_spec

    rate, slo = serving_targets(args, scenario, trace=getattr(args, "trace", None) is not None)
    engine = load_engine(args, profile)
    spec = load_model_spec(scenario.model)
    requests, prompts, outputs = load_requests(args, scenario, rate)
    plan = require_feasible(plan_capacity(profile, scenario, requests, slo, engine, prompts=prompts, outputs=outputs,
                                          spec=spec, tp=args.tp, progress=progress))
    return plan, requests, prompts, outputs, engine


def prices(args: argparse.Namespace, profile: Any, tco: Any) -> tuple[Any, str]:
    """(price basis or None, note) per the arguments, before any planning: bad prices fail at once, and a
    profile without any price is planned unpriced (the note says so)."""
    from ampersim.core.errors import InvalidArgument
    from ampersim.econ.roi import price_basis

    try:
        basis = price_basis(profile, usd_per_hour=args.usd_per_hour, purchase_usd=args.purchase_usd,
                            lifetime_years=args.lifetime_years, usd_per_kwh=args.usd_per_kwh,
                            cloud=args.cloud_price, tco=tco)
    except InvalidArgument as exc:
        if exc.field != "usd_per_hour" or args.usd_per_hour is not None:
            raise
        return None, str(exc)
    return basis, basis.note


def kv_link(args: argparse.Namespace, scenario: Any) -> Any:
    """The KV link of --disaggregate (None without it), checked before any planning: --kv-link-gbps > 0 and
    only with --disaggregate, generated traffic (no --trace), and both a TTFT and a TPOT SLO."""
    from ampersim.cli.econ_args import serving_targets
    from ampersim.core.errors import InvalidArgument
    from ampersim.core.sourced import Sourced
    from ampersim.econ.disagg import KV_LINK_GBPS

    if not args.disaggregate:
        if args.kv_link_gbps is not None:
            raise InvalidArgument("--kv-link-gbps is the link between the pools of --disaggregate; add "
                                  "--disaggregate or drop --kv-link-gbps")
        return None
    if args.trace is not None:
        raise InvalidArgument("--disaggregate plans generated traffic: drop --trace (or give --prompt-dist and "
                              "--output-dist from it)")
    _, slo = serving_targets(args, scenario)
    if slo.ttft_s is None or slo.tpot_s is None:
        raise InvalidArgument("--disaggregate sizes a prefill pool under a TTFT SLO and a decode pool under a TPOT "
                              "SLO: give both --slo-ttft-ms and --slo-tpot-ms (or a workload that names both)")
    if args.kv_link_gbps is None:
        return KV_LINK_GBPS
    if not args.kv_link_gbps > 0:
        raise InvalidArgument(f"--kv-link-gbps {args.kv_link_gbps:g}: must be > 0")
    return Sourced(value=args.kv_link_gbps, source="assumed: given by the user (kv_link_gbps)")


def run(args: argparse.Namespace) -> int:
    from ampersim.cli.costs import chain_lines, cost_table_rows, costs_json
    from ampersim.econ.fleet import fleet_costs
    from ampersim.hardware.registry import load_profile

    profile = load_profile(args.profile)
    scenario = load_workload(args, DEFAULT_WORKLOAD)
    tco = load_tco(args)  # before simulating: bad ownership numbers, prices and pool arguments fail at once
    basis, price_note = prices(args, profile, tco)
    link = kv_link(args, scenario)
    plan, requests, prompts, outputs, engine = plan_request(args, profile, scenario)
    costs = fleet_costs(plan, profile, basis) if basis is not None else None
    cloud = basis.cloud_usd_per_gpu_hour if basis is not None else None
    usd_per_gpu_hour = cloud.value if cloud is not None else None
    key = f"p{plan.slo.percentile:g}"
    rows = [_row(plan, path, key, usd_per_gpu_hour) for path in plan.paths]
    candidates = [_candidate(c, prompts, outputs, engine) for c in plan.candidates]
    price = (f"${cloud.value:g}/GPU-hour, {basis.cloud_price} ({cloud.date or 'undated'}; {cloud.source})" if cloud
             else price_note or f"profile '{profile.name}' has no cloud price: pass --usd-per-hour")
    traced = args.trace is not None
    slo = plan.slo
    info = {
        "profile": profile.name, "model": scenario.model, "workload": scenario.name, "pattern": scenario.pattern,
        "dtype": scenario.dtype, "policy": scenario.policy, "traffic": requests.describe(),
        "rate_per_s": requests.rate_per_s, "prompt_dist": prompts.description, "mean_prompt_tokens": prompts.mean(),
        "output_dist": outputs.description, "mean_output_tokens": outputs.mean(),
        "output_source": scenario.output_source if not (args.output_dist or traced) else None,
        "prompt_source": scenario.prompt_source if not (args.prompt_dist or traced) else None,
        "cache_hit_rate": getattr(requests, "cache_hit_rate", 0.0),
        "slo_ttft_ms": None if slo.ttft_s is None else slo.ttft_s * 1e3,
        "slo_tpot_ms": None if slo.tpot_s is None else slo.tpot_s * 1e3, "percentile": key,
        "queue_bound_ms": {p: v * 1e3 for p, v in plan.queue_bound_s.items()} if slo.ttft_s is None else None,
        "engine": engine.model_dump(), "engine_sources": engine.sources(profile),
        "duration_s": getattr(requests, "duration_s", None), "seed": args.seed,
        "warmup_s": requests.warmup_s, "price": price,
        "tco": f"{tco.name}: {tco.description}",
    }
    effect = _effect(plan, key)
    split = _disaggregate(args, profile, scenario, requests, plan.slo, engine, link) if link is not None else None
    split_info = _split_json(split, key, usd_per_gpu_hour) if split is not None else None
    if args.format == "json":
        emit(to_json({**info, "usd_per_gpu_hour": usd_per_gpu_hour,
                      "price_date": cloud.date if cloud else None, "results": rows, "candidates": candidates,
                      "effect": effect, "costs": costs_json(costs),
                      "prices": _prices_json(basis), "disaggregated": split_info}))
    elif args.format == "csv":
        emit(render_csv(rows, COLUMNS))
    else:
        text = _text(info, rows, candidates, effect, key, scenario.pattern, engine)
        if costs is not None:
            text += "\n\nend-to-end cost of each path's fleet (GPU time split between prompts and answers by the " \
                    "prefill share; owned = TCO at the simulated utilization)\n" + render_table(
                        cost_table_rows(costs), ("basis", "item", "dense", "sparse", "saving"))
            text += "\n\n" + "\n".join(chain_lines(costs, scenario.pattern))
        if split_info is not None:
            text += "\n\n" + _split_text(split_info, key, scenario.pattern)
        emit(text)
    return 0


def _disaggregate(args: argparse.Namespace, profile: Any, scenario: Any, requests: Any, slo: Any, engine: Any,
                  link: Any) -> Any:
    from ampersim.econ.disagg import plan_disaggregated
    from ampersim.econ.traffic import Traffic
    from ampersim.models.registry import load_model_spec

    assert isinstance(requests, Traffic)  # kv_link() refuses --disaggregate with --trace
    return plan_disaggregated(profile, scenario, requests, slo, engine, spec=load_model_spec(scenario.model),
                              tp=args.tp, link_gbps=link)


def _split_json(split: Any, key: str, usd_per_gpu_hour: float | None) -> dict[str, Any]:
    pools = []
    for pool, plan, paths in (("prefill", split.prefill, ("dense", "sparse")), ("decode", split.decode, ("dense",))):
        if plan is None:
            continue
        for path in paths:
            f = plan.paths[path].fleet
            pools.append({"pool": pool, "path": path if pool == "prefill" else "both", "tp": f.tp,
                          "replicas": f.replicas, "gpus": f.gpus, "ttft_ms": _ms(f.ttft_s[key]),
                          "tpot_ms": _ms(f.tpot_s[key]) if pool == "decode" else None,
                          "utilization": f.utilization})
    total = {p: split.gpus(p) for p in ("dense", "sparse")}
    return {
        "pools": pools, "gpus": total, "prefill_gpus": {p: split.prefill_gpus(p) for p in ("dense", "sparse")},
        "decode_gpus": split.decode_gpus, "prefill_gpu_saving": split.prefill_gpu_saving,
        "kv_link_gbps": split.link_gbps.value, "kv_link_source": split.link_gbps.source,
        "kv_bytes_per_token_per_gpu": split.kv_bytes_per_token,
        "kv_transfer_ms": {k: _ms(v) for k, v in split.transfer_s.items()}, "kv_network_gbps": split.network_gbps,
        "usd_per_day": {p: None if usd_per_gpu_hour is None or g is None else g * usd_per_gpu_hour * 24.0
                        for p, g in total.items()},
    }


def _split_text(split: dict[str, Any], key: str, pattern: str) -> str:
    saving = split["prefill_gpu_saving"]
    prefill = split["prefill_gpus"]
    lines = [
        f"disaggregated prefill and decode (separate pools; TTFT from the prefill pool, TPOT from the decode pool; "
        f"KV over {split['kv_link_gbps']:g} GB/s per GPU: {split['kv_link_source']})",
        render_table(split["pools"], ("pool", "path", "tp", "replicas", "gpus", "ttft_ms", "tpot_ms", "utilization"),
                     {"ttft_ms": f"ttft_{key}_ms (to 2nd token in decode)", "tpot_ms": f"tpot_{key}_ms"}),
        f"  prefill GPUs {pattern} sparsity saves: {prefill['dense']} -> {prefill['sparse']}"
        + (f" ({100 * saving:.1f} %)" if saving is not None else ""),
        f"  GPUs in all, dense {split['gpus']['dense']}, sparse {split['gpus']['sparse']} "
        f"(decode pool {split['decode_gpus']}, shared: decode stays dense)",
        f"  KV cache per request: {split['kv_bytes_per_token_per_gpu'] / 1024:.0f} KiB per token per GPU; transfer "
        f"mean {split['kv_transfer_ms']['mean']:.3g} ms, p95 {split['kv_transfer_ms']['p95']:.3g} ms; "
        f"{split['kv_network_gbps']:.3g} GB/s leave the prefill pool on average",
    ]
    if split["usd_per_day"]["dense"] is not None:
        lines.append(f"  cloud $/day: dense {split['usd_per_day']['dense']:,.0f}, sparse "
                     f"{split['usd_per_day']['sparse']:,.0f}")
    return "\n".join(lines)


def _prices_json(basis: Any) -> dict[str, Any] | None:
    if basis is None:
        return None
    items = list(basis.items()) + [(f"tco.{k}", v) for k, v in basis.tco.items()]
    return {k: {"value": v.value, "source": v.source, "date": v.date} for k, v in items}


def _ms(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value * 1e3


def _row(plan: Any, path: str, key: str, usd_per_gpu_hour: float | None) -> dict[str, Any]:
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
        "preemptions": fleet.preemptions, "requests": fleet.requests,
        "usd_per_day": None if usd_per_gpu_hour is None else fleet.gpus * usd_per_gpu_hour * 24.0,
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
        f"  prompts: {_with_mean(info['prompt_dist'], info['mean_prompt_tokens'])}"
        + (f"; {info['prompt_source']}" if info["prompt_source"] else ""),
        f"  outputs: {_with_mean(info['output_dist'], info['mean_output_tokens'])}"
        + (f"; {info['output_source']}" if info["output_source"] else ""),
        f"SLO: {slos}" + (f"; no TTFT SLO: fleets whose {key} TTFT exceeds 10x an idle replica's "
                          f"({', '.join(f'{p} {v:.4g} ms' for p, v in info['queue_bound_ms'].items())}) count as "
                          "overloaded" if info["queue_bound_ms"] else ""),
        f"engine: steps of <= {engine.max_batched_tokens} tokens and <= {engine.max_seqs} sequences, KV blocks of "
        f"{engine.block_size} tokens, {engine.gpu_memory_utilization:g} of GPU memory, mixed steps '{engine.mixed}'; "
        f"{info['duration_s']:g} s simulated (first {info['warmup_s']:g} s warm-up), seed {info['seed']}",
        f"price: {info['price']}",
        f"owned: total cost of ownership {info['tco']} (`ampersim roi` lists every number with its source)",
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
