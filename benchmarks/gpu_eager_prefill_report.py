"""Tables and consistency checks for the results of ``benchmarks/gpu_eager_prefill.py`` (no GPU needed).

``python benchmarks/gpu_eager_prefill_report.py RESULTS.json`` prints the markdown tables that go into
docs/gpu-pruner.md and docs/validation.md (whole-model prefill in eager / compile / graph mode against
the issue-15 goals, with the host time of one forward and whether the host or the GPU bounds it; W8A8
whole model and layer 0 against bf16 dense and int8 dense; host time per sparse linear and its parts,
with the parts timed alone where the file has them; searched vs default sparse-GEMM algorithms), then the gaps
(what was not measured, and why) and the problems (what would make the file untrustworthy: missing
environment, a sparse row timed without a passing check, a failed plan check); the exit status is 1
if there is a problem. Speedups are always recomputed from the stored medians, never read from the file.
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
TOL = 2e-2  # the device script's bf16 relative-error bound
MODES = ("eager", "compile", "graph")
SPARSE_VARIANTS = ("amber_2:4_plans", "amber_2:4_torch_cslt", "int8_amber_2:4")


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple[int, str, str], dict[str, Any]]:
    return {(r["tokens"], r["variant"], r["mode"]): r for r in rows}


def _rows(results: dict[str, Any], *sections: str) -> dict[tuple[int, str, str], dict[str, Any]]:
    """Timed whole-model rows of ``sections`` by (tokens, variant, mode)."""
    return _by_key([r for s in sections for r in results.get(s, {}).get("rows", [])])


def _timed(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every timed row as (section, list key, row): whole models ("rows") and W8A8's layer 0 ("layers")."""
    return [(section, key, row) for section in ("model", "w8a8", "compile") for key in ("rows", "layers")
            for row in results.get(section, {}).get(key, [])]


def _scope(key: str) -> str:
    return " layer 0" if key == "layers" else ""


def _median(row: dict[str, Any] | None) -> float | None:
    return None if row is None else row.get("median_s")


def _ratio(base: float | None, value: float | None) -> float:
    if base is None or value is None or not (value > 0) or not math.isfinite(base):
        return math.nan
    return base / value


def gating_check(results: dict[str, Any], section: str, variant: str) -> tuple[str, bool | None]:
    """The correctness check that must pass before ``variant`` of ``section`` is timed: (what, passed);
    passed is None where the file holds no such check."""
    if variant == "amber_2:4_plans":  # the compile rows run the same custom op as the eager rows
        check = results.get("model", {}).get("check_plans")
        return "model.check_plans (whole model, layer by layer, vs eager masking + F.linear)", \
            None if check is None else bool(check.get("ok"))
    if variant == "amber_2:4_torch_cslt":
        check = results.get("model", {}).get("check_torch_cslt")
        if check is not None:
            return "model.check_torch_cslt", bool(check.get("ok"))
        errs = [r["torch_cslt_rel_err"] for r in results.get("correct", {}).get("rows", []) if "torch_cslt_rel_err" in r]
        return ("correct: torch._cslt_sparse_mm on the fused operand vs the dense product",
                all(e <= TOL for e in errs) if errs else None)
    if section == "w8a8":
        w8 = results.get("w8a8", {})
        check, dense = w8.get("check_sparse"), w8.get("check_dense_int8_layer0")
        return "w8a8.check_sparse and check_dense_int8_layer0", \
            None if check is None or dense is None else bool(check.get("ok")) and dense <= TOL
    return "none", None


def problems(results: dict[str, Any]) -> list[str]:
    """What makes the results untrustworthy (an empty list: none): environment not recorded, the plans
    disagreeing with their dense references, a sparse row timed without a passing check."""
    env = results.get("env", {})
    out = [f"env: {f} not recorded" for f in ENV_FIELDS if env.get(f) in (None, "")]
    if results.get("correct", {}).get("all_ok") is False:
        out.append("correct: a sparse result disagreed with its dense reference")
    for section, key, row in _timed(results):
        if row["variant"] not in SPARSE_VARIANTS or not math.isfinite(row.get("median_s", math.nan)):
            continue
        what, passed = gating_check(results, section, row["variant"])
        if not passed:
            out.append(f"{section}{_scope(key)}: {row['tokens']} tokens {row['variant']} {row['mode']} timed, but its "
                       f"check ({what}) {'failed' if passed is False else 'is not recorded'}")
    for row in results.get("gemm", {}).get("rows", []):
        for algorithm in ("searched", "default"):
            if f"{algorithm}_s" in row and f"{algorithm}_error" in row:
                out.append(f"gemm {row['model']} {row['name']} M={row['M']}: {algorithm} timed after a failed check")
    return out


