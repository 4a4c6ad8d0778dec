"""Activation-sparse linear layers on NVIDIA sparse tensor cores (cuSPARSELt through torch).

``sparse_linear(x, W, b)`` computes ``prune(x) @ W.T + b`` as: fused 2:4 prune + compress of the
activations (``ampersim.kernels.gpu.pruner.prune_compress_24``), the cuSPARSELt sparse GEMM with the
algorithm found by ``torch._C._cusparselt.mm_search`` (cached per shape), then the bias (cuSPARSELt's bias would run
along tokens here, so it is added afterwards). Tokens are padded to the multiple cuSPARSELt needs
inside the kernel (zero rows). Whenever the sparse path cannot run, the same function is computed
densely, ``F.linear(prune(x), W, b)``, with a one-time warning that says why:

- x on the CPU, or a GPU without sparse tensor cores (compute capability below 8.0), or no cuSPARSELt;
- dtype other than float16/bfloat16 (int8: ``sparse_linear_int8``), or weight dtype != x dtype;
- K not a multiple of 16 or N not a multiple of 16 (cuSPARSELt's operand rules).

Patterns other than 2:4 are not accelerated by any NVIDIA GPU: they prune (one fused kernel on
CUDA) and run the dense GEMM, silently, since that is the intended behaviour.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern
from ampersim.kernels import gpu, torch_eager
from ampersim.kernels.gpu import pruner as kernels_gpu

_ALGS: dict[tuple, tuple[int, int, int]] = {}
_WARNED: set[str] = set()
NATIVE = NMPattern(n=2, m=4)


def _warn_once(reason: str) -> None:
    if reason not in _WARNED:
        _WARNED.add(reason)
        warnings.warn(f"activation-sparse linear runs dense: {reason}", RuntimeWarning, stacklevel=4)


def dense_reason(x: torch.Tensor, weight: torch.Tensor, pattern: NMPattern, int8: bool = False) -> str | None:
    """Why the cuSPARSELt path cannot run for these operands (None: it can)."""
    if pattern != NATIVE:
        return f"pattern {pattern} is not accelerated by sparse tensor cores (only 2:4 is)"
    if not x.is_cuda:
        return f"x is on {x.device}; the sparse GEMM needs a CUDA GPU"
    major, minor = torch.cuda.get_device_capability(x.device)
    if major < 8:
        return (f"{torch.cuda.get_device_name(x.device)} (compute capability {major}.{minor}) has no sparse "
                "tensor cores (need 8.0 or newer)")
    if not torch.backends.cusparselt.is_available():
        return "this torch build has no cuSPARSELt"
    if x.dtype not in (torch.float16, torch.bfloat16):
        return f"dtype {x.dtype} not supported (float16, bfloat16; int8 through sparse_linear_int8)"
    if not int8 and weight.dtype != x.dtype:
        return f"weight dtype {weight.dtype} differs from x dtype {x.dtype}"
    n, k = weight.shape
    if k % 16 or n % 16:
        return f"weight shape [{n}, {k}]: cuSPARSELt needs both dimensions multiples of 16"
    return None


def _alg(c: torch.Tensor, w_t: torch.Tensor, out_dtype: torch.dtype | None, alpha: torch.Tensor | None) -> tuple[int, int, int]:
    """cuSPARSELt algorithm (alg_id, split_k, split_k_mode) for this shape: searched once, then cached."""
    key = (tuple(c.shape), tuple(w_t.shape), c.dtype, out_dtype, alpha is not None, str(c.device))
    if key not in _ALGS:
        if torch.cuda.is_current_stream_capturing():
            return 0, 1, -1  # no search inside a graph capture: cuSPARSELt's default
        found = torch._C._cusparselt.mm_search(c, w_t, None, alpha, out_dtype, False)
        _ALGS[key] = (int(found[0]), int(found[1]), int(found[2]))
    return _ALGS[key]


def sparse_mm(c: torch.Tensor, weight: torch.Tensor, *, out_dtype: torch.dtype | None = None,
              alpha: torch.Tensor | None = None) -> torch.Tensor:
    """``_cslt_sparse_mm(c, weight.t())`` with the searched algorithm: [rows of c, N]."""
    w_t = weight.t()
    alg_id, split_k, split_k_mode = _alg(c, w_t, out_dtype, alpha)
    return torch._cslt_sparse_mm(c, w_t, alpha=alpha, out_dtype=out_dtype, alg_id=alg_id,
                                 split_k=split_k, split_k_mode=split_k_mode)


def _prune_any(x: torch.Tensor, pattern: NMPattern, factor: Any) -> torch.Tensor:
    """The fused kernel where Triton runs on x's device, eager torch elsewhere (same result)."""
    if gpu.available(x.device) is None:
        return kernels_gpu.prune_gpu(x, pattern, factor=factor)
    return torch_eager.prune(x, pattern, factor=factor)


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                  pattern: str | NMPattern = "2:4", factor: Any = None) -> torch.Tensor:
    """``F.linear(prune(x, pattern, factor), weight, bias)``, through the 2:4 sparse GEMM when possible."""
    nm = NMPattern.parse(pattern)
    if x.shape[-1] != weight.shape[-1]:
        raise InvalidArgument(f"sparse_linear: x has {x.shape[-1]} features, weight expects {weight.shape[-1]}")
    reason = dense_reason(x, weight, nm)
    if reason is not None:
        if nm == NATIVE:
            _warn_once(reason)
        return F.linear(_prune_any(x, nm, factor), weight, bias)
    x2 = x.reshape(-1, x.shape[-1])
    rows = x2.shape[0]
    c = kernels_gpu.prune_compress_24(x2, factor=factor, rows_out=-(-rows // 16) * 16)
    y = sparse_mm(c, weight)[:rows]
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def quantize_weight_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel absmax int8 weights: (w_q int8 [N, K], scale fp32 [N])."""
    w = weight.float()
    scale = w.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127.0
    return torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


def sparse_linear_int8(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                       bias: torch.Tensor | None = None, *, factor: Any = None) -> torch.Tensor:
    """W8A8 activation-sparse linear: 2:4 prune + per-token int8 quantization + sparse int8 GEMM.

    y = (q_x @ w_q.T) * s_x[:, None] * w_scale[None, :] + bias, in x's dtype; the per-token scales go
    in as cuSPARSELt's alpha vector. Dense fallback (same math with ``torch._int_mm`` where it runs,
    else float) with a one-time warning when the sparse path cannot run.
    """
    if w_q.dtype != torch.int8:
        raise InvalidArgument(f"sparse_linear_int8: w_q must be int8, got {w_q.dtype}")
    x2 = x.reshape(-1, x.shape[-1])
    rows = x2.shape[0]
    reason = dense_reason(x, w_q, NATIVE, int8=True)
    if reason is None and (w_q.shape[0] % 32 or w_q.shape[1] % 32):
        reason = f"weight shape {list(w_q.shape)}: int8 cuSPARSELt needs both dimensions multiples of 32"
    if reason is not None:
        _warn_once(reason)
        xp = _prune_any(x2, NATIVE, factor)
        fused = gpu.available(x.device) is None and x.dtype in (torch.float16, torch.bfloat16)
        q, s = kernels_gpu.quantize_int8(xp) if fused else _quantize_rows(xp)
        acc = q.float() @ w_q.float().t()
        y = (acc * s[:, None] * w_scale[None, :]).to(x.dtype)
    else:
        c, s = kernels_gpu.prune_quant_compress_24_int8(x2, factor=factor, rows_out=-(-rows // 32) * 32)
        y = sparse_mm(c, w_q, out_dtype=x.dtype, alpha=s)[:rows]
        y *= w_scale.to(x.dtype)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], w_q.shape[0])


def _quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xf = x.float()
    amax = xf.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    return torch.round(xf / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


class ActivationSparseLinear(torch.nn.Module):
    """A linear layer whose input is N:M-pruned on the fly (2:4: sparse tensor cores), bias after."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                 pattern: str | NMPattern = "2:4", factor: torch.Tensor | None = None) -> None:
        super().__init__()
        self.pattern = NMPattern.parse(pattern)
        self.weight = torch.nn.Parameter(weight.detach().contiguous(), requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach(), requires_grad=False)
        self.register_buffer("factor", None if factor is None else factor.detach().float())

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, *, pattern: str | NMPattern = "2:4",
                    factor: torch.Tensor | None = None) -> "ActivationSparseLinear":
        return cls(linear.weight, linear.bias, pattern=pattern, factor=factor)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sparse_linear(x, self.weight, self.bias, pattern=self.pattern, factor=self.factor)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pattern={self.pattern}"


class Int8ActivationSparseLinear(torch.nn.Module):
    """W8A8 linear: per-channel int8 weights, per-token int8 activations, 2:4-pruned on the fly."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                 factor: torch.Tensor | None = None) -> None:
        super().__init__()
        w_q, w_scale = quantize_weight_int8(weight.detach())
        self.register_buffer("w_q", w_q.contiguous())
        self.register_buffer("w_scale", w_scale)
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach(), requires_grad=False)
        self.register_buffer("factor", None if factor is None else factor.detach().float())

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, *, factor: torch.Tensor | None = None) -> "Int8ActivationSparseLinear":
        return cls(linear.weight, linear.bias, factor=factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sparse_linear_int8(x, self.w_q, self.w_scale, self.bias, factor=self.factor)


__all__ = [
    "ActivationSparseLinear", "Int8ActivationSparseLinear", "dense_reason", "quantize_weight_int8",
    "sparse_linear", "sparse_linear_int8", "sparse_mm",
]
