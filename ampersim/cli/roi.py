"""`ampersim roi`: what sparsity buys, per profile: the prefill step (prompt tokens/s, $ per million prompt
tokens, energy, payback at full utilization) and, for a workload with answers (or with --rate), the whole
fleet that serves its traffic under the SLOs (as `ampersim plan`): $/day, $/M input and output tokens,
$ per 1,000 requests, dense vs sparse, and the chain from the prefill speedup to the dollars saved."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from ampersim.cli.econ_args import (
    add_engine_arguments,
    add_ownership_arguments,
    add_price_arguments,
    add_profiles_argument,
    add_target_arguments,
    add_workload_arguments,
    load_tco,
    load_workload,
    per_profile,
)
from ampersim.cli.output import add_format_argument, emit, format_cell, render_csv, render_table, to_json

METRICS = (  # (label, attribute, path)
    ("prompt tokens/s per GPU, dense", "tokens_per_s", "dense"),
    ("prompt tokens/s per GPU, sparse", "tokens_per_s", "sparse"),
    ("speedup sparse/dense", "speedup", None),
    ("energy J/token, dense", "energy_j_per_token", "dense"),
    ("energy J/token, sparse", "energy_j_per_token", "sparse"),
    ("cloud $/M tokens, dense", "cloud_usd_per_m_tokens", "dense"),
    ("cloud $/M tokens, sparse", "cloud_usd_per_m_tokens", "sparse"),
    ("owned $/M tokens, dense", "owned_usd_per_m_tokens", "dense"),
    ("owned $/M tokens, sparse", "owned_usd_per_m_tokens", "sparse"),
    ("TCO $/M tokens, dense", "tco_usd_per_m_tokens", "dense"),
    ("TCO $/M tokens, sparse", "tco_usd_per_m_tokens", "sparse"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "roi", help="cost per million prompt tokens, energy and payback, dense vs sparse", description=__doc__
    )
    add_profiles_argument(p)
    add_workload_arguments(p)
    add_price_arguments(p, repeatable=True)
    add_ownership_arguments(p)
    add_target_arguments(p, rate_help="requests/s the fleet serves (default: the workload's); given for a "
                                      "prefill-only workload, the fleet is planned too")
    p.add_argument("--percentile", default="p95", metavar="pNN", help="SLO percentile: p50, p95, p99 (any pNN; default p95)")
    p.add_argument("--prompt-dist", default=None, metavar="DIST",
                   help="fleet prompt lengths: fixed:N | lognormal:MEAN,SIGMA[,MAX] | trace:FILE (default: the "
                        "workload's)")
    p.add_argument("--output-dist", default=None, metavar="DIST",
                   help="fleet output lengths (default: the workload's)")
    p.add_argument("--cache-hit-rate", type=float, default=None, metavar="FRACTION",
                   help="share of prompt tokens in the prefix cache, [0, 1) (default: the workload's)")
    add_engine_arguments(p)
    p.add_argument("--duration-s", type=float, default=None, metavar="SECONDS",
                   help="simulated seconds of the fleet's traffic (default: as `plan`)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="random seed of arrivals and lengths, >= 0 (default 0)")
    add_format_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ampersim.econ.roi import PAYBACK_DEFINITION, compare, missing_price_message, paybacks, price_basis
    from ampersim.hardware.registry import load_profile

    profiles = [load_profile(name) for name in args.profile]
    scenario = load_workload(args)
    hourly = per_profile(args.usd_per_hour, "--usd-per-hour", len(profiles))
    bought = per_profile(args.purchase_usd, "--purchase-usd", len(profiles))
    tco = load_tco(args)
    bases = [
        price_basis(
            p,
            usd_per_hour=h,
            purchase_usd=b,
            lifetime_years=args.lifetime_years,
            usd_per_kwh=args.usd_per_kwh,
            utilization=args.utilization,
            cloud=args.cloud_price,
            tco=tco,
        )
        for p, h, b in zip(profiles, hourly, bought)
    ]
    rows = compare(profiles, scenario, bases)
    fleets, refused = (_fleets(args, profiles, scenario, bases) if scenario.has_outputs or args.rate is not None
                       else ([], []))
    backs = paybacks(rows)
    notes = [f"{r.profile}: {r.note}" for r in rows if r.note] + [b.note for b in bases if b.note] + refused
    for profile, r in zip(profiles, rows):
        if r.prices.cloud_usd_per_gpu_hour is None:
            notes.append(missing_price_message(profile, "cloud_usd_per_gpu_hour", "--usd-per-hour"))
        if r.prices.purchase_usd is None:
            notes.append(missing_price_message(profile, "purchase_usd", "--purchase-usd"))
    workload = {
        "name": scenario.name,
        "model": scenario.model,
        "dtype": scenario.dtype,
        "tp": scenario.tp,
        "batch": scenario.batch,
        "prompt_tokens": scenario.sequence_lengths(),
        "pattern": scenario.pattern,
        "policy": scenario.policy,
    }
    if args.format == "json":
        emit(
            to_json(
                {
                    "workload": workload,
                    "profiles": [_profile_json(r) for r in rows],
                    "payback_definition": PAYBACK_DEFINITION,
                    "tco": {k: {"value": v.value, "source": v.source, "date": v.date}
                            for k, v in bases[0].tco.items()},
                    "payback": [_payback_json(b) for b in backs],
                    "fleet": [_fleet_json(name, plan, costs, requests) for name, plan, costs, requests in fleets],
                    "notes": notes,
                }
            )
        )
        return 0
    table = [{"metric": label, **{r.profile: _metric(r, attr, path) for r in rows}} for label, attr, path in METRICS]
    if args.format == "csv":
        emit(render_csv(table))
        return 0
    prices = [
        {"profile": r.profile, "item": k, "value": v.value, "date": v.date or "", "source": v.source}
        for r in rows
        for k, v in r.prices.items()
    ]
    text = [
        f"workload {scenario.name}: {scenario.model} {scenario.dtype}, tp={scenario.tp}, {scenario.batch} x "
        f"{_lengths(scenario)} tokens per step, pattern {scenario.pattern} (policy {scenario.policy})",
        "",
        "the prefill step alone, per GPU, busy every hour (`--utilization`)",
        render_table(table),
        "",
        f"payback of buying each profile instead of renting the baseline {rows[0].profile}",
        render_table([_payback_row(b) for b in backs]),
        f"({PAYBACK_DEFINITION})",
        "",
        "prices and assumptions used",
        render_table(prices, ("profile", "item", "value", "date", "source")),
        "",
        f"ownership (the TCO rows and owned fleets): {bases[0].tco.name}, the same for every profile",
        render_table([{"item": k, "value": v.value, "date": v.date or "", "source": v.source}
                      for k, v in bases[0].tco.items() if k not in ("depreciation_years", "usd_per_kwh")],
                     ("item", "value", "date", "source")),
    ]
    if fleets:
        text += ["", *_fleet_text(fleets, scenario)]
    if notes:
        text += ["", "notes", *(f"- {n}" for n in notes)]
    emit("\n".join(text))
    return 0


def _fleets(args: Any, profiles: list[Any], scenario: Any,
            bases: list[Any]) -> tuple[list[tuple[str, Any, Any, Any]], list[str]]:
    """(profile, plan, costs, requests) of the fleet serving the workload's traffic on each profile, as `plan`,
    and a note for each profile no fleet of which meets the SLOs (or that cannot hold the model)."""
    from ampersim.cli.plan import plan_request
    from ampersim.core.errors import AmpersimError
    from ampersim.econ.fleet import fleet_costs

    out, refused = [], []
    for profile, basis in zip(profiles, bases):
        try:
            plan, requests, _, _, _ = plan_request(args, profile, scenario)
        except AmpersimError as exc:
            if not _profile_specific(exc):
                raise  # a bad argument or input: the same for every profile, never a note
            refused.append(f"{profile.name}: no fleet: {exc}")
            continue
        out.append((profile.name, plan, fleet_costs(plan, profile, basis), requests))
    return out, refused


def _profile_specific(exc: Exception) -> bool:
    """Whether ``exc`` says a profile cannot serve the traffic (no fleet meets the SLOs, the model fits at no
    tensor-parallel degree, no interconnect for the tp asked), not that an argument is bad."""
    field = getattr(exc, "field", None)
    return ("no fleet meets" in str(exc) or field == "profile"
            or (field == "tp" and "has no interconnect" in str(exc)))


def _fleet_text(fleets: list[tuple[str, Any, Any, Any]], scenario: Any) -> list[str]:
    from ampersim.cli.costs import chain_lines, fleet_table_rows

    _, plan, _, requests = fleets[0]
    slo = plan.slo
    key = f"p{slo.percentile:g}"
    slos = " and ".join(f"{key} {n} <= {v * 1e3:g} ms" for n, v in (("TTFT", slo.ttft_s), ("TPOT", slo.tpot_s))
                        if v is not None)
    out = [
        f"the whole fleet serving {requests.describe()} under {slos}, end to end (as `ampersim plan`; GPU time "
        "split between input and output tokens by the prefill share; owned = TCO at the simulated utilization)",
        render_table(fleet_table_rows([(name, plan, costs) for name, plan, costs, _ in fleets])),
    ]
    for name, _, costs, _ in fleets:
        out += ["", f"{name}:", *chain_lines(costs, scenario.pattern)]
    return out


def _fleet_json(name: str, plan: Any, costs: Any, requests: Any) -> dict[str, Any]:
    from ampersim.cli.costs import costs_json

    key = f"p{plan.slo.percentile:g}"
    paths = {}
    for path, result in plan.paths.items():
        f = result.fleet
        paths[path] = {"tp": f.tp, "replicas": f.replicas, "gpus": f.gpus, "ttft_ms": f.ttft_s[key] * 1e3,
                       "tpot_ms": f.tpot_s[key] * 1e3, "utilization": f.utilization,
                       "prefill_share": f.prefill_share, "requests_per_s": f.requests_per_s,
                       "input_tokens_per_s": f.input_tokens_per_s, "output_tokens_per_s": f.output_tokens_per_s}
    return {"profile": name, "traffic": requests.describe(), "percentile": key, "slo_ttft_ms": _ms(plan.slo.ttft_s),
            "slo_tpot_ms": _ms(plan.slo.tpot_s), "paths": paths, "costs": costs_json(costs)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _lengths(scenario: Any) -> str:
    lengths = sorted(set(scenario.sequence_lengths()))
    return str(lengths[0]) if len(lengths) == 1 else "/".join(map(str, lengths))


def _metric(row: Any, attr: str, path: str | None) -> float | int | None:
    value = getattr(row, attr)
    value = value[path] if path else value
    return round(value) if attr == "tokens_per_s" else value


def _profile_json(row: Any) -> dict[str, Any]:
    data = asdict(row)
    data["prices"] = {k: {"value": v.value, "source": v.source, "date": v.date} for k, v in row.prices.items()}
    data["cloud_price"] = row.prices.cloud_price
    return data


def _payback_json(back: Any) -> dict[str, Any]:
    return {**asdict(back), "never": back.months is None and not back.missing}


def _payback_row(back: Any) -> dict[str, Any]:
    if back.missing:
        months = f"n/a (needs {back.missing})"
    else:
        months = "never" if back.months is None else format_cell(back.months)
    return {
        "to": back.to_profile,
        "path": back.path,
        "gpus_needed": back.gpus_needed,
        "capex_usd": _whole(back.capex_usd),
        "saving_usd_per_month": _whole(back.saving_usd_per_month),
        "payback_months": months,
    }


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)
