"""What the report says: runs the simulator, ROI and capacity planner and assembles a Document.

Sections: summary; speedup vs prompt length per profile and pattern; per-op time breakdown; cost
per million prompt tokens (+ payback); GPUs needed vs request rate; accuracy × speed × cost
frontier per pattern (from the accuracy results file, when present); every assumption and source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ampersim.econ.capacity import CapacityPlan, auto_duration_s, plan_capacity
from ampersim.econ.serving import SLO
from ampersim.econ.roi import (
    PAYBACK_DEFINITION,
    PriceBasis,
    ProfileEconomics,
    compare,
    paybacks,
    usd_per_million_tokens,
)
from ampersim.econ.traffic import LengthDist, Traffic
from ampersim.core.errors import AmpersimError
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.registry import load_model_spec
from ampersim.models.spec import ModelSpec
from ampersim.report import plots
from ampersim.report.accuracy import AccuracyResults, load_accuracy
from ampersim.report.document import Document, Figure, Section, Table
from ampersim.sim.predict import Prediction, comparison_patterns, predict, step_seconds
from ampersim.sim.engine import EngineConfig
from ampersim.sim.scenario import Scenario
from ampersim.core.sourced import Sourced

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


@dataclass(frozen=True)
class ReportInputs:
    profiles: list[HardwareProfile]
    scenario: Scenario
    bases: list[PriceBasis | None]  # None: the profile has no price (see price_errors)
    price_errors: list[str]
    rates: list[float]
    slo_ttft_s: float
    percentile: float
    prompts: LengthDist
    outputs: LengthDist
    engine: EngineConfig
    duration_s: float | None  # None: auto per rate
    seed: int
    accuracy_path: Path | None
    command: str
    generated: str  # date stamp shown in the header


def build_document(inputs: ReportInputs, progress: Callable[[str], None]) -> Document:
    """Compute every section's numbers and figures."""
    sc = inputs.scenario
    accuracy, accuracy_note = _accuracy(inputs.accuracy_path)
    progress(f"predicting {sc.name} on {len(inputs.profiles)} profiles")
    spec = load_model_spec(sc.model)  # loaded once for every prediction below
    preds = [predict(p, sc, spec=spec) for p in inputs.profiles]
    alternatives = {
        p.name: [predict(p, sc.with_overrides(pattern=pat), spec=spec) for pat in comparison_patterns(p, sc)]
        for p in inputs.profiles
    }
    priced = [(p, b) for p, b in zip(inputs.profiles, inputs.bases) if b is not None]
    econ = compare([p for p, _ in priced], sc, [b for _, b in priced]) if priced else []
    progress("sweeping prompt lengths")
    sweep = _speedup_sweep(inputs.profiles, sc, spec)
    plans = {}
    for profile in inputs.profiles:
        progress(f"planning capacity on {profile.name} at {len(inputs.rates)} request rates")
        plans[profile.name] = _plans(profile, inputs, spec)
    sections = [
        _summary(inputs, preds, alternatives, econ, plans),
        _speedup_section(sc, sweep),
        _breakdown_section(sc, preds),
        _cost_section(inputs, econ),
        _capacity_section(inputs, plans),
        _frontier_section(inputs, spec, econ, accuracy, accuracy_note),
        _assumptions_section(inputs, spec, preds, accuracy),
    ]
    meta = [
        (
            "workload",
            f"{sc.name}: {sc.model}, {sc.dtype}, tensor parallel {sc.tp}, {_prompts(sc)} per step, "
            f"policy {sc.policy}, pattern {sc.pattern}, scoring {sc.scoring}",
        ),
        ("profiles", ", ".join(p.name for p in inputs.profiles)),
        ("generated", inputs.generated),
        ("command", inputs.command),
    ]
    return Document("ampersim report: N:M activation sparsity in prefill", meta, sections)


# -- computations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepLine:
    profile: str
    pattern: str
    native: bool
    speedup: list[float]


