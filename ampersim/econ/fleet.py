"""What a serving fleet costs end to end, dense vs sparse, and how a prefill speedup becomes a saving.

From a capacity plan (ampersim.econ.capacity: the fewest GPUs meeting the SLOs, each request simulated
from arrival to its last token), per path:

- $/day = GPUs × $/GPU-hour × 24. Cloud: the rent, paid for every hour. Owned: the TCO per GPU-hour
  (ampersim.econ.tco) at the fleet's simulated utilization (busy and idle power differ).
- The GPU time is split between prompts and answers by the simulated prefill share of busy time
  (idle time in proportion): $/M input tokens = $/s × share / input tokens/s × 1e6, $/M output tokens
  = $/s × (1 − share) / output tokens/s × 1e6; $ per 1,000 requests = $/s / requests/s × 1,000.
- Saving = 1 − sparse $/day / dense $/day; $/month = the difference × 30.44 days.

The chain from the prefill step to dollars (``SavingChain``): the isolated prefill speedup s₀ (the
workload's prefill step, as ``predict``) → the prefill GPU time dense / sparse in the fleet s → the
prefill share f of the dense fleet's busy time → the ideal saving f × (1 − 1/s) → the simulated
busy-time saving on the same fleet → whole-replica fleets under the SLOs → $ saved. Each step can
depart from the previous one: chunks share steps with decode tokens (s ≠ s₀), faster prefill changes
queueing and batching (the simulated busy-time saving ≠ the formula), and fleets come in whole replicas
that must meet percentile SLOs (the GPU saving is 0 or a replica, and sparsity may show only as
latency headroom). ``departures`` says which, with the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ampersim.econ.capacity import CapacityPlan, FleetStats
from ampersim.econ.roi import PriceBasis
from ampersim.econ.tco import DAYS_PER_MONTH, owned_gpu_hour
from ampersim.hardware.profile import HardwareProfile

PATHS = ("dense", "sparse")


@dataclass(frozen=True)
class PathCost:
    """End-to-end cost of one path's fleet on one cost basis."""

    path: str
    gpus: int
    usd_per_gpu_hour: float
    usd_per_day: float
    usd_per_m_input_tokens: float
    usd_per_m_output_tokens: float | None  # None: the workload generates no output
    usd_per_1k_requests: float
    utilization: float
    prefill_share: float


def path_cost(path: str, fleet: FleetStats, usd_per_gpu_hour: float) -> PathCost:
    """Cost of ``fleet`` at ``usd_per_gpu_hour`` per GPU (see the module docstring)."""
    usd_per_s = fleet.gpus * usd_per_gpu_hour / 3600.0
    share = fleet.prefill_share if not math.isnan(fleet.prefill_share) else 1.0
    out = fleet.output_tokens_per_s
    decode_share = max(0.0, 1.0 - share)
    return PathCost(
        path, fleet.gpus, usd_per_gpu_hour, fleet.gpus * usd_per_gpu_hour * 24.0,
        usd_per_s * share / fleet.input_tokens_per_s * 1e6,
        usd_per_s * decode_share / out * 1e6 if out > 0 and decode_share > 0 else None,
        usd_per_s / fleet.requests_per_s * 1e3, fleet.utilization, share,
    )


@dataclass(frozen=True)
class FleetCost:
    """Both paths on one cost basis (cloud rent or owned TCO) and the saving."""

    basis: str                     # "cloud" or "owned"
    paths: dict[str, PathCost]

    @property
    def saving(self) -> float:
        """Share of the dense fleet's cost that the sparse fleet saves."""
        return 1.0 - self.paths["sparse"].usd_per_day / self.paths["dense"].usd_per_day

    @property
    def saving_usd_per_month(self) -> float:
        return (self.paths["dense"].usd_per_day - self.paths["sparse"].usd_per_day) * DAYS_PER_MONTH


@dataclass(frozen=True)
class SavingChain:
    """From the prefill step's speedup to the fleet's saving (see the module docstring)."""

    isolated_prefill_speedup: float
    in_fleet_prefill_speedup: float
    prefill_share: float
    formula_saving: float          # prefill_share × (1 − 1 / in_fleet_prefill_speedup)
    busy_time_saving: float        # simulated: 1 − sparse / dense busy GPU-seconds per request, same fleet
    gpus: dict[str, int]
    gpu_saving: float              # 1 − sparse GPUs / dense GPUs (whole replicas under the SLOs)
    departures: tuple[str, ...]


