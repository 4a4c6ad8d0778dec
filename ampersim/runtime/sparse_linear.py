"""Activation-sparse linear layers on NVIDIA sparse tensor cores (cuSPARSELt with persistent plans).

``sparse_linear(x, W, b)`` computes ``prune(x) @ W.T + b`` as: fused 2:4 prune + compress of the
activations (``ampersim.kernels.gpu.pruner.prune_compress_24``), padded with zero rows to the token bucket
(:func:`token_bucket`), then the cuSPARSELt GEMM through a plan cached per (bucket, N, K, dtype)
(:mod:`ampersim.kernels.gpu.cusparselt`, searched algorithm), then the bias (cuSPARSELt's bias would
run along tokens here, so it is added afterwards). Buckets bound the plans a serving engine with
variable token counts creates (8 per doubling) at a padding cost below 1/8 of the rows.

Modes: eager (the host cost per sparse linear is two launches and a few tensor allocations);
``torch.compile`` (the 2:4 path is the custom op ``ampersim::sparse_linear_24`` /
``ampersim::sparse_linear_24_int8``, opaque to the compiler: no graph break); CUDA graphs (plans are
made and searched outside capture, so run once before capturing, as any warm-up does).

Whenever the sparse path cannot run, the same function is computed densely,
``F.linear(prune(x), W, b)``, with a one-time warning that says why:

- x on the CPU, or a GPU without sparse tensor cores (compute capability below 8.0), or no cuSPARSELt;
- dtype other than float16/bfloat16 (int8: ``sparse_linear_int8``), or weight dtype != x dtype;
- K not a multiple of 64 or N not a multiple of 16 (32 for int8).

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

NATIVE = NMPattern(n=2, m=4)
ROW_MULTIPLE = {"16bit": 16, "int8": 32}  # cuSPARSELt's row multiple of the sparse operand
_WARNED: set[str] = set()
_REASONS: dict[tuple, str | None] = {}


def _warn_once(reason: str) -> None:
    if reason not in _WARNED:
        _WARNED.add(reason)
        warnings.warn(f"activation-sparse linear runs dense: {reason}", RuntimeWarning, stacklevel=4)


def token_bucket(rows: int, multiple: int) -> int:
    """Rows of the padded sparse operand for ``rows`` tokens: a multiple of ``multiple`` and of 1/16 of
    the next power of two: 8 buckets (plans) per doubling, less than rows/8 of padding."""
    if rows < 1:
        raise InvalidArgument(f"token_bucket: rows must be >= 1, got {rows}", field="rows")
    granule = max(multiple, 1 << max((rows - 1).bit_length() - 4, 0))
    return -(-rows // granule) * granule


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
    multiple = ROW_MULTIPLE["int8" if int8 else "16bit"]
    if k % 64 or n % multiple:
        return f"weight shape [{n}, {k}]: the fused 2:4 path needs K a multiple of 64 and N of {multiple}"
    return None


def _reason(x: torch.Tensor, weight: torch.Tensor, int8: bool) -> str | None:
    """``dense_reason`` for 2:4, cached per device, dtypes and weight shape (it is asked on every call)."""
    key = (x.device, x.dtype, weight.dtype, tuple(weight.shape), int8)
    if key not in _REASONS:
        _REASONS[key] = dense_reason(x, weight, NATIVE, int8)
    return _REASONS[key]


def _prune_any(x: torch.Tensor, pattern: NMPattern, factor: Any) -> torch.Tensor:
    """The fused kernel where Triton runs on x's device, eager torch elsewhere (same result)."""
    if gpu.available(x.device) is None:
        return kernels_gpu.prune_gpu(x, pattern, factor=factor)
    return torch_eager.prune(x, pattern, factor=factor)