def _speedup_sweep(profiles: Sequence[HardwareProfile], sc: Scenario, spec: ModelSpec) -> list[SweepLine]:
    """Speedup of one prompt of each TOKEN_SWEEP length, per profile and comparison pattern."""
    lengths = np.array(TOKEN_SWEEP, dtype=float)
    out = []
    for profile in profiles:
        for pattern in comparison_patterns(profile, sc):
            variant = sc.with_overrides(pattern=pattern)
            dense, sparse = step_seconds(
                profile, variant, lengths, lengths**2, num_seqs=np.ones_like(lengths), spec=spec
            )
            native = pattern in {str(p) for p in profile.native_patterns(sc.dtype)}
            out.append(SweepLine(profile.name, pattern, native, list(dense / sparse)))
    return out


def _plans(profile: HardwareProfile, inputs: ReportInputs, spec: ModelSpec) -> dict[float, CapacityPlan]:
    basis = inputs.bases[inputs.profiles.index(profile)]
    cloud = basis.cloud_usd_per_gpu_hour.value if basis and basis.cloud_usd_per_gpu_hour else None
    slo = SLO(inputs.slo_ttft_s, None, inputs.percentile)
    built: dict = {}  # the replica's step costs, shared by the plans of every rate
    return {
        rate: plan_capacity(
            profile,
            inputs.scenario,
            Traffic(rate, inputs.prompts, inputs.duration_s or auto_duration_s(rate), outputs=inputs.outputs,
                    seed=inputs.seed),
            slo,
            inputs.engine,
            prompts=inputs.prompts,
            outputs=inputs.outputs,
            spec=spec,
            tp=inputs.scenario.tp,
            usd_per_gpu_hour=cloud,
            built=built,
            with_effect=False,
        )
        for rate in inputs.rates
    }


def _accuracy(path: Path | None) -> tuple[AccuracyResults | None, str]:
    if path is None or not path.is_file():
        return None, (
            "No accuracy results: docs/accuracy.json (the real-model evaluation's results file) does "
            "not exist yet, so there is no frontier to draw. Produce it with the real-model evaluation "
            "(ampersim prune --eval ppl,quiz, issue 4) or pass --accuracy FILE; speed and cost per "
            "pattern are in the sections above."
        )
    return load_accuracy(path), f"Accuracy from {path.name}."


# -- sections -------------------------------------------------------------------------------------
def _summary(
    inputs: ReportInputs,
    preds: list[Prediction],
    alternatives: dict[str, list[Prediction]],
    econ: list[ProfileEconomics],
    plans: dict[str, dict[float, CapacityPlan]],
) -> Section:
    sc = inputs.scenario
    by_name = {e.profile: e for e in econ}
    top = max(inputs.rates)
    rows = []
    for pred in preds:
        e = by_name.get(pred.profile)
        best = max(alternatives[pred.profile], key=lambda p: p.speedup)
        plan = plans[pred.profile][top]
        rows.append(
            {
                "profile": pred.profile,
                "speedup": pred.speedup,
                "best_pattern": best.pattern,
                "best_speedup": best.speedup,
                "tokens_per_s_dense": pred.tokens_per_s_dense / pred.tp,
                "cloud_dense": e.cloud_usd_per_m_tokens["dense"] if e else None,
                "cloud_sparse": e.cloud_usd_per_m_tokens["sparse"] if e else None,
                "gpus_dense": plan.gpus("dense"),
                "gpus_sparse": plan.gpus("sparse"),
            }
        )
    gains = [p for p in preds if p.speedup > 1]
    lead = (
        f"Workload {sc.name}: {sc.model}, {sc.dtype}, tensor parallel {sc.tp}, {_prompts(sc)} per prefill "
        f"step, sparsity policy {sc.policy} at {sc.pattern}."
    )
    if gains:
        top_gain = max(gains, key=lambda p: p.speedup)
        verdict = (
            f"At {sc.pattern}, sparse prefill is faster than dense on {len(gains)} of {len(preds)} profiles; "
            f"the largest speedup is {top_gain.speedup:.3g}× on {top_gain.profile}."
        )
    else:
        verdict = (
            f"At {sc.pattern}, no profile gains: sparse prefill is {min(p.speedup for p in preds):.3g}-"
            f"{max(p.speedup for p in preds):.3g}× dense, because no profile accelerates {sc.pattern} "
            "(the pruning is pure overhead) or the pruning costs more than the sparse GEMMs save."
        )
    best = [(r["profile"], r["best_pattern"], r["best_speedup"]) for r in rows if r["best_pattern"] != sc.pattern]
    paragraphs = [f"{lead} {verdict}"]
    if best:
        paragraphs.append(
            "Best pattern per profile at this workload: "
            + "; ".join(f"{name} {pat} at {spd:.3g}×" for name, pat, spd in best)
            + "."
        )
    paragraphs.append(
        f"Costs and GPUs below are for {sc.pattern}. GPUs are the fewest meeting "
        f"p{inputs.percentile:g} TTFT ≤ {inputs.slo_ttft_s * 1e3:g} ms at {top:g} requests/s "
        f"({inputs.prompts.description}); – means out of reach (or no price)."
    )
    headers = {
        "speedup": f"speedup {sc.pattern}",
        "best_pattern": "best pattern",
        "best_speedup": "its speedup",
        "tokens_per_s_dense": "tok/s/GPU dense",
        "cloud_dense": "cloud $/M tok dense",
        "cloud_sparse": "cloud $/M tok sparse",
        "gpus_dense": f"GPUs dense @{top:g}/s",
        "gpus_sparse": f"GPUs sparse @{top:g}/s",
    }
    table = Table(rows, list(rows[0]), headers)
    return Section("Summary", "summary", paragraphs, tables=[table])


