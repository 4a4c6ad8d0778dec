"""What the report says: one function per section, each formatting a Study into a Section.

No section computes a number: each reads the Study (report/study.py) and turns it into prose,
tables and figures (report/plots.py), and says under each table where its numbers come from.
SECTIONS lists them in reading order; ``document`` renders them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ampersim.econ.roi import PAYBACK_DEFINITION
from ampersim.report import plots
from ampersim.report.accuracy import AccuracyResults
from ampersim.report.document import Document, Figure, Section, Table
from ampersim.report.study import (
    CATEGORIES,
    PATHS,
    SAVING_TARGETS,
    TOKEN_SWEEP,
    Option,
    ProfileStudy,
    ReportInputs,
    Study,
    build_study,
    option_name,
)
from ampersim.sim.scenario import Scenario

SWEEP_SHOWN = (512, 2048, 8192, 32768)  # prompt lengths tabulated under the speedup chart
TITLE = "ampersim report: N:M activation sparsity in prefill"
METRIC_LABELS = {"quiz_acc": "quiz accuracy (higher is better)", "ppl": "perplexity (lower is better)"}  # frontier y


def build_document(inputs: ReportInputs, progress: Callable[[str], None]) -> Document:
    """The whole report: compute the Study once, then format every section."""
    return document(build_study(inputs, progress))


def document(study: Study) -> Document:
    sc = study.inputs.scenario
    meta = [
        (
            "workload",
            (
                f"{sc.name}: {sc.model}, {sc.dtype}, tensor parallel {sc.tp}, {_prompts(sc)} per step, "
                f"policy {sc.policy}, pattern {sc.pattern}, scoring {sc.scoring}"
            ),
        ),
        ("profiles", ", ".join(f"{p.name} ({_status(p)})" for p in study.profiles)),
        ("computed by", f"ampersim {study.version}: {study.predictions} predictions of the workload's variants"),
        ("generated", study.inputs.generated),
        ("command", study.inputs.command),
    ]
    return Document(TITLE, meta, [section(study) for section in SECTIONS])


# -- provenance -----------------------------------------------------------------------------------
def _predicted(study: Study, profiles: Iterable[ProfileStudy] | None = None) -> str:
    """'predicted by ampersim V with profiles a, b (official)': who computed it, from which profiles."""
    chosen = list(profiles) if profiles is not None else list(study.profiles)
    statuses = {p.profile.status for p in chosen}
    if len(statuses) == 1:
        names = f"{', '.join(p.name for p in chosen)} ({statuses.pop()})"
    else:
        names = ", ".join(f"{p.name} ({p.profile.status})" for p in chosen)
    return f"predicted by ampersim {study.version} with profile{'s' if len(chosen) > 1 else ''} {names}"


def _status(p: ProfileStudy) -> str:
    """'official', 'hypothetical', or 'calibrated from <measurement file>'."""
    calibrated = p.profile.status == "calibrated" and p.profile.calibrated_from
    return f"calibrated from {p.profile.calibrated_from}" if calibrated else p.profile.status


PRICED = "prices and economic assumptions with their sources and dates under Assumptions and sources"


def _simulated(study: Study) -> str:
    return (
        f"simulated by ampersim {study.version}'s capacity planner (seeded discrete-event simulation, seed "
        f"{study.inputs.seed}) on step times {_predicted(study)}"
    )


# -- sections -------------------------------------------------------------------------------------
def summary(study: Study) -> Section:
    inputs, sc = study.inputs, study.inputs.scenario
    top = max(inputs.rates)
    rows = []
    for p in study.profiles:
        e, plan = p.economics, p.plans[top]
        rows.append(
            {
                "profile": p.name,
                "speedup": p.prediction.speedup,
                "best_pattern": p.best.pattern,
                "best_speedup": p.best.speedup,
                "tokens_per_s_dense": p.prediction.tokens_per_s_dense / p.prediction.tp,
                "cloud_dense": e.cloud_usd_per_m_tokens["dense"] if e else None,
                "cloud_sparse": e.cloud_usd_per_m_tokens["sparse"] if e else None,
                "gpus_dense": plan.gpus("dense"),
                "gpus_sparse": plan.gpus("sparse"),
            }
        )
    preds = [p.prediction for p in study.profiles]
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
    paragraphs = [f"{lead} {verdict}"]
    better = [p for p in study.profiles if p.best.pattern != sc.pattern]
    if better:
        paragraphs.append(
            "Best pattern per profile at this workload: "
            + "; ".join(f"{p.name} {p.best.pattern} at {p.best.speedup:.3g}×" for p in better)
            + "."
        )
    paragraphs.append(
        f"Costs and GPUs below are for {sc.pattern}. GPUs are the fewest meeting "
        f"p{inputs.percentile:g} TTFT ≤ {inputs.slo_ttft_s * 1e3:g} ms at {top:g} requests/s "
        f"(prompts {inputs.prompts.description}; outputs {inputs.outputs.description}); – means out of reach "
        "(or no price)."
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
    source = (
        f"speedups and tokens/s {_predicted(study)}; cloud $/M tokens from those tokens/s and the cloud price "
        f"({PRICED}); GPUs {_simulated(study)}"
    )
    return Section("Summary", "summary", paragraphs, tables=[Table(rows, list(rows[0]), headers, source=source)])


def speedup(study: Study) -> Section:
    sc = study.inputs.scenario
    sweep = [line for p in study.profiles for line in p.sweep]
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
    rows = [
        {
            "profile": s.profile,
            "pattern": s.pattern,
            "native": "yes" if s.native else "no",
            **{f"{t:,}": s.speedup[TOKEN_SWEEP.index(t)] for t in SWEEP_SHOWN},
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
        [
            Table(
                rows,
                list(rows[0]),
                caption="speedup at selected prompt lengths (tokens)",
                source=f"{len(TOKEN_SWEEP)} prompt lengths from {TOKEN_SWEEP[0]:,} to {TOKEN_SWEEP[-1]:,} tokens "
                f"{_predicted(study)}",
            )
        ],
    )


def breakdown(study: Study) -> Section:
    sc = study.inputs.scenario
    bars, rows = [], []
    for p in study.profiles:
        for path in PATHS:
            parts = p.breakdown_ms[path]
            bars.append((f"{p.name} {path}", parts))
            total_s = p.prediction.dense_total_s if path == "dense" else p.prediction.sparse_total_s
            rows.append(
                {"profile": p.name, "path": path, **{c: parts.get(c) for c in CATEGORIES}, "total": total_s * 1e3}
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
    return Section(
        "Where the time goes",
        "breakdown",
        [text],
        [Figure("time_breakdown", png, "per-op time breakdown, dense vs sparse, per profile")],
        [Table(rows, ["profile", "path", *cats, "total"], caption="milliseconds per step", source=_predicted(study))],
    )


def cost(study: Study) -> Section:
    inputs, econ = study.inputs, study.priced
    notes = list(inputs.price_notes)
    for e in econ:
        for field, kind in (("cloud_usd_per_gpu_hour", "cloud"), ("purchase_usd", "owned")):
            if getattr(e.prices, field) is None:
                notes.append(
                    f"{e.profile}: no prices.{field} in its profile and none given: its {kind} cost is left out"
                )
    title = "Cost per million prompt tokens"
    if not econ:
        return Section(title, "cost", ["No profile has a price."], bullets=notes)
    bars = {
        f"{basis} {path}": [getattr(e, f"{basis}_usd_per_m_tokens")[path] for e in econ]
        for basis in ("cloud", "owned")
        for path in PATHS
    }
    png = plots.grouped_bars(
        [e.profile for e in econ],
        bars,
        ylabel="$ per million prompt tokens",
        title=f"Cost per million prompt tokens — {inputs.scenario.name}",
    )
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
        for b in study.paybacks
    ]
    text = [
        (
            f"Cloud: rent per GPU-hour over the prompt tokens one GPU prefills in that hour at utilization "
            f"{econ[0].prices.utilization.value:g}. Owned: purchase price amortized over the lifetime plus electricity "
            "(TDP × prefill power fraction) while busy; the GPU alone, without server, network, hosting or cooling."
        ),
        f"Payback: {PAYBACK_DEFINITION}; baseline {econ[0].profile}.",
    ]
    source = (
        f"tokens/s {_predicted(study, [p for p in study.profiles if p.economics is not None])}; power: each "
        f"profile's TDP × prefill power fraction; {PRICED}"
    )
    return Section(
        title,
        "cost",
        text,
        [Figure("cost_per_m_tokens", png, "cost per million prompt tokens per profile")],
        [
            Table(rows, list(rows[0]), source=source),
            Table(
                back_rows,
                list(back_rows[0]),
                caption=f"payback vs renting {econ[0].profile}",
                source="the tokens/s, power and prices of the table above",
            ),
        ],
        notes,
    )


def capacity(study: Study) -> Section:
    inputs = study.inputs
    pct = f"p{inputs.percentile:g}"
    columns = [(p, path) for p in study.profiles for path in PATHS]
    series = [
        plots.Series(f"{p.name} {path}", inputs.rates, [p.plans[r].gpus(path) for r in inputs.rates], p.name, path)
        for p, path in columns
    ]
    gpus = [{"rate/s": r, **{f"{p.name} {path}": p.plans[r].gpus(path) for p, path in columns}} for r in inputs.rates]
    cost = [
        {"rate/s": r, **{f"{p.name} {path}": p.plans[r].usd_per_day(path) for p, path in columns}} for r in inputs.rates
    ]
    png = plots.line_chart(
        series,
        xlabel="request rate, requests/s (Poisson)",
        ylabel="GPUs (replicas × tp)",
        title=f"GPUs for {pct} TTFT ≤ {inputs.slo_ttft_s * 1e3:g} ms — {inputs.prompts.description}",
        scale="loglog",
    )
    floors = [
        f"{p.name} {path}: the SLO is out of reach (lowest {pct} TTFT {result.min_ttft_s * 1e3:.4g} ms, each "
        "prompt alone on an idle replica)"
        for p in study.profiles
        for path, result in p.plans[inputs.rates[0]].paths.items()
        if not result.feasible
    ]
    text = (
        f"Fewest GPUs whose simulated {pct} time to first token stays within {inputs.slo_ttft_s * 1e3:g} ms, "
        "found by a seeded discrete-event simulation of a fleet with continuous batching: Poisson arrivals, one "
        f"FCFS queue, {_step_limits(study)} (chunked prefill and the decode tokens of running requests; outputs: "
        f"{inputs.outputs.description}), a paged KV cache, step times from the simulator. TTFT counts queueing "
        "and the whole prompt's prefill."
    )
    return Section(
        "GPUs needed vs request rate",
        "capacity",
        [text],
        [Figure("gpus_vs_rate", png, "GPUs needed vs request rate, dense and sparse")],
        [
            Table(gpus, list(gpus[0]), caption="GPUs needed", source=_simulated(study)),
            Table(
                cost,
                list(cost[0]),
                caption="cloud $ per day for those GPUs",
                source=f"those GPUs × 24 h × the cloud price ({PRICED})",
            ),
        ],
        floors,
    )


def fleet(study: Study) -> Section:
    """What sparsity buys your fleet: end-to-end costs, the chain, sweeps and the break-even GEMM speedup."""
    title, anchor = "What sparsity buys your fleet", "fleet"
    f, sc = study.fleet, study.inputs.scenario
    sources = _workload_sources(sc)
    if f is None:
        return Section(title, anchor, ["No profile serves the workload's traffic under its SLOs at the workload's "
                                       "tensor-parallel degree, so there is no fleet to price."], bullets=sources)
    pct = f"p{f.slo.percentile:g}"
    slos = " and ".join(f"{pct} {n} ≤ {v * 1e3:g} ms" for n, v in (("TTFT", f.slo.ttft_s), ("TPOT", f.slo.tpot_s))
                        if v is not None)
    hit = study.inputs.cache_hit_rate
    intro = (
        f"The fleet that serves {f.rate:g} requests/s of {sc.name} under {slos} ({study.inputs.outputs.description}"
        + (f"; {100 * hit:g} % of prompt tokens prefix-cached, skipping their prefill" if hit else "")
        + "), simulated request by request for both paths, then priced end to end: the plan's GPUs × the price of "
        "a GPU-hour (cloud: rent for every hour; owned: the total cost of ownership at the simulated utilization, "
        "server share, hosting per provisioned kW, electricity × PUE, depreciation). GPU time is split between "
        "input and output tokens by the simulated prefill share of busy time."
    )
    chain_text = (
        "The chain from a faster prefill step to dollars: the prefill step speedup alone → the prefill GPU time "
        "dense/sparse in the fleet → the prefill share of the fleet's busy GPU time → the ideal saving "
        "share × (1 − 1/speedup) → whole replicas that meet the SLOs → $ saved. Where the simulation departs from "
        "the formula is listed under the chart."
    )
    stages = ["ideal (step speedup)", "ideal (in-fleet speedup)", "GPUs under the SLOs", "cloud $ saved",
              "owned $ saved"]
    bars = {}
    for pf in f.profiles:
        e, c = pf.plan.effect, pf.costs
        chain = c.chain if c is not None else None
        bars[pf.profile] = [
            100 * e.prefill_share * (1 - 1 / e.isolated_prefill_speedup),
            100 * e.expected_saving,
            100 * chain.gpu_saving if chain else None,
            100 * c.cloud.saving if c is not None and c.cloud else None,
            100 * c.owned.saving if c is not None and c.owned else None,
        ]
    chain_png = plots.grouped_bars(stages, bars, ylabel="saving, % of the dense fleet",
                                   title=f"What {sc.pattern} sparsity saves at each step of the chain — {sc.name}",
                                   value_format="{:.1f}")
    rows = []
    for pf in f.profiles:
        e, c = pf.plan.effect, pf.costs
        row = {"profile": pf.profile, "GPUs": f"{e.gpus['dense']} → {e.gpus['sparse']}",
               "prefill share": e.prefill_share, "step speedup": e.isolated_prefill_speedup,
               "in-fleet speedup": e.in_fleet_prefill_speedup, "ideal saving %": 100 * e.expected_saving}
        for basis in ("cloud", "owned"):
            cost = getattr(c, basis) if c is not None else None
            row[f"{basis} $/day"] = (
                f"{cost.paths['dense'].usd_per_day:,.0f} → {cost.paths['sparse'].usd_per_day:,.0f}" if cost else None)
            row[f"{basis} saved $/month"] = cost.saving_usd_per_month if cost else None
        rows.append(row)
    unit_rows = []
    for pf in f.profiles:
        for basis in ("cloud", "owned"):
            cost = getattr(pf.costs, basis) if pf.costs is not None else None
            if cost is None:
                continue
            for path in PATHS:
                pc = cost.paths[path]
                unit_rows.append({"profile": pf.profile, "basis": basis, "path": path, "$/GPU-hour": pc.usd_per_gpu_hour,
                                  "$/M input tokens": pc.usd_per_m_input_tokens,
                                  "$/M output tokens": pc.usd_per_m_output_tokens,
                                  "$ per 1,000 requests": pc.usd_per_1k_requests, "utilization": pc.utilization})
    departures = [f"{pf.profile}: {note}" for pf in f.profiles if pf.costs and pf.costs.chain
                  for note in pf.costs.chain.departures]
    curves = [plots.Series(f"{pf.profile} (in-fleet speedup {pf.plan.effect.in_fleet_prefill_speedup:.3f}x)",
                           [x for x in range(0, 101, 5)],
                           [x * (1 - 1 / pf.plan.effect.in_fleet_prefill_speedup) for x in range(0, 101, 5)],
                           pf.profile, "formula") for pf in f.profiles]
    points = [(100 * pt.prefill_share, 100 * pt.formula_saving, f"{pt.value:g} out") for pt in f.by_output]
    points += [(100 * pt.prefill_share, 100 * pt.formula_saving, f"hit {pt.value:g}") for pt in f.by_hit_rate]
    sweep_png = plots.saving_sweeps(
        curves, points, [(pt.value, 100 * pt.formula_saving) for pt in f.by_output],
        [(pt.value, 100 * pt.formula_saving) for pt in f.by_hit_rate],
        title=f"End-to-end saving of {sc.pattern} sparsity as the prefill share shrinks — {f.sweep_profile}, "
              f"{f.rate:g} req/s")
    sweep_rows = [{"sweep": "output tokens", "value": pt.value, "prefill share": pt.prefill_share,
                   "in-fleet speedup": pt.in_fleet_speedup, "ideal saving %": 100 * pt.formula_saving,
                   "GPUs dense": pt.gpus["dense"], "GPUs sparse": pt.gpus["sparse"]} for pt in f.by_output]
    sweep_rows += [{"sweep": "cache hit rate", "value": pt.value, "prefill share": pt.prefill_share,
                    "in-fleet speedup": pt.in_fleet_speedup, "ideal saving %": 100 * pt.formula_saving,
                    "GPUs dense": pt.gpus["dense"], "GPUs sparse": pt.gpus["sparse"]} for pt in f.by_hit_rate]
    even_rows = [{"profile": pf.profile, "prefill share": pf.plan.effect.prefill_share,
                  "sparsified GEMM share of prefill": pf.gemm_share, "pruning overhead share": pf.overhead_share,
                  **{f"for {100 * t:g} %": ("out of reach" if k is None else f"{k:.2f}x")
                     for t, k in pf.break_even.items()}} for pf in f.profiles]
    even_text = (
        "Break-even for hardware buyers: the native N:M sparse-GEMM speedup (sparse vs dense GEMM on the same part) "
        "a future part would need for a given end-to-end saving of this fleet. With a share g of the dense prefill "
        "step in the sparsified GEMMs, a pruning overhead o and the fleet's prefill share f, prefill takes "
        "(1 − g) + g/k + o of its dense time, so a saving T needs k = g / (g − o − T/f); 'out of reach' when "
        "g − o − T/f ≤ 0, i.e. even an infinitely fast sparse GEMM would not save that much."
    )
    targets = ", ".join(f"{100 * t:g} %" for t in SAVING_TARGETS)
    return Section(
        title, anchor, [intro, chain_text],
        [Figure("fleet_chain", chain_png, "saving at each step of the chain, per profile",
                source=_simulated(study) + f"; {PRICED}"),
         Figure("fleet_sweeps", sweep_png, "end-to-end saving vs prefill share, output length and cache hit rate",
                source=f"formula curves at each profile's in-fleet prefill speedup; points: fleets re-planned on "
                       f"{f.sweep_profile} at each output length (fixed) and hit rate, "
                       f"{_simulated(study)}")],
        [Table(rows, list(rows[0]), caption="the fleet and what it costs (GPUs and $/day: dense → sparse)",
               source=f"{_simulated(study)}; {f.window_s:g} s simulated; {PRICED}"),
         Table(unit_rows, list(unit_rows[0]) if unit_rows else [], caption="unit costs", source=PRICED)
         if unit_rows else Table([{"note": "no profile has a price"}], ["note"]),
         Table(sweep_rows, list(sweep_rows[0]) if sweep_rows else ["sweep"],
               caption=f"sweeps on {f.sweep_profile} (fleets re-planned at each point; shorter windows)",
               source=_simulated(study)),
         Table(even_rows, list(even_rows[0]), caption=f"native sparse-GEMM speedup needed for {targets} end to end",
               source=f"g and o from the workload's prefill step {_predicted(study)}; f from the simulated fleet")],
        [*sources, *departures, even_text],
    )


def _workload_sources(sc: Scenario) -> list[str]:
    """Where the workload preset's numbers come from."""
    out = []
    for what, source in (("prompt lengths", sc.prompt_source), ("output lengths", sc.output_source),
                         ("prefix-cache hit rate", sc.prefix_cache.hit_rate.source if sc.prefix_cache else None)):
        if source:
            out.append(f"workload {sc.name}, {what}: {source}")
    if sc.serving is not None:
        for what, value in (("request rate", sc.serving.rate_per_s), ("TTFT SLO", sc.serving.slo_ttft_ms),
                            ("TPOT SLO", sc.serving.slo_tpot_ms)):
            if value is not None:
                out.append(f"workload {sc.name}, {what} {value.value:g}: {value.source}")
    return out


