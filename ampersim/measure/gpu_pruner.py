"""The project's own GPU pruner (ampersim.kernels.gpu.pruner), when it imports, as the harness uses it.

Detected at run time: without it (module absent, no Triton, no CUDA) the fused implementations are
recorded as skipped and everything else is measured.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load_gpu_pruner() -> "GpuPruner | None":
    """The adapter over ampersim.kernels.gpu.pruner, or None when it (or Triton) does not import here."""
    try:
        module = importlib.import_module("ampersim.kernels.gpu.pruner")
        importlib.import_module("ampersim.kernels.gpu.triton_prune")
    except Exception:  # absent module, missing Triton, no GPU: the harness measures the rest
        return None
    return GpuPruner(module)


class GpuPruner:
    """``fused_mask`` (prune_gpu: one masking kernel) and ``fused_cslt`` (prune_compress_24: one kernel
    writing the cuSPARSELt operand, when its layout check passes on this GPU)."""

    impls = frozenset({"fused_mask", "fused_cslt"})

    def __init__(self, module: Any) -> None:
        self.module = module

    def pruner(self, impl: str, n: int, m: int, factor: Any = None) -> Callable[[Any], Any]:
        """activation [T, K] -> masked activation (fused_mask) or compressed 2:4 operand (fused_cslt)."""
        f = None if factor is None else factor.float()
        if impl == "fused_mask":
            return lambda x: self.module.prune_gpu(x, f"{n}:{m}", factor=f)
        if impl == "fused_cslt":
            return lambda x: self.module.prune_compress_24(x, factor=f)
        raise ValueError(f"unknown GPU pruner implementation {impl!r}")

    def call(self, impl: str, x: Any, n: int, m: int, factor: Any = None) -> Callable[[], Any]:
        prune = self.pruner(impl, n, m, factor)
        return lambda: prune(x)

    def reference(self, x: Any, n: int, m: int, factor: Any = None) -> Any:
        """The pruner's own eager semantics (same score arithmetic as its kernels)."""
        return self.module.prune_torch(x, f"{n}:{m}", factor=None if factor is None else factor.float())

    def describe(self, impl: str, device: Any = "cuda") -> str:
        if impl == "fused_mask":
            return "ampersim.kernels.gpu.pruner.prune_gpu (Triton, one masking kernel)"
        fused = self.module.fused_layout_ok(device, 2)
        how = ("one Triton kernel writing values + metadata" if fused else
               "layout check FAILED on this GPU: Triton mask + torch._cslt_compress")
        return f"ampersim.kernels.gpu.pruner.prune_compress_24 ({how})"