def cost_chain(plan: CapacityPlan) -> SavingChain | None:
    """The chain of ``plan`` (None without its sparsity effect: an infeasible dense path)."""
    e = plan.effect
    if e is None or plan.paths["sparse"].fleet is None:
        return None
    gpus = {p: plan.paths[p].fleet.gpus for p in PATHS}
    busy = 1.0 - e.sparse_at_fleet.gpu_s_per_request / e.dense_at_fleet.gpu_s_per_request
    gpu_saving = 1.0 - gpus["sparse"] / gpus["dense"]
    notes = []
    s0, s = e.isolated_prefill_speedup, e.in_fleet_prefill_speedup
    if abs(s / s0 - 1) > 0.01:
        notes.append(f"prefill runs {s:.3f}x faster in the fleet vs {s0:.3f}x for the workload's prefill step alone: "
                     "the fleet prefills chunks of its step budget, after cached or earlier chunks, sharing steps "
                     "with decode tokens")
    if abs(busy - e.expected_saving) > 0.005:
        notes.append(f"the simulated busy GPU time on the same fleet falls {100 * busy:.2f} % vs the formula's "
                     f"{100 * e.expected_saving:.2f} %: a continuously batching replica steps whenever any request "
                     f"is running (dense utilization {e.dense_at_fleet.utilization:.2f}), so prefill time saved "
                     "turns into more, smaller decode steps and shorter queues; what sparsity frees is capacity "
                     "(requests per GPU under the SLOs), not idle time")
    if gpus["dense"] == gpus["sparse"]:
        d, sp, key = e.dense_at_fleet, e.sparse_at_fleet, f"p{plan.slo.percentile:g}"
        notes.append(f"both paths need {gpus['dense']} GPUs (whole replicas of tp {plan.paths['dense'].tp} meeting "
                     f"the SLOs): the saving shows as latency headroom, {key} TTFT {d.ttft_s[key] * 1e3:.4g} -> "
                     f"{sp.ttft_s[key] * 1e3:.4g} ms" + (
                         f", {key} TPOT {d.tpot_s[key] * 1e3:.4g} -> {sp.tpot_s[key] * 1e3:.4g} ms"
                         if not math.isnan(d.tpot_s[key]) else ""))
    elif gpu_saving > busy + 0.005:
        notes.append(f"whole replicas: sparse needs {gpus['sparse']} GPUs vs {gpus['dense']}, "
                     f"{100 * gpu_saving:.1f} % fewer, more than the busy-time saving because the dense fleet sits "
                     "just above a replica boundary")
    elif gpu_saving < busy - 0.005:
        notes.append(f"whole replicas: sparse needs {gpus['sparse']} GPUs vs {gpus['dense']}, "
                     f"{100 * gpu_saving:.1f} % fewer, less than the busy-time saving (SLO percentiles and "
                     "replica granularity)")
    return SavingChain(s0, s, e.prefill_share, e.expected_saving, busy, gpus, gpu_saving, tuple(notes))


@dataclass(frozen=True)
class FleetCosts:
    """The end-to-end costs of a plan: cloud and owned (where priced) and the chain."""

    cloud: FleetCost | None
    owned: FleetCost | None
    chain: SavingChain | None
    prices: PriceBasis


def fleet_costs(plan: CapacityPlan, profile: HardwareProfile, basis: PriceBasis) -> FleetCosts | None:
    """Cost both paths of ``plan`` (None when a path has no feasible fleet)."""
    fleets = {p: plan.paths[p].fleet for p in PATHS if p in plan.paths}
    if len(fleets) != len(PATHS) or any(f is None for f in fleets.values()):
        return None
    cloud = owned = None
    if basis.cloud_usd_per_gpu_hour is not None:
        rent = basis.cloud_usd_per_gpu_hour.value
        cloud = FleetCost("cloud", {p: path_cost(p, f, rent) for p, f in fleets.items()})
    if basis.purchase_usd is not None:
        owned = FleetCost("owned", {
            p: path_cost(p, f, owned_gpu_hour(profile, basis.tco, basis.purchase_usd.value, f.utilization).total)
            for p, f in fleets.items()})
    return FleetCosts(cloud, owned, cost_chain(plan), basis)


def break_even_gemm_speedup(target: float, prefill_share: float, gemm_share: float,
                            overhead_share: float = 0.0) -> float | None:
    """The native sparse-GEMM speedup k a part would need for an end-to-end saving of ``target``.

    With ``gemm_share`` g of the dense prefill time in the sparsified GEMMs and ``overhead_share`` o
    (runtime pruning, as a share of the dense prefill time) added on the sparse path, prefill takes
    (1 − g) + g/k + o of its dense time; the saving is prefill_share f × (1 − that), so
    k = g / (g − o − T/f). None when g − o − T/f <= 0: no GEMM speedup reaches the target."""
    if not (prefill_share > 0 and gemm_share > 0):
        return None
    room = gemm_share - overhead_share - target / prefill_share
    return gemm_share / room if room > 0 else None
