"""Capacity planning: the fewest GPUs that serve a request rate under TTFT and/or TPOT SLOs, dense vs sparse.

A fleet is ``replicas`` copies of a ``tp``-GPU model replica running the serving engine
(ampersim.econ.serving). For each path (dense, sparse) and each tensor-parallel degree whose memory
fit holds the longest request, the same seeded traffic is simulated at candidate replica counts:
galloping from a throughput-based first guess brackets the answer, then bisection finds the smallest
count whose percentiles meet the SLOs (they fall as replicas are added). A simulation stops as soon
as the SLO is certainly missed. The plan per path is the (tp, replicas) with the fewest GPUs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ampersim.core.errors import InvalidArgument
from ampersim.core.limits import MAX_SIMULATED_REQUESTS, check_positive
from ampersim.econ.serving import (
    C_BUSY_PREFILL,
    C_FINISHED,
    C_IN_TOKENS,
    C_OUT_TOKENS,
    C_PREEMPT,
    H_E2E,
    H_ITL,
    H_TPOT,
    H_TTFT,
    SLO,
    Requests,
    SimResult,
    check_state_memory,
    simulate,
    solo_times,
)
from ampersim.econ.traffic import LengthDist, empirical, fixed, lognormal
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.spec import ModelSpec
from ampersim.sim.engine import EngineConfig
from ampersim.sim.execution import sparse_execution
from ampersim.sim.graph import allowed_tp
from ampersim.sim.memory import MemoryFit, memory_fit
from ampersim.sim.scenario import LognormalLengths, Scenario
from ampersim.sim.steps import StepCosts, step_costs
from ampersim.sparsity.policy import resolve_policy

if TYPE_CHECKING:
    from ampersim.sim.predict import Prediction

PATHS = ("dense", "sparse")
MAX_REPLICAS = 100_000
MAX_TP = 8  # assumed: tensor parallelism stays within one 8-GPU node (NVLink / Infinity Fabric domain)
QUEUE_BOUND_FACTOR = 10.0  # without a TTFT SLO, TTFT may reach this multiple of an idle replica's
FLOOR_SAMPLE = 20_000  # requests whose idle-replica TTFT/TPOT give the lowest achievable percentiles
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
    check_positive(rate_per_s, "rate_per_s", "the request rate (requests/s)")


def auto_duration_s(rate_per_s: float) -> float:
    """Simulated window long enough for stable tail percentiles: ~50,000 requests, 10 min to 1 h (shorter
    where 10 min would hold more than MAX_SIMULATED_REQUESTS)."""
    check_rate(rate_per_s)
    return min(3600.0, max(600.0, 50_000.0 / rate_per_s), MAX_SIMULATED_REQUESTS / rate_per_s)


def check_context(spec: ModelSpec, prompts: LengthDist, outputs: LengthDist) -> None:
    """Refuse lengths whose longest prompt (or prompt + output) exceeds ``spec``'s context length. An
    uncapped lognormal has no longest length: its mean is checked (the memory fit sizes the KV cache
    for its 1 - 1e-9 quantile)."""
    prompt, output = _longest(prompts), _longest(outputs)
    spec.check_context(prompt, "prompt_dist", f"the {_which(prompts)} prompt")
    spec.check_context(prompt + output, "output_dist",
                       f"the {_which(outputs)} request ({prompt:,} prompt and {output:,} output tokens)")


def _longest(lengths: LengthDist) -> int:
    return round(lengths.mean()) if lengths.kind == "lognormal" and lengths.cap is None else lengths.max_tokens()


def _which(lengths: LengthDist) -> str:
    return "mean" if lengths.kind == "lognormal" and lengths.cap is None else "longest"


def _bins(bins: tuple, description: str) -> LengthDist:
    return empirical(np.array([b.tokens for b in bins]), np.array([b.share for b in bins]), description)


def _mix_text(bins: tuple) -> str:
    if len(bins) <= 4:
        return ", ".join(f"{b.share:.0%} {b.tokens}" for b in bins) + " tokens"
    lengths = [b.tokens for b in bins]
    return f"{len(bins)} lengths of {min(lengths):,}-{max(lengths):,} tokens"


def _lengths(value: object, name: str, what: str, field: str, minimum: int) -> LengthDist:
    if isinstance(value, int):
        return fixed(value, field=field, minimum=minimum)
    if isinstance(value, LognormalLengths):
        p = value.lognormal
        return lognormal(p.mean, p.sigma, p.max, field=field)
    return _bins(value, f"workload '{name}' {what}: {_mix_text(value)}")


def scenario_prompts(scenario: Scenario) -> LengthDist:
    """The workload's prompt lengths as a distribution (fixed, a mix or a lognormal)."""
    return _lengths(scenario.prompt_tokens, scenario.name, "mix", "prompt_dist", 1)


