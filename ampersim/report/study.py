"""The report's numbers, computed once: a frozen Study built from the report's inputs.

``build_study`` predicts every variant of the workload (profile × pattern × policy × scoring) exactly
once and reuses that prediction wherever a section needs it (summary, breakdown, cost, frontier);
it sweeps prompt lengths, prices the predictions, plans capacity at every request rate, places the
accuracy results on the cost axis and collects every sourced number. The sections
(report/sections.py) only format a Study. A new section adds its numbers here (a field of Study,
filled by build_study) and a formatting function there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ampersim import __version__
from ampersim.core.errors import AmpersimError
from ampersim.core.sourced import Sourced, sourced_numbers
from ampersim.econ.capacity import CapacityPlan, auto_duration_s, build_replica, plan_capacity
from ampersim.econ.roi import Payback, PriceBasis, ProfileEconomics, paybacks, price_basis, profile_economics
from ampersim.econ.serving import SLO
from ampersim.econ.traffic import LengthDist, Traffic
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.registry import load_model_spec
from ampersim.models.spec import ModelSpec
from ampersim.report.accuracy import AccuracyResults, AccuracyRow, load_accuracy
from ampersim.sim.engine import EngineConfig, engine_for
from ampersim.sim.predict import Prediction, comparison_patterns, predict, step_seconds
from ampersim.sim.scenario import Scenario

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


def price_bases(
    profiles: Sequence[HardwareProfile],
    usd_per_hour: Sequence[float | None],
    purchase_usd: Sequence[float | None],
    **ownership: float | None,
) -> tuple[tuple[PriceBasis | None, ...], tuple[str, ...]]:
    """Price basis per profile (overrides applied; ``ownership``: lifetime_years, usd_per_kwh, utilization).

    A profile with no price at all and no override gets None and a note instead of an error, so the
    report still covers its speed and capacity."""
    bases: list[PriceBasis | None] = []
    notes = []
    for profile, hourly, bought in zip(profiles, usd_per_hour, purchase_usd, strict=True):
        prices = profile.prices
        if hourly is None and bought is None and prices.cloud_usd_per_gpu_hour is None and prices.purchase_usd is None:
            bases.append(None)
            notes.append(
                f"profile '{profile.name}' has no price (neither prices.cloud_usd_per_gpu_hour nor "
                "prices.purchase_usd, and none given): its cost results are left out"
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
    """One (accuracy variant, profile) pair placed on the accuracy × cost plane."""

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
    """The accuracy results file and its options priced on every profile with a cloud price."""

    results: AccuracyResults
    path: Path
    options: tuple[Option, ...]
    frontier: tuple[Option, ...]  # not beaten on both cost and accuracy, in increasing cost
    not_simulated: tuple[str, ...]  # variants the simulator refused, with the reason


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


def build_study(inputs: ReportInputs, progress: Callable[[str], None]) -> Study:
    """Compute every number of the report (progress: one line per stage)."""
    sc = inputs.scenario
    spec = load_model_spec(sc.model)
    predicted = _Predictions(spec)
    profiles = []
    for profile, basis, engine in zip(inputs.profiles, inputs.bases, inputs.engines, strict=True):
        progress(f"predicting, sweeping and planning {sc.name} on {profile.name}")
        by_pattern = tuple(
            predicted(profile, sc.with_overrides(pattern=p), engine) for p in comparison_patterns(profile, sc)
        )
        prediction = predicted(profile, sc, engine)
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
                plans=_plans(profile, basis, engine, prediction, spec, inputs),
            )
        )
    priced = [p.economics for p in profiles if p.economics is not None]
    accuracy = None
    if inputs.accuracy_path is not None and inputs.accuracy_path.is_file():
        progress("pricing the accuracy results")
        accuracy = _accuracy_study(inputs, profiles, load_accuracy(inputs.accuracy_path), predicted)
    return Study(
        inputs=inputs,
        spec=spec,
        profiles=tuple(profiles),
        paybacks=tuple(paybacks(priced)) if priced else (),
        accuracy=accuracy,
        prices=_prices(inputs),
        hardware={p.name: _hardware_sources(p) for p in inputs.profiles},
        windows_s={rate: _window_s(rate, inputs) for rate in inputs.rates},
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
    prediction: Prediction,
    spec: ModelSpec,
    inputs: ReportInputs,
) -> dict[float, CapacityPlan]:
    """The capacity plan at every rate, on one replica (at the workload's tp) built from ``prediction``."""
    sc = inputs.scenario
    cloud = basis.cloud_usd_per_gpu_hour.value if basis and basis.cloud_usd_per_gpu_hour else None
    built = {sc.tp: build_replica(profile, sc, spec, sc.tp, engine, step=prediction)}  # shared by every rate
    return {
        rate: plan_capacity(
            profile,
            sc,
            Traffic(rate, inputs.prompts, _window_s(rate, inputs), outputs=inputs.outputs, seed=inputs.seed),
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
        for rate in inputs.rates
    }


def _window_s(rate: float, inputs: ReportInputs) -> float:
    return inputs.duration_s or auto_duration_s(rate)


def _accuracy_study(
    inputs: ReportInputs,
    profiles: list[ProfileStudy],
    results: AccuracyResults,
    predicted: _Predictions,
) -> AccuracyStudy:
    """Each accuracy variant simulated on the workload and priced at the cloud rate of every profile."""
    clouds = [p for p in profiles if p.economics is not None and p.economics.prices.cloud_usd_per_gpu_hour]
    metric = results.metric
    options = [
        Option("dense", "dense", False, getattr(results.dense, metric), 0.0, p.name, 1.0, _cloud(p.economics, "dense"))
        for p in clouds
    ]
    refused = []
    for row in results.rows:
        w8a8 = bool(getattr(row, "outstanding", False))  # a W8A8 variant: accuracy only
        name = option_name(row)
        variant = inputs.scenario.with_overrides(pattern=row.pattern, policy=row.policy, scoring=row.scoring)
        try:
            preds = [(p, predicted(p.profile, variant, p.engine)) for p in clouds]
        except AmpersimError as exc:
            refused.append(f"{name}: not simulated ({exc})")
            continue
        options += [
            Option(
                name,
                row.pattern + (" +W8A8" if w8a8 else ""),
                row.policy == "all",
                getattr(row, metric),
                getattr(row, f"{metric}_delta"),
                p.name,
                pred.speedup,
                _cloud(_economics(p.profile, pred, p.economics.prices), "sparse"),
            )
            for p, pred in preds
        ]
    scored = [o for o in options if o.score is not None]
    points = pareto([(o.usd_per_m, o.score) for o in scored], higher_better=metric == "quiz_acc")
    frontier = tuple(next(o for o in scored if (o.usd_per_m, o.score) == point) for point in points)
    return AccuracyStudy(results, inputs.accuracy_path, tuple(options), frontier, tuple(refused))


def option_name(row: AccuracyRow) -> str:
    """'8:16 amber', '2:4 magnitude (all)', '8:16 amber +W8A8': pattern, scoring, non-amber policy, W8A8."""
    name = f"{row.pattern} {row.scoring}" + ("" if row.policy == "amber" else f" ({row.policy})")
    return name + (" +W8A8" if getattr(row, "outstanding", False) else "")


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
    return tuple(rows)
