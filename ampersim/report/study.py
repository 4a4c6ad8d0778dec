"""The report's numbers, computed once: a frozen Study built from the report's inputs.

``build_study`` predicts every variant of the workload (profile × pattern × policy × scoring) exactly
once and reuses that prediction wherever a section needs it (summary, breakdown, cost, frontier);
it sweeps prompt lengths, prices the predictions, plans capacity at every request rate, places every
model's accuracy results on the cost axis and collects every sourced number. The sections
(report/sections.py) only format a Study. A new section adds its numbers here (a field of Study,
filled by build_study) and a formatting function there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ampersim import __version__
from ampersim.core.errors import AmpersimError
from ampersim.core.limits import MAX_REPORT_RATES, check_at_most
from ampersim.core.sourced import Sourced, sourced_numbers
from ampersim.econ.capacity import (
    CapacityPlan,
    Replica,
    auto_duration_s,
    build_replica,
    check_context,
    check_traffic_fits,
    plan_capacity,
)
from ampersim.econ.fleet import FleetCosts, break_even_gemm_speedup, fleet_costs
from ampersim.econ.roi import Payback, PriceBasis, ProfileEconomics, paybacks, price_basis, profile_economics
from ampersim.econ.serving import SLO
from ampersim.econ.traffic import LengthDist, Traffic, fixed
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.registry import load_model_spec
from ampersim.models.spec import ModelSpec
from ampersim.report.accuracy import AccuracyFile, AccuracyResults, AccuracyRow, load_accuracy_file
from ampersim.sim.engine import EngineConfig, engine_for
from ampersim.sim.predict import Prediction, comparison_patterns, predict, step_seconds
from ampersim.sim.scenario import Scenario
from ampersim.sparsity.policy import resolve_policy

TOKEN_SWEEP = tuple(2**k for k in range(7, 16))  # 128 .. 32,768 tokens
OP_GROUPS = {  # op kind -> breakdown category, in stacking order
    "sparse_gemm": "sparsified GEMMs",
    "gemm": "dense GEMMs",
    "attention": "attention",
    "prune": "runtime prune/compress",
    "allreduce": "all-reduce",
    "norm": "norms, activations, embedding",
    "elementwise": "norms, activations, embedding",
    "embedding": "norms, activations, embedding",
}
CATEGORIES = tuple(dict.fromkeys(OP_GROUPS.values()))
PATHS = ("dense", "sparse")


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report is computed from (the CLI builds it from its arguments)."""

    profiles: tuple[HardwareProfile, ...]
    scenario: Scenario
    bases: tuple[PriceBasis | None, ...]  # None: the profile has no price (see price_notes)
    price_notes: tuple[str, ...]
    rates: tuple[float, ...]  # increasing
    slo_ttft_s: float
    percentile: float
    prompts: LengthDist
    outputs: LengthDist
    engines: tuple[EngineConfig, ...]  # the serving engine of each profile (vLLM's defaults differ by GPU)
    duration_s: float | None  # None: auto per rate
    seed: int
    accuracy_path: Path | None
    command: str
    generated: str  # date stamp shown in the header
    fleet_rate: float  # request rate of "what sparsity buys your fleet" (the workload's, else the highest rate)
    fleet_slo: SLO     # its SLOs (the workload's, else the report's TTFT target)
    cache_hit_rate: float = 0.0  # share of prompt tokens in the prefix cache (the workload's, or given)


