"""Issue 15 (sections 1, 2, 4) in one device run: persistent cuSPARSELt plans, eager / compiled / graph
prefill of the whole Llama-3.1-8B, W8A8 + 2:4 layers and model, searched vs default sparse-GEMM algorithms.

Run on the device: ``PYTHONPATH=. python3 benchmarks/gpu_eager_prefill.py $OUT [--deadline S] [--sections a,b]``.
Sections run in priority order; each is independent (a failure is recorded with its traceback and
the next runs) and skipped once the deadline is near: env, correct, host, model, w8a8, gemm, compile.
The ctypes binding is first exercised in a child process (probe): if that fails or crashes, the
sections use torch's ``_cslt_sparse_mm`` instead of the plans and say so.
Outputs: $OUT/results.json (rewritten after every section), $OUT/log.txt, and the GEMM timings as
ampersim measurement files $OUT/gemm-searched.jsonl and $OUT/gemm-default.jsonl (same dense rows;
2:4 rows with cuSPARSELt's searched resp. default algorithm) for ``ampersim validate``. A short table
is printed last.

Correctness before timing: every sparse result is compared with the dense product of the same
pruned input (fresh random inputs, never zeros; outputs poisoned with NaN where this script owns
them), the whole models layer by layer (teacher-forced) against eager masking + F.linear (W8A8: the
float model of the same quantization). Timing: ``ampersim.measure.harness.time_calls`` (0.2 s busy
warm-up, CUDA events; graph mode replays one CUDA graph; GEMMs rotate input sets past 4x L2).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from ampersim.kernels.gpu import cusparselt, triton_elementwise
from ampersim.kernels.gpu import pruner as kernels_gpu
from ampersim.measure import harness
from ampersim.measure.env import capture_environment
from ampersim.measure.model import DecoderModel, SparsePath, rotary_tables, silu_mul_eager
from ampersim.measure.ops import rel_err, rope_eager
from ampersim.measure.records import Check, GemmChoice, MeasuredShape, MeasurementWriter, OpMeasurement, header_record
from ampersim.models.registry import load_model_spec as get_model
from ampersim.runtime import sparse_linear as SL
from ampersim.sim.graph import build_graph
from ampersim.sparsity.policy import resolve_policy

RESULTS: dict = {}
OUT = Path(".")
START = time.time()
DEADLINE = 300.0
MODEL_TOKENS = (1024, 4096, 16384)
TOL = 2e-2  # bf16 relative error bound (docs/validation.md)
# GEMM points: (model, tokens); 8B at every length, 70B at 256 plus down_proj at every length.
GEMM_POINTS = {"llama-3.1-8b": {"tokens": (256, 1024, 4096, 16384), "long": ()},
               "llama-3.1-70b": {"tokens": (256,), "long": (1024, 4096, 16384)}}
CUTLASS_POINTS = {(4096, 4096), (16384, 4096)}  # (tokens, K) of the 8B shapes timed through CUTLASS too


def log(msg: str) -> None:
    line = f"[{time.time() - START:6.1f}s] {msg}"
    print(line, flush=True)
    with open(OUT / "log.txt", "a") as fh:
        fh.write(line + "\n")


def save() -> None:
    (OUT / "results.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def left() -> float:
    return DEADLINE - (time.time() - START)


def section(fn, need_s: float) -> None:
    if left() < need_s:
        RESULTS[fn.__name__] = {"skipped": f"deadline: {left():.0f} s left, section needs ~{need_s:.0f} s"}
        log(f"{fn.__name__}: skipped (deadline)")
        return
    t0 = time.time()
    try:
        RESULTS[fn.__name__] = fn()
    except Exception as exc:  # noqa: BLE001 - a failed section is recorded; the next one runs
        RESULTS[fn.__name__] = {"error": repr(exc)[:800], "trace": traceback.format_exc()[-4000:]}
    RESULTS.setdefault("section_seconds", {})[fn.__name__] = round(time.time() - t0, 1)
    save()
    log(f"{fn.__name__} done in {time.time() - t0:.1f} s: {str(RESULTS[fn.__name__])[:400]}")


def timing(t: harness.Timing) -> dict:
    return t.model_dump()


def fresh(shape, dtype=torch.bfloat16, scale=1.0):
    return (torch.randn(*shape, device="cuda") * scale).to(dtype)


def cslt_torch(c, w, alg=None):
    """torch's own path: _cslt_sparse_mm, plan rebuilt on every call (alg: searched (id, split_k, mode))."""
    if alg is None:
        return torch._cslt_sparse_mm(c, w.t())
    return torch._cslt_sparse_mm(c, w.t(), alg_id=alg[0], split_k=alg[1], split_k_mode=alg[2])