def gaps(results: dict[str, Any]) -> list[str]:
    """What was not measured and why, and checks outside the tolerance that gate nothing."""
    out = []
    for name in SECTIONS:
        section = results.get(name)
        if not isinstance(section, dict):
            out.append(f"{name}: missing")
        elif "error" in section or "skipped" in section:
            out.append(f"{name}: {section.get('error') or section.get('skipped')}")
        elif "stopped" in section:
            out.append(f"{name}: stopped early ({section['stopped']})")
    if results.get("probe", {}).get("returncode") not in (0, None):
        out.append("probe: the cuSPARSELt binding failed; sparse rows use torch._cslt_sparse_mm")
    for name, key in (("model", "check_plans"), ("model", "check_torch_cslt"), ("w8a8", "check_sparse")):
        check = results.get(name, {}).get(key)
        if check is not None and not check.get("ok"):
            out.append(f"{name}: {key} failed (max layer rel err {check.get('max_layer_rel_err', math.nan):.4g} > {TOL:g}): "
                       f"its sparse variants were not timed")
    dense_int8 = results.get("w8a8", {}).get("check_dense_int8_layer0")
    if dense_int8 is not None and dense_int8 > TOL:
        out.append(f"w8a8: check_dense_int8_layer0 {dense_int8:.4g} > {TOL:g}: not timed")
    compile_err = results.get("compile", {}).get("check_rel_err")
    if compile_err is not None and compile_err > TOL:
        out.append(f"compile: check_rel_err (compiled vs eager layer, both amber 2:4) {compile_err:.4g} > {TOL:g}; "
                   "recorded, gates nothing (the timed custom op is covered by model.check_plans)")
    for section, key, row in _timed(results):
        if "error" in row or not math.isfinite(row.get("median_s", math.nan)):
            out.append(f"{section}{_scope(key)}: {row['tokens']} tokens {row['variant']} {row['mode']}: "
                       f"{row.get('error', 'no time')}")
    cutlass = {row["cutlass_error"] for row in results.get("gemm", {}).get("rows", []) if "cutlass_error" in row}
    out += [f"gemm: CUTLASS 2:4 GEMM not timed: {e}" for e in sorted(cutlass)]
    for row in results.get("gemm", {}).get("rows", []):
        out += [f"gemm {row['model']} {row['name']} M={row['M']}: {row[k]}" for k in row
                if k.endswith("_error") and not k.startswith("cutlass")]
    return out


def environment(results: dict[str, Any]) -> str:
    env = results.get("env", {})
    smi = env.get("nvidia_smi", {})
    end = results.get("nvidia_smi_end", "").strip().splitlines()[-1:] or ["-"]
    return (f"{env.get('gpu')}, driver {env.get('driver')}, CUDA {env.get('cuda')}, torch {env.get('torch')}, "
            f"cuSPARSELt {env.get('cusparselt_torch')} (torch) / {env.get('cusparselt_binding', '-')}, "
            f"Triton {env.get('triton')}; SM clock {smi.get('clocks.current.sm', '-')} at the start, "
            f"{end[0].split(',')[0]} at the end of the run ({results.get('total_s', math.nan):.0f} s)")