def price_bases(
    profiles: Sequence[HardwareProfile],
    usd_per_hour: Sequence[float | None],
    purchase_usd: Sequence[float | None],
    **ownership: float | None,
) -> tuple[tuple[PriceBasis | None, ...], tuple[str, ...]]:
    """Price basis per profile (overrides applied; ``ownership``: lifetime_years, usd_per_kwh, utilization,
    cloud (market or list), tco).

    A profile with no price at all and no override gets None and a note instead of an error, so the
    report still covers its speed and capacity."""
    bases: list[PriceBasis | None] = []
    notes = []
    for profile, hourly, bought in zip(profiles, usd_per_hour, purchase_usd, strict=True):
        prices = profile.prices
        if hourly is None and bought is None and prices.cloud_usd_per_gpu_hour is None \
                and prices.cloud_market_usd_per_gpu_hour is None and prices.purchase_usd is None:
            bases.append(None)
            notes.append(
                f"profile '{profile.name}' has no price (no prices.cloud_market_usd_per_gpu_hour, "
                "prices.cloud_usd_per_gpu_hour or prices.purchase_usd, and none given): its cost results are left out"
            )
        else:
            bases.append(price_basis(profile, usd_per_hour=hourly, purchase_usd=bought, **ownership))
    return tuple(bases), tuple(notes)


@dataclass(frozen=True)
class SweepLine:
    """Speedup of one prompt of each TOKEN_SWEEP length for one (profile, pattern)."""

    profile: str
    pattern: str
    native: bool
    speedup: tuple[float, ...]  # aligned with TOKEN_SWEEP


@dataclass(frozen=True)
class ProfileStudy:
    """Everything the report says about one profile at the workload."""

    profile: HardwareProfile
    basis: PriceBasis | None
    engine: EngineConfig
    engine_sources: Mapping[str, str]  # engine setting -> where its value comes from
    prediction: Prediction  # the workload as given
    by_pattern: tuple[Prediction, ...]  # comparison patterns (the workload's own among them)
    best: Prediction  # the fastest of by_pattern
    breakdown_ms: Mapping[str, Mapping[str, float]]  # path -> OP_GROUPS category -> ms per step
    economics: ProfileEconomics | None  # None: no price
    sweep: tuple[SweepLine, ...]
    plans: Mapping[float, CapacityPlan]  # request rate -> plan

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass(frozen=True)
class Option:
    """One (model, accuracy variant, profile) triple placed on that model's accuracy × cost plane."""

    model: str  # the model whose accuracy ``score`` is
    name: str
    marker: str  # pattern (+ W8A8): the chart's marker
    all_layers: bool  # policy 'all' (hollow marker) rather than the selective amber policy
    score: float | None
    delta: float | None
    profile: str
    speedup: float
    usd_per_m: float  # cloud $/M prompt tokens (sparse path for sparse options)


@dataclass(frozen=True)
class AccuracyStudy:
    """Every model of the accuracy results file, its options priced on every profile with a cloud price."""

    results: tuple[AccuracyResults, ...]  # one per model, in the file's order
    environment: Mapping[str, Any]  # what the file records about its run
    path: Path
    options: tuple[Option, ...]  # by model in the file's order
    frontier: Mapping[str, tuple[Option, ...]]  # model (file's order) -> its unbeaten options, by increasing cost
    not_simulated: tuple[str, ...]  # variants the simulator refused, with the reason


SWEEP_OUTPUTS = (1, 16, 64, 256, 1024)  # output tokens per request of the fleet sweep
SWEEP_HIT_RATES = (0.0, 0.25, 0.5, 0.75, 0.9)  # prefix-cache hit rates of the fleet sweep
SWEEP_REQUESTS = 4000  # requests per simulated window of a sweep point (shorter than the plans')
SAVING_TARGETS = (0.01, 0.02, 0.05, 0.10)  # end-to-end savings the break-even table asks for


@dataclass(frozen=True)
class FleetPoint:
    """One simulated fleet of a sweep: the dense plan's fleet with both paths on it."""

    value: float  # output tokens or hit rate
    prefill_share: float
    in_fleet_speedup: float
    formula_saving: float
    gpus: Mapping[str, int | None]


