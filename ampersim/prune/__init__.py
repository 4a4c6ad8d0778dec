"""N:M activation pruning on CPU (numba): prune, prune_mask, compress/decompress, compressed_matmul.

Names are loaded on first access, so ``import ampersim.prune.policy`` (the simulator) does not
import numba, and nothing is compiled until a pruner function is called.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "prune": "ampersim.prune.nm",
    "prune_mask": "ampersim.prune.nm",
    "compress": "ampersim.prune.nm",
    "CompressedNM": "ampersim.prune.compressed",
    "decompress": "ampersim.prune.compressed",
    "compressed_matmul": "ampersim.prune.compressed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ampersim.prune' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
