"""The runtime pruning implementations the harness measures: name -> how it runs, how a record
describes it, where it can run and what its output is checked against.

The names are ``core.vocab.MEASURED_PRUNE_IMPLS`` (a profile's ``prune_impls`` keys) and
``core.vocab.DIAGNOSTIC_PRUNE_IMPLS`` (``cslt_compress_only``: ``torch._cslt_compress`` of an already
pruned input). Every implementation's output is checked against ``ampersim.kernels.reference`` (the
one semantics): masking ones exactly on the first rows, compressing ones through the product of the
operand with random weights (``ampersim.measure.ops.prepare_prune``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern

Pruner = Callable[[Any], Any]  # activation [T, K] -> masked activation or compressed 2:4 operand


def _eager_mask(pattern: NMPattern, factor: Any) -> Pruner:
    from ampersim.kernels import torch_eager

    return lambda x: torch_eager.prune(x, pattern, factor=factor)


def _eager_cslt(pattern: NMPattern, factor: Any) -> Pruner:
    import torch

    from ampersim.kernels import torch_eager

    return lambda x: torch._cslt_compress(torch_eager.prune(x, pattern, factor=factor))


def _fused_mask(pattern: NMPattern, factor: Any) -> Pruner:
    from ampersim.kernels.gpu.pruner import prune_gpu

    return lambda x: prune_gpu(x, pattern, factor=factor)


def _fused_cslt(pattern: NMPattern, factor: Any) -> Pruner:
    from ampersim.kernels.gpu.pruner import prune_compress_24

    return lambda x: prune_compress_24(x, factor=factor)


def _compress_only(pattern: NMPattern, factor: Any) -> Pruner:
    import torch

    return lambda pruned: torch._cslt_compress(pruned)


def _fused_cslt_path(device: Any) -> str:
    from ampersim.kernels.gpu.pruner import fused_layout_ok

    return ("one Triton kernel writing values + metadata" if fused_layout_ok(device, 2) else
            "layout check FAILED on this GPU: Triton mask + torch._cslt_compress")


@dataclass(frozen=True)
class PruneImpl:
    """One implementation: ``build(pattern, factor)`` gives the pruner of an activation.

    ``compressed``: it returns the cuSPARSELt 2:4 operand (so it runs 2:4 only), else the masked
    activation. ``fused``: it needs the project's Triton kernels. ``prepruned``: its input is an
    already pruned activation (a diagnostic of the compression step alone).
    """

    name: str
    description: str
    build: Callable[[NMPattern, Any], Pruner]
    compressed: bool = False
    fused: bool = False
    prepruned: bool = False
    detail: Callable[[Any], str] | None = None  # device -> run-time detail appended to the description

    def unavailable(self, device: Any) -> str | None:
        """Why this implementation cannot run on ``device`` (None: it can)."""
        if self.fused:
            from ampersim.kernels import gpu

            reason = gpu.available(device)
            if reason is not None:
                return f"the project's GPU kernels cannot run: {reason}"
        if self.compressed:
            import torch

            if torch.device(device).type != "cuda" or not torch.backends.cusparselt.is_available():
                return f"torch._cslt_compress needs a CUDA device with cuSPARSELt (device {device})"
        return None

    def pruner(self, pattern: str | NMPattern, factor: Any = None) -> Pruner:
        """activation -> output, for ``pattern`` (2:4 only for compressing implementations) and a
        per-channel score ``factor`` (any float tensor; scores are float32)."""
        nm = NMPattern.parse(pattern)
        if self.compressed and (nm.n, nm.m) != (2, 4):
            raise InvalidArgument(f"prune impl {self.name} writes the cuSPARSELt 2:4 operand; pattern {nm} "
                                  "is not 2:4", field="pattern")
        return self.build(nm, factor)

    def describe(self, device: Any) -> str:
        return f"{self.description} ({self.detail(device)})" if self.detail else self.description


PRUNE_IMPLS: dict[str, PruneImpl] = {impl.name: impl for impl in (
    PruneImpl("torch_eager_mask", "ampersim.kernels.torch_eager.prune (eager torch: float32 score keys, topk, "
              "scatter, where)", _eager_mask),
    PruneImpl("torch_eager_cslt", "ampersim.kernels.torch_eager.prune, then torch._cslt_compress", _eager_cslt,
              compressed=True),
    PruneImpl("fused_mask", "ampersim.kernels.gpu.pruner.prune_gpu (Triton, one masking kernel)", _fused_mask,
              fused=True),
    PruneImpl("fused_cslt", "ampersim.kernels.gpu.pruner.prune_compress_24", _fused_cslt, compressed=True,
              fused=True, detail=_fused_cslt_path),
    PruneImpl("cslt_compress_only", "torch._cslt_compress of an already 2:4-pruned input", _compress_only,
              compressed=True, prepruned=True),
)}


def prune_impl(name: str) -> PruneImpl:
    """The implementation called ``name``; InvalidArgument listing the known ones otherwise."""
    if name not in PRUNE_IMPLS:
        raise InvalidArgument(f"unknown prune impl '{name}'; known: {', '.join(PRUNE_IMPLS)}", field="prune_impls")
    return PRUNE_IMPLS[name]


def runnable_impl(name: str, device: Any) -> PruneImpl:
    """The implementation called ``name``, if it can run on ``device``; InvalidArgument saying why not."""
    impl = prune_impl(name)
    reason = impl.unavailable(device)
    if reason is not None:
        raise InvalidArgument(f"prune impl {name} is not available here: {reason}", field="prune_impls")
    return impl


def unavailable_impls(device: Any) -> dict[str, str]:
    """name -> reason, for every implementation that cannot run on ``device``."""
    return {name: reason for name, impl in PRUNE_IMPLS.items() if (reason := impl.unavailable(device)) is not None}


__all__ = ["PRUNE_IMPLS", "PruneImpl", "prune_impl", "runnable_impl", "unavailable_impls"]
