"""HardwareProfile: the accelerator data the cost model runs on, validated on load.

Every number is a ``Sourced`` value (datasheet URL, 'assumed: why' or 'measured: file'). Dense and
sparse peaks are kept apart; a sparse peak exists only for patterns the hardware accelerates natively.
Efficiency parameters (how much of a peak real kernels reach, per-kernel overheads, runtime
pruning implementations) live here too, so calibration can replace assumptions with measurements.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ampersim.core.errors import NotFound, not_found
from ampersim.core.patterns import NMPattern
from ampersim.core.schema import Frozen
from ampersim.core.sourced import FractionSourced, NonNegativeSourced, PositiveSourced
from ampersim.core.vocab import DType, SparseGemmImpl


class MatrixRates(Frozen):
    """Peak matrix throughput for one dtype: dense, and sparse per natively accelerated pattern."""

    dense_tflops: PositiveSourced
    sparse_tflops: dict[str, PositiveSourced] = Field(
        default_factory=dict,
        description="Sparse peak per natively accelerated N:M pattern (e.g. '2:4'); empty if none.",
    )

    dense_gemm_scale: PositiveSourced | None = Field(
        default=None,
        description="Achieved dense-GEMM rate of this dtype relative to what efficiency.dense_gemm gives at "
                    "dense_tflops (that efficiency is fitted on 16-bit GEMMs): the compute term is divided by it. "
                    "Absent: 1 (the 16-bit efficiency at this dtype's peak).",
    )
    sparse_gemm_scale: PositiveSourced | None = Field(
        default=None,
        description="As dense_gemm_scale, for the sparse GEMM (efficiency.sparse_gemm at sparse_tflops). Absent: 1.",
    )

    def gemm_scale(self, sparse: bool) -> float:
        """The achieved-rate scale of the dense or the sparse GEMM (1 when the profile has none)."""
        scale = self.sparse_gemm_scale if sparse else self.dense_gemm_scale
        return scale.value if scale is not None else 1.0

    @field_validator("sparse_tflops")
    @classmethod
    def _patterns_valid(cls, value: dict[str, PositiveSourced]) -> dict[str, PositiveSourced]:
        return {str(NMPattern.parse(k)): v for k, v in value.items()}

    def sparse_peak(self, pattern: NMPattern) -> PositiveSourced | None:
        """Native sparse peak for ``pattern``, or None when the hardware does not accelerate it."""
        return self.sparse_tflops.get(str(pattern))


class Memory(Frozen):
    capacity_gb: PositiveSourced
    bandwidth_gbps: PositiveSourced = Field(description="Peak device-memory bandwidth, GB/s (1e9 B/s).")


class Interconnect(Frozen):
    """GPU-to-GPU link used by tensor-parallel all-reduce."""

    name: str
    bandwidth_gbps: PositiveSourced = Field(description="Per-GPU unidirectional bandwidth, GB/s.")
    latency_us: PositiveSourced


class Power(Frozen):
    tdp_w: PositiveSourced
    prefill_power_fraction: FractionSourced = Field(
        description="Average board power during prefill as a fraction of TDP (energy model)."
    )


class Prices(Frozen):
    """Prices of one GPU, each dated: cloud rent as a provider's list price and as a market median
    (``ampersim roi --cloud-price list|market`` picks one), and the purchase price."""

    cloud_usd_per_gpu_hour: PositiveSourced | None = Field(
        default=None, description="On-demand list price of one GPU-hour at a named provider.")
    cloud_market_usd_per_gpu_hour: PositiveSourced | None = Field(
        default=None, description="On-demand market price of one GPU-hour (a median or midpoint over providers).")
    purchase_usd: PositiveSourced | None = None

    @model_validator(mode="after")
    def _dated(self) -> Prices:
        for field in ("cloud_usd_per_gpu_hour", "cloud_market_usd_per_gpu_hour", "purchase_usd"):
            value = getattr(self, field)
            if value is not None and value.date is None:
                raise ValueError(f"{field} needs a 'date' (YYYY-MM or YYYY-MM-DD): prices age")
        return self


class TileSize(PositiveSourced):
    """A GEMM tile dimension: a positive whole number with its source."""

    @field_validator("value")
    @classmethod
    def _whole(cls, value: float) -> float:
        if not float(value).is_integer():
            raise ValueError(f"tile size must be a whole number; got {value}")
        return value


class GemmEfficiency(Frozen):
    """Shape-dependent efficiency of a GEMM library path (dense cuBLAS-like or sparse cuSPARSELt-like).

    Achieved rate = peak · peak_fraction · w · M / (M + w · m_half), with w the wave efficiency of
    tile_m × tile_n output tiles over compute_units (split-K below one wave); memory time =
    memory_latency_us + bytes / (bandwidth · memory_fraction); plus ``overhead_us`` per kernel.
    Equations: docs/cost-model.md (ampersim.sim.cost.gemm_efficiency, gemm_terms).
    """

    peak_fraction: FractionSourced
    tile_m: TileSize = Field(description="Output tile rows (tokens) per thread block (wave quantization).")
    tile_n: TileSize = Field(description="Output tile columns per thread block (wave quantization).")
    m_half: PositiveSourced = Field(description="Tokens at which the small-M ramp reaches half efficiency.")
    overhead_us: NonNegativeSourced = Field(description="Fixed per-kernel time (launch, prologue/epilogue), µs.")
    memory_fraction: FractionSourced | None = Field(
        default=None,
        description="Achieved fraction of peak bandwidth when the GEMM is memory-bound (few rows: the weights "
                    "stream, as in decode); absent: efficiency.memory_fraction. Set by `ampersim calibrate`.",
    )
    memory_latency_us: NonNegativeSourced | None = Field(
        default=None,
        description="Time a memory-bound GEMM takes before it streams at memory_fraction (added to its memory "
                    "term: latency + bytes / achieved bandwidth), µs; absent: 0. Set by `ampersim calibrate`.",
    )
    split_k: bool = Field(
        default=True,
        description="Whether the library splits K to fill the GPU when a GEMM has fewer output tiles than "
                    "compute units (False: such GEMMs run one tile per unit; `ampersim calibrate` picks it).",
    )
    grouped: bool = Field(
        default=True,
        description="Whether the library runs a grouped GEMM (MoE experts) as one kernel over all groups (True) or "
                    "as one launch per group, each with its own waves and overhead (False: torch 2.11 has no grouped "
                    "2:4 GEMM, so `ampersim measure` calls _cslt_sparse_mm once per expert).",
    )


class PruneImpl(Frozen):
    """A runtime N:M prune (+ compress) implementation of activations: a memory-bound op."""

    description: str
    bytes_per_input_byte: PositiveSourced = Field(
        description="Device-memory traffic per byte of dense activation (reads + writes, all passes)."
    )
    bandwidth_fraction: FractionSourced = Field(description="Fraction of peak bandwidth it reaches.")
    selection_rate: PositiveSourced | None = Field(
        default=None,
        description="Top-n-of-m selection throughput, tera (1e12) element comparisons per second: each element is "
                    "ranked against the m values of its group, so selection = rows·width·m / rate, which bounds the "
                    "kernel when it exceeds the memory time (8:16 on H200). Absent: memory-bound at every m.",
    )
    kernels: int = Field(ge=1, description="Kernel launches per call (each pays kernel_overhead_us).")
    produces_compressed: bool = Field(
        description="True if its output feeds the sparse GEMM directly (values + metadata)."
    )


class Efficiency(Frozen):
    dense_gemm: GemmEfficiency
    sparse_gemm: GemmEfficiency
    sparse_gemm_impl: SparseGemmImpl = Field(
        default="cusparselt_searched",
        description="The sparse-GEMM library path `sparse_gemm` describes (what `predict` assumes by default).",
    )
    sparse_gemm_alternatives: dict[SparseGemmImpl, GemmEfficiency] = Field(
        default_factory=dict,
        description="Other measured sparse-GEMM paths by name (e.g. cusparselt_default: cuSPARSELt's default "
                    "algorithm); `ampersim predict --sparse-gemm-impl NAME` costs sparse GEMMs with one of them.",
    )
    memory_fraction: FractionSourced = Field(description="Achieved fraction of bandwidth, streaming ops.")
    attention_fraction: FractionSourced = Field(description="Achieved fraction of dense peak, attention.")
    attention_keys_half: PositiveSourced | None = Field(
        default=None,
        description="Mean keys per query at which attention reaches half of attention_fraction (short-context "
                    "ramp: fraction · keys / (keys + keys_half)); absent: no ramp. Set by `ampersim calibrate`.",
    )
    decode_attention_fraction: FractionSourced | None = Field(
        default=None,
        description="Achieved fraction of peak bandwidth of decode attention, which streams the KV cache "
                    "(flash-decoding); absent: memory_fraction. Set by `ampersim calibrate`.",
    )
    decode_attention_latency_us: NonNegativeSourced | None = Field(
        default=None,
        description="Time decode attention takes before it streams at decode_attention_fraction (added to its "
                    "memory term), µs; absent: 0. Set by `ampersim calibrate`.",
    )
    kernel_overhead_us: NonNegativeSourced = Field(description="Fixed time per non-GEMM kernel, µs.")
    allreduce_fraction: FractionSourced = Field(description="Achieved fraction of interconnect bandwidth.")

    @model_validator(mode="after")
    def _alternatives_differ(self) -> Efficiency:
        if self.sparse_gemm_impl in self.sparse_gemm_alternatives:
            raise ValueError(f"sparse_gemm_alternatives repeats sparse_gemm_impl '{self.sparse_gemm_impl}' "
                             "(it is described by sparse_gemm)")
        return self

    @property
    def sparse_gemm_impls(self) -> list[str]:
        """Sparse-GEMM paths this profile can cost: its own, then the alternatives."""
        return [self.sparse_gemm_impl, *self.sparse_gemm_alternatives]

    def with_sparse_gemm(self, name: str) -> Efficiency:
        """This efficiency with ``name``'s sparse-GEMM model as ``sparse_gemm`` (NotFound lists the known ones)."""
        if name == self.sparse_gemm_impl:
            return self
        if name not in self.sparse_gemm_alternatives:
            raise not_found("sparse GEMM implementation", name, self.sparse_gemm_impls)
        others = {k: v for k, v in self.sparse_gemm_alternatives.items() if k != name}
        others[self.sparse_gemm_impl] = self.sparse_gemm
        return self.model_copy(update={"sparse_gemm": self.sparse_gemm_alternatives[name], "sparse_gemm_impl": name,
                                       "sparse_gemm_alternatives": others})


