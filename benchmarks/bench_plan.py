"""Benchmark the serving simulator and the capacity planner (goals: an hour at 50 req/s <= 10 s, a plan <= 60 s).

Times (1) the compiled step costs of a replica, (2) one discrete-event simulation of the window (chat-like
traffic with decode and chunked prefill) on the fleet the planner chose, dense and sparse, (3) its peak
memory for half, one and two windows (memory must not grow with the simulated duration), (4) the whole
`plan` search through the library, and (5) `ampersim plan` as a fresh process. The first simulation in a
process also pays numba's compile (or cache load); it is reported separately. The load average is printed
before and after: the numbers are only comparable on an idle machine (--wait-idle waits for one).

    python benchmarks/bench_plan.py [--profile h100-sxm] [--workload chat] [--pattern 2:4] [--rate 50]
                                    [--duration-s 3600] [--repeat 3] [--wait-idle SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc


def wait_idle(max_s: float) -> None:
    """Wait (up to max_s) until the 1-minute load average is below 0.5."""
    deadline = time.monotonic() + max_s
    while os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        time.sleep(5.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h100-sxm")
    parser.add_argument("--workload", default="chat")
    parser.add_argument("--pattern", default="2:4")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument("--slo-ttft-ms", type=float, default=1000.0)
    parser.add_argument("--slo-tpot-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()

    from ampersim.econ.capacity import build_replica, plan_capacity, scenario_outputs, scenario_prompts
    from ampersim.econ.serving import C_MIXED, C_PREEMPT, C_STEPS, SLO, simulate
    from ampersim.econ.traffic import Traffic
    from ampersim.hardware.registry import load_profile
    from ampersim.models.registry import load_model_spec
    from ampersim.sim.engine import engine_for
    from ampersim.sim.scenario import load_scenario

    if args.wait_idle:
        wait_idle(args.wait_idle)
    load_before = os.getloadavg()
    profile = load_profile(args.profile)
    scenario = load_scenario(args.workload).with_overrides(pattern=args.pattern)
    spec = load_model_spec(scenario.model)
    engine = engine_for(profile)
    prompts, outputs = scenario_prompts(scenario), scenario_outputs(scenario)
    traffic = Traffic(args.rate, prompts, args.duration_s, outputs=outputs, seed=0)
    slo = SLO(args.slo_ttft_ms / 1e3, args.slo_tpot_ms / 1e3, 95.0)

    start = time.perf_counter()
    replica = build_replica(profile, scenario, spec, 1, engine)
    replica_s = time.perf_counter() - start

    plans = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        plan = plan_capacity(profile, scenario, traffic, slo, engine, prompts=prompts, outputs=outputs, spec=spec)
        plans.append(time.perf_counter() - start)
    fleet = {p: plan.paths[p].fleet for p in plan.paths}
    replicas, tp = fleet["dense"].replicas, fleet["dense"].tp
    if tp != 1:
        replica = build_replica(profile, scenario, spec, tp, engine)

    def run(path: str, window: Traffic) -> object:
        return simulate(window, replicas, replica.costs, engine, replica.memory.kv_blocks, path)

    start = time.perf_counter()
    first = run("dense", traffic)
    first_s = time.perf_counter() - start
    sims: dict[str, list[float]] = {"dense": [], "sparse": []}
    results = {}
    for _ in range(args.repeat):
        for path in sims:
            start = time.perf_counter()
            results[path] = run(path, traffic)
            sims[path].append(time.perf_counter() - start)

    peaks = {}
    for seconds in (args.duration_s / 2, args.duration_s, 2 * args.duration_s):
        tracemalloc.start()
        run("dense", Traffic(args.rate, prompts, seconds, outputs=outputs, seed=0))
        peaks[f"{seconds:g} s"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 2)
        tracemalloc.stop()

    cli = ["ampersim", "plan", "--profile", args.profile, "--workload", args.workload, "--pattern", args.pattern,
           "--rate", "20", "--slo-ttft-ms", str(args.slo_ttft_ms), "--slo-tpot-ms", str(args.slo_tpot_ms),
           "--format", "json"]
    cli_runs = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        cli_runs.append(time.perf_counter() - start)

    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "profile": args.profile, "workload": args.workload, "pattern": args.pattern, "rate_per_s": args.rate,
        "duration_s": args.duration_s, "requests": traffic.counts()[0],
        "prompts": prompts.description, "outputs": outputs.description,
        "replica_step_costs_s (tables + memory fit + isolated predict)": round(replica_s, 3),
        "simulated_fleet": f"{replicas} x tp {tp} (the dense plan)",
        "steps_in_one_simulation": {p: int(r.counters[C_STEPS]) for p, r in results.items()},
        "mixed_steps": {p: int(r.counters[C_MIXED]) for p, r in results.items()},
        "preemptions": {p: int(r.counters[C_PREEMPT]) for p, r in results.items()},
        "first_simulation_s (numba compile or cache load)": round(first_s, 3),
        "one_simulation_s": {p: {"min": round(min(v), 3), "median": round(statistics.median(v), 3)}
                             for p, v in sims.items()},
        "simulation_peak_memory_mb (tracemalloc) by window": peaks,
        "plan_search_s (tp 1-8, dense + sparse)": {"min": round(min(plans), 2),
                                                   "median": round(statistics.median(plans), 2)},
        "plan_gpus": {p: (f.gpus if f else None) for p, f in fleet.items()},
        "plan_simulations": {p: sum(c.evaluations for c in plan.candidates if c.path == p) for p in plan.paths},
        "cli_plan_at_20_per_s_s (fresh process)": {"min": round(min(cli_runs), 2),
                                                   "median": round(statistics.median(cli_runs), 2)},
        "first_simulation_steps": int(first.counters[C_STEPS]),
    }, indent=2), file=sys.stdout)


if __name__ == "__main__":
    main()