def _speedup_section(sc: Scenario, sweep: list[SweepLine]) -> Section:
    series = [
        plots.Series(
            f"{s.profile} {s.pattern}{'' if s.native else ' (not native)'}",
            TOKEN_SWEEP,
            s.speedup,
            s.profile,
            s.pattern,
        )
        for s in sweep
    ]
    png = plots.line_chart(
        series,
        xlabel="prompt tokens (one prompt per step)",
        ylabel="prefill speedup, sparse / dense",
        title=f"Speedup vs prompt length — {sc.model}, {sc.dtype}, tp {sc.tp}, policy {sc.policy}",
        reference_y=1.0,
        reference_label="no gain",
    )
    shown = (512, 2048, 8192, 32768)
    rows = [
        {
            "profile": s.profile,
            "pattern": s.pattern,
            "native": "yes" if s.native else "no",
            **{f"{t:,}": s.speedup[TOKEN_SWEEP.index(t)] for t in shown},
        }
        for s in sweep
    ]
    text = (
        "Whole-prefill speedup of the sparse path over dense for one prompt, per profile and pattern: each "
        "profile's natively accelerated patterns, the paper's 8:16 and the workload's pattern. Below 1 the "
        "pruning costs more than the sparse GEMMs save. A non-native pattern only adds pruning to dense GEMMs."
    )
    return Section(
        "Speedup vs prompt length",
        "speedup",
        [text],
        [Figure("speedup_vs_tokens", png, "speedup vs prompt tokens per profile and pattern")],
        [Table(rows, list(rows[0]), caption="speedup at selected prompt lengths (tokens)")],
    )


def _breakdown(pred: Prediction) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {"dense": {}, "sparse": {}}
    for op in pred.ops:
        cat = OP_GROUPS.get(op.kind, op.kind)
        for path, seconds in (("dense", op.dense_s), ("sparse", op.sparse_s)):
            out[path][cat] = out[path].get(cat, 0.0) + seconds * op.count * 1e3
    return out


def _breakdown_section(sc: Scenario, preds: list[Prediction]) -> Section:
    bars, rows = [], []
    for pred in preds:
        parts = _breakdown(pred)
        for path in ("dense", "sparse"):
            bars.append((f"{pred.profile} {path}", parts[path]))
            rows.append(
                {
                    "profile": pred.profile,
                    "path": path,
                    **{c: parts[path].get(c) for c in CATEGORIES},
                    "total": sum(parts[path].values()),
                }
            )
    cats = [c for c in CATEGORIES if any(r.get(c) for r in rows)]
    png = plots.stacked_bars(
        bars,
        cats,
        xlabel="milliseconds per prefill step",
        title=f"Where prefill time goes — {sc.name}, pattern {sc.pattern}",
    )
    text = (
        "Per-op time of one prefill step of the workload, grouped by kind (sum over layers, per GPU). "
        "'sparsified GEMMs' are the projections the policy prunes; on the sparse path they run on sparse "
        "tensor cores when the pattern is native, and the runtime prune/compress of their inputs is extra."
    )
    cols = ["profile", "path", *cats, "total"]
    return Section(
        "Where the time goes",
        "breakdown",
        [text],
        [Figure("time_breakdown", png, "per-op time breakdown, dense vs sparse, per profile")],
        [Table(rows, cols, caption="milliseconds per step")],
    )


