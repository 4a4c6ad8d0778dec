"""N:M activation pruning on CPU (numba kernels): prune, prune_mask, compress/decompress, compressed_matmul.

Names are loaded on first access, so ``import ampersim.sparsity.policy`` (the simulator) does not
import numba, and nothing is compiled until a pruner function is called.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "prune": "ampersim.kernels.cpu.pruner",
    "prune_mask": "ampersim.kernels.cpu.pruner",
    "compress": "ampersim.kernels.cpu.pruner",
    "CompressedNM": "ampersim.kernels.cpu.compressed",
    "decompress": "ampersim.kernels.cpu.compressed",
    "compressed_matmul": "ampersim.kernels.cpu.compressed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ampersim.kernels.cpu' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