def frontier(study: Study) -> Section:
    title = "Accuracy × speed × cost frontier"
    inputs, acc = study.inputs, study.accuracy
    if acc is None:
        return Section(
            title,
            "frontier",
            [
                (
                    "No accuracy results were given, so there is no frontier to draw: the real-model evaluation "
                    "(ampersim prune) writes them, and a source checkout's docs/accuracy.json is read by default. "
                    "Speed and cost per pattern are in the sections above."
                )
            ],
        )
    sc, several = inputs.scenario, len(acc.results) > 1
    acc_rows = []
    for results in acc.results:
        acc_rows.append({"model": results.model, "option": "dense", "coverage": 0.0, "ppl": results.dense.ppl,
                         "quiz_acc": results.dense.quiz_acc})
        acc_rows += [
            {
                "model": results.model,
                "option": option_name(row),
                "coverage": row.coverage,
                "ppl": row.ppl,
                "ppl_delta": row.ppl_delta,
                "quiz_acc": row.quiz_acc,
                "quiz_acc_delta": row.quiz_acc_delta,
                "± se": row.quiz_acc_delta_stderr,
            }
            for row in results.rows
        ]
    w8a8 = any(o.marker.endswith("+W8A8") for o in acc.options)
    names = ", ".join(r.model for r in acc.results)
    measured_patterns = {row.pattern for r in acc.results for row in r.rows}
    text = [
        f"Accuracy from {acc.path.name}, measured on {_models(acc.results)}. Speed and cost are predicted for the "
        f"workload's model, {sc.model} ({sc.name}){', the same for every accuracy model' if several else ''}, so "
        "the two axes come from different models unless they match."
        + (" W8A8 rows are accuracy-only variants (speed and cost at the workload's dtype)." if w8a8 else "")
        + ("" if sc.pattern in measured_patterns else f" The workload's pattern {sc.pattern} has no accuracy "
           f"measurement in {acc.path.name}, so it is not placed here (its speed and cost are in the sections above)."),
        (
            "Each point is one (profile, option) pair: colour = profile, marker = pattern, hollow = every layer "
            "sparsified (policy 'all'), filled = the selective amber policy. The line joins the pairs no other "
            "pair beats on both cost (cloud $/M prompt tokens; sparse path for sparse options) and accuracy."
        ),
    ]
    if several:
        text.append(
            "Each model has its own chart and its own frontier: models are scored on their own scale (quiz "
            "accuracy where measured, else perplexity), so one model's options never compete with another's. "
            "A pattern costs the same on every chart; only its accuracy changes from model to model."
        )
    on_frontier = [o for best in acc.frontier.values() for o in best]
    sparse = any(o.name != "dense" for o in acc.options)
    if sparse and all(o.name == "dense" for o in on_frontier):
        whose = "every model's" if several else "the"
        text.append(
            f"Here {whose} frontier is dense alone: no measured sparse option is cheaper per prompt token than dense "
            f"on {on_frontier[0].profile} (the cheapest profile) or scores better than dense, so none of the measured "
            "variants pays on this workload."
        )
    figures = []
    for results in acc.results:
        scored = [o for o in acc.options if o.model == results.model and o.score is not None]
        if not scored:
            continue
        best = acc.frontier[results.model]
        png = plots.frontier_chart(
            [plots.Point(o.usd_per_m, o.score, o.profile, o.marker, hollow=o.all_layers) for o in scored],
            [(o.usd_per_m, o.score) for o in best],
            [(o.usd_per_m, o.score, f"{o.profile} {o.name}") for o in best],
            xlabel="cloud $ per million prompt tokens",
            ylabel=METRIC_LABELS[results.metric],
            title=f"Accuracy ({results.model}) vs cost ({sc.model})",
        )
        alt = "accuracy vs cost per pattern and profile"
        figures.append(
            Figure(f"frontier-{_slug(results.model)}", png, f"{results.model}: {alt}") if several
            else Figure("frontier", png, alt)
        )
    notes = list(acc.not_simulated)
    if not acc.options:
        notes.append("no profile has a cloud price: the frontier needs prices.cloud_usd_per_gpu_hour")
    measured = _measured(acc.environment, acc.path.name, names)
    tables = [
        Table(
            acc_rows,
            list(dict.fromkeys(k for r in acc_rows for k in r)),
            caption=f"accuracy on {names}",
            source=measured,
        )
    ]
    if on_frontier:
        source = (
            f"accuracy {measured}; speedup {_predicted(study)}; cloud $/M tokens from those predictions and the "
            f"cloud price ({PRICED})"
        )
        metrics = dict.fromkeys(r.metric for r in acc.results)
        columns = ["model", "option", "profile", *(c for m in metrics for c in (m, f"{m} delta")), "speedup",
                   "cloud $/M tokens"]
        metric = {r.model: r.metric for r in acc.results}
        tables.append(
            Table([_option_row(o, metric[o.model]) for o in on_frontier], columns, caption="on the frontier",
                  source=source)
        )
        order = {r.model: i for i, r in enumerate(acc.results)}
        every = sorted(acc.options, key=lambda o: (order[o.model], o.usd_per_m))
        tables.append(
            Table(
                [_option_row(o, metric[o.model]) for o in every],
                columns,
                caption="every option, by cost" + (" within each model" if several else ""),
                collapsed=True,
                source=source,
            )
        )
    return Section(title, "frontier", text, figures, tables, notes)