def _cost_section(inputs: ReportInputs, econ: list[ProfileEconomics]) -> Section:
    notes = list(inputs.price_errors)
    for e in econ:
        for field, flag in (("cloud_usd_per_gpu_hour", "--usd-per-hour"), ("purchase_usd", "--purchase-usd")):
            if getattr(e.prices, field) is None:
                notes.append(
                    f"{e.profile}: no prices.{field} in its profile (or {flag}): its "
                    f"{'cloud' if field.startswith('cloud') else 'owned'} cost is left out"
                )
    if not econ:
        return Section("Cost per million prompt tokens", "cost", ["No profile has a price."], bullets=notes)
    groups = [e.profile for e in econ]
    bars = {
        f"{basis} {path}": [getattr(e, f"{basis}_usd_per_m_tokens")[path] for e in econ]
        for basis in ("cloud", "owned")
        for path in ("dense", "sparse")
    }
    png = plots.grouped_bars(
        groups,
        bars,
        ylabel="$ per million prompt tokens",
        title=f"Cost per million prompt tokens — {inputs.scenario.name}",
    )
    util = econ[0].prices.utilization.value
    rows = [
        {
            "profile": e.profile,
            "tok/s/GPU dense": e.tokens_per_s["dense"],
            "tok/s/GPU sparse": e.tokens_per_s["sparse"],
            "J/token dense": e.energy_j_per_token["dense"],
            "J/token sparse": e.energy_j_per_token["sparse"],
            "cloud $/M dense": e.cloud_usd_per_m_tokens["dense"],
            "cloud $/M sparse": e.cloud_usd_per_m_tokens["sparse"],
            "owned $/M dense": e.owned_usd_per_m_tokens["dense"],
            "owned $/M sparse": e.owned_usd_per_m_tokens["sparse"],
        }
        for e in econ
    ]
    back_rows = [
        {
            "buy": b.to_profile,
            "path": b.path,
            "GPUs per rented": b.gpus_needed,
            "capex $": b.capex_usd,
            "saving $/month": b.saving_usd_per_month,
            "payback months": b.months
            if b.months is not None
            else (f"n/a: needs {b.missing}" if b.missing else "never"),
        }
        for b in paybacks(econ)
    ]
    text = [
        f"Cloud: rent per GPU-hour over the prompt tokens one GPU prefills in that hour at utilization {util:g}. "
        "Owned: purchase price amortized over the lifetime plus electricity (TDP × prefill power fraction) "
        "while busy; the GPU alone, without server, network, hosting or cooling. Prices and their dates are "
        "listed under Assumptions and sources.",
        f"Payback: {PAYBACK_DEFINITION}; baseline {econ[0].profile}.",
    ]
    return Section(
        "Cost per million prompt tokens",
        "cost",
        text,
        [Figure("cost_per_m_tokens", png, "cost per million prompt tokens per profile")],
        [
            Table(rows, list(rows[0])),
            Table(back_rows, list(back_rows[0]), caption=f"payback vs renting {econ[0].profile}"),
        ],
        notes,
    )


