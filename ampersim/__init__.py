"""ampersim: what N:M activation sparsity in LLM prefill really buys on real hardware."""
from __future__ import annotations

__version__ = "0.1.0"
