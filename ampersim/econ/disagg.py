"""Disaggregated prefill and decode (Splitwise, arXiv 2311.18677; DistServe, arXiv 2401.09670): separate
pools sized independently, the KV cache moved between them as its own cost.

- Prefill pool: every request's prompt (after its cached prefix) on replicas that only prefill; the
  first token comes from the prefill step, so TTFT is measured here and the TTFT SLO sizes this pool,
  dense and sparse (sparsity acts only here).
- KV transfer: the prompt's KV cache, ``kv_bytes_per_token`` per GPU of the replica × prompt tokens,
  leaves each prefill GPU over its own link (the tp shards move in parallel) at ``link_gbps``; the
  request reaches the decode pool when its prefill alone would finish (its time on an idle prefill
  replica; queueing in the prefill pool shifts arrivals by at most the TTFT SLO) plus the transfer.
- Decode pool: each request with two or more output tokens holds its prompt's KV (prompt + 1 tokens,
  the prompt cached) and generates the remaining tokens; always dense (the method prunes prefill
  only), so one decode pool serves both paths. The TPOT SLO sizes it (its time to the second token
  must stay within the planner's queue bound: 10× an idle replica's).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ampersim.core.errors import InvalidArgument
from ampersim.core.sourced import Sourced
from ampersim.econ.capacity import CapacityPlan, Replica, build_replica, plan_capacity, require_feasible
from ampersim.econ.serving import SLO, solo_times
from ampersim.econ.traffic import RequestTrace, Traffic, fixed
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.spec import ModelSpec
from ampersim.sim.engine import EngineConfig
from ampersim.sim.scenario import Scenario

KV_LINK_GBPS = Sourced(
    value=50.0, date="2023-03",
    source="derived: one 400 Gb/s InfiniBand NDR port (ConnectX-7) per GPU, as in the DGX H100 (8 x ConnectX-7 for "
           "the 8 GPUs; https://docs.nvidia.com/dgx/dgxh100-user-guide/) = 50 GB/s per GPU, the link Splitwise "
           "moves KV caches over; the full line rate (protocol overhead not modelled)")


@dataclass(frozen=True)
class DisaggregatedPlan:
    """The two pools, the KV transfer, and what sparsity saves (prefill GPUs only)."""

    prefill: CapacityPlan
    decode: CapacityPlan | None       # None: no request generates more than one token
    link_gbps: Sourced
    transfer_s: dict[str, float]      # "mean", "p95" (nan without decode)
    network_gbps: float               # average KV traffic from the prefill pool, GB/s
    kv_bytes_per_token: float         # per GPU of the replica

    def prefill_gpus(self, path: str) -> int | None:
        fleet = self.prefill.paths[path].fleet
        return None if fleet is None else fleet.gpus

    @property
    def decode_gpus(self) -> int:
        return 0 if self.decode is None else self.decode.paths["dense"].fleet.gpus

    def gpus(self, path: str) -> int | None:
        prefill = self.prefill_gpus(path)
        return None if prefill is None else prefill + self.decode_gpus

    @property
    def prefill_gpu_saving(self) -> float | None:
        dense, sparse = self.prefill_gpus("dense"), self.prefill_gpus("sparse")
        return None if not dense or sparse is None else 1.0 - sparse / dense


def kv_transfer_s(prompt_tokens: np.ndarray, kv_bytes_per_token: float, link_gbps: float) -> np.ndarray:
    """Seconds to move each prompt's KV cache (per GPU shard, all shards in parallel) over the link."""
    return np.asarray(prompt_tokens, dtype=float) * kv_bytes_per_token / (link_gbps * 1e9)


def plan_disaggregated(profile: HardwareProfile, scenario: Scenario, traffic: Traffic, slo: SLO,
                       engine: EngineConfig, *, spec: ModelSpec, tp: int | None = None,
                       link_gbps: Sourced = KV_LINK_GBPS) -> DisaggregatedPlan:
    """Size the prefill pool (dense and sparse) under the TTFT SLO and the decode pool under the TPOT SLO."""
    if slo.ttft_s is None or slo.tpot_s is None:
        raise InvalidArgument("disaggregated planning needs a TTFT SLO (prefill pool) and a TPOT SLO (decode pool)",
                              field="slo_ttft_s" if slo.ttft_s is None else "slo_tpot_s")
    if not link_gbps.value > 0:
        raise InvalidArgument(f"kv_link_gbps {link_gbps.value:g}: must be > 0", field="kv_link_gbps")
    one = fixed(1, field="output_dist")
    built: dict[int, Replica] = {}
    prefill = require_feasible(plan_capacity(
        profile, scenario, replace(traffic, outputs=one), replace(slo, tpot_s=None), engine,
        prompts=traffic.prompts, outputs=one, spec=spec, tp=tp, built=built))
    arrival, prompt, output, cached = traffic.draw()
    dense_tp = prefill.paths["dense"].tp if prefill.paths["dense"].feasible else prefill.paths["sparse"].tp
    replica = built.get(dense_tp) or build_replica(profile, scenario, spec, dense_tp, engine)
    per_token = replica.memory.kv_bytes_per_token
    transfer = kv_transfer_s(prompt, per_token, link_gbps.value)
    network = float(traffic.rate_per_s * np.mean(prompt) * per_token / 1e9)
    keep = output >= 2
    if not keep.any():
        return DisaggregatedPlan(prefill, None, link_gbps, {"mean": math.nan, "p95": math.nan}, network, per_token)
    alone, _ = solo_times(prompt[keep], np.ones(int(keep.sum()), dtype=np.int64), replica.costs, engine, "dense",
                          cached[keep])
    ready = arrival[keep] + alone + transfer[keep]
    order = np.argsort(ready, kind="stable")
    decode_trace = RequestTrace("decode pool", ready[order], prompt[keep][order] + 1, output[keep][order] - 1,
                                traffic.warmup_fraction, cached=prompt[keep][order])
    decode = require_feasible(plan_capacity(
        profile, scenario, decode_trace, replace(slo, ttft_s=None), engine, prompts=decode_trace.prompts,
        outputs=decode_trace.outputs, spec=spec, tp=tp, paths=("dense",), with_effect=False))
    return DisaggregatedPlan(prefill, decode, link_gbps,
                             {"mean": float(transfer[keep].mean()), "p95": float(np.percentile(transfer[keep], 95))},
                             network, per_token)