@dataclass(frozen=True)
class ProfileFleet:
    """One profile's fleet at the workload's traffic, its costs, and the break-even GEMM speedups."""

    profile: str
    plan: CapacityPlan
    costs: FleetCosts | None
    gemm_share: float       # of the dense prefill step: the sparsified GEMMs
    overhead_share: float   # of the dense prefill step: runtime pruning on the sparse path
    break_even: Mapping[float, float | None]  # target saving -> native sparse-GEMM speedup needed


@dataclass(frozen=True)
class FleetStudy:
    """What sparsity buys the fleet serving the workload (report section 'What sparsity buys your fleet')."""

    rate: float
    slo: SLO
    window_s: float
    profiles: tuple[ProfileFleet, ...]
    sweep_profile: str
    by_output: tuple[FleetPoint, ...]
    by_hit_rate: tuple[FleetPoint, ...]


@dataclass(frozen=True)
class SourcedItem:
    """One sourced number as listed under Assumptions and sources."""

    owner: str  # profile name, or "all" for a value shared by every profile
    item: str  # field name (dotted path inside a profile)
    number: Sourced


@dataclass(frozen=True)
class Study:
    """The report's numbers; every prediction in it was made once (see Study.predictions)."""

    inputs: ReportInputs
    spec: ModelSpec
    profiles: tuple[ProfileStudy, ...]
    paybacks: tuple[Payback, ...]  # against the first priced profile
    accuracy: AccuracyStudy | None
    prices: tuple[SourcedItem, ...]
    hardware: Mapping[str, tuple[SourcedItem, ...]]  # profile -> every sourced number in it
    windows_s: Mapping[float, float]  # request rate -> simulated seconds of the capacity plans
    fleet: FleetStudy | None  # None: no profile serves the workload's traffic under its SLOs
    predictions: int  # distinct per-op predictions made
    version: str  # ampersim version that computed it

    @property
    def priced(self) -> tuple[ProfileEconomics, ...]:
        return tuple(p.economics for p in self.profiles if p.economics is not None)

    @property
    def assumed(self) -> int:
        """Hardware numbers whose source is an assumption."""
        return sum(1 for items in self.hardware.values() for i in items if i.number.is_assumed)


class _Predictions:
    """``predict`` memoized on (profile, scenario variant, engine): each variant is predicted once."""

    def __init__(self, spec: ModelSpec) -> None:
        self._spec = spec
        self._done: dict[tuple[str, str, str], Prediction] = {}

    def __call__(self, profile: HardwareProfile, scenario: Scenario, engine: EngineConfig) -> Prediction:
        key = (profile.name, scenario.model_dump_json(), engine.model_dump_json())
        if key not in self._done:
            self._done[key] = predict(profile, scenario, spec=self._spec, engine=engine)
        return self._done[key]

    def __len__(self) -> int:
        return len(self._done)


def check_inputs(inputs: ReportInputs, spec: ModelSpec, predicted: _Predictions) -> dict[str, Replica]:
    """Refuse, before any work, what the report would refuse halfway: a workload beyond the bounds or the
    model's context, a pattern the model's shapes do not allow, too many rates, a rate or window beyond
    the simulation bounds (ampersim.core.limits) or without a single request, a malformed accuracy file.
    Returns each profile's replica at the workload's tp (its prefill step from ``predicted``), which the
    bounds are checked on and every plan reuses."""
    sc = inputs.scenario
    sc.check_bounds(spec)
    resolve_policy(sc.policy, spec, sc.pattern, sc.scoring)
    check_context(spec, inputs.prompts, inputs.outputs)
    check_at_most(len(inputs.rates), MAX_REPORT_RATES, "rate_per_s", "request rates in one report")
    hit = inputs.cache_hit_rate
    for rate in inputs.rates:
        Traffic(rate, inputs.prompts, _window_s(rate, inputs), outputs=inputs.outputs, seed=inputs.seed,
                cache_hit_rate=hit).counts()
    try:  # the fleet section's window: its errors name the fleet rate
        Traffic(inputs.fleet_rate, inputs.prompts, _window_s(inputs.fleet_rate, inputs), outputs=inputs.outputs,
                seed=inputs.seed, cache_hit_rate=hit).counts()
    except AmpersimError as exc:
        if exc.field != "rate_per_s":
            raise
        raise type(exc)(str(exc).replace("rate_per_s", "fleet_rate", 1), field="fleet_rate") from None
    replicas = {}
    for profile, engine in zip(inputs.profiles, inputs.engines, strict=True):  # simulations small enough to hold
        replica = replicas[profile.name] = build_replica(profile, sc, spec, sc.tp, engine,
                                                         step=predicted(profile, sc, engine))
        check_traffic_fits(replica, engine, max(inputs.rates), inputs.prompts, inputs.outputs, hit)
        check_traffic_fits(replica, engine, inputs.fleet_rate, inputs.prompts, inputs.outputs, hit,
                           field="fleet_rate")
    if inputs.accuracy_path is not None and inputs.accuracy_path.is_file():
        load_accuracy_file(inputs.accuracy_path)
    return replicas