def scenario_outputs(scenario: Scenario) -> LengthDist:
    """The workload's output lengths as a distribution (fixed 0: prefill only)."""
    return _lengths(scenario.output_tokens, scenario.name, "outputs", "output_dist", 0)


@dataclass(frozen=True)
class Replica:
    """One tensor-parallel replica of the workload's model on a profile: memory fit and step costs."""

    tp: int
    memory: MemoryFit
    costs: StepCosts
    isolated_speedup: float  # dense / sparse time of the workload's own prefill step at this tp


def build_replica(profile: HardwareProfile, scenario: Scenario, spec: ModelSpec, tp: int,
                  engine: EngineConfig, *, step: Prediction | None = None) -> Replica:
    """``step``: the workload's prefill prediction at this tp and engine, when the caller has made it."""
    policy = resolve_policy(scenario.policy, spec, scenario.pattern, scenario.scoring)
    execution = sparse_execution(profile, scenario.dtype, policy.pattern)
    costs = step_costs(profile, spec, policy, execution, scenario.dtype, tp, engine.max_batched_tokens,
                       engine.kv_dtype)
    fit = memory_fit(profile, spec, scenario.dtype, tp, engine)
    if step is None:
        from ampersim.sim.predict import predict  # the same prefill step `ampersim predict` shows

        step = predict(profile, scenario.with_overrides(tp=tp), spec=spec, engine=engine)
    return Replica(tp, fit, costs, step.speedup)


@dataclass(frozen=True)
class FleetStats:
    """One simulated fleet: per-request percentiles (s) and fleet throughput."""

    replicas: int
    tp: int
    ttft_s: dict[str, float]   # "p50", "pNN" (the SLO percentile), "p99", "mean"
    tpot_s: dict[str, float]
    itl_s: dict[str, float]
    e2e_s: dict[str, float]
    goodput: float             # share of requests meeting every SLO
    requests_per_s: float
    input_tokens_per_s: float
    output_tokens_per_s: float
    prefill_share: float       # of busy GPU time
    utilization: float
    gpu_s_per_request: float   # busy GPU-seconds per request (replica-seconds × tp)
    preemptions: int
    requests: int

    @property
    def gpus(self) -> int:
        return self.replicas * self.tp


def fleet_stats(result: SimResult, tp: int, percentile: float) -> FleetStats:
    key = f"p{percentile:g}"

    def pcts(which: int) -> dict[str, float]:
        out = {"p50": result.pct(which, 50), key: result.pct(which, percentile), "p95": result.pct(which, 95),
               "p99": result.pct(which, 99)}
        if which != H_ITL:
            out["mean"] = result.mean(which)
        return out

    return FleetStats(result.replicas, tp, pcts(H_TTFT), pcts(H_TPOT), pcts(H_ITL), pcts(H_E2E), result.goodput,
                      result.per_second(C_FINISHED),
                      result.per_second(C_IN_TOKENS), result.per_second(C_OUT_TOKENS), result.prefill_share,
                      result.utilization, result.busy_s_per_request * tp, int(result.counters[C_PREEMPT]),
                      result.requests)


