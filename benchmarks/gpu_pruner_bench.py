"""GPU pruner + activation-sparse linear: correctness, layout check and timings, in one device run.

Run on the device: ``PYTHONPATH=. python3 benchmarks/gpu_pruner_bench.py $OUT [--sections a,b] [--quick]``.
Sections (each independent; a failure is recorded and the next runs): env, copy, correct, layout,
tune, prune, patterns, linear, layer, int8, repeat. Results go to $OUT/results.json (rewritten after every
section) and $OUT/log.txt; a short table is printed last.

Timing: the library's harness (``ampersim.measure.harness.time_calls``): each measured unit is a list
of calls over rotated input sets (enough sets to exceed ~3x L2, weights rotated too), captured into
one CUDA graph and replayed after a warm-up; per-call time = replay time / sets; median of >= 20
replays (about 0.25 s of them), p10/p90/min/max recorded, plus the SM clock read right after.
Where capture fails the calls run back to back between CUDA events (``method`` says which). Inputs
are fresh random normal values (never zeros). Kernels run with ``DEFAULT_LAUNCH``; ``tune`` sweeps
the compress kernels' launch configurations and reports the best (it changes no default).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from ampersim.core.patterns import NMPattern
from ampersim.kernels import torch_eager
from ampersim.kernels.gpu import cslt_layout as gpu_layout
from ampersim.kernels.gpu import cusparselt
from ampersim.kernels.gpu import pruner as kernels_gpu
from ampersim.kernels.gpu.pruner import DEFAULT_LAUNCH, Launch, LaunchConfig
from ampersim.measure import harness
from ampersim.measure.env import capture_environment
from ampersim.measure.ops import reference_rows, rel_err
from ampersim.runtime import sparse_linear as SL

RESULTS: dict = {}
OUT = Path(".")
QUICK = False
LLAMA_8B = {"q_proj": (4096, 4096), "k_proj": (4096, 1024), "v_proj": (4096, 1024), "o_proj": (4096, 4096),
            "gate_proj": (4096, 14336), "up_proj": (4096, 14336), "down_proj": (14336, 4096)}
LLAMA_70B = {"q_proj": (8192, 8192), "k_proj": (8192, 1024), "v_proj": (8192, 1024), "o_proj": (8192, 8192),
             "gate_proj": (8192, 28672), "up_proj": (8192, 28672), "down_proj": (28672, 8192)}
TOKENS = (1024, 2048, 4096, 8192, 16384)


def log(msg: str) -> None:
    print(msg, flush=True)
    with open(OUT / "log.txt", "a") as fh:
        fh.write(msg + "\n")


def save() -> None:
    (OUT / "results.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def section(fn):
    t0 = time.time()
    try:
        RESULTS[fn.__name__] = fn()
    except Exception as exc:  # noqa: BLE001 - a failed section is recorded; the next one runs
        RESULTS[fn.__name__] = {"error": repr(exc)[:500], "trace": traceback.format_exc()[-3000:]}
    RESULTS.setdefault("section_seconds", {})[fn.__name__] = round(time.time() - t0, 1)
    log(f"[{time.time() - t0:6.1f}s] {fn.__name__}: {str(RESULTS[fn.__name__])[:300]}")
    save()


# ---------------------------------------------------------------- timing
def l2_bytes() -> int:
    return getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20)


def n_sets(set_bytes: int, cap: int = 8) -> int:
    return harness.rotation_sets(set_bytes, l2_bytes(), factor=3.0, max_sets=cap)


def time_calls(calls, min_runs: int = harness.MIN_RUNS, graph: bool = True) -> dict:
    """Seconds per call over ``calls`` (one per rotated set), by the library's harness, plus the SM clock."""
    timing = harness.time_calls(calls, device="cuda", use_graph=graph, min_runs=min_runs)
    return {**timing.model_dump(), "sets": len(calls), "sm_clock_mhz": sm_clock()}