def build_study(inputs: ReportInputs, progress: Callable[[str], None]) -> Study:
    """Compute every number of the report (progress: one line per stage, after ``check_inputs``)."""
    sc = inputs.scenario
    spec = load_model_spec(sc.model)
    predicted = _Predictions(spec)
    checked = check_inputs(inputs, spec, predicted)
    profiles = []
    replicas: dict[str, dict[int, Replica]] = {}
    for profile, basis, engine in zip(inputs.profiles, inputs.bases, inputs.engines, strict=True):
        progress(f"predicting, sweeping and planning {sc.name} on {profile.name}")
        by_pattern = tuple(
            predicted(profile, sc.with_overrides(pattern=p), engine) for p in comparison_patterns(profile, sc)
        )
        prediction = predicted(profile, sc, engine)
        replicas[profile.name] = {sc.tp: checked[profile.name]}
        profiles.append(
            ProfileStudy(
                profile=profile,
                basis=basis,
                engine=engine,
                engine_sources=_engine_sources(profile, engine),
                prediction=prediction,
                by_pattern=by_pattern,
                best=max(by_pattern, key=lambda p: p.speedup),
                breakdown_ms=_breakdown_ms(prediction),
                economics=None if basis is None else _economics(profile, prediction, basis),
                sweep=_sweep(profile, sc, spec),
                plans=_plans(profile, basis, engine, spec, inputs, replicas[profile.name]),
            )
        )
    progress(f"planning the fleet at {inputs.fleet_rate:g} req/s and sweeping answer lengths and cache hit rates")
    fleet = _fleet_study(inputs, spec, profiles, replicas)
    priced = [p.economics for p in profiles if p.economics is not None]
    accuracy = None
    if inputs.accuracy_path is not None and inputs.accuracy_path.is_file():
        progress("pricing the accuracy results")
        accuracy = _accuracy_study(inputs, profiles, load_accuracy_file(inputs.accuracy_path), predicted)
    return Study(
        inputs=inputs,
        spec=spec,
        profiles=tuple(profiles),
        paybacks=tuple(paybacks(priced)) if priced else (),
        accuracy=accuracy,
        prices=_prices(inputs),
        hardware={p.name: _hardware_sources(p) for p in inputs.profiles},
        windows_s={rate: _window_s(rate, inputs) for rate in inputs.rates},
        fleet=fleet,
        predictions=len(predicted),
        version=__version__,
    )


def _engine_sources(profile: HardwareProfile, engine: EngineConfig) -> dict[str, str]:
    """Each engine setting's source: vLLM's default for this GPU (with its source) or given by the user."""
    default, sources = engine_for(profile), engine.sources(profile)
    return {
        name: sources.get(name, f"default: {field.description}")
        if getattr(engine, name) == getattr(default, name)
        else "given by the user"
        for name, field in EngineConfig.model_fields.items()
    }