def _capacity_section(inputs: ReportInputs, plans: dict[str, dict[float, CapacityPlan]]) -> Section:
    series = [
        plots.Series(f"{name} {path}", inputs.rates, [by_rate[r].gpus(path) for r in inputs.rates], name, path)
        for name, by_rate in plans.items()
        for path in ("dense", "sparse")
    ]
    gpus = [
        {
            "rate/s": r,
            **{
                f"{name} {path}": by_rate[r].gpus(path)
                for name, by_rate in plans.items()
                for path in ("dense", "sparse")
            },
        }
        for r in inputs.rates
    ]
    cost = [
        {
            "rate/s": r,
            **{
                f"{name} {path}": by_rate[r].usd_per_day(path)
                for name, by_rate in plans.items()
                for path in ("dense", "sparse")
            },
        }
        for r in inputs.rates
    ]
    pct = f"p{inputs.percentile:g}"
    png = plots.line_chart(
        series,
        xlabel="request rate, requests/s (Poisson)",
        ylabel="GPUs (replicas × tp)",
        title=f"GPUs for {pct} TTFT ≤ {inputs.slo_ttft_s * 1e3:g} ms — {inputs.prompts.description}",
        scale="loglog",
    )
    floors = []
    for name, by_rate in plans.items():
        for path, result in next(iter(by_rate.values())).paths.items():
            if not result.feasible:
                floors.append(
                    f"{name} {path}: the SLO is out of reach (lowest {pct} TTFT "
                    f"{result.min_ttft_s * 1e3:.4g} ms, each prompt alone on an idle replica)"
                )
    text = (
        f"Fewest GPUs whose simulated {pct} time to first token stays within {inputs.slo_ttft_s * 1e3:g} ms, "
        f"found by a seeded discrete-event simulation of a fleet with continuous batching: Poisson arrivals, one "
        f"FCFS queue, steps of at most {inputs.engine.max_batched_tokens:,} tokens and {inputs.engine.max_seqs} "
        f"sequences (chunked prefill and the decode tokens of running requests, outputs: "
        f"{inputs.outputs.description}), a paged KV cache, step times from the simulator. TTFT counts queueing "
        "and the whole prompt's prefill."
    )
    return Section(
        "GPUs needed vs request rate",
        "capacity",
        [text],
        [Figure("gpus_vs_rate", png, "GPUs needed vs request rate, dense and sparse")],
        [
            Table(gpus, list(gpus[0]), caption="GPUs needed"),
            Table(cost, list(cost[0]), caption="cloud $ per day for those GPUs"),
        ],
        floors,
    )


@dataclass(frozen=True)
class Option:
    """One (accuracy variant, profile) pair of the frontier."""

    name: str
    marker: str  # pattern (+ W8A8): the chart's marker
    all_layers: bool  # policy 'all' (hollow marker) rather than the selective amber policy
    score: float | None
    delta: float | None
    profile: str
    speedup: float
    usd_per_m: float