PROBE = """
import torch
from ampersim.kernels.gpu import cusparselt, pruner as kernels_gpu
x = torch.randn(64, 256, device="cuda").to(torch.bfloat16)
w = (torch.randn(128, 256, device="cuda") / 16).to(torch.bfloat16)
c = kernels_gpu.prune_compress_24(x, rows_out=64)
y = cusparselt.sparse_mm(c, w, algorithm="default")
ref = kernels_gpu.prune_gpu(x, "2:4").float() @ w.float().t()
assert ((y.float() - ref).norm() / ref.norm()).item() < 2e-2
cusparselt.compress(kernels_gpu.prune_gpu(x, "2:4"))
torch.cuda.synchronize()
print("probe ok", cusparselt.library().path, cusparselt.library().version())
"""
PLANS_OK = True  # set by the probe: False -> sections fall back to torch._cslt_sparse_mm


# -- sections ------------------------------------------------------------------------------------
def probe() -> dict:
    """The ctypes binding in a child process first: a crash there must not end this run."""
    global PLANS_OK
    PLANS_OK = False  # until the child says otherwise (a timeout raises and leaves it False)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    PLANS_OK = done.returncode == 0
    return {"returncode": done.returncode, "stdout": done.stdout[-500:], "stderr": done.stderr[-2000:]}


def env() -> dict:
    out = capture_environment("cuda").model_dump()
    out["cusparselt_library"] = cusparselt.library_path()
    out["cusparselt_torch"] = torch.backends.cusparselt.version()
    import triton

    out["triton"] = triton.__version__
    for name in ("cuda.bindings", "nvmath"):
        try:
            module = __import__(name, fromlist=["__version__"])
            out[name] = getattr(module, "__version__", "present")
        except Exception as exc:  # noqa: BLE001
            out[name] = f"absent ({type(exc).__name__})"
    out["fused_layout_ok_bf16"] = kernels_gpu.fused_layout_ok("cuda", 2)
    out["fused_layout_ok_int8"] = kernels_gpu.fused_layout_ok("cuda", 1)
    if PLANS_OK:
        out["cusparselt_binding"] = (f"ctypes (ampersim.kernels.gpu.cusparselt), library "
                                     f"{cusparselt.library().version()}")
        out["plan_layout_ok_bf16"] = cusparselt.layout_ok("cuda", 2)
        out["plan_layout_ok_int8"] = cusparselt.layout_ok("cuda", 1)
    RESULTS["env"] = out
    save()
    return out


