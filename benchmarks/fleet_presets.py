"""What sparsity buys a fleet, per published workload preset and as the prefix-cache hit rate grows.

For each preset (its own request rate and SLOs) on one profile and pattern: `ampersim plan
--disaggregate` (colocated fleet, end-to-end cost, the chain; then separate prefill and decode pools),
printed as Markdown tables for docs/roi-and-capacity.md. Then the hit-rate sweep of one preset. Each
run is a fresh `ampersim` process (JSON output); the load average is printed (results do not depend on
it, the times do).

    python benchmarks/fleet_presets.py [--profile h100-sxm] [--pattern 2:4]
        [--presets conversation,coding,long-context,summarization,rag,agent-loop]
        [--sweep conversation] [--hit-rates 0,0.25,0.5,0.75,0.9]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def plan(profile: str, pattern: str, workload: str, *extra: str) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "ampersim", "plan", "--profile", profile, "--workload", workload, "--pattern",
           pattern, "--format", "json", *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out), time.perf_counter() - start


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h100-sxm")
    parser.add_argument("--pattern", default="2:4")
    parser.add_argument("--presets", default="conversation,coding,long-context,summarization,rag,agent-loop")
    parser.add_argument("--sweep", default="conversation")
    parser.add_argument("--hit-rates", default="0,0.25,0.5,0.75,0.9")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print("| preset | req/s | GPUs dense → sparse | prefill share | step / in-fleet speedup | ideal saving | "
          "cloud $/day dense → sparse | saved $/month | disaggregated prefill GPUs dense → sparse (+ decode) | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        out, seconds = plan(args.profile, args.pattern, preset, "--disaggregate")
        chain, cloud = out["costs"]["chain"], out["costs"]["cloud"]
        split = out["disaggregated"]
        print(f"| {preset} | {out['rate_per_s']:g} | {chain['gpus']['dense']} → {chain['gpus']['sparse']} | "
              f"{pct(chain['prefill_share'])} | {chain['isolated_prefill_speedup']:.3f}x / "
              f"{chain['in_fleet_prefill_speedup']:.3f}x | {pct(chain['formula_saving'])} | "
              f"{cloud['paths']['dense']['usd_per_day']:,.0f} → {cloud['paths']['sparse']['usd_per_day']:,.0f} | "
              f"{cloud['saving_usd_per_month']:,.0f} | {split['prefill_gpus']['dense']} → "
              f"{split['prefill_gpus']['sparse']} (+ {split['decode_gpus']}) | {seconds:.0f} |", flush=True)
    print()
    print(f"| {args.sweep}: cache hit rate | prefill share | in-fleet prefill speedup | ideal saving | "
          f"GPUs dense → sparse |")
    print("|---|---|---|---|---|")
    for hit in args.hit_rates.split(","):
        out, _ = plan(args.profile, args.pattern, args.sweep, "--cache-hit-rate", hit)
        chain = out["costs"]["chain"]
        print(f"| {float(hit):g} | {pct(chain['prefill_share'])} | {chain['in_fleet_prefill_speedup']:.3f}x | "
              f"{pct(chain['formula_saving'])} | {chain['gpus']['dense']} → {chain['gpus']['sparse']} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