def _sparse_24(x: torch.Tensor, weights: list[torch.Tensor], factor: torch.Tensor | None) -> list[torch.Tensor]:
    """x [T, K] 2:4-pruned once, times every weight [N_i, K]: [T, N_i] each (no bias)."""
    from ampersim.kernels.gpu import cusparselt

    reason = next((r for r in (_reason(x, w, False) for w in weights) if r is not None), None)
    if reason is not None:
        _warn_once(reason)
        pruned = _prune_any(x, NATIVE, factor)
        return [F.linear(pruned, w) for w in weights]
    rows = x.shape[0]
    c = kernels_gpu.prune_compress_24(x, factor=factor, rows_out=token_bucket(rows, ROW_MULTIPLE["16bit"]))
    return [cusparselt.sparse_mm(c, w)[:rows] for w in weights]


def _sparse_24_int8(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                    factor: torch.Tensor | None) -> torch.Tensor:
    """W8A8 2:4 product of x [T, K] (16-bit) and int8 w_q [N, K] with per-channel w_scale: [T, N] in x's dtype."""
    from ampersim.kernels.gpu import cusparselt

    rows = x.shape[0]
    reason = _reason(x, w_q, True)
    if reason is not None:
        _warn_once(reason)
        xp = _prune_any(x, NATIVE, factor)
        fused = gpu.available(x.device) is None and x.dtype in (torch.float16, torch.bfloat16)
        q, s = kernels_gpu.quantize_int8(xp) if fused else _quantize_rows(xp)
        acc = q.float() @ w_q.float().t()
        return (acc * s[:, None] * w_scale[None, :]).to(x.dtype)
    from ampersim.kernels.gpu import triton_elementwise

    c, s = kernels_gpu.prune_quant_compress_24_int8(x, factor=factor,
                                                    rows_out=token_bucket(rows, ROW_MULTIPLE["int8"]))
    acc = cusparselt.sparse_mm(c, w_q, out_dtype=torch.int32)[:rows]
    return triton_elementwise.dequant(acc, s, w_scale, x.dtype)


@torch.library.custom_op("ampersim::sparse_linear_24", mutates_args=(),
                         schema="(Tensor x, Tensor[] weights, Tensor? factor) -> Tensor[]")
def _sparse_24_op(x: torch.Tensor, weights: list[torch.Tensor], factor: torch.Tensor | None) -> list[torch.Tensor]:
    return _sparse_24(x, weights, factor)


@_sparse_24_op.register_fake
def _(x: torch.Tensor, weights: list[torch.Tensor], factor: torch.Tensor | None) -> list[torch.Tensor]:
    return [x.new_empty((x.shape[0], w.shape[0])) for w in weights]


@torch.library.custom_op("ampersim::sparse_linear_24_int8", mutates_args=(),
                         schema="(Tensor x, Tensor w_q, Tensor w_scale, Tensor? factor) -> Tensor")
def _sparse_24_int8_op(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                       factor: torch.Tensor | None) -> torch.Tensor:
    return _sparse_24_int8(x, w_q, w_scale, factor)