def _frontier_section(
    inputs: ReportInputs, spec: ModelSpec, econ: list[ProfileEconomics], accuracy: AccuracyResults | None, note: str
) -> Section:
    title = "Accuracy × speed × cost frontier"
    if accuracy is None:
        return Section(title, "frontier", [note])
    metric = accuracy.metric
    higher_better = metric == "quiz_acc"
    label = "quiz accuracy (higher is better)" if higher_better else "perplexity (lower is better)"
    clouds = {e.profile: e for e in econ if e.prices.cloud_usd_per_gpu_hour is not None}
    profiles = [p for p in inputs.profiles if p.name in clouds]
    dense_score = getattr(accuracy.dense, metric)
    options = [
        Option("dense", "dense", False, dense_score, 0.0, e.profile, 1.0, e.cloud_usd_per_m_tokens["dense"])
        for e in clouds.values()
    ]
    acc_rows = [{"option": "dense", "coverage": 0.0, "ppl": accuracy.dense.ppl, "quiz_acc": accuracy.dense.quiz_acc}]
    notes = []
    for row in accuracy.rows:
        w8a8 = bool(getattr(row, "outstanding", False))  # the study's W8A8 variant: accuracy only
        name = f"{row.pattern} {row.scoring}" + ("" if row.policy == "amber" else f" ({row.policy})")
        name += " +W8A8" if w8a8 else ""
        acc_rows.append(
            {
                "option": name,
                "coverage": row.coverage,
                "ppl": row.ppl,
                "ppl_delta": row.ppl_delta,
                "quiz_acc": row.quiz_acc,
                "quiz_acc_delta": row.quiz_acc_delta,
                "± se": getattr(row, "quiz_acc_delta_stderr", None),
            }
        )
        try:
            variant = inputs.scenario.with_overrides(pattern=row.pattern, policy=row.policy, scoring=row.scoring)
            preds = [predict(profile, variant, spec=spec) for profile in profiles]
        except AmpersimError as exc:
            notes.append(f"{name}: not simulated ({exc})")
            continue
        for pred in preds:
            prices = clouds[pred.profile].prices
            cost = usd_per_million_tokens(
                prices.cloud_usd_per_gpu_hour.value, pred.tokens_per_s_sparse / pred.tp, prices.utilization.value
            )
            options.append(
                Option(
                    name,
                    row.pattern + (" +W8A8" if w8a8 else ""),
                    row.policy == "all",
                    getattr(row, metric),
                    getattr(row, f"{metric}_delta"),
                    pred.profile,
                    pred.speedup,
                    cost,
                )
            )
    scored = [o for o in options if o.score is not None]
    frontier = _pareto([(o.usd_per_m, o.score) for o in scored], higher_better)
    best = [next(o for o in scored if (o.usd_per_m, o.score) == point) for point in frontier]
    points = [plots.Point(o.usd_per_m, o.score, o.profile, o.marker, hollow=o.all_layers) for o in scored]
    labels = [(o.usd_per_m, o.score, f"{o.profile} {o.name}") for o in best]

    def rows_of(chosen: list[Option]) -> list[dict[str, Any]]:
        return [
            {
                "option": o.name,
                "profile": o.profile,
                metric: o.score,
                f"{metric} delta": o.delta,
                "speedup": o.speedup,
                "cloud $/M tokens": o.usd_per_m,
            }
            for o in sorted(chosen, key=lambda o: o.usd_per_m)
        ]

    text = [
        note + f" Accuracy was measured on {accuracy.model}; speed and cost are predicted for "
        f"{inputs.scenario.model} ({inputs.scenario.name}), so the two axes come from different models "
        "unless they match. W8A8 rows are accuracy-only variants (speed and cost at the workload's dtype).",
        "Each point is one (profile, option) pair: colour = profile, marker = pattern, hollow = every layer "
        "sparsified (policy 'all'), filled = the selective amber policy. The line joins the pairs no other "
        "pair beats on both cost (cloud $/M prompt tokens; sparse path for sparse options) and accuracy.",
    ]
    figures = []
    if points:
        png = plots.frontier_chart(
            points,
            frontier,
            labels,
            xlabel="cloud $ per million prompt tokens",
            ylabel=label,
            title=f"Accuracy ({accuracy.model}) vs cost ({inputs.scenario.model})",
        )
        figures.append(Figure("frontier", png, "accuracy vs cost per pattern and profile"))
    if not profiles:
        notes.append("no profile has a cloud price: the frontier needs prices.cloud_usd_per_gpu_hour or --usd-per-hour")
    tables = [
        Table(acc_rows, list(dict.fromkeys(k for r in acc_rows for k in r)), caption=f"accuracy on {accuracy.model}")
    ]
    if best:
        tables.append(Table(rows_of(best), list(rows_of(best)[0]), caption="on the frontier"))
        tables.append(Table(rows_of(options), list(rows_of(best)[0]), caption="every option, by cost", collapsed=True))
    return Section(title, "frontier", text, figures, tables, notes)


def _pareto(points: list[tuple[float, float]], higher_better: bool) -> list[tuple[float, float]]:
    """Points not beaten on both axes (lower x, better y), in increasing x."""
    best: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if higher_better else p[1])):
        if not best or (y > best[-1][1] if higher_better else y < best[-1][1]):
            best.append((x, y))
    return best


