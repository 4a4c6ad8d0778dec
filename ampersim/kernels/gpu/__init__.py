"""GPU kernels (Triton): N:M prune and 2:4 prune+compress into the cuSPARSELt operand layout,
int8 quantization, and the one-pass elementwise kernels (rotary, SiLU·up) the harness times.

``available(device)`` says whether they can run on a device (None) or why not; nothing here imports
torch or Triton until it is called.
"""
from __future__ import annotations

import importlib.util
from typing import Any


def available(device: Any = "cuda") -> str | None:
    """None when the Triton kernels can run on ``device``; otherwise the reason (no torch, not a CUDA
    device, no CUDA in this torch build or no GPU, no Triton)."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install 'ampersim[models]' and a CUDA build of torch)"
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return f"device {dev} is not a CUDA device"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (a CPU build, or no GPU/driver)"
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (pip install 'ampersim[gpu]')"
    return None


__all__ = ["available"]
