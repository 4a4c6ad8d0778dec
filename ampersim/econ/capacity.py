"""Capacity planning: the fewest prefill GPUs that meet a TTFT SLO at a percentile, dense vs sparse.

The fleet is ``replicas`` copies of a ``tp``-GPU model replica fed by one FCFS queue (see
ampersim.econ.queueing). For each path (dense, sparse) the same seeded traffic is simulated at
candidate replica counts: galloping from a throughput-based first guess brackets the answer, then
bisection finds the smallest count whose TTFT percentile meets the SLO (TTFT percentiles fall as
replicas are added).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ampersim.econ.queueing import SimResult, StepTable, build_step_tables, simulate, solo_prefill_seconds
from ampersim.econ.traffic import PromptDist, empirical, fixed, poisson_arrivals
from ampersim.core.errors import InvalidArgument
from ampersim.hardware.profile import HardwareProfile
from ampersim.sim.predict import step_seconds
from ampersim.sim.scenario import Scenario

MAX_REPLICAS = 100_000
_PCT_RE = re.compile(r"^[pP](\d{1,2}(\.\d+)?)$")


def parse_percentile(text: str) -> float:
    """'p95' -> 95.0; allowed: p1 .. p99.99 (e.g. p50, p95, p99, p99.9)."""
    match = _PCT_RE.match(str(text).strip())
    value = float(match.group(1)) if match else -1.0
    if not 0 < value < 100:
        raise InvalidArgument(f"percentile '{text}': expected pNN with 0 < NN < 100, e.g. p50, p95, p99",
                              field="percentile")
    return value


def check_rate(rate_per_s: float) -> None:
    if not rate_per_s > 0:
        raise InvalidArgument(f"rate_per_s {rate_per_s:g}: the request rate must be > 0 requests/s",
                              field="rate_per_s")


def auto_duration_s(rate_per_s: float) -> float:
    """Simulated window long enough for stable tail percentiles: ~50,000 requests, 10 min to 1 h."""
    check_rate(rate_per_s)
    return min(3600.0, max(600.0, 50_000.0 / rate_per_s))


def scenario_prompts(scenario: Scenario) -> PromptDist:
    """The workload's prompt lengths as a distribution (its fixed length or its length mix)."""
    if isinstance(scenario.prompt_tokens, int):
        return fixed(scenario.prompt_tokens)
    bins = scenario.prompt_tokens
    mix = ", ".join(f"{b.share:.0%} {b.tokens}" for b in bins)
    return empirical(
        np.array([b.tokens for b in bins]),
        np.array([b.share for b in bins]),
        f"workload '{scenario.name}' mix: {mix} tokens",
    )


def step_tables(
    profile: HardwareProfile, scenario: Scenario, max_batched_tokens: int, prompts: PromptDist
) -> dict[str, StepTable]:
    """Dense and sparse step-time tables of ``scenario``'s model, dtype, tp and policy on ``profile``."""
    if max_batched_tokens < 1:
        raise InvalidArgument(f"max_batched_tokens {max_batched_tokens}: must be >= 1", field="max_batched_tokens")
    dense, sparse = build_step_tables(
        lambda t, s: step_seconds(profile, scenario, t, s), max_batched_tokens, prompts.max_tokens()
    )
    return {"dense": dense, "sparse": sparse}


@dataclass(frozen=True)
class Traffic:
    """Poisson arrivals of ``rate_per_s`` with prompt lengths from ``prompts``, seeded.

    Requests arriving in the first ``warmup_fraction`` of the window are simulated but left out
    of the statistics (the fleet starts empty).
    """

    rate_per_s: float
    prompts: PromptDist
    duration_s: float
    seed: int = 0
    warmup_fraction: float = 0.05

    def __post_init__(self) -> None:
        check_rate(self.rate_per_s)
        if not self.duration_s > 0:
            raise InvalidArgument(f"duration_s {self.duration_s:g}: must be > 0 seconds", field="duration_s")

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """(arrival times s, prompt lengths) — identical for every call with the same fields."""
        rng = np.random.default_rng(self.seed)
        arrival = poisson_arrivals(rng, self.rate_per_s, self.duration_s)
        if len(arrival) == 0:
            raise InvalidArgument(
                f"duration_s {self.duration_s:g}: no request arrives at {self.rate_per_s:g} requests/s; "
                "lengthen the window",
                field="duration_s",
            )
        return arrival, self.prompts.sample(rng, len(arrival))


@dataclass(frozen=True)
class FleetStats:
    """One simulated fleet size."""

    replicas: int
    ttft_s: float  # at the requested percentile
    ttft_p50_s: float
    ttft_p95_s: float
    ttft_p99_s: float
    ttft_mean_s: float
    utilization: float  # busy replica-seconds / (replicas × simulated seconds)
    tokens_per_step: float
    requests: int


@dataclass(frozen=True)
class PathPlan:
    """Result for one path: the smallest fleet meeting the SLO, or why none does."""

    path: str
    feasible: bool
    min_ttft_s: float  # TTFT percentile with unlimited replicas (each prompt alone)
    fleet: FleetStats | None
    evaluations: int
    note: str = ""


