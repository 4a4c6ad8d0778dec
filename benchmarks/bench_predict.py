"""Benchmark: whole-model prefill predictions per second (not a test; results go to docs/benchmarks.md).

A sweep over every shipped profile × every shipped scenario (with each scenario's native and 8:16
pattern) × a grid of batch shapes (prompt length × prompts per step), costed through the vectorized
``step_seconds`` path; one prediction = the dense and the sparse time of one whole-model prefill step.
For contrast it also times ``predict`` (full per-op rows, one step per call).

    python benchmarks/bench_predict.py [--lengths 64] [--batches 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from ampersim.hardware.registry import list_profiles
from ampersim.sim.predict import predict, step_seconds
from ampersim.sim.scenario import list_scenarios


def sweep_cases():
    cases = []
    for profile in list_profiles():
        for scenario in list_scenarios():
            if scenario.dtype not in profile.matrix:
                continue
            patterns = {str(p) for p in profile.native_patterns(scenario.dtype)} | {"8:16"}
            cases += [(profile, scenario.with_overrides(pattern=p)) for p in sorted(patterns)]
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, default=64, help="prompt lengths in the grid (log-spaced 64..32768)")
    parser.add_argument("--batches", type=int, default=16, help="prompts per step in the grid (1..batches)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    args = parser.parse_args()

    lengths = np.unique(np.geomspace(64, 32768, args.lengths).round())
    batch = np.arange(1, args.batches + 1, dtype=float)
    L, B = np.meshgrid(lengths, batch)
    total, sum_sq = (L * B).ravel(), (L * L * B).ravel()
    cases = sweep_cases()
    points = total.size * len(cases)

    for profile, scenario in cases:  # warm-up: resolve specs and policies once (cached by identity)
        step_seconds(profile, scenario, total[:1], sum_sq[:1])
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for profile, scenario in cases:
            step_seconds(profile, scenario, total, sum_sq)
        best = min(best, time.perf_counter() - start)

    full_cases = cases[:: max(1, len(cases) // 40)]
    start = time.perf_counter()
    for profile, scenario in full_cases:
        predict(profile, scenario)
    per_predict = (time.perf_counter() - start) / len(full_cases)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"sweep: {len(cases)} (profile, scenario, pattern) cases x {total.size} batch shapes = {points:,} predictions")
    print(f"vectorized step_seconds: {best:.3f} s best of {args.repeats} -> {points / best:,.0f} predictions/s")
    print(f"predict() with per-op rows: {per_predict * 1e3:.2f} ms per call -> {1 / per_predict:,.0f} predictions/s")


if __name__ == "__main__":
    main()
