"""Outstanding-sparse (Amber Pruner): inverse SmoothQuant scaling, then simulated W8A8.

SmoothQuant (Xiao et al., arXiv 2211.10438) computes per input channel
``s_j = max|X_:,j|^alpha / max|W_:,j|^(1 - alpha)`` and runs ``X / s`` with ``W * s`` so that
activations become easier to quantize. Outstanding-sparse inverts it (``s_hat = 1 / s``,
alpha = 0.10): the layer computes ``(X * s) @ (W / s)^T`` — the same product in exact arithmetic —
which *widens* the activation range so that outlier channels stand out before N:M selection.

Order used by ampersim (the paper's exact ordering of mask vs rounding is unconfirmed):
  1. ``X_hat = X * s`` (s from calibration statistics, fixed at sparsify time);
  2. N:M selection on ``X_hat`` with score ``|X_hat| * f`` (f: the static factor of the *original*
     weight for amber scoring — a factor taken from ``W / s`` would cancel the smoothing exactly —
     or none for magnitude); skipped in decode steps;
  3. per-token symmetric INT8 quantization of the pruned ``X_hat`` (scale = row absmax / 127), so
     pruned zeros stay exactly zero;
  4. per-output-channel symmetric INT8 weights ``Q(W / s)`` (scale = row absmax / 127).
Quantization is simulated: values are rounded to the INT8 grid and kept in floating point.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

ALPHA = 0.10
_QMAX = 127.0


def smoothing_scales(act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """Inverse-SmoothQuant multipliers s[in_features] (activations are multiplied, weights divided)."""
    import torch

    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgument(f"alpha must be in [0, 1], got {alpha}")
    w_absmax = weight.detach().abs().amax(dim=0).float().clamp_min(1e-8)
    a_absmax = act_absmax.float().to(w_absmax.device).clamp_min(1e-8)
    return (a_absmax.pow(alpha) / w_absmax.pow(1.0 - alpha)).to(torch.float32)


def fake_quant_rows(x: torch.Tensor) -> torch.Tensor:
    """Symmetric INT8 round trip, one scale per row of the last dimension (absmax / 127).

    Rounding is half-to-even (``torch.round``), as INT8 conversion instructions do.
    """
    import torch

    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp_min(1e-12) / _QMAX
    return (torch.round(x.float() / scale).clamp_(-_QMAX, _QMAX) * scale).to(x.dtype)


def calibrate_input_absmax(model: torch.nn.Module, modules: Mapping[str, Any],
                           batches: Iterable[Any]) -> dict[str, torch.Tensor]:
    """Per-input-channel max |x| of each named module's input over ``batches`` of input ids."""
    import torch

    stats: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module: Any, args: tuple) -> None:
            x = args[0].detach()
            amax = x.abs().reshape(-1, x.shape[-1]).amax(dim=0).float().cpu()
            stats[name] = amax if name not in stats else torch.maximum(stats[name], amax)
        return hook

    from ampersim.eval.metrics import calibration_forward

    calibration_forward(model, batches, [m.register_forward_pre_hook(hook_for(n)) for n, m in modules.items()])
    return stats