@dataclass(frozen=True)
class PathPlan:
    """The smallest fleet of one path at one tp meeting the SLOs, or why none does."""

    path: str
    tp: int
    feasible: bool
    fleet: FleetStats | None
    min_ttft_s: float          # SLO percentile of TTFT with every request alone on an idle replica
    min_tpot_s: float          # the same for TPOT (nan without decode)
    evaluations: int
    note: str = ""
    memory: MemoryFit | None = None
    isolated_speedup: float = math.nan


@dataclass(frozen=True)
class SparsityEffect:
    """How the isolated prefill speedup carries to the fleet (sparse simulated on the dense plan's fleet)."""

    isolated_prefill_speedup: float   # predict's dense/sparse time of the workload's prefill step
    in_fleet_prefill_speedup: float   # prefill GPU time dense / sparse, same fleet and traffic
    prefill_share: float              # of the dense fleet's busy GPU time
    expected_saving: float            # prefill_share × (1 − 1 / in_fleet_prefill_speedup)
    dense_at_fleet: FleetStats
    sparse_at_fleet: FleetStats
    gpus: dict[str, int | None]

    @property
    def gpu_saving(self) -> float | None:
        dense, sparse = self.gpus["dense"], self.gpus["sparse"]
        return None if not dense or sparse is None else 1.0 - sparse / dense


@dataclass(frozen=True)
class CapacityPlan:
    """Per path the best (tp, replicas), every candidate tp tried, and the sparsity effect."""

    slo: SLO
    engine: EngineConfig
    usd_per_gpu_hour: float | None
    paths: dict[str, PathPlan]
    candidates: list[PathPlan]
    queue_bound_s: dict[str, float] = field(default_factory=dict)  # implicit TTFT bound per path (no TTFT SLO)
    effect: SparsityEffect | None = None

    def gpus(self, path: str) -> int | None:
        fleet = self.paths[path].fleet
        return None if fleet is None else fleet.gpus

    def usd_per_day(self, path: str) -> float | None:
        gpus = self.gpus(path)
        return None if gpus is None or self.usd_per_gpu_hour is None else gpus * self.usd_per_gpu_hour * 24.0


def candidate_tps(profile: HardwareProfile, spec: ModelSpec, tp: int | None) -> list[int]:
    """The tensor-parallel degrees to try: ``tp`` if given, else every valid degree up to MAX_TP that the
    profile can connect (no interconnect: 1 only)."""
    if tp is not None:
        if tp not in allowed_tp(spec):
            raise InvalidArgument(f"tp {tp} does not divide the heads, KV heads and FFN width of {spec.name}; "
                                  f"allowed: {', '.join(map(str, allowed_tp(spec)))}", field="tp")
        if tp > 1 and profile.interconnect is None:
            raise InvalidArgument(f"tp {tp}: profile {profile.name} has no interconnect, so only tp 1", field="tp")
        return [tp]
    return [d for d in allowed_tp(spec) if d <= MAX_TP and (d == 1 or profile.interconnect is not None)]


def longest_request(requests: Requests, prompts: LengthDist, outputs: LengthDist) -> int:
    """Tokens the longest request holds in the KV cache (prompt + output − 1)."""
    trace = getattr(requests, "prompt", None)
    if trace is not None:
        return int((requests.prompt + requests.output).max()) - 1  # type: ignore[attr-defined]
    return prompts.max_tokens() + max(outputs.max_tokens(), 1) - 1


