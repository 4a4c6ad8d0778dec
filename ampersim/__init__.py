"""ampersim: what N:M activation sparsity in LLM prefill really buys on real hardware.

The names a user reads first (each loaded on first use: ``import ampersim`` imports neither torch
nor numba):

- ``load_profile(name_or_path)``, ``list_profiles()`` — hardware profiles, every number sourced
- ``load_model_spec(name_or_path)`` — a model's architecture numbers
- ``load_scenario(name_or_path)`` — a prefill workload (model, batch, prompt lengths, dtype, tp, policy)
- ``predict(profile, scenario)`` — dense vs N:M-sparse prefill, op by op
- ``compare_patterns(profile, scenario)`` — the same for every pattern worth comparing on the profile
- ``resolve_policy(policy, spec, pattern, scoring)`` — which linear inputs a policy prunes
- ``coverage(spec, policy)`` — the share of decoder-layer linear MACs that covers (the paper's definition)
- ``prune(x, pattern)`` — the CPU pruner (numba) on numpy arrays and torch CPU tensors
- ``sparsify(model, policy)`` — prefill-only N:M pruning of a Hugging Face model's linear inputs
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "load_profile": "ampersim.hardware.registry",
    "list_profiles": "ampersim.hardware.registry",
    "load_model_spec": "ampersim.models.registry",
    "load_scenario": "ampersim.sim.scenario",
    "predict": "ampersim.sim.predict",
    "compare_patterns": "ampersim.sim.predict",
    "resolve_policy": "ampersim.sparsity.policy",
    "coverage": "ampersim.sparsity.coverage",
    "prune": "ampersim.kernels.cpu",
    "sparsify": "ampersim.runtime.sparsify",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ampersim' has no attribute '{name}'")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