def _models(results: Iterable[AccuracyResults]) -> str:
    """'a (0.13 B parameters)' for one model; '2 models: a (0.13 B parameters), b' for several."""
    named = [r.model + (f" ({r.parameters / 1e9:.2g} B parameters)" if r.parameters else "") for r in results]
    return named[0] if len(named) == 1 else f"{len(named)} models: {', '.join(named)}"


def _slug(name: str) -> str:
    """``name`` as a file-name part: runs of characters other than letters, digits, '.', '_', '-' become '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def _option_row(o: Option, metric: str) -> dict[str, Any]:
    return {
        "model": o.model,
        "option": o.name,
        "profile": o.profile,
        metric: o.score,
        f"{metric} delta": o.delta,
        "speedup": o.speedup,
        "cloud $/M tokens": o.usd_per_m,
    }


def _measured(environment: Mapping[str, Any], file: str, models: str) -> str:
    """'measured on <models> ...' with what the results file records about its run."""
    recorded = [
        f"{label} {environment[key]}"
        for key, label in (("command", "by"), ("date", "on"), ("ampersim_commit", "at ampersim commit"))
        if environment.get(key)
    ]
    return f"measured on {models}" + (f" {' '.join(recorded)}" if recorded else "") + f" (results file {file})"


def sources(study: Study) -> Section:
    inputs, sc, spec = study.inputs, study.inputs.scenario, study.spec
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
    windows = sorted(set(study.windows_s.values()))
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
                (
                    f"one FCFS queue, continuous batching with chunked prefill, {_step_limits(study)}; "
                    "every engine setting per profile in the next table"
                ),
            ),
            ("simulated window", f"{duration}, first 5% warm-up excluded, seed {inputs.seed}"),
            ("not modelled", "prefix caching, network and router delays, failures"),
        )
    ]
    tables = [
        Table(workload, ["item", "value"], caption="workload"),
        Table(traffic, ["item", "value"], caption="traffic and capacity model"),
        _engine_table(study),
        _sourced_table(study.prices, "prices and economic assumptions", owner=True),
    ]
    notes = [{"profile": p.name, "note": p.prediction.note} for p in study.profiles if p.prediction.note]
    if notes:
        tables.append(Table(notes, ["profile", "note"], caption=f"simulator notes ({sc.pattern}, policy {sc.policy})"))
    tables += [
        _sourced_table(
            study.hardware[p.name],
            f"{p.name} ({p.profile.display_name}, status {p.profile.status}): every number and its source",
            collapsed=True,
        )
        for p in study.profiles
    ]
    bullets = list(inputs.price_notes)
    if study.accuracy is not None:
        acc = study.accuracy
        env = ", ".join(f"{k}={v}" for k, v in acc.environment.items())
        models = ", ".join(r.model for r in acc.results)
        bullets.append(f"accuracy results: model{'s' if len(acc.results) > 1 else ''} {models}; "
                       f"environment {env or 'not recorded'}")
    text = [
        (
            f"Every number behind this report with its source. {study.assumed} hardware numbers are assumptions "
            "(source 'assumed: ...') awaiting measurement; calibrated profiles replace them with measured values."
        )
    ]
    return Section("Assumptions and sources", "sources", text, tables=tables, bullets=bullets)


def _sourced_table(items: Iterable[Any], caption: str, *, owner: bool = False, collapsed: bool = False) -> Table:
    rows = [
        {
            **({"profile": i.owner} if owner else {}),
            ("item" if owner else "field"): i.item,
            "value": i.number.value,
            "date": i.number.date or "",
            "source": i.number.source,
        }
        for i in items
    ]
    columns = ["profile", "item"] if owner else ["field"]
    return Table(rows, [*columns, "value", "date", "source"], caption=caption, collapsed=collapsed)


def _engine_table(study: Study) -> Table:
    settings = list(type(study.profiles[0].engine).model_fields)
    rows = [{"profile": p.name, **{k: getattr(p.engine, k) for k in settings}} for p in study.profiles]
    sources = dict.fromkeys(f"{k}: {p.engine_sources[k]}" for p in study.profiles for k in settings)
    return Table(rows, ["profile", *settings], caption="serving engine per profile", source="; ".join(sources))


def _step_limits(study: Study) -> str:
    """'steps of at most 8,192 tokens and 1,024 sequences' (per profile when the engines differ)."""
    limits = {p.name: (p.engine.max_batched_tokens, p.engine.max_seqs) for p in study.profiles}
    if len(set(limits.values())) == 1:
        tokens, seqs = next(iter(limits.values()))
        return f"steps of at most {tokens:,} tokens and {seqs:,} sequences"
    each = ", ".join(f"{name} {tokens:,} / {seqs:,}" for name, (tokens, seqs) in limits.items())
    return f"steps of at most the engine's tokens / sequences ({each})"


SECTIONS: tuple[Callable[[Study], Section], ...] = (summary, speedup, breakdown, cost, capacity, fleet, frontier,
                                                   sources)


def _prompts(sc: Scenario) -> str:
    return f"{sc.batch} prompt{'s' if sc.batch > 1 else ''} of {_lengths(sc)} tokens"


def _lengths(sc: Scenario) -> str:
    lengths = sorted(set(sc.sequence_lengths()))
    return f"{lengths[0]:,}" if len(lengths) == 1 else "/".join(f"{x:,}" for x in lengths)