def fleet_stats(
    result: SimResult, arrival: np.ndarray, replicas: int, percentile: float, warmup_s: float
) -> FleetStats:
    ttft = result.ttft_s[arrival >= warmup_s]
    horizon = float((arrival + result.ttft_s).max())
    p = np.percentile(ttft, [percentile, 50, 95, 99])
    return FleetStats(
        replicas,
        float(p[0]),
        float(p[1]),
        float(p[2]),
        float(p[3]),
        float(ttft.mean()),
        result.busy_s / (replicas * horizon),
        result.tokens / result.steps,
        len(ttft),
    )


def throughput_replicas(table: StepTable, rate_per_s: float, mean_tokens: float, mean_ctx: float) -> float:
    """Fractional replicas the token rate needs when every step is full (a lower bound's estimate)."""
    full = table.max_tokens
    step = float(table.lookup(np.array([full]), np.array([full * mean_ctx]))[0])
    return rate_per_s * mean_tokens * step / full


def min_replicas(
    table: StepTable,
    arrival: np.ndarray,
    lengths: np.ndarray,
    *,
    slo_s: float,
    percentile: float,
    max_seqs: int,
    warmup_s: float,
    path: str,
) -> PathPlan:
    """Smallest replica count whose simulated TTFT percentile is <= ``slo_s``."""
    solo = solo_prefill_seconds(table, lengths[arrival >= warmup_s])
    floor_s = float(np.percentile(solo, percentile))
    if floor_s > slo_s:
        return PathPlan(
            path, False, floor_s, None, 0, f"even an idle replica needs {floor_s * 1e3:.4g} ms at p{percentile:g}"
        )
    rate = len(arrival) / max(float(arrival[-1]), 1e-9)
    mean_ctx = float((lengths.astype(float) ** 2).sum() / lengths.sum())
    guess = throughput_replicas(table, rate, float(lengths.mean()), mean_ctx)
    cache: dict[int, FleetStats] = {}

    def ok(n: int) -> bool:
        if n not in cache:
            cache[n] = fleet_stats(simulate(arrival, lengths, n, table, max_seqs), arrival, n, percentile, warmup_s)
        return cache[n].ttft_s <= slo_s

    n = max(1, math.ceil(guess))
    step = 1
    if ok(n):  # gallop down to a failing count (or 1)
        good = n
        while good > 1:
            n = max(1, good - step)
            if not ok(n):
                break
            good, step = n, step * 2
        bad = n if n < good else 0
    else:  # gallop up to a passing count
        bad = n
        while True:
            n = bad + step
            if n > MAX_REPLICAS:
                return PathPlan(
                    path, False, floor_s, None, len(cache), f"more than {MAX_REPLICAS} replicas would be needed"
                )
            if ok(n):
                good = n
                break
            bad, step = n, step * 2
    while good - bad > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return PathPlan(path, True, floor_s, cache[good], len(cache))


@dataclass(frozen=True)
class CapacityPlan:
    """Dense and sparse results for one traffic description and SLO."""

    traffic: Traffic
    slo_ttft_s: float
    percentile: float
    max_batched_tokens: int
    max_seqs: int
    tp: int
    usd_per_gpu_hour: float | None
    paths: dict[str, PathPlan]

    def gpus(self, path: str) -> int | None:
        fleet = self.paths[path].fleet
        return None if fleet is None else fleet.replicas * self.tp

    def usd_per_day(self, path: str) -> float | None:
        gpus = self.gpus(path)
        return None if gpus is None or self.usd_per_gpu_hour is None else gpus * self.usd_per_gpu_hour * 24.0


def plan_capacity(
    tables: dict[str, StepTable],
    traffic: Traffic,
    *,
    slo_ttft_s: float,
    percentile: float,
    max_seqs: int,
    tp: int,
    usd_per_gpu_hour: float | None = None,
) -> CapacityPlan:
    """Minimum fleet per path in ``tables`` ({"dense": ..., "sparse": ...}) for ``traffic``."""
    if not slo_ttft_s > 0:
        raise InvalidArgument(f"the TTFT SLO must be > 0; got {slo_ttft_s * 1e3:g} ms", field="slo_ttft_s")
    if max_seqs < 1:
        raise InvalidArgument(f"max_seqs {max_seqs}: must be >= 1", field="max_seqs")
    arrival, lengths = traffic.draw()
    warmup_s = traffic.warmup_fraction * traffic.duration_s
    paths = {
        path: min_replicas(
            table,
            arrival,
            lengths,
            slo_s=slo_ttft_s,
            percentile=percentile,
            max_seqs=max_seqs,
            warmup_s=warmup_s,
            path=path,
        )
        for path, table in tables.items()
    }
    table = next(iter(tables.values()))
    return CapacityPlan(traffic, slo_ttft_s, percentile, table.max_tokens, max_seqs, tp, usd_per_gpu_hour, paths)


def require_feasible(plan: CapacityPlan) -> CapacityPlan:
    """``plan`` if some path meets the SLO; else InvalidArgument naming the lowest achievable TTFT."""
    if not any(p.feasible for p in plan.paths.values()):
        floors = ", ".join(f"{p.path} {p.min_ttft_s * 1e3:.4g} ms" for p in plan.paths.values())
        raise InvalidArgument(
            f"TTFT SLO {plan.slo_ttft_s * 1e3:g} ms: no number of GPUs meets p{plan.percentile:g} TTFT at "
            f"tp={plan.tp}; the lowest achievable (each prompt alone on an idle replica) is {floors}; "
            "raise the SLO or tp, or shorten prompts",
            field="slo_ttft_s",
        )
    return plan
