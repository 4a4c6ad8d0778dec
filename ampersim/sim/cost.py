"""Pure, vectorized per-op cost model: (op shapes, profile parameters) -> seconds and what bounds them.

Every op's time is ``max(compute, memory, interconnect) + overhead`` and its bound is the largest
of the four terms. Equations and assumptions: docs/cost-model.md. All functions take numpy arrays
(any broadcastable shapes) and return arrays; no state, no I/O.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import DTYPE_BYTES, OP_KINDS
from ampersim.hardware.profile import Efficiency, GemmEfficiency, HardwareProfile, PruneImpl
from ampersim.sim.execution import SparseExecution
from ampersim.sim.graph import Op

BOUNDS = ("compute", "memory", "overhead", "interconnect")
NO_BOUND = -1  # an op that costs nothing on this path (a prune op on the dense path)
_TERA, _GIGA, _MICRO = 1e12, 1e9, 1e-6


@dataclass(frozen=True)
class Terms:
    """The four time terms of an op (seconds); any may be a scalar 0."""

    compute: np.ndarray | float = 0.0
    memory: np.ndarray | float = 0.0
    overhead: np.ndarray | float = 0.0
    interconnect: np.ndarray | float = 0.0

    def seconds(self) -> np.ndarray:
        return np.maximum(np.maximum(self.compute, self.memory), self.interconnect) + self.overhead

    def bound(self) -> np.ndarray:
        stacked = np.broadcast_arrays(self.compute, self.memory, self.overhead, self.interconnect)
        return np.argmax(np.stack(stacked), axis=0)


# -- GEMM -----------------------------------------------------------------------------------------
def wave_efficiency(M, N, groups, tile_m: float, tile_n: float, compute_units: float, split_k: bool = True):
    """Useful share of the tile work the GPU schedules.

    Output tiles are tile_m × tile_n (as tall as M when M < tile_m), padded at the matrix edges.
    With fewer tiles than compute units the library splits K into floor(units / tiles) parts
    (split-K) to fill the GPU when ``split_k``; otherwise tiles run in whole waves of ``compute_units``.
    """
    tm = np.minimum(tile_m, M)
    tiles = groups * np.ceil(M / tm) * np.ceil(N / tile_n)
    parts = np.maximum(1.0, np.floor(compute_units / tiles)) if split_k else 1.0
    work = tiles * parts  # split-K parts
    waves = np.ceil(work / compute_units)
    return (groups * M * N / (tiles * tm * tile_n)) * work / (waves * compute_units)


def gemm_efficiency(M, N, groups, eff: GemmEfficiency, compute_units: float):
    """Achieved fraction of peak: peak_fraction · w · M / (M + w · m_half), w = wave efficiency.

    Equivalent to: the wave-quantized tile work at peak_fraction of peak, plus a fixed cost of
    m_half extra rows of work per GEMM (pipeline fill and drain), which makes time monotone in M.
    """
    w = wave_efficiency(M, N, groups, eff.tile_m.value, eff.tile_n.value, compute_units, eff.split_k)
    return eff.peak_fraction.value * w * M / (M + w * eff.m_half.value)


def gemm_terms(M, N, K, groups, *, peak_tflops: float, eff: GemmEfficiency, compute_units: float,
               bandwidth_gbps: float, memory_fraction: float, in_bytes: float, out_bytes: float,
               a_fraction: float = 1.0) -> Terms:
    """GEMM Y[M,N] = X[M,K]·W[N,K]ᵀ (× groups). ``a_fraction`` scales the X operand's bytes
    (compressed sparse operand: values + metadata); peak_tflops is dense or native-sparse.

    The memory term is ``eff.memory_latency_us`` + traffic at ``eff.memory_fraction`` of the
    bandwidth (the streaming ``memory_fraction`` where the GEMM path has none).
    Groups run as one grouped kernel, or (``eff.grouped`` false) as ``groups`` launches of one
    GEMM each: every term × groups, each launch with its own waves and overhead."""
    launches = 1.0 if eff.grouped else groups
    per_kernel = groups / launches
    flops = 2.0 * M * N * K * per_kernel
    compute = flops / (peak_tflops * _TERA * gemm_efficiency(M, N, per_kernel, eff, compute_units))
    traffic = per_kernel * (M * K * in_bytes * a_fraction + N * K * in_bytes + M * N * out_bytes)
    fraction = eff.memory_fraction.value if eff.memory_fraction else memory_fraction
    latency = eff.memory_latency_us.value * _MICRO if eff.memory_latency_us else 0.0
    memory = latency + traffic / (bandwidth_gbps * _GIGA * fraction)
    return Terms(compute=launches * compute, memory=launches * memory,
                 overhead=launches * eff.overhead_us.value * _MICRO)


# -- memory-bound and other ops -------------------------------------------------------------------
def stream_terms(nbytes, *, bandwidth_gbps: float, memory_fraction: float, kernel_overhead_us: float) -> Terms:
    """A memory-bound kernel moving ``nbytes`` (norms, elementwise, embedding gather)."""
    return Terms(memory=nbytes / (bandwidth_gbps * _GIGA * memory_fraction), overhead=kernel_overhead_us * _MICRO)


def attention_terms(flops, nbytes, *, peak_tflops: float, attention_fraction: float, bandwidth_gbps: float,
                    memory_fraction: float, kernel_overhead_us: float, keys=None, keys_half: float | None = None,
                    memory_latency_us: float = 0.0) -> Terms:
    """Flash-style fused attention: its FLOPs at a fraction of the dense peak vs its compulsory bytes
    (read after ``memory_latency_us``: decode attention's start-up before it streams the KV cache).

    With ``keys_half`` the fraction ramps with the mean keys per query: fraction · keys / (keys + keys_half)
    (short contexts give each thread block little work to pipeline)."""
    if keys_half:
        attention_fraction = attention_fraction * keys / (keys + keys_half)
    return Terms(compute=flops / (peak_tflops * _TERA * attention_fraction),
                 memory=memory_latency_us * _MICRO + nbytes / (bandwidth_gbps * _GIGA * memory_fraction),
                 overhead=kernel_overhead_us * _MICRO)


def prune_terms(input_bytes, impl: PruneImpl, *, bandwidth_gbps: float, kernel_overhead_us: float,
                elements=0.0, group_size: int = 0) -> Terms:
    """Runtime N:M pruning (+ compression) of an activation: bytes_per_input_byte × its bytes at
    bandwidth_fraction of peak bandwidth, plus one kernel overhead per launch. With a selection_rate,
    the top-n-of-m selection (``elements`` × ``group_size`` comparisons) is the compute term."""
    traffic = impl.bytes_per_input_byte.value * input_bytes
    compute = (elements * group_size / (impl.selection_rate.value * _TERA)) if impl.selection_rate else 0.0
    return Terms(compute=compute, memory=traffic / (bandwidth_gbps * _GIGA * impl.bandwidth_fraction.value),
                 overhead=impl.kernels * kernel_overhead_us * _MICRO)


def allreduce_terms(nbytes, *, tp: int, link_gbps: float, allreduce_fraction: float, latency_us: float) -> Terms:
    """Ring all-reduce over ``tp`` GPUs: 2(tp−1)/tp of the message crosses each link, 2(tp−1) latency steps."""
    steps = 2 * (tp - 1)
    return Terms(interconnect=steps / tp * nbytes / (link_gbps * _GIGA * allreduce_fraction),
                 overhead=steps * latency_us * _MICRO)


# -- a whole graph --------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpColumns:
    """An op graph as columns: per-op arrays of shape (ops, points)."""

    kind: np.ndarray
    count: np.ndarray
    M: np.ndarray
    N: np.ndarray
    K: np.ndarray
    groups: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    path: np.ndarray  # per op: "both", "dense" or "sparse" (core.vocab.OP_PATHS)

    @classmethod
    def from_ops(cls, ops: Sequence[Op]) -> OpColumns:
        fields = ("M", "N", "K", "groups", "flops", "bytes")
        points = max((np.size(getattr(op, f)) for op in ops for f in fields), default=1)

        def column(name: str) -> np.ndarray:
            return np.stack([np.broadcast_to(np.asarray(getattr(op, name), dtype=float), (points,)) for op in ops])

        return cls(kind=np.array([op.kind for op in ops]), count=np.array([op.count for op in ops], dtype=float),
                   path=np.array([op.path for op in ops]), **{f: column(f) for f in fields})


@dataclass(frozen=True)
class GraphCost:
    """Per-op seconds and bound codes (index into BOUNDS, NO_BOUND) for both paths, shape (ops, points)."""

    dense_s: np.ndarray
    sparse_s: np.ndarray
    dense_bound: np.ndarray
    sparse_bound: np.ndarray

    def totals(self, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step seconds (dense, sparse) per point: Σ count × per-op seconds."""
        return count @ self.dense_s, count @ self.sparse_s


def decode_attention_memory(eff: Efficiency) -> tuple[float, float]:
    """(bandwidth fraction, latency µs) of decode attention's KV-cache read: the profile's decode values,
    else the streaming memory_fraction and no latency."""
    fraction = eff.decode_attention_fraction or eff.memory_fraction
    return fraction.value, eff.decode_attention_latency_us.value if eff.decode_attention_latency_us else 0.0


def attention_peak_tflops(profile: HardwareProfile, dtype: str) -> float:
    """Attention runs at the 16-bit dense peak when the GEMMs are 8-bit (bf16, else fp16, else dtype)."""
    if DTYPE_BYTES[dtype] < 2:
        for wide in ("bf16", "fp16"):
            if wide in profile.matrix:
                return profile.matrix[wide].dense_tflops.value
    return profile.matrix[dtype].dense_tflops.value


def cost_graph(cols: OpColumns, profile: HardwareProfile, dtype: str, execution: SparseExecution | None,
               tp: int) -> GraphCost:
    """Cost every op of a graph on ``profile`` for the dense path and the sparse path.

    ``execution`` None: a graph without sparse GEMMs or prune ops (both paths are the dense one).
    An op that runs on one path only (``path``) costs nothing, with no bound, on the other."""
    unknown = set(cols.kind.tolist()) - set(OP_KINDS)
    if unknown:
        raise ValueError(f"op kinds without a cost function: {sorted(unknown)}")
    if execution is None and np.isin(cols.kind, ("sparse_gemm", "prune")).any():
        raise ValueError("a graph with sparse GEMMs or prune ops needs a SparseExecution")
    eff = profile.efficiency
    bw, mem_frac = profile.memory.bandwidth_gbps.value, eff.memory_fraction.value
    units = profile.compute_units.value
    k_over = eff.kernel_overhead_us.value
    in_b, out_b = DTYPE_BYTES[dtype], max(DTYPE_BYTES[dtype], 2.0)
    dense = np.zeros_like(cols.M)
    sparse = np.zeros_like(cols.M)
    dense_bound = np.full(cols.M.shape, NO_BOUND)
    sparse_bound = np.full(cols.M.shape, NO_BOUND)

    def put(rows: np.ndarray, terms: Terms, both: bool = True) -> None:
        seconds, bound = terms.seconds(), terms.bound()
        sparse[rows], sparse_bound[rows] = seconds, bound
        if both:
            dense[rows], dense_bound[rows] = seconds, bound

    def rows_of(*kinds: str) -> np.ndarray:
        return np.flatnonzero(np.isin(cols.kind, kinds))

    gemm = rows_of("gemm", "sparse_gemm")
    if gemm.size:
        M, N, K, g = cols.M[gemm], cols.N[gemm], cols.K[gemm], cols.groups[gemm]
        common = dict(compute_units=units, bandwidth_gbps=bw, memory_fraction=mem_frac, in_bytes=in_b, out_bytes=out_b)
        rates = profile.matrix[dtype]
        put(gemm, gemm_terms(M, N, K, g, peak_tflops=rates.dense_tflops.value * rates.gemm_scale(False),
                             eff=eff.dense_gemm, **common))
        sp = rows_of("sparse_gemm")
        if sp.size and execution.compressed:
            M, N, K, g = cols.M[sp], cols.N[sp], cols.K[sp], cols.groups[sp]
            put(sp, gemm_terms(M, N, K, g, peak_tflops=execution.sparse_tflops * rates.gemm_scale(True),
                               eff=eff.sparse_gemm,
                               a_fraction=execution.compressed_fraction, **common), both=False)
    rows = rows_of("norm", "elementwise", "embedding")
    if rows.size:
        put(rows, stream_terms(cols.bytes[rows], bandwidth_gbps=bw, memory_fraction=mem_frac, kernel_overhead_us=k_over))
    keys_half = eff.attention_keys_half.value if eff.attention_keys_half else None
    for kind, (fraction, latency) in (("attention", (mem_frac, 0.0)),
                                      ("decode_attention", decode_attention_memory(eff))):
        rows = rows_of(kind)
        if rows.size:
            put(rows, attention_terms(cols.flops[rows], cols.bytes[rows],
                                      peak_tflops=attention_peak_tflops(profile, dtype),
                                      attention_fraction=eff.attention_fraction.value, bandwidth_gbps=bw,
                                      memory_fraction=fraction, kernel_overhead_us=k_over, keys=cols.N[rows],
                                      keys_half=keys_half, memory_latency_us=latency))
    rows = rows_of("prune")
    if rows.size:
        put(rows, prune_terms(cols.bytes[rows], execution.prune_impl, bandwidth_gbps=bw, kernel_overhead_us=k_over,
                              elements=cols.M[rows] * cols.K[rows], group_size=execution.pattern.m), both=False)
    rows = rows_of("allreduce")
    if rows.size:
        if profile.interconnect is None:
            raise InvalidArgument(f"profile {profile.name} has no interconnect: tp must be 1 (got {tp})", field="tp")
        link = profile.interconnect
        put(rows, allreduce_terms(cols.bytes[rows], tp=tp, link_gbps=link.bandwidth_gbps.value,
                                  allreduce_fraction=eff.allreduce_fraction.value, latency_us=link.latency_us.value))
    for path, seconds, bound in (("sparse", dense, dense_bound), ("dense", sparse, sparse_bound)):
        other = cols.path == path  # ops of the other path only
        seconds[other], bound[other] = 0.0, NO_BOUND
    return GraphCost(dense, sparse, dense_bound, sparse_bound)