class HardwareProfile(Frozen):
    """One accelerator. See hardware_profiles/*.yaml and `ampersim profiles schema`."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    display_name: str
    vendor: Literal["nvidia", "amd", "huawei", "other"]
    architecture: str
    aliases: list[str] = Field(default_factory=list)
    status: Literal["official", "unofficial", "hypothetical", "calibrated"] = Field(
        description="official: vendor datasheet; unofficial: third-party numbers; hypothetical: "
        "what-if hardware that does not exist; calibrated: efficiency fitted to measurements."
    )
    notes: str = ""
    compute_units: PositiveSourced = Field(description="SMs (NVIDIA) / CUs (AMD) / AI cores: wave quantization.")
    matrix: dict[DType, MatrixRates]
    memory: Memory
    interconnect: Interconnect | None = None
    power: Power
    prices: Prices = Field(default_factory=Prices)
    efficiency: Efficiency
    prune_impls: dict[str, PruneImpl]
    default_prune_impl: str = Field(
        description="prune_impls entry used for natively accelerated patterns (must produce the compressed operand)."
    )
    default_mask_impl: str = Field(
        description="prune_impls entry used when the pattern is not accelerated (masking only, then dense GEMM)."
    )
    calibrated_from: str | None = Field(default=None, description="Measurement file(s) behind a calibration.")
    base_profile: str | None = Field(
        default=None, description="Calibrated profiles: the shipped profile they were fitted from (its GPU, peaks, "
                                  "prices); absent: the name without '-calibrated'.")

    @model_validator(mode="after")
    def _consistent(self) -> HardwareProfile:
        for field, compressed in (("default_prune_impl", True), ("default_mask_impl", False)):
            name = getattr(self, field)
            if name not in self.prune_impls:
                raise ValueError(
                    f"{field} '{name}' is not one of prune_impls: {', '.join(sorted(self.prune_impls))}"
                )
            if self.prune_impls[name].produces_compressed is not compressed:
                raise ValueError(f"{field} '{name}' must have produces_compressed: {str(compressed).lower()}")
        if self.status == "calibrated" and not self.calibrated_from:
            raise ValueError("status 'calibrated' needs 'calibrated_from' naming the measurement file")
        return self

    @property
    def dtypes(self) -> list[str]:
        return list(self.matrix)

    def with_sparse_gemm(self, name: str) -> HardwareProfile:
        """This profile costing sparse GEMMs as its implementation ``name`` (NotFound, field
        ``sparse_gemm_impl``, lists the ones it has)."""
        try:
            return self.model_copy(update={"efficiency": self.efficiency.with_sparse_gemm(name)})
        except NotFound as exc:
            exc.field = "sparse_gemm_impl"
            raise

    def native_patterns(self, dtype: str) -> list[NMPattern]:
        """Patterns whose sparse GEMM this hardware accelerates for ``dtype``."""
        rates = self.matrix.get(dtype)
        return [NMPattern.parse(p) for p in rates.sparse_tflops] if rates else []