def correct() -> dict:
    """Plans vs dense products of the same pruned input (bf16, int8 -> int32 exact, sparse and dense W8A8)."""
    if not PLANS_OK:
        return {"skipped": "binding probe failed"}
    rows_out = []
    for rows, n, k in ((64, 128, 256), (1000, 4096, 4096), (256, 1024, 4096), (2048, 4096, 14336)):
        x = fresh((rows, k))
        w = fresh((n, k), scale=k ** -0.5)
        bucket = SL.token_bucket(rows, 16)
        pruned = kernels_gpu.prune_gpu(x, "2:4")
        ref = F.pad(pruned, (0, 0, 0, bucket - rows)).double() @ w.double().t()
        c = kernels_gpu.prune_compress_24(x, rows_out=bucket)
        for algorithm in cusparselt.ALGORITHMS:
            plan = cusparselt.get_plan(c, w, algorithm=algorithm)
            out = torch.full((bucket, n), float("nan"), dtype=torch.bfloat16, device="cuda")
            plan.run(c.data_ptr(), w.data_ptr(), out.data_ptr(), None, torch.cuda.current_stream().cuda_stream)
            err = rel_err(out, ref)
            torch_err = rel_err(cslt_torch(c, w), ref)
            rows_out.append({"dtype": "bf16", "rows": rows, "bucket": bucket, "N": n, "K": k, "algorithm": algorithm,
                             "rel_err": err, "torch_cslt_rel_err": torch_err, "ok": err <= TOL, **plan.describe()})
        y = SL.sparse_linear(x, w)
        err = rel_err(y, ref[:rows])
        rows_out.append({"dtype": "bf16", "what": "sparse_linear", "rows": rows, "N": n, "K": k, "rel_err": err,
                         "ok": err <= TOL and y.shape == (rows, n)})
    for rows, n, k in ((96, 256, 256), (1000, 4096, 4096), (4096, 14336, 4096)):
        x = fresh((rows, k))
        w_q, w_scale = SL.quantize_weight_int8(fresh((n, k)))
        bucket = SL.token_bucket(rows, 32)
        c, s = kernels_gpu.prune_quant_compress_24_int8(x, rows_out=bucket)
        q, _ = kernels_gpu.quantize_int8(x, prune_24=True)
        exact = torch._int_mm(F.pad(q, (0, 0, 0, bucket - rows)), w_q.t())
        got = cusparselt.sparse_mm(c, w_q, out_dtype=torch.int32)
        rows_out.append({"dtype": "int8->int32", "rows": rows, "bucket": bucket, "N": n, "K": k,
                         "exact": bool(torch.equal(got, exact)), "ok": bool(torch.equal(got, exact))})
        y = SL.sparse_linear_int8(x, w_q, w_scale)
        ref = (exact[:rows].double() * s[:rows, None].double() * w_scale[None, :].double())
        err = rel_err(y, ref)
        rows_out.append({"dtype": "int8 2:4 W8A8 (int32 + dequant)", "rows": rows, "N": n, "K": k, "rel_err": err, "ok": err <= TOL})
        yd = SL.dense_linear_int8(x, w_q, w_scale)
        qd, sd = kernels_gpu.quantize_int8(x)
        refd = torch._int_mm(qd, w_q.t()).double() * sd[:, None].double() * w_scale[None, :].double()
        err = rel_err(yd, refd)
        rows_out.append({"dtype": "int8 dense W8A8", "rows": rows, "N": n, "K": k, "rel_err": err, "ok": err <= TOL})
    return {"rows": rows_out, "all_ok": all(r["ok"] for r in rows_out)}


