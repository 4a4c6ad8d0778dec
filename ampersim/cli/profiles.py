"""`ampersim profiles [list | show NAME|FILE | schema]`: the hardware profiles and their sources."""
from __future__ import annotations

import argparse
from typing import Any

from ampersim.cli.output import FORMATS, emit, render_csv, render_table, to_json
from ampersim.core.sourced import sourced_numbers
from ampersim.hardware.profile import HardwareProfile
from ampersim.hardware.registry import list_profiles, load_profile

LIST_COLUMNS = {
    "name": "name", "display_name": "display name", "vendor": "vendor", "status": "status",
    "bf16_dense_tflops": "bf16 dense TFLOPS", "bf16_sparse_tflops": "bf16 sparse TFLOPS",
    "bf16_sparse_patterns": "native patterns", "bandwidth_gbps": "GB/s", "memory_gb": "GB",
    "cloud_usd_per_gpu_hour": "list $/GPU-h", "cloud_market_usd_per_gpu_hour": "market $/GPU-h",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "profiles", help="list, show or describe hardware profiles",
        description="Hardware profiles: datasheet peaks, efficiency assumptions and prices, each with its source. "
                    "With no subcommand: list.")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format of the list")
    sub = parser.add_subparsers(dest="profiles_command", metavar="{list,show,schema}")
    lst = sub.add_parser("list", help="one row per shipped and calibrated profile (default)")
    lst.add_argument("--format", choices=FORMATS, default=argparse.SUPPRESS,
                     help="table (default): human-readable; json: one object on stdout; csv: rows")
    show = sub.add_parser("show", help="one profile with every number and its source")
    show.add_argument("profile", metavar="NAME|FILE", help="profile name, alias or YAML file")
    show.add_argument("--format", choices=("table", "json", "yaml"), default="table",
                      help="table (default): summary + sources; json or yaml: the whole profile")
    sub.add_parser("schema", help="JSON Schema of the profile format")
    parser.set_defaults(run=run_list)
    lst.set_defaults(run=run_list)
    show.set_defaults(run=run_show)
    sub.choices["schema"].set_defaults(run=run_schema)


def list_row(profile: HardwareProfile) -> dict[str, Any]:
    """The summary row of ``profile`` shown by `profiles list`."""
    bf16 = profile.matrix.get("bf16")
    sparse = bf16.sparse_tflops if bf16 else {}
    price, market = profile.prices.cloud_usd_per_gpu_hour, profile.prices.cloud_market_usd_per_gpu_hour
    return {
        "name": profile.name, "display_name": profile.display_name, "vendor": profile.vendor,
        "status": profile.status,
        "bf16_dense_tflops": bf16.dense_tflops.value if bf16 else None,
        "bf16_sparse_tflops": max((v.value for v in sparse.values()), default=None),
        "bf16_sparse_patterns": ",".join(sparse) or "none",
        "bandwidth_gbps": profile.memory.bandwidth_gbps.value,
        "memory_gb": profile.memory.capacity_gb.value,
        "cloud_usd_per_gpu_hour": price.value if price else None,
        "cloud_market_usd_per_gpu_hour": market.value if market else None,
    }


def run_list(args: argparse.Namespace) -> int:
    rows = [list_row(p) for p in list_profiles(include_calibrated=True)]
    if args.format == "json":
        emit(to_json({"profiles": rows}))
    elif args.format == "csv":
        emit(render_csv(rows, list(LIST_COLUMNS)))
    else:
        emit(render_table(rows, list(LIST_COLUMNS), LIST_COLUMNS))
    return 0


def summary(profile: HardwareProfile) -> str:
    """Human summary: identity, peaks per dtype, memory, links, power, prices, defaults."""
    p = profile
    lines = [f"{p.name}: {p.display_name}",
             f"vendor {p.vendor}, {p.architecture}, status {p.status}"
             + (f", aliases {', '.join(p.aliases)}" if p.aliases else "")]
    if p.notes:
        lines.append(f"notes: {p.notes}")
    peaks = [{"dtype": dtype, "dense": r.dense_tflops.value,
              "sparse": ", ".join(f"{pat} {v.value:g}" for pat, v in r.sparse_tflops.items()) or "none native"}
             for dtype, r in p.matrix.items()]
    lines += ["", render_table(peaks, ["dtype", "dense", "sparse"],
                               {"dense": "dense TFLOPS", "sparse": "sparse TFLOPS per native pattern"}), ""]
    lines.append(f"memory: {p.memory.capacity_gb.value:g} GB at {p.memory.bandwidth_gbps.value:g} GB/s; "
                 f"{p.compute_units.value:g} compute units")
    if p.interconnect:
        ic = p.interconnect
        lines.append(f"interconnect: {ic.name}, {ic.bandwidth_gbps.value:g} GB/s per direction, "
                     f"{ic.latency_us.value:g} us")
    lines.append(f"power: TDP {p.power.tdp_w.value:g} W, prefill at {p.power.prefill_power_fraction.value:g} of TDP")
    for label, price in (("cloud $/GPU-hour, list", p.prices.cloud_usd_per_gpu_hour),
                         ("cloud $/GPU-hour, market", p.prices.cloud_market_usd_per_gpu_hour),
                         ("purchase $", p.prices.purchase_usd)):
        if price is not None:
            lines.append(f"{label}: {price.value:g} ({price.date})")
    lines.append(f"runtime pruning: {p.default_prune_impl} (native patterns), {p.default_mask_impl} (others)")
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    if args.format == "json":
        emit(to_json(profile.model_dump(mode="json")))
    elif args.format == "yaml":
        import yaml

        emit(yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100))
    else:
        rows = [{"field": f, "value": f"{v:g}", "date": d, "source": s or "(structural, no source)"}
                for f, v, d, s in sourced_numbers(profile)]
        emit(summary(profile) + "\n\nEvery number and its source:\n" + render_table(rows))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    emit(to_json(HardwareProfile.model_json_schema()))
    return 0