def _sample(requests: Requests, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prompt, output and cached lengths of the first ``n`` measured requests."""
    parts: list[list[np.ndarray]] = [[], [], []]
    got = 0
    for arrival, *lengths in requests.chunks():
        keep = arrival >= requests.warmup_s
        for part, values in zip(parts, lengths):
            part.append(values[keep][: n - got])
        got += len(parts[0][-1])
        if got >= n:
            break
    return tuple(np.concatenate(p) for p in parts)  # type: ignore[return-value]


def _floors(sample: tuple[np.ndarray, np.ndarray, np.ndarray], replica: Replica, engine: EngineConfig, path: str,
            percentile: float) -> tuple[float, float]:
    prompt, output, cached = sample
    ttft, tpot = solo_times(prompt, output, replica.costs, engine, path, cached)
    tpot = tpot[~np.isnan(tpot)]
    return float(np.percentile(ttft, percentile)), float(np.percentile(tpot, percentile)) if len(tpot) else math.nan


def _first_guess(replica: Replica, engine: EngineConfig, rate: float, prompts: LengthDist,
                 outputs: LengthDist, hit_rate: float = 0.0) -> float:
    """Replicas the traffic needs if every step were full: the uncached prompt tokens in budget-sized
    chunks, decode at the largest batch the KV cache and sequence limit allow (a lower estimate)."""
    budget = engine.max_batched_tokens
    full = replica.costs.seconds([(0, budget)], [])[0]
    prefill_s = prompts.mean() * (1 - hit_rate) / budget * full
    decode_s = 0.0
    if outputs.mean() > 1:
        context = int(prompts.mean() + outputs.mean() / 2)
        batch = max(1, min(engine.max_seqs, budget, replica.memory.max_sequences(context)))
        decode_s = (outputs.mean() - 1) * replica.costs.seconds([], [context] * batch)[0] / batch
    return rate * (prefill_s + decode_s)


def check_traffic_fits(replica: Replica, engine: EngineConfig, rate: float, prompts: LengthDist,
                       outputs: LengthDist, hit_rate: float = 0.0, *, field: str = "rate_per_s") -> None:
    """Refuse, before any simulation, traffic at ``rate`` whose fleet of ``replica`` would hold more in-flight
    state than MAX_SIMULATION_STATE_BYTES (checked on the first guess of replicas, a lower estimate;
    InvalidArgument naming ``field``). ``plan_capacity`` checks the same; callers that plan later (the report)
    check first."""
    guess = _first_guess(replica, engine, rate, prompts, outputs, hit_rate)
    check_state_memory(max(1, math.ceil(guess)), engine, what=field)


def _search(requests: Requests, replica: Replica, engine: EngineConfig, path: str, slo: SLO, guess: float,
            floors: tuple[float, float], max_gpus: int | None) -> PathPlan:
    """Smallest replica count meeting ``slo`` (None fleet when none, or none with fewer than max_gpus GPUs)."""
    cache: dict[int, FleetStats | None] = {}

    def ok(n: int) -> bool:
        if n not in cache:
            result = simulate(requests, n, replica.costs, engine, replica.memory.kv_blocks, path, slo=slo)
            stats = fleet_stats(result, replica.tp, slo.percentile)
            cache[n] = None if result.aborted or not _meets(stats, slo) else stats
        return cache[n] is not None

    common = dict(min_ttft_s=floors[0], min_tpot_s=floors[1], memory=replica.memory,
                  isolated_speedup=replica.isolated_speedup)
    limit = MAX_REPLICAS if max_gpus is None else max(0, (max_gpus - 1) // replica.tp)
    n = min(max(1, math.ceil(guess)), max(limit, 1))
    if limit < 1:
        return PathPlan(path, replica.tp, False, None, evaluations=0, note="cannot beat a smaller fleet", **common)
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
            if n > limit:
                if bad >= limit:
                    note = (f"more than {MAX_REPLICAS} replicas would be needed" if max_gpus is None
                            else "cannot beat a smaller fleet")
                    return PathPlan(path, replica.tp, False, None, evaluations=len(cache), note=note, **common)
                n = limit
            check_state_memory(n, engine)
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
    return PathPlan(path, replica.tp, True, cache[good], evaluations=len(cache), **common)


def _meets(stats: FleetStats, slo: SLO) -> bool:
    key = f"p{slo.percentile:g}"
    if slo.ttft_s is not None and not stats.ttft_s[key] <= slo.ttft_s:
        return False
    if slo.tpot_s is not None and not (math.isnan(stats.tpot_s[key]) or stats.tpot_s[key] <= slo.tpot_s):
        return False
    return True


def plan_capacity(profile: HardwareProfile, scenario: Scenario, requests: Requests, slo: SLO, engine: EngineConfig,
                  *, prompts: LengthDist, outputs: LengthDist, spec: ModelSpec | None = None, tp: int | None = None,
                  paths: tuple[str, ...] = PATHS, usd_per_gpu_hour: float | None = None,
                  built: dict[int, Replica] | None = None, with_effect: bool = True,
                  progress: Callable[[str], None] | None = None) -> CapacityPlan:
    """The fewest GPUs per path serving ``requests`` under ``slo`` (see the module docstring).

    ``built``: replicas of this profile, scenario and engine already built, by tp (plans of several
    rates share them); those missing are built and added. ``with_effect``: also simulate both paths on
    the dense plan's fleet (``CapacityPlan.effect``)."""
    if slo.ttft_s is None and slo.tpot_s is None:
        raise InvalidArgument("give a TTFT SLO, a TPOT SLO or both", field="slo_ttft_s")
    for value, what, name in ((slo.ttft_s, "TTFT", "slo_ttft_s"), (slo.tpot_s, "TPOT", "slo_tpot_s")):
        if value is not None and not 0 < value < math.inf:
            raise InvalidArgument(f"the {what} SLO must be > 0 and finite; got {value * 1e3:g} ms", field=name)
    if spec is None:
        from ampersim.models.registry import load_model_spec

        spec = load_model_spec(scenario.model)
    check_context(spec, prompts, outputs)
    longest = longest_request(requests, prompts, outputs)
    built = {} if built is None else built
    replicas = {}
    for d in candidate_tps(profile, spec, tp):
        fit = memory_fit(profile, spec, scenario.dtype, d, engine)
        if fit.kv_tokens >= longest:
            if d not in built:
                built[d] = build_replica(profile, scenario, spec, d, engine)
            replicas[d] = built[d]
    if not replicas:
        raise _no_fit(profile, spec, scenario, engine, candidate_tps(profile, spec, tp), longest)
    hit_rate = getattr(requests, "cache_hit_rate", 0.0)
    guesses = {d: _first_guess(r, engine, requests.rate_per_s, prompts, outputs, hit_rate)
               for d, r in replicas.items()}
    for guess in guesses.values():  # refuse before simulating anything too large to hold
        check_state_memory(max(1, math.ceil(guess)), engine, what="rate_per_s")
    requests.counts()  # refuses a window in which no request arrives
    sample = _sample(requests, FLOOR_SAMPLE)
    candidates: list[PathPlan] = []
    best: dict[str, PathPlan] = {}
    bounds: dict[str, float] = {}
    for path in paths:
        floors = {d: _floors(sample, r, engine, path, slo.percentile) for d, r in replicas.items()}
        queue_bound = QUEUE_BOUND_FACTOR * min(f[0] for f in floors.values())
        bounds[path] = queue_bound
        path_slo = slo if slo.ttft_s is not None else replace(slo, ttft_s=queue_bound)
        chosen: PathPlan | None = None
        for d in sorted(replicas, key=lambda d: (guesses[d] * d, d)):
            if progress:
                progress(f"{path}: tp {d}")
            floor_ttft, floor_tpot = floors[d]
            if floor_ttft > path_slo.ttft_s or (slo.tpot_s is not None and floor_tpot > slo.tpot_s):
                plan = PathPlan(path, d, False, None, floor_ttft, floor_tpot, 0,
                                "an idle replica already misses the SLO", replicas[d].memory,
                                replicas[d].isolated_speedup)
            else:
                limit = chosen.fleet.gpus if chosen is not None else None
                plan = _search(requests, replicas[d], engine, path, path_slo, guesses[d], floors[d], limit)
            candidates.append(plan)
            if plan.feasible and (chosen is None or plan.fleet.gpus < chosen.fleet.gpus):
                chosen = plan
        if chosen is None:
            chosen = min((c for c in candidates if c.path == path), key=lambda c: (c.min_ttft_s, c.tp))
        best[path] = chosen
    effect = None
    if with_effect and set(paths) == set(PATHS) and best["dense"].feasible:
        effect = _effect(requests, replicas[best["dense"].tp], engine, best, slo)
    return CapacityPlan(slo, engine, usd_per_gpu_hour, best, candidates, bounds, effect)


def _effect(requests: Requests, replica: Replica, engine: EngineConfig, best: dict[str, PathPlan],
            slo: SLO) -> SparsityEffect:
    """Simulate both paths on the dense plan's fleet and compare their prefill GPU time."""
    n = best["dense"].fleet.replicas
    runs = {p: simulate(requests, n, replica.costs, engine, replica.memory.kv_blocks, p, slo=replace(
        slo, ttft_s=math.inf if slo.ttft_s is None else slo.ttft_s)) for p in PATHS}
    stats = {p: fleet_stats(r, replica.tp, slo.percentile) for p, r in runs.items()}
    prefill = {p: r.counters[C_BUSY_PREFILL] for p, r in runs.items()}
    speedup = prefill["dense"] / prefill["sparse"] if prefill["sparse"] else math.nan
    share = runs["dense"].prefill_share
    return SparsityEffect(replica.isolated_speedup, speedup, share, share * (1 - 1 / speedup), stats["dense"],
                          stats["sparse"], {p: (best[p].fleet.gpus if best[p].fleet else None) for p in PATHS})


def _no_fit(profile: HardwareProfile, spec: ModelSpec, scenario: Scenario, engine: EngineConfig, tps: list[int],
            longest: int) -> InvalidArgument:
    widest = max(tps)
    fit = memory_fit(profile, spec, scenario.dtype, widest, engine)
    usable = fit.capacity_gb * fit.gpu_memory_utilization
    return InvalidArgument(
        f"{spec.name} fits at no tensor-parallel degree on {profile.name} (tried tp {', '.join(map(str, tps))}): at "
        f"tp {widest} each GPU needs {fit.weights_gb:.1f} GB of weights + {fit.workspace_gb:.1f} GB of activations "
        f"+ {longest * fit.kv_bytes_per_token / 1e9:.2f} GB of KV cache for the longest request ({longest:,} tokens) "
        f"= {fit.needed_gb(longest):.1f} GB, more than the {usable:.1f} GB usable "
        f"({fit.gpu_memory_utilization:g} of {fit.capacity_gb:g} GB)", field="profile")


def require_feasible(plan: CapacityPlan) -> CapacityPlan:
    """``plan`` if some path meets the SLOs; else InvalidArgument naming the lowest achievable values."""
    if any(p.feasible for p in plan.paths.values()):
        return plan
    slo, key = plan.slo, f"p{plan.slo.percentile:g}"
    wanted = " and ".join(f"{name} <= {v * 1e3:g} ms" for name, v in (("TTFT", slo.ttft_s), ("TPOT", slo.tpot_s))
                          if v is not None)
    lows = []
    for path in plan.paths:
        runs = [c for c in plan.candidates if c.path == path]
        ttft = min(runs, key=lambda c: c.min_ttft_s)
        text = f"{path} TTFT {ttft.min_ttft_s * 1e3:.4g} ms (tp {ttft.tp})"
        tpots = [c for c in runs if not math.isnan(c.min_tpot_s)]
        if tpots:
            tpot = min(tpots, key=lambda c: c.min_tpot_s)
            text += f", TPOT {tpot.min_tpot_s * 1e3:.4g} ms (tp {tpot.tp})"
        lows.append(text)
    field_name = "slo_ttft_s" if slo.ttft_s is not None else "slo_tpot_s"
    raise InvalidArgument(
        f"no fleet meets {key} {wanted}; the lowest achievable ({key} of each request alone on an idle replica) "
        f"is {'; '.join(lows)}: relax the SLO, or shorten prompts or outputs", field=field_name)