def _economics(profile: HardwareProfile, pred: Prediction, basis: PriceBasis) -> ProfileEconomics:
    tokens_per_s = {"dense": pred.tokens_per_s_dense, "sparse": pred.tokens_per_s_sparse}
    return profile_economics(profile, tokens_per_s, pred.tp, basis, native=pred.native, note=pred.note)


def _breakdown_ms(pred: Prediction) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {path: {} for path in PATHS}
    for op in pred.ops:
        cat = OP_GROUPS.get(op.kind, op.kind)
        for path, seconds in (("dense", op.dense_s), ("sparse", op.sparse_s)):
            out[path][cat] = out[path].get(cat, 0.0) + seconds * op.count * 1e3
    return out


def _sweep(profile: HardwareProfile, sc: Scenario, spec: ModelSpec) -> tuple[SweepLine, ...]:
    lengths = np.array(TOKEN_SWEEP, dtype=float)
    native = {str(p) for p in profile.native_patterns(sc.dtype)}
    out = []
    for pattern in comparison_patterns(profile, sc):
        variant = sc.with_overrides(pattern=pattern)
        dense, sparse = step_seconds(profile, variant, lengths, lengths**2, num_seqs=np.ones_like(lengths), spec=spec)
        out.append(SweepLine(profile.name, pattern, pattern in native, tuple(float(x) for x in dense / sparse)))
    return tuple(out)


def _plans(
    profile: HardwareProfile,
    basis: PriceBasis | None,
    engine: EngineConfig,
    spec: ModelSpec,
    inputs: ReportInputs,
    built: dict[int, Replica],
) -> dict[float, CapacityPlan]:
    """The capacity plan at every rate, on one replica (at the workload's tp; ``built``, shared by every rate)."""
    sc = inputs.scenario
    cloud = basis.cloud_usd_per_gpu_hour.value if basis and basis.cloud_usd_per_gpu_hour else None
    plans = {  # the highest rate first: a rate too high to simulate is refused before the others' work
        rate: plan_capacity(
            profile,
            sc,
            Traffic(rate, inputs.prompts, _window_s(rate, inputs), outputs=inputs.outputs, seed=inputs.seed,
                    cache_hit_rate=inputs.cache_hit_rate),
            SLO(inputs.slo_ttft_s, None, inputs.percentile),
            engine,
            prompts=inputs.prompts,
            outputs=inputs.outputs,
            spec=spec,
            tp=sc.tp,
            usd_per_gpu_hour=cloud,
            built=built,
            with_effect=False,
        )
        for rate in sorted(inputs.rates, reverse=True)
    }
    return {rate: plans[rate] for rate in inputs.rates}


def _window_s(rate: float, inputs: ReportInputs) -> float:
    return inputs.duration_s or auto_duration_s(rate)


def _fleet_plan(profile: HardwareProfile, inputs: ReportInputs, spec: ModelSpec, engine: EngineConfig,
                built: dict[int, Replica], window_s: float, outputs: LengthDist, hit_rate: float) -> CapacityPlan | None:
    """The workload's fleet at ``inputs.fleet_rate`` (None when no fleet meets the SLOs)."""
    sc = inputs.scenario
    traffic = Traffic(inputs.fleet_rate, inputs.prompts, window_s, outputs=outputs, seed=inputs.seed,
                      cache_hit_rate=hit_rate)
    plan = plan_capacity(profile, sc, traffic, inputs.fleet_slo, engine, prompts=inputs.prompts, outputs=outputs,
                         spec=spec, tp=sc.tp, built=built)
    return plan if plan.effect is not None and plan.paths["sparse"].feasible else None


def _point(value: float, plan: CapacityPlan | None) -> FleetPoint | None:
    if plan is None:
        return None
    e = plan.effect
    return FleetPoint(value, e.prefill_share, e.in_fleet_prefill_speedup, e.expected_saving, e.gpus)


