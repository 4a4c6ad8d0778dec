"""ampersim: what N:M activation sparsity in LLM prefill really buys on real hardware."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["sparsify"]


def __getattr__(name: str) -> Any:
    # Lazy: ``import ampersim`` must not import torch; ampersim.sparsify loads the torch integration.
    if name == "sparsify":
        from ampersim.runtime.sparsify import sparsify

        return sparsify
    raise AttributeError(f"module 'ampersim' has no attribute '{name}'")