@_sparse_24_int8_op.register_fake
def _(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((x.shape[0], w_q.shape[0]))


def sparse_linears_24(x: torch.Tensor, weights: list[torch.Tensor], factor: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Prune x [T, K] once (2:4), multiply by each weight: one custom op under torch.compile, direct eagerly."""
    if torch.compiler.is_compiling():
        return torch.ops.ampersim.sparse_linear_24(x, weights, factor)
    return _sparse_24(x, weights, factor)


def _linear_24(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, factor: torch.Tensor | None) -> torch.Tensor:
    (y,) = sparse_linears_24(x.reshape(-1, x.shape[-1]), [weight], factor)
    y = y.view(*x.shape[:-1], weight.shape[0])
    return y if bias is None else y + bias


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                  pattern: str | NMPattern = "2:4", factor: Any = None) -> torch.Tensor:
    """``F.linear(prune(x, pattern, factor), weight, bias)``, through the 2:4 sparse GEMM when possible."""
    nm = NATIVE if pattern == "2:4" else NMPattern.parse(pattern)  # the common case skips parsing (host time)
    if x.shape[-1] != weight.shape[-1]:
        raise InvalidArgument(f"sparse_linear: x has {x.shape[-1]} features, weight expects {weight.shape[-1]}")
    if nm != NATIVE:
        return F.linear(_prune_any(x, nm, factor), weight, bias)
    f = None if factor is None else torch.as_tensor(factor, device=x.device, dtype=torch.float32)
    return _linear_24(x, weight, bias, f)


def quantize_weight_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel absmax int8 weights: (w_q int8 [N, K], scale fp32 [N])."""
    w = weight.float()
    scale = w.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127.0
    return torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


def sparse_linear_int8(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                       bias: torch.Tensor | None = None, *, factor: Any = None) -> torch.Tensor:
    """W8A8 activation-sparse linear: 2:4 prune + per-token int8 quantization + sparse int8 GEMM.

    y = (q_x @ w_q.T) * s_x[:, None] * w_scale[None, :] + bias, in x's dtype: the sparse GEMM returns
    int32 and the dense path's one-pass dequantization applies both scales with one rounding (an alpha
    vector with 16-bit output, then the weight scale, would round twice: docs/gpu-pruner.md). Dense
    fallback (same math in float) with a one-time warning when the sparse path cannot run.
    """
    if w_q.dtype != torch.int8:
        raise InvalidArgument(f"sparse_linear_int8: w_q must be int8, got {w_q.dtype}")
    f = None if factor is None else torch.as_tensor(factor, device=x.device, dtype=torch.float32)
    x2 = x.reshape(-1, x.shape[-1])
    if torch.compiler.is_compiling():
        y = torch.ops.ampersim.sparse_linear_24_int8(x2, w_q, w_scale, f)
    else:
        y = _sparse_24_int8(x2, w_q, w_scale, f)
    y = y.view(*x.shape[:-1], w_q.shape[0])
    return y if bias is None else y + bias


def dense_linear_int8(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                      bias: torch.Tensor | None = None) -> torch.Tensor:
    """Dense W8A8 linear (the baseline of ``sparse_linear_int8``): per-token int8 quantization (two
    Triton kernels), ``torch._int_mm``, one-pass dequantization epilogue; x's dtype out."""
    from ampersim.kernels.gpu import triton_elementwise

    x2 = x.reshape(-1, x.shape[-1])
    q, s = kernels_gpu.quantize_int8(x2)
    if q.shape[0] <= 16:  # torch._int_mm needs more than 16 rows
        q = F.pad(q, (0, 0, 0, 17 - q.shape[0]))
    acc = torch._int_mm(q, w_q.t())[: x2.shape[0]]
    y = triton_elementwise.dequant(acc, s, w_scale, x.dtype).view(*x.shape[:-1], w_q.shape[0])
    return y if bias is None else y + bias


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
        self._native = self.pattern == NATIVE
        self.weight = torch.nn.Parameter(weight.detach().contiguous(), requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach(), requires_grad=False)
        self.register_buffer("factor", None if factor is None else factor.detach().float())

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, *, pattern: str | NMPattern = "2:4",
                    factor: torch.Tensor | None = None) -> ActivationSparseLinear:
        return cls(linear.weight, linear.bias, pattern=pattern, factor=factor)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._native:
            return _linear_24(x, self.weight, self.bias, self.factor)
        return F.linear(_prune_any(x, self.pattern, self.factor), self.weight, self.bias)

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
    def from_linear(cls, linear: torch.nn.Linear, *, factor: torch.Tensor | None = None) -> Int8ActivationSparseLinear:
        return cls(linear.weight, linear.bias, factor=factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sparse_linear_int8(x, self.w_q, self.w_scale, self.bias, factor=self.factor)


__all__ = [
    "ActivationSparseLinear", "Int8ActivationSparseLinear", "dense_linear_int8", "dense_reason",
    "quantize_weight_int8", "sparse_linear", "sparse_linear_int8", "sparse_linears_24", "token_bucket",
]