def _host_loop(fn, calls: int = 50) -> float:
    """Host seconds per call of ``fn``, measured as the time to enqueue ``calls`` calls (no sync inside)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    host = (time.perf_counter() - t0) / calls
    torch.cuda.synchronize()
    return host


def host() -> dict:
    """Host time per sparse linear (and its parts) at 4096 tokens, q_proj (4096 -> 4096) and down_proj."""
    out = {}
    for name, (n, k) in {"q_proj": (4096, 4096), "down_proj": (4096, 14336)}.items():
        x = fresh((4096, k))
        w = fresh((n, k), scale=k ** -0.5)
        c = kernels_gpu.prune_compress_24(x, rows_out=4096)
        alg = torch._C._cusparselt.mm_search(c, w.t(), None, None, None, False)
        alg = (int(alg[0]), int(alg[1]), int(alg[2]))
        out[name] = {
            "prune_compress_us": _host_loop(lambda: kernels_gpu.prune_compress_24(x, rows_out=4096)) * 1e6,
            "torch_cslt_sparse_mm_us": _host_loop(lambda: cslt_torch(c, w, alg), calls=20) * 1e6,
            "dense_linear_us": _host_loop(lambda: F.linear(x, w)) * 1e6,
        }
        if PLANS_OK:
            cusparselt.sparse_mm(c, w)
            module = SL.ActivationSparseLinear(w)
            out[name].update({
                "sparse_linear_us": _host_loop(lambda: SL.sparse_linear(x, w)) * 1e6,
                "module_forward_us": _host_loop(lambda: module(x)) * 1e6,
                "plan_matmul_us": _host_loop(lambda: cusparselt.sparse_mm(c, w)) * 1e6,
                "custom_op_us": _host_loop(lambda: torch.ops.ampersim.sparse_linear_24(x, [w], None)) * 1e6,
            })
            plan, out_buf = cusparselt.get_plan(c, w), torch.empty((4096, n), dtype=x.dtype, device="cuda")
            stream = torch.cuda.current_stream().cuda_stream
            out[name].update({  # the parts of one sparse linear, each alone
                "triton_launch_only_us": _host_loop(lambda: kernels_gpu._launch_compress24(
                    x, None, 4096, kernels_gpu.DEFAULT_LAUNCH)) * 1e6,
                "cusparselt_ctypes_only_us": _host_loop(lambda: plan.run(
                    c.data_ptr(), w.data_ptr(), out_buf.data_ptr(), None, stream)) * 1e6,
                "torch_empty_us": _host_loop(lambda: torch.empty((4096, n), dtype=x.dtype, device="cuda")) * 1e6,
                "current_stream_us": _host_loop(lambda: torch.cuda.current_stream().cuda_stream) * 1e6,
            })
        try:
            pruned = kernels_gpu.prune_gpu(x, "2:4")
            xs = torch.sparse.SparseSemiStructuredTensorCUTLASS.from_dense(pruned)
            out[name]["cutlass_mm_us"] = _host_loop(
                lambda: torch._sparse_semi_structured_mm(xs.packed, xs.meta, w.t())) * 1e6
        except Exception as exc:  # noqa: BLE001
            out[name]["cutlass_error"] = repr(exc)[:300]
    return out


def _graph_time(calls, min_runs: int = harness.MIN_RUNS) -> harness.Timing:
    return harness.time_calls(calls, use_graph=True, min_runs=min_runs)


def gemm() -> dict:
    """Dense vs 2:4 with searched and default plans (+ CUTLASS at a few points), as measurement files."""
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = header_record(capture_environment("cuda"), sys.argv, created)
    writers = {a: MeasurementWriter(OUT / f"gemm-{a}.jsonl", header) for a in cusparselt.ALGORITHMS}
    rows = []
    seen = set()
    for model, plan in GEMM_POINTS.items():
        spec = get_model(model)
        for tokens in sorted(set(plan["tokens"]) | set(plan["long"])):
            ops = build_graph(spec, resolve_policy("all", spec, pattern="2:4"), tokens, 1, "bf16", 1)
            for op in ops:
                if op.kind != "sparse_gemm" or op.name == "lm_head":
                    continue
                if tokens in plan["long"] and tokens not in plan["tokens"] and op.attrs.get("linear") != "down_proj":
                    continue
                M, N, K = int(op.M), int(op.N), int(op.K)
                if (M, N, K) in seen:
                    continue
                seen.add((M, N, K))
                if left() < 70:  # leave the compile section its time
                    return {"rows": rows, "stopped": "deadline"}
                rows.append(_gemm_point(model, tokens, op, M, N, K, l2, writers))
                log(f"gemm {model} {op.name} M={M} N={N} K={K}: " + ", ".join(
                    f"{k}={v * 1e3:.4f}ms" for k, v in rows[-1].items() if k.endswith("_s") and v))
    for w in writers.values():
        w.close()
    return {"rows": rows}


def _gemm_point(model, tokens, op, M, N, K, l2, writers) -> dict:
    sets = harness.rotation_sets((M * K + N * K) * 2, l2)
    xs = [fresh((M, K)) for _ in range(sets)]
    ws = [fresh((N, K), scale=K ** -0.5) for _ in range(sets)]
    pruned = [kernels_gpu.prune_gpu(x, "2:4") for x in xs]
    cs = [kernels_gpu.prune_compress_24(x, rows_out=M) for x in xs]
    ref = pruned[0][:256].double() @ ws[0].double().t()
    dense_calls = [lambda x=x, w=w: F.linear(x, w) for x, w in zip(xs, ws)]
    base = dict(workload=model, model=model, tokens=tokens, batch=1, dtype="bf16", tp=1, pattern="2:4", policy="all",
                scoring="amber", prune_impl=None, op=op.to_record(), also=[],
                measured=MeasuredShape(M=M, N=N, K=K, groups=1, sets=sets, launches=1))
    dense_err = rel_err(F.linear(pruned[0][:256], ws[0]), ref)
    t_dense = _graph_time(dense_calls)
    row = {"model": model, "name": op.name, "tokens": tokens, "M": M, "N": N, "K": K, "dense_s": t_dense.median_s}
    for algorithm, writer in writers.items():
        if dense_err <= TOL:
            writer.write(OpMeasurement(**base, variant="dense", impl="F.linear", timing=t_dense,
                                       check=Check(rel_err=dense_err, tol=TOL, ok=True)))
        if PLANS_OK:
            plan = cusparselt.get_plan(cs[0], ws[0], algorithm=algorithm)
            config = plan.describe()
            mm = lambda c, w, a=algorithm: cusparselt.sparse_mm(c, w, algorithm=a)  # noqa: E731
            impl = (f"cuSPARSELt plan ({algorithm}: alg_id={plan.alg_id}, split_k={plan.split_k}, "
                    f"split_k_mode={plan.split_k_mode})")
        else:  # torch's per-call plans: the same kernels in a graph replay
            found = torch._C._cusparselt.mm_search(cs[0], ws[0].t(), None, None, None, False)
            alg = (int(found[0]), int(found[1]), int(found[2])) if algorithm == "searched" else None
            config = {"algorithm": algorithm, "alg_id": alg[0] if alg else 0, "split_k": alg[1] if alg else 1,
                      "split_k_mode": alg[2] if alg else -1}
            mm = lambda c, w, a=alg: cslt_torch(c, w, a)  # noqa: E731
            impl = f"torch._cslt_sparse_mm ({algorithm}: {config})"
        err = rel_err(mm(cs[0], ws[0])[:256], ref)
        if not err <= TOL:
            row[f"{algorithm}_error"] = f"check failed: rel_err {err:.3g}"
            continue
        t = _graph_time([lambda c=c, w=w: mm(c, w) for c, w in zip(cs, ws)])
        row[f"{algorithm}_s"] = t.median_s
        row[f"{algorithm}_alg"] = [config["alg_id"], config["split_k"], config["split_k_mode"]]
        writer.write(OpMeasurement(**base, variant="sparse", impl=impl, timing=t, note=f"sparse GEMM: {algorithm}",
                                   check=Check(rel_err=err, tol=TOL, ok=True),
                                   extra=GemmChoice(alg=tuple(row[f"{algorithm}_alg"]))))
    if (M, K) in CUTLASS_POINTS or (model == "llama-3.1-70b" and op.attrs.get("linear") == "down_proj" and M == 4096):
        try:
            t0 = time.perf_counter()
            packed = [torch.sparse.SparseSemiStructuredTensorCUTLASS.from_dense(p) for p in pruned]
            torch.cuda.synchronize()
            row["cutlass_compress_s"] = (time.perf_counter() - t0) / len(pruned)
            wts = [w.t() for w in ws]
            err = rel_err(torch._sparse_semi_structured_mm(packed[0].packed, packed[0].meta, wts[0])[:256], ref)
            row["cutlass_rel_err"] = err
            if err <= TOL:
                row["cutlass_s"] = _graph_time([lambda p=p, wt=wt: torch._sparse_semi_structured_mm(p.packed, p.meta, wt)
                                                for p, wt in zip(packed, wts)]).median_s
        except Exception as exc:  # noqa: BLE001
            row["cutlass_error"] = repr(exc)[:300]
    return row


# -- whole models --------------------------------------------------------------------------------
def _plans_path() -> SparsePath:
    """Amber 2:4 with persistent plans: the matmul prunes + compresses + multiplies (one custom op
    under torch.compile), so ``prune`` passes the activation through."""
    if not PLANS_OK:
        raise RuntimeError("cuSPARSELt binding probe failed: no plans path")
    return SparsePath("fused_cslt_plans", lambda x: x, True, (2, 4),
                      matmul=lambda x, lin, T: SL.sparse_linears_24(x, [lin.w])[0])


def _torch_cslt_path() -> SparsePath:
    return SparsePath("fused_cslt", lambda x: kernels_gpu.prune_compress_24(x), True, (2, 4))


def _int8_path() -> SparsePath:
    if PLANS_OK:
        return SparsePath("w8a8_fused_cslt_plans", lambda x: x, True, (2, 4),
                          matmul=lambda x, lin, T: SL.sparse_linear_int8(x, lin.w_q, lin.w_scale))

    def torch_int8(x, lin, T):  # torch's per-call plan, default algorithm
        c, s = kernels_gpu.prune_quant_compress_24_int8(x, rows_out=SL.token_bucket(T, 32))
        acc = torch._cslt_sparse_mm(c, lin.w_q.t(), out_dtype=torch.int32)[:T]
        return triton_elementwise.dequant(acc, s, lin.w_scale, x.dtype)
    return SparsePath("w8a8_fused_cslt_torch", lambda x: x, True, (2, 4), matmul=torch_int8)


def _model_inputs(spec, T):
    ids = torch.randint(0, spec.vocab_size, (T,), device="cuda")
    cos, sin = rotary_tables(T, spec.head_dim, "cuda", "bf16", spec.rope_theta)
    return ids, cos, sin


def _time_model(fn, T, use_graph) -> dict:
    """Timing of one forward (errors recorded, not raised: the next configuration still runs)."""
    try:
        t = harness.time_calls([fn], use_graph=use_graph, min_runs=5 if T >= 4096 else 10, warmup=2)
    except Exception as exc:  # noqa: BLE001
        torch.cuda.synchronize()
        return {"median_s": math.nan, "error": repr(exc)[:400]}
    out = timing(t)
    if not use_graph:  # host enqueue time of one forward (the GPU may still be busy)
        t0 = time.perf_counter()
        fn()
        out["host_enqueue_s"] = time.perf_counter() - t0
        torch.cuda.synchronize()
    return out


def _errors(model, spec, path) -> dict:
    ids, cos, sin = _model_inputs(spec, 1024)
    errs = model.layer_errors(ids, cos, sin, path)
    return {"max_layer_rel_err": max(errs), "ok": max(errs) <= TOL and all(math.isfinite(e) for e in errs)}


STATE: dict = {}


def model() -> dict:
    spec = get_model("llama-3.1-8b")
    policy = resolve_policy("amber", spec, pattern="2:4")
    m = STATE["bf16"] = DecoderModel(spec, policy, "bf16", "cuda")
    old = _torch_cslt_path()
    out = {"policy_note": policy.note, "rows": []}
    variants = [("dense", None)]
    if PLANS_OK:
        plans = _plans_path()
        out["check_plans"] = _errors(m, spec, plans)
        if out["check_plans"]["ok"]:
            variants.append(("amber_2:4_plans", plans))
    if len(variants) == 1:  # no plans: torch's per-call plans in every mode instead
        out["check_torch_cslt"] = _errors(m, spec, old)
        variants.append(("amber_2:4_torch_cslt", old))
    for T in MODEL_TOKENS:
        ids, cos, sin = _model_inputs(spec, T)
        for variant, path in variants:
            for mode in ("eager", "graph"):
                if left() < 40:
                    out["stopped"] = "deadline"
                    return out
                t = _time_model(lambda p=path: m(ids, cos, sin, p), T, mode == "graph")
                out["rows"].append({"tokens": T, "variant": variant, "mode": mode, **t})
                log(f"model bf16 T={T} {variant} {mode}: {t['median_s'] * 1e3:.2f} ms")
                RESULTS["model"] = out
                save()
        if T == 1024 and variants[-1][1] is not old:  # torch's per-call plans, eagerly: this start
            t = _time_model(lambda: m(ids, cos, sin, old), T, False)
            out["rows"].append({"tokens": T, "variant": "amber_2:4_torch_cslt", "mode": "eager", **t})
    return out


def w8a8() -> dict:
    spec = get_model("llama-3.1-8b")
    policy = resolve_policy("amber", spec, pattern="2:4")
    m = DecoderModel(spec, policy, "bf16", "cuda", int8=True)
    dense_bf16 = STATE.get("bf16") or DecoderModel(spec, policy, "bf16", "cuda")  # run without a path: dense
    STATE["bf16"] = dense_bf16
    path = _int8_path()
    out = {"check_sparse": _errors(m, spec, path), "rows": [], "layers": []}
    ids, cos, sin = _model_inputs(spec, 1024)
    x = F.embedding(ids, m.embed)
    out["check_dense_int8_layer0"] = rel_err(m.layers[0](x, cos, sin, None), m.layers[0](x, cos, sin, None, reference=True))
    if not (out["check_sparse"]["ok"] and out["check_dense_int8_layer0"] <= TOL):
        return out
    layer = m.layers[0]
    for T in MODEL_TOKENS:
        ids, cos, sin = _model_inputs(spec, T)
        x = F.embedding(ids, m.embed)
        for variant, fn in (("bf16_dense", lambda: dense_bf16.layers[0](x, cos, sin, None)),
                            ("int8_dense", lambda: layer(x, cos, sin, None)),
                            ("int8_amber_2:4", lambda: layer(x, cos, sin, path))):
            out["layers"].append({"tokens": T, "variant": variant, "mode": "graph", **_time_model(fn, 1024, True)})
        for variant, model_, p in (("int8_dense", m, None), ("int8_amber_2:4", m, path)):  # bf16: section model
            for mode in ("eager", "graph"):
                if left() < 40:
                    out["stopped"] = "deadline"
                    return out
                t = _time_model(lambda mm=model_, pp=p: mm(ids, cos, sin, pp), T, mode == "graph")
                out["rows"].append({"tokens": T, "variant": variant, "mode": mode, **t})
                log(f"model w8a8 T={T} {variant} {mode}: {t['median_s'] * 1e3:.2f} ms")
                RESULTS["w8a8"] = out
                save()
    return out


def compile_() -> dict:
    """torch.compile (Inductor, default mode) of the decoder-layer function; one compiled graph per
    layer kind serves all layers; rotary and SiLU·up are left to Inductor (eager formulations)."""
    spec = get_model("llama-3.1-8b")
    policy = resolve_policy("amber", spec, pattern="2:4")
    m = STATE.get("bf16") or DecoderModel(spec, policy, "bf16", "cuda")
    for layer in m.layers:
        layer.rope, layer.silu_mul = rope_eager, silu_mul_eager
    plans = _plans_path()
    from torch._dynamo.utils import counters

    def run_layer(layer, x, cos, sin, path):
        return layer(x, cos, sin, path)

    compiled = torch.compile(run_layer)
    out = {"rows": []}
    ids, cos, sin = _model_inputs(spec, 1024)
    x = F.embedding(ids, m.embed)
    t0 = time.perf_counter()
    got = compiled(m.layers[0], x, cos, sin, plans)
    out["first_compile_s"] = time.perf_counter() - t0
    out["check_rel_err"] = rel_err(got, m.layers[0](x, cos, sin, plans))
    for T in MODEL_TOKENS:
        ids, cos, sin = _model_inputs(spec, T)
        for variant, path in (("dense", None), ("amber_2:4_plans", plans)):
            if left() < 30:
                out["stopped"] = "deadline"
                return out
            t0 = time.perf_counter()
            try:
                m(ids, cos, sin, path, run_layer=compiled)
            except Exception as exc:  # noqa: BLE001
                out["rows"].append({"tokens": T, "variant": variant, "mode": "compile", "median_s": math.nan,
                                    "error": repr(exc)[:400]})
                continue
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
            t = _time_model(lambda p=path: m(ids, cos, sin, p, run_layer=compiled), T, False)
            out["rows"].append({"tokens": T, "variant": variant, "mode": "compile", "first_call_s": first, **t})
            log(f"model compile T={T} {variant}: {t['median_s'] * 1e3:.2f} ms (first call {first:.1f} s)")
            RESULTS["compile"] = out
            save()
    out["graph_breaks"] = dict(counters["graph_break"])
    out["unique_graphs"] = counters["stats"].get("unique_graphs")
    return out


compile_.__name__ = "compile"


def table() -> None:
    """Short summary printed last."""
    print("\n== summary ==")
    c = RESULTS.get("correct", {})
    print(f"correct: all_ok={c.get('all_ok')}  env layout plan bf16/int8: "
          f"{RESULTS.get('env', {}).get('plan_layout_ok_bf16')}/{RESULTS.get('env', {}).get('plan_layout_ok_int8')}")
    for name, h in (RESULTS.get("host") or {}).items():
        if isinstance(h, dict):
            print(f"host {name}: " + " ".join(f"{k}={v:.1f}" for k, v in h.items() if isinstance(v, float)))
    for sec in ("model", "w8a8", "compile"):
        rows = (RESULTS.get(sec) or {}).get("rows", [])
        by = {(r["tokens"], r["variant"], r["mode"]): r["median_s"] for r in rows}
        dense = {(r["tokens"], r["mode"]): r["median_s"] for r in (RESULTS.get("model") or {}).get("rows", [])
                 if r["variant"] == "dense"}
        for (T, variant, mode), s in sorted(by.items()):
            base = by.get((T, "dense", mode)) or dense.get((T, mode))
            print(f"{sec:8s} T={T:6d} {mode:7s} {variant:22s} {s * 1e3:9.2f} ms  x{base / s if base else float('nan'):.3f}")
    for r in (RESULTS.get("gemm") or {}).get("rows", []):
        d = r["dense_s"]
        print(f"gemm {r['model'][-3:]} {r['name']:9s} M={r['M']:6d} dense {d * 1e3:.4f}  searched "
              f"x{d / r.get('searched_s', math.nan):.3f} default x{d / r.get('default_s', math.nan):.3f} "
              f"cutlass x{d / r.get('cutlass_s', math.nan):.3f}")
    for sec, v in RESULTS.items():
        if isinstance(v, dict) and ("error" in v or "skipped" in v):
            print(f"{sec}: {v.get('error') or v.get('skipped')}")


def main() -> None:
    global OUT, DEADLINE
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--deadline", type=float, default=DEADLINE)
    parser.add_argument("--sections", default="env,correct,host,model,w8a8,gemm,compile")
    args = parser.parse_args()
    OUT, DEADLINE = Path(args.out), args.deadline
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = args.sections.split(",")
    needs = {"env": 10, "correct": 15, "host": 10, "model": 60, "w8a8": 60, "gemm": 100, "compile": 60}
    section(probe, 5)
    for fn in (env, correct, host, model, w8a8, gemm, compile_):
        if fn.__name__ in wanted:
            section(fn, needs[fn.__name__])
    RESULTS["plans"] = cusparselt.plans()
    RESULTS["total_s"] = time.time() - START
    save()
    try:
        RESULTS["nvidia_smi_end"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=clocks.sm,power.draw,temperature.gpu", "--format=csv"],
            capture_output=True, text=True, timeout=10).stdout
    except Exception:  # noqa: BLE001
        pass
    save()
    table()


if __name__ == "__main__":
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "16")
    main()