def _assumptions_section(
    inputs: ReportInputs, spec: ModelSpec, preds: list[Prediction], accuracy: AccuracyResults | None
) -> Section:
    sc = inputs.scenario
    workload = [
        {"item": k, "value": str(v)}
        for k, v in (
            ("scenario", f"{sc.name}: {sc.description}"),
            ("model", f"{spec.name} ({spec.source})"),
            ("dtype", sc.dtype),
            ("tensor parallel", sc.tp),
            ("prompts per step", sc.batch),
            ("prompt tokens", _lengths(sc)),
            ("policy / pattern / scoring", f"{sc.policy} / {sc.pattern} / {sc.scoring}"),
        )
    ]
    windows = sorted({inputs.duration_s or auto_duration_s(r) for r in inputs.rates})
    duration = (
        f"{windows[0]:g} s" if len(windows) == 1 else f"{windows[0]:g}-{windows[-1]:g} s (~50,000 requests per rate)"
    )
    traffic = [
        {"item": k, "value": v}
        for k, v in (
            ("arrivals", f"Poisson at {', '.join(f'{r:g}' for r in inputs.rates)} requests/s"),
            ("prompt lengths", inputs.prompts.description),
            ("output lengths", inputs.outputs.description),
            ("SLO", f"p{inputs.percentile:g} TTFT <= {inputs.slo_ttft_s * 1e3:g} ms"),
            (
                "scheduler",
                f"one FCFS queue, continuous batching with chunked prefill, <= {inputs.engine.max_batched_tokens:,} "
                f"tokens and <= {inputs.engine.max_seqs} sequences per step, KV blocks of {inputs.engine.block_size} "
                "tokens",
            ),
            ("simulated window", f"{duration}, first 5% warm-up excluded, seed {inputs.seed}"),
            ("not modelled", "prefix caching, network and router delays, failures"),
        )
    ]
    items = [(p.name, k, v) for p, b in zip(inputs.profiles, inputs.bases) if b is not None for k, v in b.items()]
    shared = {
        k
        for _, k, v in items
        if all(v == w for _, k2, w in items if k2 == k) and sum(1 for _, k2, _ in items if k2 == k) > 1
    }
    prices = [
        {"profile": name, "item": k, "value": v.value, "date": v.date or "", "source": v.source}
        for name, k, v in items
        if k not in shared
    ]
    prices += [
        {"profile": "all", "item": k, "value": v.value, "date": v.date or "", "source": v.source}
        for k, v in dict((k, v) for _, k, v in items if k in shared).items()
    ]
    tables = [
        Table(workload, ["item", "value"], caption="workload"),
        Table(traffic, ["item", "value"], caption="traffic and capacity model"),
        Table(prices, ["profile", "item", "value", "date", "source"], caption="prices and economic assumptions"),
    ]
    for profile in inputs.profiles:
        rows = [{"field": k, "value": v.value, "date": v.date or "", "source": v.source} for k, v in _sourced(profile)]
        tables.append(
            Table(
                rows,
                ["field", "value", "date", "source"],
                collapsed=True,
                caption=f"{profile.name} ({profile.display_name}, status {profile.status}): every number "
                f"and its source",
            )
        )
    notes = [{"profile": p.profile, "note": p.note} for p in preds if p.note]
    if notes:
        tables.insert(
            3, Table(notes, ["profile", "note"], caption=f"simulator notes ({sc.pattern}, policy {sc.policy})")
        )
    bullets = list(inputs.price_errors)
    if accuracy is not None:
        env = ", ".join(f"{k}={v}" for k, v in accuracy.environment.items())
        bullets.append(f"accuracy results: model {accuracy.model}; environment {env or 'not recorded'}")
    assumed = sum(1 for p in inputs.profiles for _, v in _sourced(p) if v.is_assumed)
    text = [
        f"Every number behind this report with its source. {assumed} hardware numbers are assumptions "
        "(source 'assumed: ...') awaiting measurement; calibrated profiles replace them with measured values."
    ]
    return Section("Assumptions and sources", "sources", text, tables=tables, bullets=bullets)


def _sourced(obj: Any, prefix: str = "") -> list[tuple[str, Sourced]]:
    """Every Sourced value inside a pydantic model, with its dotted field path."""
    if isinstance(obj, Sourced):
        return [(prefix, obj)]
    if isinstance(obj, BaseModel):
        items = [(name, getattr(obj, name)) for name in type(obj).model_fields]
    elif isinstance(obj, dict):
        items = list(obj.items())
    else:
        return []
    return [pair for key, value in items for pair in _sourced(value, f"{prefix}.{key}" if prefix else str(key))]


def _prompts(sc: Scenario) -> str:
    return f"{sc.batch} prompt{'s' if sc.batch > 1 else ''} of {_lengths(sc)} tokens"


def _lengths(sc: Scenario) -> str:
    lengths = sorted(set(sc.sequence_lengths()))
    return f"{lengths[0]:,}" if len(lengths) == 1 else "/".join(f"{x:,}" for x in lengths)
