"""Rendering of a fleet's end-to-end costs and saving chain (shared by `plan` and `roi`)."""
from __future__ import annotations

from typing import Any

from ampersim.cli.output import format_cell

COST_ROWS = (  # (label, PathCost attribute)
    ("$/GPU-hour", "usd_per_gpu_hour"),
    ("$/day", "usd_per_day"),
    ("$/M input tokens", "usd_per_m_input_tokens"),
    ("$/M output tokens", "usd_per_m_output_tokens"),
    ("$ per 1,000 requests", "usd_per_1k_requests"),
)


def costs_json(costs: Any) -> dict[str, Any] | None:
    """The costs of both paths on each basis, the saving and the chain, as plain data."""
    if costs is None:
        return None
    out: dict[str, Any] = {"cloud_price": costs.prices.cloud_price}
    for fleet in (costs.cloud, costs.owned):
        if fleet is not None:
            out[fleet.basis] = {
                "paths": {p: {k: getattr(c, k) for k in ("gpus", "usd_per_gpu_hour", "usd_per_day",
                                                           "usd_per_m_input_tokens", "usd_per_m_output_tokens",
                                                           "usd_per_1k_requests", "utilization", "prefill_share")}
                          for p, c in fleet.paths.items()},
                "saving": fleet.saving, "saving_usd_per_month": fleet.saving_usd_per_month,
            }
    chain = costs.chain
    if chain is not None:
        out["chain"] = {k: getattr(chain, k) for k in (
            "isolated_prefill_speedup", "in_fleet_prefill_speedup", "prefill_share", "formula_saving",
            "busy_time_saving", "gpus", "gpu_saving")}
        out["chain"]["departures"] = list(chain.departures)
    return out


def chain_lines(costs: Any, pattern: str) -> list[str]:
    """The chain from the prefill speedup to dollars, one step a line."""
    chain = costs.chain if costs is not None else None
    if chain is None:
        return []
    lines = [
        f"what {pattern} sparsity buys this fleet (the chain; docs/roi-and-capacity.md):",
        f"  1. prefill step speedup, the workload's prompt batch alone:           {chain.isolated_prefill_speedup:.3f}x",
        f"  2. prefill GPU time in the fleet, dense / sparse:                     {chain.in_fleet_prefill_speedup:.3f}x",
        f"  3. prefill share of the dense fleet's busy GPU time:                  {100 * chain.prefill_share:.1f} %",
        f"  4. ideal end-to-end saving = share x (1 - 1/speedup):                 {100 * chain.formula_saving:.2f} %",
        f"  5. simulated busy GPU time saved on the same fleet:                   {100 * chain.busy_time_saving:.2f} %",
        f"  6. GPUs under the SLOs, dense -> sparse (whole replicas):              {chain.gpus['dense']} -> "
        f"{chain.gpus['sparse']} ({100 * chain.gpu_saving:.1f} %)",
    ]
    for fleet in (costs.cloud, costs.owned):
        if fleet is not None:
            d = fleet.paths["dense"].usd_per_day
            lines.append(f"  7. {fleet.basis} $ saved: {100 * fleet.saving:.1f} % of ${d:,.0f}/day = "
                         f"${fleet.saving_usd_per_month:,.0f}/month (ideal at step 4: "
                         f"${chain.formula_saving * d * 30.44:,.0f}/month)")
    lines += [f"  where the simulation departs from the formula: {note}" for note in chain.departures]
    return lines


def cost_table_rows(costs: Any) -> list[dict[str, Any]]:
    """Rows (basis, item, dense, sparse, saving) of the end-to-end costs."""
    rows = []
    for fleet in (costs.cloud, costs.owned) if costs is not None else ():
        if fleet is None:
            continue
        for label, attr in COST_ROWS:
            d, s = getattr(fleet.paths["dense"], attr), getattr(fleet.paths["sparse"], attr)
            saving = None if d is None or s is None or not d else 1 - s / d
            rows.append({"basis": fleet.basis, "item": label, "dense": d, "sparse": s, "saving": percent(saving)})
        rows.append({"basis": fleet.basis, "item": "saving $/month", "dense": None, "sparse": None,
                     "saving": f"${format_cell(round(fleet.saving_usd_per_month))}"})
    return rows


def percent(share: float | None) -> str | None:
    """'12.3 %' (no negative zero); None stays None."""
    if share is None:
        return None
    value = round(100 * share, 1)
    return f"{value + 0.0:.1f} %"


FLEET_ROWS = (  # (label, function of (plan, costs) -> value)
    ("GPUs dense (replicas x tp)", lambda pl, c: _gpus(pl, "dense")),
    ("GPUs sparse (replicas x tp)", lambda pl, c: _gpus(pl, "sparse")),
    ("utilization dense", lambda pl, c: pl.paths["dense"].fleet.utilization),
    ("prefill share of busy GPU time, dense", lambda pl, c: pl.paths["dense"].fleet.prefill_share),
    ("prefill step speedup (alone)", lambda pl, c: c.chain.isolated_prefill_speedup if c.chain else None),
    ("prefill speedup in the fleet", lambda pl, c: c.chain.in_fleet_prefill_speedup if c.chain else None),
    ("ideal saving share x (1-1/speedup)", lambda pl, c: percent(c.chain.formula_saving) if c.chain else None),
    ("busy GPU time saved, same fleet", lambda pl, c: percent(c.chain.busy_time_saving) if c.chain else None),
    ("GPUs saved under the SLOs", lambda pl, c: percent(c.chain.gpu_saving) if c.chain else None),
)


def _gpus(plan: Any, path: str) -> str:
    f = plan.paths[path].fleet
    return f"{f.gpus} ({f.replicas} x {f.tp})"


def fleet_table_rows(plans: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """Rows metric x profile for ``plans`` [(profile, plan, costs)]: the fleets, the chain and the costs."""
    rows = [{"metric": label, **{name: fn(plan, costs) for name, plan, costs in plans}} for label, fn in FLEET_ROWS]
    for basis in ("cloud", "owned"):
        for label, attr in COST_ROWS:
            for path in ("dense", "sparse"):
                row = {"metric": f"{basis} {label}, {path}"}
                for name, _, costs in plans:
                    fleet = getattr(costs, basis) if costs is not None else None
                    row[name] = getattr(fleet.paths[path], attr) if fleet is not None else None
                rows.append(row)
        rows.append({"metric": f"{basis} saving", **{
            name: percent(getattr(c, basis).saving) if c is not None and getattr(c, basis) else None
            for name, _, c in plans}})
        rows.append({"metric": f"{basis} saving $/month", **{
            name: round(getattr(c, basis).saving_usd_per_month) if c is not None and getattr(c, basis) else None
            for name, _, c in plans}})
    return rows
