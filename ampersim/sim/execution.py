"""How a profile runs an N:M pattern: natively on sparse tensor cores, or as masking plus a dense GEMM.

A pattern n:m runs on a native pattern a:b when every aligned group of b values can hold at most a
kept values: if b divides m that maximum is min(n, b), if m divides b it is (b/m)·n (1:4 and 2:8 fit
2:4; 4:8 and 8:16 do not, since 3 or 4 of 4 neighbours may be kept). Such a pattern runs at the
native pattern's speed (its extra zeros buy nothing). Otherwise the sparse path is the default mask
implementation followed by the dense GEMM: a pure slowdown, and the note says why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ampersim.core.errors import InvalidArgument, not_found
from ampersim.core.patterns import NMPattern
from ampersim.core.vocab import DTYPE_BYTES
from ampersim.hardware.profile import HardwareProfile, PruneImpl


@dataclass(frozen=True)
class SparseExecution:
    """The sparse path chosen for (profile, dtype, pattern, prune implementation)."""

    pattern: NMPattern
    native: NMPattern | None          # hardware pattern the sparse GEMM runs as; None: not accelerated
    compressed: bool                  # True: sparse GEMM on the compressed operand; False: dense GEMM
    prune_impl_name: str
    prune_impl: PruneImpl
    sparse_tflops: float | None       # native sparse peak (dense-equivalent TFLOPS) for the dtype
    compressed_fraction: float        # compressed operand bytes / dense operand bytes (1 if dense)
    note: str


def check_dtype(profile: HardwareProfile, dtype: str) -> None:
    if dtype not in profile.matrix:
        raise InvalidArgument(
            f"dtype {dtype} is not supported by profile {profile.name}; it has: {', '.join(profile.dtypes)}",
            field="dtype",
        )


def fits_native(pattern: NMPattern, native: NMPattern) -> bool:
    """True if every row pruned to ``pattern`` is guaranteed to satisfy ``native`` (see module doc)."""
    if pattern.m % native.m == 0:
        worst = min(pattern.n, native.m)
    elif native.m % pattern.m == 0:
        worst = (native.m // pattern.m) * pattern.n
    else:
        return False
    return worst <= native.n


def compressed_fraction(native: NMPattern, dtype: str) -> float:
    """Compressed operand size / dense size: kept values plus a ceil(log2 m)-bit index per kept value.

    2:4 gives 0.5 + 0.5·2/16 = 0.5625 for 16-bit and 0.625 for 8-bit values (cuSPARSELt layout).
    """
    bits = 8 * DTYPE_BYTES[dtype]
    return native.density * (1.0 + math.ceil(math.log2(native.m)) / bits)


def sparse_execution(profile: HardwareProfile, dtype: str, pattern: str | NMPattern,
                     prune_impl: str | None = None) -> SparseExecution:
    """Decide the sparse path; raise InvalidArgument for an unknown dtype/impl or an impossible combination."""
    check_dtype(profile, dtype)
    pattern = NMPattern.parse(pattern)
    rates = profile.matrix[dtype]
    fitting = [NMPattern.parse(p) for p in rates.sparse_tflops if fits_native(pattern, NMPattern.parse(p))]
    # fastest native pattern that fits; on a tie the one with the smaller compressed operand
    native = max(fitting, key=lambda p: (rates.sparse_tflops[str(p)].value, -compressed_fraction(p, dtype)),
                 default=None)
    if prune_impl is not None and prune_impl not in profile.prune_impls:
        raise not_found("prune implementation", prune_impl, profile.prune_impls, field="prune_impl")
    name = prune_impl or (profile.default_prune_impl if native else profile.default_mask_impl)
    impl = profile.prune_impls[name]
    offered = ", ".join(str(p) for p in profile.native_patterns(dtype)) or "none"
    if native is None:
        if impl.produces_compressed:
            masks = sorted(k for k, v in profile.prune_impls.items() if not v.produces_compressed)
            raise InvalidArgument(
                f"prune_impl {name} produces a compressed operand, but {pattern} is not accelerated by "
                f"{profile.name} for {dtype} (native: {offered}); use a masking implementation: {', '.join(masks)}",
                field="prune_impl",
            )
        note = (f"{pattern} is not accelerated by {profile.name} for {dtype} (native sparse patterns: {offered}); "
                f"an {pattern} group may keep more values than the hardware's pattern allows, so the GEMMs run "
                f"dense and the pruning ({name}) is pure overhead: a slowdown")
        return SparseExecution(pattern, None, False, name, impl, None, 1.0, note)
    peak = rates.sparse_tflops[str(native)].value
    if not impl.produces_compressed:
        note = (f"{pattern} runs natively on {profile.name} as {native}, but {name} only masks (dense output): "
                f"the GEMMs run dense and the pruning is pure overhead")
        return SparseExecution(pattern, native, False, name, impl, peak, 1.0, note)
    how = "natively" if native == pattern else f"as {native} (every {pattern} row is also {native}; no extra speed)"
    note = f"{pattern} runs {how} on {profile.name} sparse tensor cores ({dtype} sparse peak {peak:g} TFLOPS), pruned with {name}"
    return SparseExecution(pattern, native, True, name, impl, peak, compressed_fraction(native, dtype), note)
