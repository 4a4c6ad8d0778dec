"""First look at a lent GPU: environment, ceilings, and raw cuSPARSELt compressed layouts.

Run on the device from the repository root, with ampersim importable (`pip install -e .` or
PYTHONPATH=.): `python3 benchmarks/gpu_probe.py $OUT`. Writes probe.json, cslt_layouts.npz and a log.
Each section is independent; a failure is recorded and the next section runs. Timings use the
project's harness (ampersim.measure.harness.time_calls: settle warm-up, CUDA events, median of
>= 20 runs), eagerly, as the probes were written.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ampersim.measure.harness import time_calls

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
OUT.mkdir(parents=True, exist_ok=True)
RESULTS: dict = {}


def section(fn):
    t0 = time.time()
    try:
        RESULTS[fn.__name__] = fn()
    except Exception as exc:  # noqa: BLE001 - probe records every failure and goes on
        RESULTS[fn.__name__] = {"error": repr(exc), "trace": traceback.format_exc()[-2000:]}
    print(f"[{time.time() - t0:6.1f}s] {fn.__name__}: {str(RESULTS[fn.__name__])[:400]}", flush=True)
    return fn


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def bench(fn):
    """Milliseconds per eager call of ``fn`` (the harness's timing, back-to-back CUDA events)."""
    t = time_calls([fn], use_graph=False)
    return {"median_ms": t.median_s * 1e3, "min_ms": t.min_s * 1e3, "max_ms": t.max_s * 1e3, "runs": t.runs}


@section
def env():
    p = torch.cuda.get_device_properties(0)
    info = {
        "gpu": torch.cuda.get_device_name(0), "sm_count": p.multi_processor_count,
        "l2_bytes": getattr(p, "L2_cache_size", None), "mem_bytes": p.total_memory,
        "capability": list(torch.cuda.get_device_capability(0)),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cusparselt": torch.backends.cusparselt.version() if torch.backends.cusparselt.is_available() else None,
        "driver": sh("nvidia-smi --query-gpu=driver_version --format=csv,noheader"),
        "clocks": sh("nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit --format=csv"),
        "python": sys.version.split()[0],
    }
    for mod in ("triton", "numba", "cupy", "transformers", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as exc:  # noqa: BLE001
            info[mod] = f"missing: {exc!r}"[:200]
    info["pip_numba"] = sh("python3 -m pip list 2>/dev/null | grep -i -E 'numba|cuda-python|nvidia-' | head -40")
    return info


@section
def copy_bandwidth():
    n = 1 << 30  # 1 GiB
    a = torch.randn(n // 2, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    r = bench(lambda: b.copy_(a))
    r["gbps_rw"] = 2 * n / (r["median_ms"] * 1e-3) / 1e9
    return r


@section
def dense_bf16_8192():
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn_like(a)
    r = bench(lambda: a @ b)
    r["tflops"] = 2 * 8192 ** 3 / (r["median_ms"] * 1e-3) / 1e12
    return r


def prune24(x):
    g = x.reshape(x.shape[0], -1, 4)
    idx = g.abs().float().topk(2, dim=-1).indices
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True)
    return (g * mask).reshape_as(x)


@section
def cslt_layouts():
    """Compress known 2:4 matrices and save inputs + raw compressed bytes for offline decoding."""
    arrays = {}
    meta = []
    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float16, torch.int8, torch.float8_e4m3fn):
        for rows, cols in ((32, 64), (64, 128), (128, 256), (256, 512)):
            name = f"{str(dtype).split('.')[-1]}_{rows}x{cols}"
            try:
                if dtype == torch.int8:
                    base = torch.randint(1, 120, (rows, cols), device="cuda", dtype=torch.int32)
                    sign = torch.randint(0, 2, (rows, cols), device="cuda") * 2 - 1
                    x = (base * sign).to(torch.float32)
                else:
                    x = (torch.arange(rows * cols, device="cuda", dtype=torch.float32).reshape(rows, cols) % 251 + 1) \
                        * torch.where(torch.rand(rows, cols, device="cuda") < 0.5, -1.0, 1.0) / 8
                # random 2:4 positions
                keep = torch.rand(rows, cols // 4, 4, device="cuda").argsort(-1)[..., :2]
                mask = torch.zeros(rows, cols // 4, 4, device="cuda", dtype=torch.bool).scatter_(-1, keep, True)
                x = (x.reshape(rows, cols // 4, 4) * mask).reshape(rows, cols).to(dtype)
                c = torch._cslt_compress(x)
                arrays[name + "_in"] = x.view(torch.int16 if x.element_size() == 2 else torch.int8).cpu().numpy()
                arrays[name + "_out"] = c.view(torch.uint8).cpu().numpy() if c.element_size() == 1 else c.contiguous().view(torch.int16).cpu().numpy()
                meta.append({"name": name, "in_shape": list(x.shape), "out_shape": list(c.shape),
                             "out_dtype": str(c.dtype), "out_numel": c.numel()})
            except Exception as exc:  # noqa: BLE001
                meta.append({"name": name, "error": repr(exc)[:300]})
    np.savez_compressed(OUT / "cslt_layouts.npz", **arrays)
    return meta


@section
def sparse_vs_dense_bf16():
    rows = []
    for m, k, n in ((16384, 14336, 4096), (4096, 4096, 4096), (16384, 4096, 14336), (1024, 4096, 4096)):
        x = prune24(torch.randn(m, k, dtype=torch.bfloat16, device="cuda"))
        w = torch.randn(n, k, dtype=torch.bfloat16, device="cuda") / k ** 0.5
        c = torch._cslt_compress(x)
        alg = torch._C._cusparselt.mm_search(c, w.t(), None, None, None, False)
        ys = torch._cslt_sparse_mm(c, w.t(), alg_id=alg[0], split_k=alg[1], split_k_mode=alg[2])
        yd = F.linear(x, w)
        err = ((ys.float() - yd.float()).norm() / yd.float().norm()).item()
        d = bench(lambda: F.linear(x, w))
        s = bench(lambda: torch._cslt_sparse_mm(c, w.t(), alg_id=alg[0], split_k=alg[1], split_k_mode=alg[2]))
        s0 = bench(lambda: torch._cslt_sparse_mm(c, w.t()))
        comp = bench(lambda: torch._cslt_compress(x))
        pr = bench(lambda: prune24(x))
        rows.append({"M": m, "K": k, "N": n, "alg": list(alg), "rel_err": err, "dense_ms": d["median_ms"],
                     "sparse_ms": s["median_ms"], "sparse_alg0_ms": s0["median_ms"],
                     "compress_ms": comp["median_ms"], "eager_prune_ms": pr["median_ms"],
                     "speedup": d["median_ms"] / s["median_ms"]})
    return rows


@section
def int8_paths():
    m, k, n = 8192, 4096, 4096
    x = torch.randint(-100, 100, (m, k), dtype=torch.int8, device="cuda")
    x = prune24(x.float()).to(torch.int8)
    w = torch.randint(-100, 100, (n, k), dtype=torch.int8, device="cuda")
    yd = torch._int_mm(x, w.t())
    c = torch._cslt_compress(x)
    out = {}
    for od in (torch.int32, torch.bfloat16, None):
        try:
            ys = torch._cslt_sparse_mm(c, w.t(), out_dtype=od)
            out[str(od)] = {"dtype": str(ys.dtype),
                            "max_abs_diff": (ys.float() - yd.float()).abs().max().item()}
        except Exception as exc:  # noqa: BLE001
            out[str(od)] = repr(exc)[:300]
    out["dense_int_mm"] = bench(lambda: torch._int_mm(x, w.t()))
    return out


@section
def triton_check():
    import triton
    import triton.language as tl

    @triton.jit
    def k(x_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = offs < n
        tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=m) + 1, mask=m)

    x = torch.arange(1000, device="cuda", dtype=torch.float32)
    k[(4,)](x, 1000, BLOCK=256)
    return {"ok": bool((x.cpu() == torch.arange(1000) + 1).all())}


(OUT / "probe.json").write_text(json.dumps(RESULTS, indent=2, default=str))
print("== summary ==")
print(json.dumps(RESULTS.get("env"), default=str)[:1500])
for r in RESULTS.get("sparse_vs_dense_bf16") or []:
    print(r if isinstance(r, str) else {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
