"""Optional dependencies: which extra of ampersim installs each one, and the one-line error when one is missing.

The simulator, ROI and planning need numpy, pydantic, pyyaml and matplotlib only; real models, the
GPU harness and the GPU kernels import their heavy dependencies lazily through ``require`` (or the
CLI turns a ModuleNotFoundError of one of them into ``missing``'s line).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ampersim.core.errors import MissingDependency

EXTRA_OF: dict[str, str] = {
    "torch": "models", "transformers": "models", "accelerate": "models", "gguf": "models", "safetensors": "models",
    "triton": "gpu", "lm_eval": "lm-eval",
}
"""Top-level module -> the ampersim extra (pyproject.toml [project.optional-dependencies]) that installs it."""


def install_hint(module: str) -> str:
    """How to install ``module``: its extra, or its own package."""
    if module in EXTRA_OF:
        return f"pip install 'ampersim[{EXTRA_OF[module]}]'"
    return f"pip install {module}"


def is_optional(module: str) -> bool:
    """True if ``module`` (a top-level name) is an optional dependency of ampersim."""
    return module in EXTRA_OF


def missing(module: str, purpose: str) -> MissingDependency:
    """The one-line error for optional ``module`` missing where ``purpose`` needs it."""
    return MissingDependency(f"{purpose} needs {module}, which is not installed: {install_hint(module)}")


def require(module: str, purpose: str) -> ModuleType:
    """Import optional ``module`` for ``purpose`` or raise ``missing`` (naming the module that failed to import)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = (exc.name or module).split(".")[0]
        raise missing(name if is_optional(name) else module, purpose) from None