def sm_clock() -> int | None:
    """Current SM clock (MHz) read right after a measurement, to see throttling between sections."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetClockInfo(pynvml.nvmlDeviceGetHandleByIndex(0), pynvml.NVML_CLOCK_SM))
    except Exception:  # noqa: BLE001 - optional reading
        return None


def randn(*shape, dtype=torch.bfloat16):
    return torch.randn(*shape, device="cuda", dtype=torch.float32).to(dtype)


# ---------------------------------------------------------------- sections
def env():
    info = {**capture_environment("cuda").model_dump(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for mod in ("triton", "numpy", "transformers"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as exc:  # noqa: BLE001
            info[mod] = f"missing: {exc!r}"[:120]
    return info


def copy():
    """Device copy ceiling, bytes read + written: cudaMemcpy (eager; a graph memcpy node runs slower)
    and an elementwise kernel (x * 1, graph-replayed). The larger is the run's copy bandwidth."""
    n = 1 << 30
    a = randn(n // 2)
    b = torch.empty_like(a)
    rows = {"memcpy_eager": time_calls([lambda: b.copy_(a)], min_runs=30, graph=False),
            "memcpy_graph": time_calls([lambda: b.copy_(a)], min_runs=30),
            "kernel_graph": time_calls([lambda: torch.mul(a, 1, out=b)], min_runs=30),
            "memcpy_eager_again": time_calls([lambda: b.copy_(a)], min_runs=30, graph=False)}
    for r in rows.values():
        r["gbps_rw"] = 2 * n / r["median_s"] / 1e9
    return {"bytes": n, "runs": rows, "gbps_rw": max(r["gbps_rw"] for r in rows.values())}


def _special(x: torch.Tensor) -> torch.Tensor:
    """Put ties, NaN, +-inf, +-0 and subnormals into the first rows (needs >= 8 rows, K >= 16)."""
    v = lambda *a: torch.tensor(a, dtype=torch.float32).to(x.dtype)  # noqa: E731
    x[0, :8] = 0
    x[1, :8] = v(1, 1, -1, 1, 2, 2, 2, 2)
    x[2, :4] = float("nan")
    x[3, :8] = v(float("inf"), float("nan"), 1, float("-inf"), float("-inf"), 1, float("nan"), float("nan"))
    x[4, :4] = v(-0.0, 0.0, 0.0, -0.0)
    if x.dtype == torch.bfloat16:
        x[5, :8] = v(1e-40, 2e-40, -3e-40, 1e-41, 5e-39, -5e-39, 1e-38, 0)
    elif x.dtype == torch.float16:
        x[5, :8] = v(1e-7, 2e-7, -3e-7, 6e-8, 1e-5, -1e-5, 2e-5, 0)
    x[6, :16] = v(*range(16, 0, -1))
    x[7, :16] = 3
    return x


def correct():
    """prune_gpu (Triton) and eager torch on the GPU against the numpy reference, bit for bit."""
    rows = []
    signed = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for pattern in ("2:4", "1:4", "8:16", "3:8", "16:32", "3:7"):
            k = 252 if pattern == "3:7" else 256
            for use_f in (False, True):
                for shape in ((64, k), (2, 32, 2 * k)):
                    x = randn(*shape, dtype=dtype)
                    _special(x.view(-1, shape[-1]))
                    f = (torch.rand(shape[-1], device="cuda") + 0.25) if use_f else None
                    ref = reference_rows(x, pattern, f, rows=x.shape[0]).view(signed[dtype])
                    row = {"dtype": str(dtype), "pattern": pattern, "factor": use_f, "shape": list(shape)}
                    for name, fn in (("triton", kernels_gpu.prune_gpu), ("torch_eager", torch_eager.prune)):
                        row[name] = bool(torch.equal(fn(x, pattern, factor=f).view(signed[dtype]), ref))
                    rows.append(row)
    bad = [r for r in rows if not (r["triton"] and r["torch_eager"])]
    return {"cases": len(rows), "all_pass": not bad, "failures": bad[:20]}


def _bytes(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.contiguous().view(-1).view(torch.uint8)[:n]


def layout():
    """Fused writers vs torch._cslt_compress, bit for bit, on fresh inputs; plus the run-time check."""
    rows = []
    shapes = [(64, 64), (96, 256), (128, 4096), (1008, 4096), (4096, 14336), (2048, 8192)]
    for dtype in (torch.bfloat16, torch.float16):
        for (r, k) in shapes:
            for use_f in (False, True):
                x = randn(r, k, dtype=dtype)
                f = (torch.rand(k, device="cuda") + 0.25) if use_f else None
                n = gpu_layout.compressed_nbytes(r, k, 2)
                ref = torch._cslt_compress(kernels_gpu.prune_gpu(x, "2:4", factor=f))
                row = {"dtype": str(dtype), "rows": r, "k": k, "factor": use_f, "torch_shape": list(ref.shape),
                       "expected_shape": list(gpu_layout.compressed_shape(r, k, 2))}
                try:
                    got = kernels_gpu.fused_compress_24(x, factor=f, rows_out=r)
                    row["triton"] = bool(got.shape == ref.shape and torch.equal(_bytes(got, n), _bytes(ref, n)))
                except Exception as exc:  # noqa: BLE001
                    row["triton"] = f"error: {exc!r}"[:200]
                rows.append(row)
    for (r, k) in [(64, 64), (96, 256), (1024, 4096), (4096, 14336)]:
        for use_f in (False, True):
            x = randn(r, k)
            f = (torch.rand(k, device="cuda") + 0.25) if use_f else None
            q, s = kernels_gpu.quantize_int8(x, prune_24=True, factor=f)
            ref = torch._cslt_compress(q)
            got, s2 = kernels_gpu.fused_quant_compress_24_int8(x, factor=f, rows_out=r)
            n = gpu_layout.compressed_nbytes(r, k, 1)
            # the dense quantizer must agree with the CPU-side definition too
            keep = torch_eager.prune(x, "2:4", factor=f).float()
            amax = keep.abs().amax(1)
            sref = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
            rows.append({"dtype": "int8", "rows": r, "k": k, "factor": use_f, "torch_shape": list(ref.shape),
                         "triton": bool(got.shape == ref.shape and torch.equal(_bytes(got, n), _bytes(ref, n))),
                         "scales_equal": bool(torch.equal(s, s2)),
                         "scale_rel_err": rel_err(s, sref),
                         "q_max_abs_diff_vs_torch_round": int((q.float() - torch.round(keep / sref[:, None]).clamp(-127, 127)).abs().max().item())})
    ok16 = kernels_gpu.fused_layout_ok("cuda", 2)
    ok8 = kernels_gpu.fused_layout_ok("cuda", 1)
    sixteen = [r for r in rows if r["dtype"] != "int8"]
    return {"cases": rows, "all_match": all(r["triton"] is True for r in sixteen), "self_check_16bit": ok16,
            "self_check_8bit": ok8}


def _prune_impls(x, f=None):
    """name -> (callable, bytes moved per call) for one input x [R, K] bf16."""
    r, k = x.shape
    nbytes = x.numel() * 2
    c24 = gpu_layout.compressed_nbytes(r, k, 2)
    c8 = gpu_layout.compressed_nbytes(r, k, 1)
    return {
        "fused_cslt_triton": (lambda: kernels_gpu.fused_compress_24(x, factor=f), nbytes + c24),
        "fused_mask_2:4_triton": (lambda: kernels_gpu.prune_gpu(x, "2:4", factor=f), 2 * nbytes),
        "fused_mask_8:16_triton": (lambda: kernels_gpu.prune_gpu(x, "8:16", factor=f), 2 * nbytes),
        "quant_cslt_int8_triton": (lambda: kernels_gpu.fused_quant_compress_24_int8(x, factor=f), 2 * nbytes + c8),
        "quant_int8_dense_triton": (lambda: kernels_gpu.quantize_int8(x), 2 * nbytes + x.numel()),
        "cslt_compress_only": (None, None),  # filled per input below (needs a pruned input)
    }


def _sweep(name: str, candidates, run, moved: int, sets) -> dict:
    """Time ``run(x, launch)`` with DEFAULT_LAUNCH's ``name`` replaced by each candidate."""
    rows, best = [], None
    for br, bk, nw in candidates:
        launch = dataclasses.replace(DEFAULT_LAUNCH, **{name: Launch(br, bk, nw)})
        try:
            t = time_calls([(lambda x=x: run(x, launch)) for x in sets])
        except Exception as exc:  # noqa: BLE001
            rows.append({"block_rows": br, "block_cols": bk, "num_warps": nw, "error": repr(exc)[:200]})
            continue
        rows.append({"block_rows": br, "block_cols": bk, "num_warps": nw, **t, "gbps_rw": moved / t["median_s"] / 1e9})
        if best is None or t["median_s"] < best[1]:
            best = (dataclasses.asdict(getattr(launch, name)), t["median_s"])
    return {"rows": rows, "best": best[0] if best else None,
            "default": dataclasses.asdict(getattr(DEFAULT_LAUNCH, name))}


def tune():
    """Launch-config sweep of the fused 2:4 compress kernels at 16384 x 14336 bf16 (defaults unchanged)."""
    r, k = (4096, 14336) if QUICK else (16384, 14336)
    sets = [randn(r, k) for _ in range(n_sets(r * k * 3))]
    c24 = _sweep("compress24", ((64, 64, 4), (64, 128, 4), (64, 128, 8), (32, 128, 4), (64, 256, 8), (16, 256, 4)),
                 lambda x, launch: kernels_gpu.fused_compress_24(x, launch=launch),
                 r * k * 2 + gpu_layout.compressed_nbytes(r, k, 2), sets)
    c8 = _sweep("quant_compress24", ((16, 256, 4), (32, 256, 4), (64, 128, 4), (16, 512, 8), (32, 128, 4)),
                lambda x, launch: kernels_gpu.fused_quant_compress_24_int8(x, launch=launch),
                2 * r * k * 2 + gpu_layout.compressed_nbytes(r, k, 1), sets)
    c8["note"] = "absmax kernel (reads X) + quant/compress kernel (reads X again)"
    return {"shape": [r, k], "compress24": c24, "quant_compress24": c8}


def prune():
    copy_gbps = RESULTS.get("copy", {}).get("gbps_rw")
    rows = []
    shapes = [(8192, 4096), (16384, 14336)] if not QUICK else [(4096, 4096)]
    for (r, k) in shapes:
        sets = [randn(r, k) for _ in range(n_sets(r * k * 4))]
        names = list(_prune_impls(sets[0]))
        for name in names:
            if name == "cslt_compress_only":
                pruned = [kernels_gpu.prune_gpu(x, "2:4") for x in sets]
                calls = [(lambda p=p: torch._cslt_compress(p)) for p in pruned]
                moved = r * k * 2 + gpu_layout.compressed_nbytes(r, k, 2)
            else:
                calls = [_prune_impls(x)[name][0] for x in sets]
                moved = _prune_impls(sets[0])[name][1]
            try:
                t = time_calls(calls)
            except Exception as exc:  # noqa: BLE001
                rows.append({"impl": name, "rows": r, "k": k, "error": repr(exc)[:200]})
                continue
            gbps = moved / t["median_s"] / 1e9
            rows.append({"impl": name, "rows": r, "k": k, **t, "bytes_moved": moved, "gbps_rw": gbps,
                         "input_gbps": r * k * 2 / t["median_s"] / 1e9,
                         "fraction_of_copy": gbps / copy_gbps if copy_gbps else None})
        # eager torch (ampersim.kernels.torch_eager: the harness's torch_eager_* implementations); slow
        x = sets[0]
        for name, fn in (("torch_eager_mask", lambda: torch_eager.prune(x, "2:4")),
                         ("torch_eager_cslt", lambda: torch._cslt_compress(torch_eager.prune(x, "2:4")))):
            t = time_calls([fn], min_runs=5)
            rows.append({"impl": name, "rows": r, "k": k, **t, "input_gbps": r * k * 2 / t["median_s"] / 1e9})
    return {"copy_gbps_rw": copy_gbps, "rows": rows}


SELECT_PATTERNS = ("2:4", "4:8", "8:16", "16:32")


def patterns():
    """fused_mask at 2:4, 4:8, 8:16, 16:32 (issue 17: the selection network). First bit for bit
    against the CPU pruner (bf16, fp16, fp32; with and without a factor; ties, NaN, inf, zeros,
    subnormals), then timed on bf16 against the same run's copy bandwidth: as ``prune_gpu`` launches
    it (DEFAULT_LAUNCH; launch "prune_gpu") and with the pattern's ``LaunchConfig.mask_field`` set to
    a few tiles (launch "BR=.. BK=.. warps=.."; one group per thread needs BR * BK / M >= 32 * warps)."""
    from ampersim.kernels.cpu import prune as prune_cpu

    copy_gbps = RESULTS.get("copy", {}).get("gbps_rw") or copy()["gbps_rw"]
    signed = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
    checks = []
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for pattern in SELECT_PATTERNS:
            for use_f in (False, True):
                x = _special(randn(64, 512, dtype=dtype))
                f = (torch.rand(512, device="cuda") + 0.25) if use_f else None
                got = kernels_gpu.prune_gpu(x, pattern, factor=f).cpu().view(signed[dtype])
                ref = prune_cpu(x.cpu(), pattern, factor=None if f is None else f.cpu()).view(signed[dtype])
                checks.append({"dtype": str(dtype), "pattern": pattern, "factor": use_f,
                               "equal": bool(torch.equal(got, ref))})
    rows = []
    for (r, k) in ([(4096, 4096)] if QUICK else [(8192, 4096), (16384, 14336)]):
        sets = [randn(r, k) for _ in range(n_sets(r * k * 4))]
        factor = torch.rand(k, device="cuda") + 0.5
        moved = 2 * r * k * 2
        for pattern in SELECT_PATTERNS:
            m = int(pattern.split(":")[1])
            tile = LaunchConfig.mask_field(NMPattern.parse(pattern))
            launches = {"prune_gpu": DEFAULT_LAUNCH}
            for br, bk, nw in ((16, max(128, 8 * m), 4), (32, max(128, 8 * m), 4), (16, max(256, 8 * m), 8)):
                launches[f"BR={br} BK={bk} warps={nw}"] = dataclasses.replace(DEFAULT_LAUNCH,
                                                                               **{tile: Launch(br, bk, nw)})
            for use_f in (False, True):
                for name, launch in launches.items():
                    calls = [(lambda x=x, p=pattern, f=factor if use_f else None, launch=launch:
                              kernels_gpu.prune_gpu(x, p, factor=f, launch=launch)) for x in sets]
                    row = {"pattern": pattern, "factor": use_f, "rows": r, "k": k, "launch": name,
                           "tile": dataclasses.asdict(getattr(launch, tile))}
                    try:
                        t = time_calls(calls)
                    except Exception as exc:  # noqa: BLE001 - a failed launch is recorded
                        rows.append({**row, "error": repr(exc)[:200]})
                        continue
                    rows.append({**row, **t, "gbps_rw": moved / t["median_s"] / 1e9,
                                 "fraction_of_copy": moved / t["median_s"] / 1e9 / copy_gbps})
    return {"copy_gbps_rw": copy_gbps, "checks": checks, "all_equal": all(c["equal"] for c in checks),
            "rows": rows}


def _linear_case(name: str, m: int, k: int, n: int, reps: int) -> dict:
    w0 = randn(n, k) / math.sqrt(k)
    set_bytes = (m * k + n * k + m * n) * 2
    s = n_sets(set_bytes)
    xs = [randn(m, k) for _ in range(s)]
    ws = [w0] + [randn(n, k) / math.sqrt(k) for _ in range(s - 1)]
    # correctness on this shape: full pipeline vs dense product of the pruned input
    y = SL.sparse_linear(xs[0], ws[0])
    ref = F.linear(kernels_gpu.prune_gpu(xs[0], "2:4").double(), ws[0].double())
    err = rel_err(y, ref)
    cs = [kernels_gpu.prune_compress_24(x) for x in xs]
    row = {"name": name, "M": m, "K": k, "N": n, "rel_err": err, "check_pass": bool(err < 1e-2),
           "alg": cusparselt.get_plan(cs[0], ws[0]).describe()}
    row["dense"] = time_calls([(lambda x=x, w=w: F.linear(x, w)) for x, w in zip(xs, ws)], min_runs=reps)
    row["sparse_gemm"] = time_calls([(lambda c=c, w=w: cusparselt.sparse_mm(c, w)) for c, w in zip(cs, ws)], min_runs=reps)
    row["prune_compress"] = time_calls([(lambda x=x: kernels_gpu.prune_compress_24(x)) for x in xs], min_runs=reps)
    row["sparse_linear"] = time_calls([(lambda x=x, w=w: SL.sparse_linear(x, w)) for x, w in zip(xs, ws)],
                                      min_runs=reps)
    d = row["dense"]["median_s"]
    row["speedup_gemm"] = d / row["sparse_gemm"]["median_s"]
    row["speedup_linear"] = d / row["sparse_linear"]["median_s"]
    row["dense_tflops"] = 2 * m * k * n / d / 1e12
    return row


def linear():
    rows = []
    tokens = (4096, 16384) if QUICK else TOKENS
    for model, shapes in (("llama-3.1-8b", LLAMA_8B), ("llama-3.1-70b", LLAMA_70B)):
        seen = set()
        for kind, (k, n) in shapes.items():
            if (k, n) in seen:
                continue
            seen.add((k, n))
            for m in tokens:
                try:
                    rows.append({"model": model, "kind": kind, **_linear_case(kind, m, k, n, reps=20)})
                except Exception as exc:  # noqa: BLE001
                    rows.append({"model": model, "kind": kind, "M": m, "K": k, "N": n, "error": repr(exc)[:300]})
                torch.cuda.empty_cache()
            RESULTS["linear"] = {"rows": rows, "partial": True}
            save()
    return {"rows": rows}


def int8():
    rows = []
    tokens = (4096, 16384) if QUICK else (1024, 4096, 16384)
    for kind, (k, n) in LLAMA_8B.items():
        if kind in ("k_proj", "o_proj", "up_proj"):
            continue  # same shapes as v, q, gate
        for m in tokens:
            try:
                w = randn(n, k)
                wq, wscale = SL.quantize_weight_int8(w)
                s = n_sets(m * k * 3 + n * k + m * n * 4)
                xs = [randn(m, k) for _ in range(s)]
                wqs = [wq] + [SL.quantize_weight_int8(randn(n, k))[0] for _ in range(s - 1)]
                qd = [kernels_gpu.quantize_int8(x) for x in xs]
                qp = [kernels_gpu.quantize_int8(x, prune_24=True)[0] for x in xs]
                cs = [kernels_gpu.prune_quant_compress_24_int8(x)[0] for x in xs]
                exact = bool(torch.equal(cusparselt.sparse_mm(cs[0], wq, out_dtype=torch.int32), torch._int_mm(qp[0], wq.t())))
                row = {"kind": kind, "M": m, "K": k, "N": n, "int32_equal_int_mm": exact}
                try:  # the full W8A8 linear (int32 out, one-pass dequantization)
                    y = SL.sparse_linear_int8(xs[0], wq, wscale)
                    sx = kernels_gpu.quantize_int8(xs[0], prune_24=True)[1].double()
                    yref = (qp[0].double() @ wq.double().t()) * sx[:, None] * wscale.double()[None, :]
                    row["linear_rel_err"] = rel_err(y, yref)
                except Exception as exc:  # noqa: BLE001
                    row["linear_error"] = repr(exc)[:300]
                row["dense_int_mm"] = time_calls([(lambda q=q, w=w: torch._int_mm(q[0], w.t())) for q, w in zip(qd, wqs)])
                row["sparse_gemm_int32"] = time_calls([(lambda c=c, w=w: cusparselt.sparse_mm(c, w, out_dtype=torch.int32)) for c, w in zip(cs, wqs)])
                row["quant_dense"] = time_calls([(lambda x=x: kernels_gpu.quantize_int8(x)) for x in xs])
                row["prune_quant_compress"] = time_calls([(lambda x=x: kernels_gpu.prune_quant_compress_24_int8(x)) for x in xs])
                row["dense_pipeline"] = time_calls([(lambda x=x, w=w: torch._int_mm(kernels_gpu.quantize_int8(x)[0], w.t())) for x, w in zip(xs, wqs)])
                row["sparse_pipeline"] = time_calls([(lambda x=x, w=w: cusparselt.sparse_mm(kernels_gpu.prune_quant_compress_24_int8(x)[0], w, out_dtype=torch.int32)) for x, w in zip(xs, wqs)])
                row["speedup_gemm"] = row["dense_int_mm"]["median_s"] / row["sparse_gemm_int32"]["median_s"]
                row["speedup_pipeline"] = row["dense_pipeline"]["median_s"] / row["sparse_pipeline"]["median_s"]
                row["check_pass"] = bool(exact and row.get("linear_rel_err", 1.0) < 1e-2)
                rows.append(row)
            except Exception as exc:  # noqa: BLE001
                rows.append({"kind": kind, "M": m, "K": k, "N": n, "error": repr(exc)[:300]})
            torch.cuda.empty_cache()
        RESULTS["int8"] = {"rows": rows, "partial": True}
        save()
    return {"rows": rows}


def _llama_layer(sparse: bool):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                      head_dim=128, num_hidden_layers=1, max_position_embeddings=131072, rope_theta=500000.0,
                      rms_norm_eps=1e-5, attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    layer = LlamaDecoderLayer(cfg, layer_idx=0)
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.02) if p.dim() > 1 else torch.nn.init.ones_(p)
    layer = layer.to("cuda", torch.bfloat16).eval()
    if sparse:  # amber policy at 2:4: q_proj, gate_proj, down_proj (k, v, o, up dense)
        layer.self_attn.q_proj = SL.ActivationSparseLinear.from_linear(layer.self_attn.q_proj)
        layer.mlp.gate_proj = SL.ActivationSparseLinear.from_linear(layer.mlp.gate_proj)
        layer.mlp.down_proj = SL.ActivationSparseLinear.from_linear(layer.mlp.down_proj)
    return layer, LlamaRotaryEmbedding(cfg).to("cuda")


def layer():
    rows = []
    dense, rope = _llama_layer(False)
    sparse, _ = _llama_layer(True)
    for m in ((4096, 8192) if QUICK else (4096, 8192, 16384)):
        s = n_sets(m * 4096 * 2, cap=2)
        hs = [randn(1, m, 4096) for _ in range(s)]
        pos = torch.arange(m, device="cuda")[None]
        pe = rope(hs[0], pos)
        with torch.no_grad():
            run = lambda mod, h: mod(h, attention_mask=None, position_ids=pos, position_embeddings=pe)  # noqa: E731
            out_s = run(sparse, hs[0])
            out_s = out_s[0] if isinstance(out_s, tuple) else out_s
            # reference: the same weights (same seed), pruned inputs, dense GEMMs
            ref_layer = _llama_layer(True)[0]
            for mod in (ref_layer.self_attn.q_proj, ref_layer.mlp.gate_proj, ref_layer.mlp.down_proj):
                mod.forward = (lambda x, mod=mod: F.linear(kernels_gpu.prune_gpu(x, "2:4"), mod.weight, mod.bias))
            out_r = run(ref_layer, hs[0])
            out_r = out_r[0] if isinstance(out_r, tuple) else out_r
            del ref_layer
            err = rel_err(out_s, out_r)
            td = time_calls([(lambda h=h: run(dense, h)) for h in hs])
            ts = time_calls([(lambda h=h: run(sparse, h)) for h in hs])
        rows.append({"tokens": m, "rel_err_vs_pruned_dense": err, "check_pass": bool(err < 2e-2),
                     "dense": td, "sparse_amber_2:4": ts, "speedup": td["median_s"] / ts["median_s"]})
        torch.cuda.empty_cache()
    return {"config": "Llama-3.1-8B decoder layer (transformers LlamaDecoderLayer, sdpa), bf16, batch 1, "
                      "random weights; amber 2:4: q_proj, gate_proj, down_proj sparse", "rows": rows}


def repeat():
    """The fused 2:4 compress again after the GEMM-heavy sections (same shape as tune): run-to-run spread
    and the effect of the SM clock on this near-issue-bound kernel."""
    r, k = (4096, 14336) if QUICK else (16384, 14336)
    x = randn(r, k)
    rows = [time_calls([lambda: kernels_gpu.fused_compress_24(x)]) for _ in range(2)]
    for t in rows:
        t["gbps_rw"] = (r * k * 2 + gpu_layout.compressed_nbytes(r, k, 2)) / t["median_s"] / 1e9
    return {"shape": [r, k], "config": dataclasses.asdict(DEFAULT_LAUNCH.compress24), "runs": rows}


def summary() -> None:
    log("== summary ==")
    e = RESULTS.get("env", {})
    log(f"{e.get('gpu')} torch {e.get('torch')} cusparselt {e.get('cusparselt')} triton {e.get('triton')} copy {RESULTS.get('copy', {}).get('gbps_rw', 0):.0f} GB/s")
    log(f"correct: {RESULTS.get('correct', {}).get('all_pass')}  layout: {RESULTS.get('layout', {}).get('all_match')} "
        f"self-check 16/8: {RESULTS.get('layout', {}).get('self_check_16bit')}/{RESULTS.get('layout', {}).get('self_check_8bit')}")
    for r in RESULTS.get("prune", {}).get("rows", []):
        if "median_s" in r:
            log(f"prune {r['impl']:26s} {r['rows']}x{r['k']}: {r['median_s'] * 1e3:8.3f} ms {r.get('gbps_rw', 0):7.0f} GB/s rw "
                f"({(r.get('fraction_of_copy') or 0):.2f} of copy)")
    for r in RESULTS.get("linear", {}).get("rows", []):
        if "dense" in r:
            log(f"{r['model'][12:]:3s} {r['kind']:9s} M={r['M']:5d} K={r['K']:5d} N={r['N']:5d} dense {r['dense']['median_s'] * 1e3:7.3f} "
                f"gemm x{r['speedup_gemm']:.2f} linear x{r['speedup_linear']:.2f} prune {r['prune_compress']['median_s'] * 1e3:.3f} ms err {r['rel_err']:.1e}")
    for r in RESULTS.get("int8", {}).get("rows", []):
        if "speedup_gemm" in r:
            log(f"int8 {r['kind']:9s} M={r['M']:5d} gemm x{r['speedup_gemm']:.2f} pipeline x{r['speedup_pipeline']:.2f} exact {r['int32_equal_int_mm']}")
    for t in RESULTS.get("repeat", {}).get("runs", []):
        log(f"repeat fused_cslt: {t['median_s'] * 1e3:.3f} ms {t['gbps_rw']:.0f} GB/s at SM {t.get('sm_clock_mhz')} MHz")
    sel = RESULTS.get("patterns", {})
    if sel.get("rows"):
        log(f"fused_mask vs the CPU pruner: {'all equal' if sel['all_equal'] else 'MISMATCH'}; "
            f"copy {sel['copy_gbps_rw']:.0f} GB/s")
        log("| pattern | factor | X shape | launch | ms | GB/s r+w | of copy |")
        log("|---|---|---|---|---|---|---|")
        for r in sel["rows"]:
            if "median_s" in r:
                log(f"| {r['pattern']} | {'amber' if r['factor'] else '-'} | {r['rows']}x{r['k']} | {r['launch']} | "
                    f"{r['median_s'] * 1e3:.3f} | {r['gbps_rw']:.0f} | {r['fraction_of_copy']:.2f} |")
    for r in RESULTS.get("layer", {}).get("rows", []):
        log(f"layer M={r['tokens']}: dense {r['dense']['median_s'] * 1e3:.2f} ms sparse {r['sparse_amber_2:4']['median_s'] * 1e3:.2f} ms x{r['speedup']:.3f} err {r['rel_err_vs_pruned_dense']:.1e}")


ALL = ("env", "copy", "correct", "layout", "tune", "prune", "patterns", "linear", "layer", "int8", "repeat")


def main() -> None:
    global OUT, QUICK
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--sections", default=",".join(ALL))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    OUT, QUICK = Path(args.out), args.quick
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.sections.split(","):
        section(globals()[name])
    RESULTS["config"] = dataclasses.asdict(DEFAULT_LAUNCH)
    save()
    summary()


if __name__ == "__main__":
    main()