def _fleet_study(inputs: ReportInputs, spec: ModelSpec, profiles: Sequence[ProfileStudy],
                 replicas: Mapping[str, dict[int, Replica]]) -> FleetStudy | None:
    """Each profile's fleet at the workload's traffic, priced, with its break-even GEMM speedups; then, on
    the first profile that serves the traffic, the saving as answers lengthen and the cache hit rate grows."""
    window = inputs.duration_s or auto_duration_s(inputs.fleet_rate)
    out = []
    for p in profiles:
        plan = _fleet_plan(p.profile, inputs, spec, p.engine, replicas[p.name], window, inputs.outputs,
                           inputs.cache_hit_rate)
        if plan is None:
            continue
        gemm, overhead = _prefill_shares(p.prediction)
        share = plan.effect.prefill_share
        out.append(ProfileFleet(
            p.name, plan, fleet_costs(plan, p.profile, p.basis) if p.basis is not None else None, gemm, overhead,
            {t: break_even_gemm_speedup(t, share, gemm, overhead) for t in SAVING_TARGETS}))
    if not out:
        return None
    first = next(p for p in profiles if p.name == out[0].profile)
    short = inputs.duration_s or max(120.0, SWEEP_REQUESTS / inputs.fleet_rate)

    def sweep(values: Sequence[float], make: Callable[[float], CapacityPlan | None]) -> tuple[FleetPoint, ...]:
        return tuple(pt for pt in (_point(v, make(v)) for v in values) if pt is not None)

    by_output = sweep(SWEEP_OUTPUTS, lambda n: _fleet_plan(
        first.profile, inputs, spec, first.engine, replicas[first.name], short,
        fixed(int(n), field="output_dist", minimum=0), inputs.cache_hit_rate))
    by_hit = sweep(SWEEP_HIT_RATES, lambda h: _fleet_plan(
        first.profile, inputs, spec, first.engine, replicas[first.name], short, inputs.outputs, h))
    return FleetStudy(inputs.fleet_rate, inputs.fleet_slo, window, tuple(out), first.name, by_output, by_hit)


def _prefill_shares(pred: Prediction) -> tuple[float, float]:
    """(sparsified-GEMM share, sparse-path pruning share) of the dense prefill step time."""
    dense = sum(op.dense_s * op.count for op in pred.ops)
    gemm = sum(op.dense_s * op.count for op in pred.ops if op.kind == "sparse_gemm")
    prune = sum(op.sparse_s * op.count for op in pred.ops if op.kind == "prune")
    return gemm / dense, prune / dense


def _accuracy_study(
    inputs: ReportInputs,
    profiles: list[ProfileStudy],
    accuracy: AccuracyFile,
    predicted: _Predictions,
) -> AccuracyStudy:
    """Every model's accuracy variants priced at the cloud rate of every profile, and each model's frontier.

    A variant's speed and cost depend only on its pattern, policy and scoring (they are predicted for the
    workload's model): ``predicted`` simulates each distinct variant once, whichever models share it."""
    clouds = [p for p in profiles if p.economics is not None and p.economics.prices.cloud_usd_per_gpu_hour]
    dense = [(p.name, 1.0, _cloud(p.economics, "dense")) for p in clouds]
    refused: dict[str, None] = {}  # ordered set: a variant refused for several models is said once
    options: list[Option] = []
    frontier: dict[str, tuple[Option, ...]] = {}
    for results in accuracy.models:
        metric = results.metric
        mine = [Option(results.model, "dense", "dense", False, getattr(results.dense, metric), 0.0, profile, speedup,
                       usd) for profile, speedup, usd in dense]
        for row in results.rows:
            try:
                priced = _price_variant(inputs.scenario, row, clouds, predicted)
            except AmpersimError as exc:
                refused[f"{option_name(row)}: not simulated ({exc})"] = None
                continue
            marker = row.pattern + (" +W8A8" if row.outstanding else "")  # W8A8: accuracy only
            mine += [
                Option(results.model, option_name(row), marker, row.policy == "all", getattr(row, metric),
                       getattr(row, f"{metric}_delta"), profile, speedup, usd)
                for profile, speedup, usd in priced
            ]
        options += mine
        frontier[results.model] = _frontier(mine, higher_better=metric == "quiz_acc")
    return AccuracyStudy(tuple(accuracy.models), accuracy.environment, inputs.accuracy_path, tuple(options), frontier,
                         tuple(refused))


