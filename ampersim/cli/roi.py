"""`ampersim roi`: prompt throughput, cost per million prompt tokens, energy and payback, per profile."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from ampersim.cli.econ_args import (
    add_ownership_arguments,
    add_price_arguments,
    add_profiles_argument,
    add_workload_arguments,
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
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "roi", help="cost per million prompt tokens, energy and payback, dense vs sparse", description=__doc__
    )
    add_profiles_argument(p)
    add_workload_arguments(p)
    add_price_arguments(p, repeatable=True)
    add_ownership_arguments(p)
    add_format_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ampersim.econ.roi import PAYBACK_DEFINITION, compare, missing_price_message, paybacks, price_basis
    from ampersim.hardware.registry import load_profile

    profiles = [load_profile(name) for name in args.profile]
    scenario = load_workload(args)
    hourly = per_profile(args.usd_per_hour, "--usd-per-hour", len(profiles))
    bought = per_profile(args.purchase_usd, "--purchase-usd", len(profiles))
    bases = [
        price_basis(
            p,
            usd_per_hour=h,
            purchase_usd=b,
            lifetime_years=args.lifetime_years,
            usd_per_kwh=args.usd_per_kwh,
            utilization=args.utilization,
        )
        for p, h, b in zip(profiles, hourly, bought)
    ]
    rows = compare(profiles, scenario, bases)
    backs = paybacks(rows)
    notes = [f"{r.profile}: {r.note}" for r in rows if r.note]
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
                    "payback": [_payback_json(b) for b in backs],
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
        render_table(table),
        "",
        f"payback of buying each profile instead of renting the baseline {rows[0].profile}",
        render_table([_payback_row(b) for b in backs]),
        f"({PAYBACK_DEFINITION})",
        "",
        "prices and assumptions used",
        render_table(prices, ("profile", "item", "value", "date", "source")),
    ]
    if notes:
        text += ["", "notes", *(f"- {n}" for n in notes)]
    emit("\n".join(text))
    return 0


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
