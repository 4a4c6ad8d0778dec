"""Tensor-parallel all-reduce on the lent multi-GPU machine, written as ampersim measurement records.

Launch with torchrun (one process per GPU), from the repository root:
    torchrun --nproc_per_node=2 benchmarks/allreduce_bench.py --out validation/h100x2-allreduce.jsonl
For every model and token count it takes the all-reduce ops of the simulator's op graph at
tp = world size (the same message sizes `ampersim predict --tp N` costs), checks one all-reduce of
fresh random data against the sum computed locally, then times NCCL all_reduce with CUDA events
(ampersim.measure.harness: warm-up, a fixed number of runs so that every rank runs the same
collectives, median and spread). Rank 0 appends one typed record per size. NVLink multicast
(NVLS) stays off, as the lending machine requires. The calls are eager, each after a barrier, so a
timing includes NCCL's host-side launch and the wait for the peer rank (the small-message latency
`ampersim calibrate` fits is therefore an upper bound for CUDA-graph-captured all-reduces).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from datetime import datetime, timezone

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import numpy as np
import torch
import torch.distributed as dist

from ampersim.measure.env import capture_environment
from ampersim.measure.harness import event_times, summarize
from ampersim.measure.records import Check, MeasuredShape, MeasurementWriter, OpMeasurement, SkipRecord, header_record
from ampersim.models.registry import load_model_spec
from ampersim.sim.graph import build_graph
from ampersim.sparsity.policy import resolve_policy

RUNS = 30
WARMUP = 10


def allreduce_ops(model: str, tokens: int, tp: int) -> list:
    """The distinct all-reduce ops of one prefill step (attention and MLP outputs share a size)."""
    spec = load_model_spec(model)
    graph = build_graph(spec, resolve_policy("none", spec), tokens, 1, "bf16", tp)
    ops = [op for op in graph if op.kind == "allreduce"]
    first = {}
    for op in ops:
        first.setdefault(float(op.bytes), op)
    return list(first.values())


def rank_data(rank: int, numel: int, seed: int) -> torch.Tensor:
    gen = torch.Generator(device="cuda").manual_seed(seed * 1000 + rank)
    return torch.randn(numel, generator=gen, device="cuda", dtype=torch.float32).to(torch.bfloat16)


def check(numel: int, world: int, rank: int, seed: int) -> Check:
    """All-reduce fresh data once; compare with the sum of every rank's data computed here."""
    x = rank_data(rank, numel, seed)
    expected = sum(rank_data(r, numel, seed).float() for r in range(world))
    dist.all_reduce(x)
    err = ((x.float() - expected).norm() / expected.norm()).item()
    return Check(rel_err=err, tol=1e-2, ok=bool(np.isfinite(err) and err < 1e-2))


def time_allreduce(numel: int) -> list[float]:
    """Seconds of RUNS all-reduces alternating over two buffers, each after a barrier (not timed)."""
    bufs = itertools.cycle([torch.randn(numel, device="cuda", dtype=torch.bfloat16) for _ in range(2)])
    for _ in range(WARMUP):
        dist.all_reduce(next(bufs))
    torch.cuda.synchronize()
    return event_times(lambda: dist.all_reduce(next(bufs)), RUNS, before_each=dist.barrier)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", default="llama-3.1-8b,llama-3.1-70b,qwen2-7b")
    parser.add_argument("--tokens", default="256,1024,4096,16384")
    args = parser.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(rank % torch.cuda.device_count())
    writer = None
    if rank == 0:
        env = capture_environment("cuda").model_copy(update={
            "world_size": world, "nccl": ".".join(map(str, torch.cuda.nccl.version())),
            "nccl_nvls_enable": os.environ.get("NCCL_NVLS_ENABLE")})
        writer = MeasurementWriter(args.out, header_record(env, sys.argv, datetime.now(timezone.utc).isoformat(
            timespec="seconds")))
    seed = 0
    for model in args.models.split(","):
        for tokens in (int(t) for t in args.tokens.split(",")):
            for op in allreduce_ops(model, tokens, world):
                seed += 1
                numel = int(op.bytes) // 2
                checked = check(numel, world, rank, seed)
                per_call = time_allreduce(numel) if checked.ok else []
                if rank != 0:
                    continue
                if not checked.ok:
                    writer.write(SkipRecord(what=f"{model} T={tokens} {op.name} ({op.bytes / 1e6:.1f} MB)",
                                            reason=f"all-reduce check failed: relative error {checked.rel_err:.3g}"))
                    continue
                timing = summarize(per_call, "cuda_events", 1, note="NCCL all_reduce, eager, barrier before each run")
                writer.write(OpMeasurement(
                    workload=model, model=model, tokens=tokens, batch=1, dtype="bf16", tp=world, pattern=None,
                    policy="none", scoring=None, variant="dense", prune_impl=None, op=op.to_record(), also=[],
                    measured=MeasuredShape(M=float(op.M), N=0, K=float(op.K), groups=1, sets=2),
                    impl="torch.distributed.all_reduce (NCCL)", check=checked, timing=timing))
                gbps = op.bytes / timing.median_s / 1e9
                print(f"{model:14s} {tokens:6d} {op.bytes / 1e6:9.1f} MB  {timing.median_s * 1e6:9.1f} us "
                      f"algbw {gbps:7.1f} GB/s  busbw {gbps * 2 * (world - 1) / world:7.1f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
