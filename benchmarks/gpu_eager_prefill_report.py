"""Tables and consistency checks for the results of ``benchmarks/gpu_eager_prefill.py`` (no GPU needed).

``python benchmarks/gpu_eager_prefill_report.py RESULTS.json`` prints the markdown tables that go into
docs/gpu-pruner.md and docs/validation.md (whole-model prefill in eager / graph / compile mode against
the issue-15 goals, W8A8, host time per sparse linear, searched vs default sparse-GEMM algorithms) and
then every consistency problem; the exit status is 1 if there is any. Speedups are always recomputed
from the stored medians here, never read from the file.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ENV_FIELDS = ("gpu", "driver", "torch", "cuda", "cusparselt_torch", "cusparselt_library", "triton")
GOALS = {"eager_1k": 1.0, "eager_4k_plus": 1.12, "host_us": 30.0, "w8a8_4k_plus": 1.3}
SECTIONS = ("probe", "env", "correct", "host", "model", "w8a8", "gemm", "compile")


def _medians(rows: list[dict[str, Any]]) -> dict[tuple[int, str, str], float]:
    return {(r["tokens"], r["variant"], r["mode"]): r["median_s"] for r in rows}


def _ratio(base: float | None, value: float | None) -> float:
    if base is None or value is None or not (value > 0) or not math.isfinite(base):
        return math.nan
    return base / value


def problems(results: dict[str, Any]) -> list[str]:
    """What makes the results untrustworthy or incomplete (an empty list: none)."""
    out = []
    env = results.get("env", {})
    out += [f"env: {f} not recorded" for f in ENV_FIELDS if env.get(f) in (None, "")]
    for name in SECTIONS:
        section = results.get(name)
        if not isinstance(section, dict):
            out.append(f"{name}: missing")
        elif "error" in section or "skipped" in section:
            out.append(f"{name}: {section.get('error') or section.get('skipped')}")
    if results.get("probe", {}).get("returncode") not in (0, None):
        out.append("probe: the cuSPARSELt binding failed; sparse rows use torch._cslt_sparse_mm")
    if results.get("correct", {}).get("all_ok") is False:
        out.append("correct: a sparse result disagreed with its dense reference")
    for name, key in (("model", "check_plans"), ("model", "check_torch_cslt"), ("w8a8", "check_sparse")):
        check = results.get(name, {}).get(key)
        if check is not None and not check.get("ok"):
            out.append(f"{name}: {key} failed (max layer error {check.get('max_layer_rel_err')})")
    for name in ("model", "w8a8", "compile"):
        for row in results.get(name, {}).get("rows", []):
            if "error" in row or not math.isfinite(row.get("median_s", math.nan)):
                out.append(f"{name}: {row['tokens']} tokens {row['variant']} {row['mode']}: {row.get('error', 'no time')}")
    for row in results.get("gemm", {}).get("rows", []):
        out += [f"gemm {row['model']} {row['name']} M={row['M']}: {row[k]}" for k in row if k.endswith("_error")
                and not k.startswith("cutlass")]
    return out


def model_table(results: dict[str, Any]) -> str:
    """Whole-model prefill, amber 2:4 vs dense, per mode, against the eager goals."""
    rows = [r for s in ("model", "compile") for r in results.get(s, {}).get("rows", [])]
    t = _medians(rows)
    lines = ["| tokens | mode | dense ms | amber 2:4 ms | speedup | goal |", "|---|---|---|---|---|---|"]
    for (tokens, variant, mode), sparse in sorted(t.items()):
        if variant == "dense":
            continue
        dense = t.get((tokens, "dense", mode))
        speedup = _ratio(dense, sparse)
        goal = ""
        if mode == "eager" and variant == "amber_2:4_plans":
            target = GOALS["eager_4k_plus"] if tokens >= 4096 else GOALS["eager_1k"]
            goal = f"≥ {target:g}×: {'met' if speedup >= target else 'missed'}"
        label = f"{mode} ({variant.removeprefix('amber_2:4_')})"
        lines.append(f"| {tokens} | {label} | {_ms(dense)} | {_ms(sparse)} | {speedup:.3f}× | {goal} |")
    return "\n".join(lines)


def w8a8_table(results: dict[str, Any]) -> str:
    """W8A8 whole model: bf16 dense (section model), int8 dense, int8 + amber 2:4."""
    bf16 = _medians(results.get("model", {}).get("rows", []))
    t = _medians(results.get("w8a8", {}).get("rows", []))
    lines = ["| tokens | mode | bf16 dense ms | int8 dense ms | int8 + 2:4 ms | vs bf16 | vs int8 | goal (≥ 1.3× vs bf16 at ≥ 4k) |",
             "|---|---|---|---|---|---|---|---|"]
    for tokens, mode in sorted({(k[0], k[2]) for k in t}):
        base, dense, sparse = bf16.get((tokens, "dense", mode)), t.get((tokens, "int8_dense", mode)), \
            t.get((tokens, "int8_amber_2:4", mode))
        gain = _ratio(base, sparse)
        goal = (f"{'met' if gain >= GOALS['w8a8_4k_plus'] else 'missed'}" if tokens >= 4096 else "")
        lines.append(f"| {tokens} | {mode} | {_ms(base)} | {_ms(dense)} | {_ms(sparse)} | {gain:.3f}× | "
                     f"{_ratio(dense, sparse):.3f}× | {goal} |")
    return "\n".join(lines)


def host_table(results: dict[str, Any]) -> str:
    lines = ["| linear (4096 tokens) | path | host µs per call |", "|---|---|---|"]
    for name, parts in results.get("host", {}).items():
        if not isinstance(parts, dict):
            continue
        for key, value in parts.items():
            if key.endswith("_us"):
                lines.append(f"| {name} | {key.removesuffix('_us')} | {value:.1f} |")
    return "\n".join(lines)


def gemm_table(results: dict[str, Any]) -> str:
    lines = ["| model | linear | M | N | K | dense ms | searched ms (alg) | default ms (alg) | default / searched | CUTLASS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("gemm", {}).get("rows", []):
        cutlass = _ms(r["cutlass_s"]) if "cutlass_s" in r else ("n/a: " + r["cutlass_error"][:60] if "cutlass_error" in r
                                                              else "-")
        lines.append(f"| {r['model']} | {r['name']} | {r['M']} | {r['N']} | {r['K']} | {_ms(r['dense_s'])} | "
                     f"{_ms(r.get('searched_s'))} ({r.get('searched_alg')}) | {_ms(r.get('default_s'))} "
                     f"({r.get('default_alg')}) | {_ratio(r.get('default_s'), r.get('searched_s')):.3f} | {cutlass} |")
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1e3:.3f}"


def main(argv: list[str]) -> int:
    results = json.loads(Path(argv[0]).read_text())
    for title, table in (("whole model", model_table), ("W8A8", w8a8_table), ("host time", host_table),
                         ("sparse GEMM algorithms", gemm_table)):
        print(f"### {title}\n\n{table(results)}\n")
    found = problems(results)
    print("problems:" if found else "problems: none")
    for p in found:
        print(f"- {p}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
