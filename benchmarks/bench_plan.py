"""Benchmark the capacity planner: one hour of traffic at 50 requests/s (goal: under 5 s).

Times (1) one discrete-event simulation of the hour, (2) the whole `plan` search (step tables for
dense and sparse + every simulation of the replica search), (3) the same through the CLI entry
point. The first simulation in a fresh process also pays numba's compile (or cache load); it is
reported separately.

    python benchmarks/bench_plan.py [--profile h100-sxm] [--rate 50] [--duration-s 3600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h100-sxm")
    parser.add_argument("--workload", default="prefill-4k")
    parser.add_argument("--pattern", default="2:4")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument("--prompt-dist", default="lognormal:2048,0.8")
    parser.add_argument("--slo-ttft-ms", type=float, default=800.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from ampersim.cli import main as cli
    from ampersim.econ.capacity import Traffic, plan_capacity, step_tables
    from ampersim.econ.queueing import simulate
    from ampersim.econ.traffic import parse_prompt_dist
    from ampersim.hardware.registry import load_profile
    from ampersim.sim.scenario import load_scenario

    profile = load_profile(args.profile)
    scenario = load_scenario(args.workload).with_overrides(pattern=args.pattern)
    prompts = parse_prompt_dist(args.prompt_dist)
    traffic = Traffic(args.rate, prompts, args.duration_s, seed=0)
    arrival, lengths = traffic.draw()

    start = time.perf_counter()
    tables = step_tables(profile, scenario, 8192, prompts)
    table_s = time.perf_counter() - start
    start = time.perf_counter()
    first = simulate(arrival, lengths, 6, tables["dense"], 256)
    first_s = time.perf_counter() - start

    sims, plans, cli_runs = [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        simulate(arrival, lengths, 6, tables["dense"], 256)
        sims.append(time.perf_counter() - start)
        start = time.perf_counter()
        plan = plan_capacity(
            step_tables(profile, scenario, 8192, prompts),
            traffic,
            slo_ttft_s=args.slo_ttft_ms / 1e3,
            percentile=95.0,
            max_seqs=256,
            tp=scenario.tp,
        )
        plans.append(time.perf_counter() - start)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            cli(
                [
                    "plan",
                    "--profile",
                    args.profile,
                    "--workload",
                    args.workload,
                    "--pattern",
                    args.pattern,
                    "--rate",
                    str(args.rate),
                    "--slo-ttft-ms",
                    str(args.slo_ttft_ms),
                    "--prompt-dist",
                    args.prompt_dist,
                    "--duration-s",
                    str(args.duration_s),
                    "--format",
                    "json",
                ]
            )
        cli_runs.append(time.perf_counter() - start)

    print(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
                "profile": args.profile,
                "workload": args.workload,
                "pattern": args.pattern,
                "rate_per_s": args.rate,
                "duration_s": args.duration_s,
                "prompt_dist": prompts.description,
                "requests": int(len(arrival)),
                "steps_in_one_simulation": first.steps,
                "step_tables_s": round(table_s, 3),
                "first_simulation_s (numba compile or cache load)": round(first_s, 3),
                "one_simulation_s": {"min": round(min(sims), 4), "median": round(statistics.median(sims), 4)},
                "plan_search_s": {"min": round(min(plans), 3), "median": round(statistics.median(plans), 3)},
                "plan_simulations": {p: r.evaluations for p, r in plan.paths.items()},
                "gpus": {p: plan.gpus(p) for p in plan.paths},
                "cli_plan_s": {"min": round(min(cli_runs), 3), "median": round(statistics.median(cli_runs), 3)},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