def model_table(results: dict[str, Any]) -> str:
    """Whole-model prefill, amber 2:4 vs dense, per mode; host enqueue time of one forward against the
    GPU time (the CUDA-graph replay of the same model) says what bounds eager and compiled runs."""
    t = _rows(results, "model", "compile")
    lines = ["| tokens | mode | dense ms | amber 2:4 ms | speedup | host ms per forward, dense / 2:4 | bound | goal |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(k[0], k[1], k[2]) for k in t if k[1] != "dense"},
                  key=lambda k: (k[0], k[1] != "amber_2:4_plans", MODES.index(k[2])))
    for tokens, variant, mode in keys:
        dense, sparse = t.get((tokens, "dense", mode)), t[(tokens, variant, mode)]
        speedup = _ratio(_median(dense), _median(sparse))
        host = "-"
        bound = "-"
        if mode != "graph":
            host_d, host_s = (dense or {}).get("host_enqueue_s"), sparse.get("host_enqueue_s")
            host = f"{_ms(host_d, 1)} / {_ms(host_s, 1)}"
            gpu = _median(t.get((tokens, "amber_2:4_plans", "graph")))
            if host_s is not None and gpu is not None:
                bound = f"{'host' if host_s > gpu else 'GPU'} (GPU {_ms(gpu, 1)})"
        goal = "-"
        if mode == "eager" and variant == "amber_2:4_plans":
            target = GOALS["eager_4k_plus"] if tokens >= 4096 else GOALS["eager_1k"]
            goal = f"≥ {target:g}×: {'met' if speedup >= target else 'missed'}"
        label = mode if variant == "amber_2:4_plans" else f"{mode}, torch's per-call plans"
        lines.append(f"| {tokens} | {label} | {_ms(_median(dense))} | {_ms(_median(sparse))} | {speedup:.3f}× | "
                     f"{host} | {bound} | {goal} |")
    return "\n".join(lines)


def compile_summary(results: dict[str, Any]) -> str:
    c = results.get("compile", {})
    if not c.get("rows"):
        return "torch.compile: not measured"
    firsts = [r["first_call_s"] for r in c["rows"] if "first_call_s" in r]
    return (f"torch.compile: {sum(c.get('graph_breaks', {}).values())} graph breaks, {c.get('unique_graphs')} "
            f"compiled graphs, first compile {c.get('first_compile_s', math.nan):.1f} s, first call per token count "
            f"{min(firsts):.1f}-{max(firsts):.1f} s; compiled vs eager layer (both amber 2:4) rel err "
            f"{c.get('check_rel_err', math.nan):.4f}")