def _price_variant(
    sc: Scenario, row: AccuracyRow, clouds: Sequence[ProfileStudy], predicted: _Predictions
) -> list[tuple[str, float, float]]:
    """(profile, speedup, cloud $/M prompt tokens on the sparse path) of the workload at ``row``'s pattern,
    policy and scoring on every profile (AmpersimError: the simulator refused the variant)."""
    variant = sc.with_overrides(pattern=row.pattern, policy=row.policy, scoring=row.scoring)
    preds = [(p, predicted(p.profile, variant, p.engine)) for p in clouds]
    return [
        (p.name, pred.speedup, _cloud(_economics(p.profile, pred, p.economics.prices), "sparse"))
        for p, pred in preds
    ]


def _frontier(options: Sequence[Option], higher_better: bool) -> tuple[Option, ...]:
    """The options (of one model) not beaten on both cost and score, in increasing cost."""
    scored = [o for o in options if o.score is not None]
    points = pareto([(o.usd_per_m, o.score) for o in scored], higher_better)
    return tuple(next(o for o in scored if (o.usd_per_m, o.score) == point) for point in points)


def option_name(row: AccuracyRow) -> str:
    """'8:16 amber', '2:4 magnitude (all)', '8:16 amber +W8A8': pattern, scoring, non-amber policy, W8A8."""
    name = f"{row.pattern} {row.scoring}" + ("" if row.policy == "amber" else f" ({row.policy})")
    return name + (" +W8A8" if row.outstanding else "")


def _cloud(economics: ProfileEconomics, path: str) -> float:
    value = economics.cloud_usd_per_m_tokens[path]
    assert value is not None  # only profiles with a cloud price are priced here
    return value


def pareto(points: list[tuple[float, float]], higher_better: bool) -> list[tuple[float, float]]:
    """Points not beaten on both axes (lower x, better y), in increasing x."""
    best: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if higher_better else p[1])):
        if not best or (y > best[-1][1] if higher_better else y < best[-1][1]):
            best.append((x, y))
    return best


def _hardware_sources(profile: HardwareProfile) -> tuple[SourcedItem, ...]:
    """Every number of the profile that carries a source (structural counts have none)."""
    return tuple(
        SourcedItem(profile.name, path, Sourced(value=value, date=date, source=source))
        for path, value, date, source in sourced_numbers(profile)
        if source is not None
    )


def _prices(inputs: ReportInputs) -> tuple[SourcedItem, ...]:
    """Every price and economic assumption; one 'all' row for a value every priced profile shares."""
    items = [(p.name, k, v) for p, b in zip(inputs.profiles, inputs.bases) if b is not None for k, v in b.items()]
    owners: dict[str, list[Sourced]] = {}
    for _, k, v in items:
        owners.setdefault(k, []).append(v)
    shared = {k for k, values in owners.items() if len(values) > 1 and all(v == values[0] for v in values)}
    rows = [SourcedItem(name, k, v) for name, k, v in items if k not in shared]
    rows += [SourcedItem("all", k, values[0]) for k, values in owners.items() if k in shared]
    tco = next((b.tco for b in inputs.bases if b is not None), None)  # one TCO for every profile
    if tco is not None:
        rows += [SourcedItem("all", f"tco.{k}", v) for k, v in tco.items()
                 if k not in ("depreciation_years", "usd_per_kwh")]  # those are lifetime_years, usd_per_kwh
    return tuple(rows)