def w8a8_table(results: dict[str, Any]) -> str:
    """W8A8: bf16 dense (the whole model from section model), int8 dense and int8 + amber 2:4, as whole
    models (eager and graph; the goal is judged on them) and as layer 0 alone (graph; a layer the amber
    policy sparsifies), with the gain of int8 + 2:4 over bf16 dense and over int8 dense (or why not measured)."""
    w8 = results.get("w8a8", {})
    if not w8.get("rows"):
        check, dense = w8.get("check_sparse", {}), w8.get("check_dense_int8_layer0")
        return (f"W8A8: not measured. check_sparse: max layer rel err {check.get('max_layer_rel_err', math.nan):.4f} "
                f"(tolerance {TOL:g}, ok={check.get('ok')}); dense int8 layer 0: {dense if dense is None else f'{dense:.4f}'}")
    target = GOALS["w8a8_4k_plus"]
    lines = [("| what | tokens | mode | bf16 dense ms | int8 dense ms | int8 + 2:4 ms | int8 + 2:4 vs bf16 | "
              f"int8 + 2:4 vs int8 dense | int8 dense vs bf16 | goal (≥ {target:g}× vs bf16 at ≥ 4k) |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for what, bf16, t in (("model", _rows(results, "model"), _rows(results, "w8a8")),
                          ("layer 0", _by_key(w8.get("layers", [])), _by_key(w8.get("layers", [])))):
        for tokens, mode in sorted({(k[0], k[2]) for k in t}, key=lambda k: (k[0], MODES.index(k[1]))):
            base = _median(bf16.get((tokens, "dense" if what == "model" else "bf16_dense", mode)))
            dense, sparse = _median(t.get((tokens, "int8_dense", mode))), _median(t.get((tokens, "int8_amber_2:4", mode)))
            gain = _ratio(base, sparse)
            goal = f"{'met' if gain >= target else 'missed'}" if what == "model" and tokens >= 4096 else "-"
            lines.append(f"| {what} | {tokens} | {mode} | {_ms(base)} | {_ms(dense)} | {_ms(sparse)} | {gain:.3f}× | "
                         f"{_ratio(dense, sparse):.3f}× | {_ratio(base, dense):.3f}× | {goal} |")
    return "\n".join(lines)


HOST_PARTS = (("prune_compress_us", "prune+compress launch"), ("plan_matmul_us", "plan matmul"),
              ("sparse_linear_us", "sparse_linear()"), ("module_forward_us", "module forward"),
              ("custom_op_us", "custom op"), ("dense_linear_us", "dense F.linear"),
              ("torch_cslt_sparse_mm_us", "torch._cslt_sparse_mm"))
HOST_ALONE = (("triton_launch_only_us", "Triton launcher alone"), ("cusparselt_ctypes_only_us", "cusparseLtMatmul (ctypes) alone"),
              ("torch_empty_us", "torch.empty"), ("current_stream_us", "current_stream()"))


def host_table(results: dict[str, Any]) -> str:
    """Host µs per call (enqueue time, 4096 tokens) of each path and part; 'rest' is sparse_linear() less
    its two launches (Python and allocations); the goal applies to the module forward. Files that timed
    the parts of one sparse linear alone (the compress kernel's Triton launch without argument checks or
    allocation, one cusparseLtMatmul through ctypes, an output allocation, the stream query) add a
    column for each."""
    linears = {name: parts for name, parts in results.get("host", {}).items() if isinstance(parts, dict)}
    cols = HOST_PARTS + tuple(c for c in HOST_ALONE if any(c[0] in p for p in linears.values()))
    head = " | ".join(label for _, label in cols)
    lines = [f"| linear | {head} | rest of sparse_linear() | goal ≤ {GOALS['host_us']:g} µs (module) |",
             "|" + "---|" * (len(cols) + 3)]
    for name, parts in linears.items():
        cells = " | ".join(f"{parts[k]:.1f}" if k in parts else "-" for k, _ in cols)
        rest = parts.get("sparse_linear_us", math.nan) - parts.get("prune_compress_us", math.nan) \
            - parts.get("plan_matmul_us", math.nan)
        module = parts.get("module_forward_us", math.nan)
        goal = "met" if module <= GOALS["host_us"] else f"missed ({module / GOALS['host_us']:.1f}×)"
        lines.append(f"| {name} | {cells} | {rest:.1f} | {goal} |")
    return "\n".join(lines)


def gemm_table(results: dict[str, Any]) -> str:
    lines = ["| model | linear | M | N | K | dense ms | searched ms (alg) | default ms (alg) | speedup searched / default "
             "| default slower by | CUTLASS |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("gemm", {}).get("rows", []):
        cutlass = (_ms(r["cutlass_s"], 4) if "cutlass_s" in r else
                   f"GEMM n/a; compress {_ms(r['cutlass_compress_s'], 2)} ms" if "cutlass_compress_s" in r else "-")
        searched, default = r.get("searched_s"), r.get("default_s")
        lines.append(
            f"| {r['model']} | {r['name']} | {r['M']} | {r['N']} | {r['K']} | {_ms(r['dense_s'], 4)} | "
            f"{_ms(searched, 4)} ({r.get('searched_alg', ['-'])[0]}) | {_ms(default, 4)} ({r.get('default_alg', ['-'])[0]}) | "
            f"{_ratio(r['dense_s'], searched):.3f}× / {_ratio(r['dense_s'], default):.3f}× | "
            f"{(_ratio(default, searched) - 1) * 100:+.1f} % | {cutlass} |")
    return "\n".join(lines)


def _ms(seconds: float | None, digits: int = 3) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1e3:.{digits}f}"


TABLES = (("whole model", model_table), ("W8A8", w8a8_table), ("host time per sparse linear", host_table),
          ("sparse GEMM algorithms", gemm_table))


def main(argv: list[str]) -> int:
    results = json.loads(Path(argv[0]).read_text())
    print(f"{environment(results)}\n")
    for title, table in TABLES:
        print(f"### {title}\n\n{table(results)}\n")
    print(f"{compile_summary(results)}\n")
    print("gaps:" if gaps(results) else "gaps: none")
    for g in gaps(results):
        print(f"- {g}")
    found = problems(results)
    print("problems:" if found else "problems: none")
    for p in found:
        print(f"- {p}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
